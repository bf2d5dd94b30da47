/**
 * The TensorFlow.js worker's requests (`tfjsRunner.ts` answers them; `tfjsWorker.ts` sends them).
 */
import type * as Tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { EngineFailure, failure, TransferredArrayBuffer, TransferredFloat32Array } from "./workerProtocol.js"

/** Why the worker could not load the model, beyond its message. */
export const LoadProblem = Schema.Union(
  /** No backend of the list started; `skipped` says why for each. */
  Schema.TaggedStruct("NoBackend", { skipped: Schema.Array(Schema.String) }),
  /** `output` names no layer (or the model cannot be cut there); `layers` lists the layers it has. */
  Schema.TaggedStruct("NoSuchLayer", { layers: Schema.Array(Schema.String) }),
  /** TensorFlow.js could not load the files. */
  Schema.TaggedStruct("Other", {})
)
export type LoadProblem = typeof LoadProblem.Type

export class LoadFailure extends Schema.TaggedError<LoadFailure>()("LoadFailure", {
  message: Schema.String,
  problem: LoadProblem
}) {}

/** `model.json` as parsed (TensorFlow.js checks the rest when it loads it). */
const ModelJson = Schema.declare(
  (u: unknown): u is Tf.io.ModelJSON => typeof u === "object" && u !== null && "modelTopology" in u,
  { identifier: "ModelJSON" }
)

/** Activate a backend and load the model; `weightData` moves to the worker (detached on the main thread). */
// "InitialMessage" is @effect/platform's tag for the request a worker is started with: `Worker.makeSerialized` sends
// it first, and the runner's handler, a Layer, provides the model to every later request.
export class Load extends Schema.TaggedRequest<Load>()("InitialMessage", {
  failure: failure(LoadFailure),
  success: Schema.Void,
  payload: {
    /** Backend names to try in order: `tensorflow`, `wasm`, `cpu`. */
    backends: Schema.Array(Schema.String),
    format: Schema.Literal("layers-model", "graph-model"),
    json: ModelJson,
    weightData: TransferredArrayBuffer,
    /** The layer (layers models) or node (graph models) whose output is the embedding. Default: the model output. */
    output: Schema.UndefinedOr(Schema.String),
    pooling: Schema.Literal("none", "global-average"),
    layout: Schema.Literal("NCHW", "NHWC"),
    size: Schema.Int
  }
}) {}

/** The backend the worker activated (and why it skipped the ones before it), and the model's input shapes. */
export class Describe extends Schema.TaggedRequest<Describe>()("Describe", {
  failure: failure(EngineFailure),
  success: Schema.Struct({
    backend: Schema.String,
    skipped: Schema.Array(Schema.String),
    inputs: Schema.Array(Schema.UndefinedOr(Schema.Array(Schema.NullOr(Schema.Number))))
  }),
  payload: {}
}) {}

/** One batch of `count` images through the model, pooled and flattened; both arrays move between the threads. */
export class Embed extends Schema.TaggedRequest<Embed>()("Embed", {
  failure: failure(EngineFailure),
  success: TransferredFloat32Array,
  payload: { data: TransferredFloat32Array, count: Schema.Int }
}) {}

export const TfjsRequest = Schema.Union(Load, Describe, Embed)
export type TfjsRequest = typeof TfjsRequest.Type
