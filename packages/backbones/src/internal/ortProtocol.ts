/**
 * The onnxruntime worker's requests (`ortRunner.ts` answers them; `ortWorker.ts` sends them).
 */
import { Schema } from "effect"
import { EngineFailure, failure, TransferredFloat32Array, TypedArrayFromSelf } from "./workerProtocol.js"

/** Create the session: the model's bytes (copied to the worker) and the thread options of `ortEmbed.sessionOptions`. */
// "InitialMessage" is @effect/platform's tag for the request a worker is started with: `Worker.makeSerialized` sends
// it first, and the runner's handler, a Layer, provides the model to every later request.
export class Load extends Schema.TaggedRequest<Load>()("InitialMessage", {
  failure: failure(EngineFailure),
  success: Schema.Void,
  payload: {
    model: Schema.Uint8ArrayFromSelf,
    intraOpNumThreads: Schema.Int,
    spinning: Schema.Boolean
  }
}) {}

/** The loaded session's input and output names. */
export class Describe extends Schema.TaggedRequest<Describe>()("Describe", {
  failure: failure(EngineFailure),
  success: Schema.Struct({ inputs: Schema.Array(Schema.String), outputs: Schema.Array(Schema.String) }),
  payload: {}
}) {}

/** One output tensor of a run. */
export const OutputTensor = Schema.Struct({
  type: Schema.String,
  dims: Schema.Array(Schema.Number),
  data: TypedArrayFromSelf
})
export type OutputTensor = typeof OutputTensor.Type

/**
 * One float32 input through the session, `outputs` requested. `data` moves to the worker (detached here) and back
 * with the reply (`input`), so that the main thread reuses the buffer for a later batch.
 */
export class Run extends Schema.TaggedRequest<Run>()("Run", {
  failure: failure(EngineFailure),
  success: Schema.Struct({
    outputs: Schema.Record({ key: Schema.String, value: OutputTensor }),
    input: TransferredFloat32Array
  }),
  payload: {
    input: Schema.String,
    data: TransferredFloat32Array,
    dims: Schema.Array(Schema.Number),
    outputs: Schema.Array(Schema.String)
  }
}) {}

export const OrtRequest = Schema.Union(Load, Describe, Run)
export type OrtRequest = typeof OrtRequest.Type
