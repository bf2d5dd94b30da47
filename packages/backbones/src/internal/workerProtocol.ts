/**
 * The Schema pieces both engine workers' protocols share (`ortProtocol.ts`, `tfjsProtocol.ts`): requests are
 * `Schema.TaggedRequest`s, sent and answered through `@effect/platform`'s serialized workers (`workerThread.ts` on
 * the main thread, `WorkerRunner` in the worker).
 */
import * as Transferable from "@effect/platform/Transferable"
import { WorkerError } from "@effect/platform/WorkerError"
import { Schema } from "effect"

/** The engine's own error inside the worker (onnxruntime's or TensorFlow.js's message). */
export class EngineFailure extends Schema.TaggedError<EngineFailure>()("EngineFailure", {
  message: Schema.String
}) {}

/**
 * A request's failure: the engine's error, or the worker dying under the request. The main side decodes every
 * failure with this schema, the worker's death included (`WorkerError`); without it there a crash would surface as a
 * ParseError about the failure's tag.
 */
export const failure = <F extends Schema.Schema.Any>(engine: F) => Schema.Union(engine, WorkerError)

/** Any typed array (onnxruntime outputs float32, uint8, int8, int32 or float64 tensors). */
export type TypedArray = Float32Array | Uint8Array | Int8Array | Int32Array | Float64Array

/** A typed array, copied between threads (structured clone). */
export const TypedArrayFromSelf = Schema.declare(
  (u: unknown): u is TypedArray =>
    u instanceof Float32Array || u instanceof Uint8Array || u instanceof Int8Array || u instanceof Int32Array ||
    u instanceof Float64Array,
  { identifier: "TypedArray" }
)

const Float32ArrayFromSelf = Schema.declare((u: unknown): u is Float32Array => u instanceof Float32Array, {
  identifier: "Float32Array"
})

/**
 * A Float32Array whose buffer moves to the other thread instead of being copied: the sender's array is detached
 * afterwards, so it must own its whole buffer (not a view into a larger one).
 */
export const TransferredFloat32Array = Transferable.schema(Float32ArrayFromSelf, (a) => [a.buffer])

/** An ArrayBuffer that moves to the other thread (detached on the sending side). */
export const TransferredArrayBuffer = Transferable.schema(
  Schema.declare((u: unknown): u is ArrayBuffer => u instanceof ArrayBuffer, { identifier: "ArrayBuffer" }),
  (b) => [b]
)
