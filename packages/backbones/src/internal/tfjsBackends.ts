/**
 * The TensorFlow.js backends Loupe can activate, and activating the first that starts: the main thread does it
 * (`selectBackend`) and so does the tfjs engine's worker (`tfjsRunner.ts`), each for its own thread.
 */
import { Data, Effect } from "effect"
import { createRequire } from "node:module"
import * as path from "node:path"
import { BackboneError } from "../BackboneError.js"
import { errorText, importTf, type TfModule } from "./tfjsFiles.js"

/**
 * A TensorFlow.js backend that may be usable here.
 *
 * @since 0.1.0
 * @category backends
 */
export interface BackendCandidate {
  /** The name the backend registers under in TensorFlow.js (`tensorflow`, `wasm`, `cpu`). */
  readonly name: string
  /** Imports and registers the backend; rejects when it cannot run on this machine. */
  readonly prepare: (tf: TfModule) => Promise<void>
}

// A non-literal specifier: bundlers and the type checker leave the optional peer alone.
const optionalPeer = "@tensorflow/tfjs-node"

/**
 * `@tensorflow/tfjs-node` (native TensorFlow), when installed and its binary loads.
 *
 * @since 0.1.0
 * @category backends
 */
export const tensorflowBackend: BackendCandidate = {
  name: "tensorflow",
  prepare: async () => {
    await import(optionalPeer)
  }
}

/**
 * The wasm backend, pointed at the `.wasm` files inside the installed package, so it starts offline.
 *
 * @since 0.1.0
 * @category backends
 */
export const wasmBackend: BackendCandidate = {
  name: "wasm",
  prepare: async () => {
    const wasm = await import("@tensorflow/tfjs-backend-wasm")
    const entry = createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm")
    wasm.setWasmPaths(path.dirname(entry) + path.sep)
  }
}

/**
 * The pure-JavaScript backend bundled with `@tensorflow/tfjs`: always available, about 10x slower than wasm.
 *
 * @since 0.1.0
 * @category backends
 */
export const cpuBackend: BackendCandidate = { name: "cpu", prepare: async () => {} }

/**
 * The order `auto` tries.
 *
 * @since 0.1.0
 * @category backends
 */
export const defaultBackends: ReadonlyArray<BackendCandidate> = [tensorflowBackend, wasmBackend, cpuBackend]

/** No candidate started; `skipped` says why for each. */
export class NoBackend extends Data.TaggedError("NoBackend")<{ readonly skipped: ReadonlyArray<string> }> {}

const firstLine = (text: string) => text.split("\n")[0]!.trim()

/** Activates the first candidate that prepares and initialises, in this thread; says why it skipped the others. */
export const activate = (
  tf: TfModule,
  candidates: ReadonlyArray<BackendCandidate>
): Effect.Effect<{ readonly backend: string; readonly skipped: ReadonlyArray<string> }, NoBackend> =>
  Effect.gen(function*() {
    const skipped: Array<string> = []
    for (const candidate of candidates) {
      const outcome = yield* Effect.tryPromise(async () => {
        await candidate.prepare(tf)
        return await tf.setBackend(candidate.name)
      }).pipe(Effect.either)
      if (outcome._tag === "Right" && outcome.right) return { backend: candidate.name, skipped }
      const reason = outcome._tag === "Left" ? firstLine(errorText(outcome.left.error)) : "it did not initialise"
      skipped.push(`${candidate.name}: ${reason}`)
    }
    return yield* new NoBackend({ skipped })
  })

/**
 * Activates the first candidate that prepares and initialises, and logs which one it chose and why the earlier
 * ones were skipped. Fails with every reason when none works. The choice is process-wide (TensorFlow.js has one
 * active backend).
 */
export const selectBackend = (
  candidates: ReadonlyArray<BackendCandidate> = defaultBackends
): Effect.Effect<string, BackboneError> =>
  Effect.gen(function*() {
    const tf = yield* importTf
    const { backend, skipped } = yield* Effect.mapError(activate(tf, candidates), (none) => noBackend(none.skipped))
    yield* logBackend(backend, skipped)
    return backend
  })

/** Logs the backend a thread activated, and why it skipped the ones before it. */
export const logBackend = (name: string, skipped: ReadonlyArray<string>) =>
  Effect.logInfo(`TensorFlow.js backend: ${name}${skipped.length > 0 ? ` (skipped ${skipped.join("; ")})` : ""}`)

/** No backend could start (on the main thread, or in the worker loading `file`). */
export const noBackend = (skipped: ReadonlyArray<string>, file?: string) =>
  new BackboneError({
    reason: "LoadFailed",
    field: "backend",
    message: `No TensorFlow.js backend could start: ${skipped.join("; ") || "no candidates given"}`,
    ...(file === undefined ? {} : { file })
  })
