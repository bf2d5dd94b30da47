/**
 * An onnxruntime session that lives in a worker thread.
 *
 * onnxruntime-node's `session.run` computes on the calling thread, so on the main thread it would block the event
 * loop for the whole batch: no file reads, no image decodes dispatched, no cache writes. In a worker, the main
 * thread keeps decoding the next batch while this one runs.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { createRequire } from "node:module"
import { once } from "node:events"
import { Worker } from "node:worker_threads"
import type * as Ort from "onnxruntime-node"
import { BackboneError } from "../BackboneError.js"

export interface ValueMetadata {
  readonly name: string
  readonly type?: string
  readonly shape?: ReadonlyArray<number | string>
}

export interface OutputTensor {
  readonly type: string
  readonly dims: ReadonlyArray<number>
  readonly data: Float32Array | Uint8Array | Int8Array | Int32Array | Float64Array
}

export interface WorkerSession {
  readonly inputs: ReadonlyArray<ValueMetadata>
  readonly outputs: ReadonlyArray<ValueMetadata>
  /** Run one float32 input through the model; the promise rejects with onnxruntime's message. */
  readonly run: (
    input: string,
    data: Float32Array,
    dims: ReadonlyArray<number>,
    outputs: ReadonlyArray<string>
  ) => Promise<Record<string, OutputTensor>>
}

// Plain JavaScript on purpose: the worker is started from this string (`eval: true`), so it runs the same from the
// TypeScript sources under vitest and from the bundled dist, and no bundler rewrites its `require`.
const workerSource = `
const { parentPort, workerData } = require("node:worker_threads")
const ort = require(workerData.ortEntry)
const describe = (m) => ({ name: m.name, type: m.type, shape: m.shape })
ort.InferenceSession.create(workerData.model, workerData.options).then(
  (session) => {
    parentPort.postMessage({
      kind: "ready",
      inputs: session.inputMetadata.map(describe),
      outputs: session.outputMetadata.map(describe)
    })
    parentPort.on("message", (msg) => {
      if (msg.kind === "close") {
        session.release().finally(() => parentPort.close())
        return
      }
      session.run({ [msg.input]: new ort.Tensor("float32", msg.data, msg.dims) }, msg.outputs).then(
        (result) => {
          const outputs = {}
          for (const name of msg.outputs) {
            const t = result[name]
            outputs[name] = { type: t.type, dims: t.dims, data: t.data }
          }
          parentPort.postMessage({ kind: "result", id: msg.id, outputs })
        },
        (error) => parentPort.postMessage({ kind: "result", id: msg.id, error: String(error && error.message || error) })
      )
    })
  },
  (error) => parentPort.postMessage({ kind: "failed", error: String(error && error.message || error) })
)
`

const ortEntry = createRequire(import.meta.url).resolve("onnxruntime-node")

type Reply =
  | { readonly kind: "ready"; readonly inputs: Array<ValueMetadata>; readonly outputs: Array<ValueMetadata> }
  | { readonly kind: "failed"; readonly error: string }
  | { readonly kind: "result"; readonly id: number; readonly outputs?: Record<string, OutputTensor>; readonly error?: string }

interface Pending {
  readonly resolve: (outputs: Record<string, OutputTensor>) => void
  readonly reject: (error: Error) => void
}

interface Started {
  readonly worker: Worker
  readonly exited: Promise<unknown>
  readonly session: WorkerSession
}

const start = (model: Uint8Array, options: Ort.InferenceSession.SessionOptions, file: string) =>
  Effect.async<Started, BackboneError>((resume) => {
    const worker = new Worker(workerSource, { eval: true, workerData: { ortEntry, model, options } })
    const exited = once(worker, "exit")
    const pending = new Map<number, Pending>()
    let nextId = 0
    let settled = false
    let dead: string | undefined
    const settle = (effect: Effect.Effect<Started, BackboneError>) => {
      if (settled) return
      settled = true
      resume(effect)
    }
    const failAll = (message: string) => {
      dead = message
      settle(Effect.fail(new BackboneError({ reason: "LoadFailed", file, message: `Cannot load ${file}: ${message}` })))
      for (const p of pending.values()) p.reject(new Error(message))
      pending.clear()
    }
    worker.on("message", (reply: Reply) => {
      if (reply.kind === "ready") {
        // Idle workers must not keep the process alive; a worker with requests in flight must.
        worker.unref()
        const session: WorkerSession = {
          inputs: reply.inputs,
          outputs: reply.outputs,
          run: (input, data, dims, outputs) =>
            new Promise((resolve, reject) => {
              if (dead !== undefined) return reject(new Error(dead))
              const id = nextId++
              if (pending.size === 0) worker.ref()
              pending.set(id, { resolve, reject })
              worker.postMessage({ kind: "run", id, input, data, dims, outputs })
            })
        }
        settle(Effect.succeed({ worker, exited, session }))
      } else if (reply.kind === "failed") {
        failAll(reply.error)
      } else {
        const p = pending.get(reply.id)
        pending.delete(reply.id)
        if (pending.size === 0) worker.unref()
        if (p === undefined) return
        if (reply.outputs !== undefined) p.resolve(reply.outputs)
        else p.reject(new Error(reply.error ?? "no result"))
      }
    })
    worker.on("error", (error) => failAll(`the onnxruntime worker crashed: ${error.message}`))
    worker.on("exit", (code) => failAll(`the onnxruntime worker exited with code ${code}`))
    return Effect.promise(() => worker.terminate())
  })

/**
 * Load `model` into an onnxruntime session in a new worker thread; the worker ends with the scope.
 * `file` names the model in errors.
 */
export const open = (
  model: Uint8Array,
  options: Ort.InferenceSession.SessionOptions,
  file: string
): Effect.Effect<WorkerSession, BackboneError, Scope.Scope> =>
  Effect.acquireRelease(start(model, options, file), ({ exited, worker }) =>
    Effect.promise(() => {
      // Keep the process alive until the worker has released the session and exited.
      worker.ref()
      worker.postMessage({ kind: "close" })
      return exited
    })).pipe(Effect.map(({ session }) => session))
