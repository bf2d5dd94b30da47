/**
 * An onnxruntime session that lives in a worker thread (see `workerThread.ts` for why and how; the worker's module
 * is `ortRunner.ts`, its requests `ortProtocol.ts`).
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import { Effect } from "effect"
import type { Scope } from "effect"
import { BackboneError } from "../BackboneError.js"
import type { ThreadOptions } from "./ortEmbed.js"
import { Describe, Load, type OrtRequest, type OutputTensor, Run } from "./ortProtocol.js"
import * as WorkerThread from "./workerThread.js"

export type { OutputTensor } from "./ortProtocol.js"

export interface WorkerSession {
  readonly inputNames: ReadonlyArray<string>
  readonly outputNames: ReadonlyArray<string>
  /**
   * Run one float32 input through the model; fails with onnxruntime's message. `data` stays the caller's: a copy of
   * it moves to the worker and back (one copy, into a buffer reused from batch to batch).
   */
  readonly run: (
    input: string,
    data: Float32Array,
    dims: ReadonlyArray<number>,
    outputs: ReadonlyArray<string>
  ) => Effect.Effect<Record<string, OutputTensor>, { readonly message: string }>
}

/**
 * Load `model` into an onnxruntime session in a new worker thread; the worker ends with the scope.
 * `file` names the model in errors.
 */
export const open = (
  model: Uint8Array,
  threads: ThreadOptions,
  file: string
): Effect.Effect<WorkerSession, BackboneError, Scope.Scope | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const loadFailed = (error: { readonly message: string }) =>
      new BackboneError({ reason: "LoadFailed", file, message: `Cannot load ${file}: ${error.message}` })
    const initial = new Load({ model, intraOpNumThreads: threads.intraOpNumThreads, spinning: threads.spinning })
    const worker = yield* Effect.mapError(
      WorkerThread.open<OrtRequest>({ name: "onnxruntime", runner: "ortRunner", initial }),
      loadFailed
    )
    const { inputs, outputs } = yield* Effect.mapError(worker.request(new Describe()), loadFailed)
    // Input buffers back from the worker. A fresh 10 MB buffer per batch would die in the worker's old generation
    // and make it run a full garbage collection every few batches; reusing them keeps both threads' heaps quiet.
    const spare: Array<Float32Array> = []
    const copyOf = (data: Float32Array) => {
      const i = spare.findIndex((b) => b.length === data.length)
      const buffer = i < 0 ? new Float32Array(data.length) : spare.splice(i, 1)[0]!
      buffer.set(data)
      return buffer
    }
    return {
      inputNames: inputs,
      outputNames: outputs,
      run: (input, data, dims, outputs) =>
        Effect.suspend(() => worker.request(new Run({ input, data: copyOf(data), dims, outputs }))).pipe(
          Effect.map((reply) => {
            if (spare.length < 2) spare.push(reply.input)
            return reply.outputs
          })
        )
    }
  })
