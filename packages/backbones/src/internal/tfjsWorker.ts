/**
 * A TensorFlow.js model that lives in a worker thread (see `workerThread.ts` for why and how; the worker's module
 * is `tfjsRunner.ts`, its requests `tfjsProtocol.ts`): the tfjs engine of the TensorFlow.js plugin.
 *
 * The worker imports TensorFlow.js itself and activates the first backend of the list it is given that starts, the
 * way `selectBackend` (`tfjsBackends.ts`) does on the main thread: `tensorflow` (`@tensorflow/tfjs-node`, an
 * optional peer dependency), `wasm` (initialised offline from the `.wasm` files inside
 * `@tensorflow/tfjs-backend-wasm`; SIMD when the CPU has it, one thread, as always in Node), `cpu`. It reports the one it chose and why it skipped the others.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import { Effect } from "effect"
import type { Scope } from "effect"
import type { BackboneError } from "../BackboneError.js"
import type { TfjsModelFiles } from "./tfjsFiles.js"
import { Describe, Embed, Load, type LoadFailure, type LoadProblem, type TfjsRequest } from "./tfjsProtocol.js"
import type { EngineFailure } from "./workerProtocol.js"
import * as WorkerThread from "./workerThread.js"

export type { LoadProblem } from "./tfjsProtocol.js"

export interface Spec {
  /** Backend names to try in order: `tensorflow`, `wasm`, `cpu`. */
  readonly backends: ReadonlyArray<string>
  /** The model's files. Its `weightData` moves to the worker: the buffer is detached here afterwards. */
  readonly files: TfjsModelFiles
  /** The layer (layers models) or node (graph models) whose output is the embedding. Default: the model output. */
  readonly output: string | undefined
  readonly pooling: "none" | "global-average"
  readonly layout: "NCHW" | "NHWC"
  readonly size: number
  /** The error for a load that failed (`Other` also when the worker died while loading). */
  readonly loadFailed: (message: string, problem: LoadProblem) => BackboneError
}

export interface TfjsModel {
  /** The backend the worker activated, and why it skipped the ones before it. */
  readonly backend: string
  readonly skipped: ReadonlyArray<string>
  /** The model's declared input shapes, batch first. */
  readonly inputs: ReadonlyArray<ReadonlyArray<number | null> | undefined>
  /**
   * One batch of `count` images in `layout` through the model, pooled and flattened into `count x n` values.
   * `batch` stays the caller's: a copy of it moves to the worker. Fails with TensorFlow.js's message, or when the
   * worker has died.
   */
  readonly embed: (batch: Float32Array, count: number) => Effect.Effect<Float32Array, { readonly message: string }>
}

/** Load the model in a new worker thread; the worker ends with the scope. */
export const open = (spec: Spec): Effect.Effect<TfjsModel, BackboneError, Scope.Scope | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const { files, layout, output, pooling, size } = spec
    const initial = new Load({
      backends: spec.backends,
      format: files.format,
      json: files.json,
      weightData: files.weightData,
      output,
      pooling,
      layout,
      size
    })
    const loadFailed = (error: LoadFailure | WorkerThread.WorkerFailed | EngineFailure) =>
      spec.loadFailed(error.message, error._tag === "LoadFailure" ? error.problem : { _tag: "Other" })
    const worker = yield* Effect.mapError(
      WorkerThread.open<TfjsRequest>({ name: "TensorFlow.js", runner: "tfjsRunner", initial }),
      loadFailed
    )
    const ready = yield* Effect.mapError(worker.request(new Describe()), loadFailed)
    return {
      ...ready,
      embed: (batch, count) => worker.request(new Embed({ data: batch.slice(), count }))
    }
  })
