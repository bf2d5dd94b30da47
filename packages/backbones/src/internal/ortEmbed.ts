/**
 * Embedding with an onnxruntime worker session: the session options both ONNX-running plugins use, and one batch
 * through the session, checked and pooled into one vector per image.
 */
import { Effect } from "effect"
import type * as Ort from "onnxruntime-node"
import { BackboneError } from "../BackboneError.js"
import type { WorkerSession } from "./ortWorker.js"
import { type ChannelAxis, pool, type Pooling, pooledSize } from "./pooling.js"

export interface ThreadOptions {
  readonly intraOpNumThreads: number
  readonly spinning: boolean
}

/** CPU, sequential, every graph optimisation (onnxruntime fuses Conv + BatchNormalization + activation). */
export const sessionOptions = (threads: ThreadOptions): Ort.InferenceSession.SessionOptions => ({
  intraOpNumThreads: threads.intraOpNumThreads,
  interOpNumThreads: 1,
  executionMode: "sequential",
  graphOptimizationLevel: "all",
  extra: { session: { intra_op: { allow_spinning: threads.spinning ? "1" : "0" } } }
})

export interface EmbeddingOutput {
  readonly id: string
  /** The model file, for errors. */
  readonly file: string
  readonly input: string
  readonly output: string
  /** The config field that chose the output, for errors. */
  readonly outputField: string
  readonly pooling: Pooling
  readonly channels: ChannelAxis
  readonly embeddingSize: number
  /** The input tensor's dims for `count` images. */
  readonly inputDims: (count: number) => ReadonlyArray<number>
}

/** Runs one batch (already checked by the caller) and pools the output into `count x embeddingSize` values. */
export const embedder = (session: WorkerSession, spec: EmbeddingOutput) => (batch: Float32Array, count: number) =>
  Effect.gen(function*() {
    const result = yield* Effect.mapError(
      session.run(spec.input, batch, spec.inputDims(count), [spec.output]),
      (cause) =>
        new BackboneError({
          reason: "InferenceFailed",
          file: spec.file,
          field: spec.id,
          message: `${spec.id}: ${cause.message}`,
          cause
        })
    )
    const out = result[spec.output]!
    if (!(out.data instanceof Float32Array)) {
      return yield* new BackboneError({
        reason: "InferenceFailed",
        file: spec.file,
        field: spec.outputField,
        message: `${spec.id}: ${spec.output} holds ${out.type} values, not float32; choose a float tensor`
      })
    }
    const got = pooledSize(out.dims, spec.pooling, spec.channels)
    if (out.dims[0] !== count || got !== spec.embeddingSize) {
      return yield* new BackboneError({
        reason: "InferenceFailed",
        file: spec.file,
        field: "embeddingSize",
        message: `${spec.id}: ${spec.output} has shape [${out.dims.join(", ")}], which gives ${got} values per ` +
          `image with ${spec.pooling} pooling; the config says embeddingSize ${spec.embeddingSize}`
      })
    }
    return pool(out.data, out.dims, spec.pooling, spec.channels)
  })
