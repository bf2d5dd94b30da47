/**
 * A model that lives in a worker thread, spoken to by request and reply.
 *
 * onnxruntime-node's `session.run` and TensorFlow.js on the wasm backend compute on the calling thread, so on the
 * main thread they would block the event loop for a whole batch: no file reads, no image decodes dispatched, no
 * cache writes, no HTTP requests answered. In a worker, the main thread keeps decoding the next batch while this one
 * runs. This module is the plumbing both engines share: the worker side's message loop (`prelude`), and the main
 * side's start, request/reply matching by id, error mapping and lifetime (the worker ends with the scope).
 *
 * The worker is started from a string of plain JavaScript (`eval: true`), so it runs the same from the TypeScript
 * sources under vitest and from the bundled dist, and no bundler rewrites its `require`.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { Worker } from "node:worker_threads"
import type { BackboneError } from "../BackboneError.js"

/**
 * The worker side, to be followed by a call `serve(start)`. `start()` (sync or async) loads the model and returns
 * `{ ready, handle, close }`: `ready` is posted to the main thread as the load's result; `handle(request)` answers one
 * request with `{ value, transfer }` (the ArrayBuffers in `transfer` move to the main thread instead of being
 * copied); `close()` releases the model before the worker ends. When `start` throws, its message (and the error's
 * `detail`, any cloneable value) fail the load.
 */
export const prelude = `
const { parentPort, workerData } = require("node:worker_threads")
const errorText = (error) => String((error && error.message) || error)
const serve = (start) => Promise.resolve().then(start).then(
  ({ ready, handle, close }) => {
    parentPort.on("message", (msg) => {
      if (msg.kind === "close") {
        Promise.resolve().then(close).finally(() => parentPort.close())
        return
      }
      Promise.resolve(msg).then(handle).then(
        (reply) => parentPort.postMessage({ kind: "result", id: msg.id, value: reply.value }, reply.transfer || []),
        (error) => parentPort.postMessage({ kind: "result", id: msg.id, error: errorText(error) })
      )
    })
    parentPort.postMessage({ kind: "ready", ready })
  },
  (error) => parentPort.postMessage({ kind: "failed", error: errorText(error), detail: error && error.detail })
)
`

export interface Options {
  /** The worker's JavaScript after `prelude`: it ends by calling `serve`. */
  readonly source: string
  readonly workerData: unknown
  /** ArrayBuffers inside `workerData` that move to the worker instead of being copied (detached here). */
  readonly transferList?: ReadonlyArray<ArrayBuffer>
  /** Names the worker in errors: "the <name> worker crashed". */
  readonly name: string
  /** The error for a load that failed: the worker's message and `detail`, or a crash before the load ended. */
  readonly loadFailed: (message: string, detail: unknown) => BackboneError
}

export interface WorkerThread<Ready> {
  /** What `start` returned as `ready`. */
  readonly ready: Ready
  /**
   * Send one request (a plain object; `id` and `kind` are added) and wait for `handle`'s value. Rejects with the
   * worker's message, or when the worker has died.
   */
  readonly request: <A>(message: object, transfer?: ReadonlyArray<ArrayBuffer>) => Promise<A>
}

type Reply =
  | { readonly kind: "ready"; readonly ready: unknown }
  | { readonly kind: "failed"; readonly error: string; readonly detail?: unknown }
  | { readonly kind: "result"; readonly id: number; readonly value?: unknown; readonly error?: string }

interface Pending {
  readonly resolve: (value: unknown) => void
  readonly reject: (error: Error) => void
}

interface Started<Ready> {
  readonly worker: Worker
  readonly exited: Promise<unknown>
  readonly thread: WorkerThread<Ready>
}

const start = <Ready>(options: Options) =>
  Effect.async<Started<Ready>, BackboneError>((resume) => {
    const worker = new Worker(prelude + options.source, {
      eval: true,
      workerData: options.workerData,
      transferList: options.transferList === undefined ? [] : [...options.transferList]
    })
    // Not events.once: it rejects when the worker emits "error" before "exit".
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()))
    const pending = new Map<number, Pending>()
    let nextId = 0
    let settled = false
    let dead: string | undefined
    const settle = (effect: Effect.Effect<Started<Ready>, BackboneError>) => {
      if (settled) return
      settled = true
      resume(effect)
    }
    const failAll = (message: string, detail?: unknown) => {
      dead = message
      if (!settled) {
        // The load failed: end the worker, which may still hold TensorFlow.js or a half-made session.
        void worker.terminate()
        settle(Effect.fail(options.loadFailed(message, detail)))
      }
      for (const p of pending.values()) p.reject(new Error(message))
      pending.clear()
    }
    const request = <A>(message: object, transfer: ReadonlyArray<ArrayBuffer> = []) =>
      new Promise<A>((resolve, reject) => {
        if (dead !== undefined) return reject(new Error(dead))
        const id = nextId++
        if (pending.size === 0) worker.ref()
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
        worker.postMessage({ ...message, kind: "request", id }, [...transfer])
      })
    worker.on("message", (reply: Reply) => {
      if (reply.kind === "ready") {
        // Idle workers must not keep the process alive; a worker with requests in flight must.
        worker.unref()
        settle(Effect.succeed({ worker, exited, thread: { ready: reply.ready as Ready, request } }))
      } else if (reply.kind === "failed") {
        failAll(reply.error, reply.detail)
      } else {
        const p = pending.get(reply.id)
        pending.delete(reply.id)
        if (pending.size === 0) worker.unref()
        if (p === undefined) return
        if (reply.error === undefined) p.resolve(reply.value)
        else p.reject(new Error(reply.error))
      }
    })
    worker.on("error", (error) => failAll(`the ${options.name} worker crashed: ${error.message}`))
    worker.on("exit", (code) => failAll(`the ${options.name} worker exited with code ${code}`))
    return Effect.promise(() => worker.terminate())
  })

/** Start the worker and wait for its model to load; the worker ends with the scope. */
export const open = <Ready>(options: Options): Effect.Effect<WorkerThread<Ready>, BackboneError, Scope.Scope> =>
  Effect.acquireRelease(start<Ready>(options), ({ exited, worker }) =>
    Effect.promise(() => {
      // Keep the process alive until the worker has released the model and exited.
      worker.ref()
      worker.postMessage({ kind: "close" })
      return exited
    })).pipe(Effect.map(({ thread }) => thread))
