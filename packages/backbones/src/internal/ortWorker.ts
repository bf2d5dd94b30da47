/**
 * An onnxruntime session that lives in a worker thread (see `workerThread.ts` for why and how).
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { createRequire } from "node:module"
import type * as Ort from "onnxruntime-node"
import { BackboneError } from "../BackboneError.js"
import * as WorkerThread from "./workerThread.js"

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

// Plain JavaScript, after WorkerThread.prelude.
const workerSource = `
const ort = require(workerData.ortEntry)
const describe = (m) => ({ name: m.name, type: m.type, shape: m.shape })
serve(() => ort.InferenceSession.create(workerData.model, workerData.options).then((session) => ({
  ready: { inputs: session.inputMetadata.map(describe), outputs: session.outputMetadata.map(describe) },
  handle: (msg) =>
    session.run({ [msg.input]: new ort.Tensor("float32", msg.data, msg.dims) }, msg.outputs).then((result) => {
      const outputs = {}
      for (const name of msg.outputs) {
        const t = result[name]
        outputs[name] = { type: t.type, dims: t.dims, data: t.data }
      }
      return { value: outputs }
    }),
  close: () => session.release()
})))
`

const ortEntry = createRequire(import.meta.url).resolve("onnxruntime-node")

/**
 * Load `model` into an onnxruntime session in a new worker thread; the worker ends with the scope.
 * `file` names the model in errors.
 */
export const open = (
  model: Uint8Array,
  options: Ort.InferenceSession.SessionOptions,
  file: string
): Effect.Effect<WorkerSession, BackboneError, Scope.Scope> =>
  WorkerThread.open<Pick<WorkerSession, "inputs" | "outputs">>({
    source: workerSource,
    workerData: { ortEntry, model, options },
    name: "onnxruntime",
    loadFailed: (message) => new BackboneError({ reason: "LoadFailed", file, message: `Cannot load ${file}: ${message}` })
  }).pipe(Effect.map(({ ready, request }) => ({
    ...ready,
    run: (input, data, dims, outputs) => request({ input, data, dims, outputs })
  })))
