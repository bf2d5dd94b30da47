/**
 * A TensorFlow.js model that lives in a worker thread (see `workerThread.ts` for why and how): the tfjs engine of
 * the TensorFlow.js plugin.
 *
 * The worker imports TensorFlow.js itself and activates the first backend of the list it is given that starts, the
 * way `TfjsBackbone.selectBackend` does on the main thread: `tensorflow` (`@tensorflow/tfjs-node`, an optional peer
 * dependency), `wasm` (initialised offline from the `.wasm` files inside `@tensorflow/tfjs-backend-wasm`; SIMD when
 * the CPU has it, one thread, as always in Node), `cpu`. It reports the one it chose and why it skipped the others.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { fileURLToPath } from "node:url"
import type { BackboneError } from "../BackboneError.js"
import type { TfjsModelFiles } from "./tfjsFiles.js"
import * as WorkerThread from "./workerThread.js"

/** Why the worker could not load the model, beyond its message. */
export type LoadProblem =
  /** No backend of the list started; `skipped` says why for each. */
  | { readonly _tag: "NoBackend"; readonly skipped: ReadonlyArray<string> }
  /** `output` names no layer (or the model cannot be cut there); `layers` lists the layers it has. */
  | { readonly _tag: "NoSuchLayer"; readonly layers: ReadonlyArray<string> }
  /** TensorFlow.js could not load the files, or the worker died while loading. */
  | { readonly _tag: "Other" }

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
  /** The error for a load that failed. */
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
   * `batch` stays the caller's: a copy of it moves to the worker. Rejects with TensorFlow.js's message, or when the
   * worker has died.
   */
  readonly embed: (batch: Float32Array, count: number) => Promise<Float32Array>
}

// Plain JavaScript, after WorkerThread.prelude.
const workerSource = `
const path = require("node:path")
const load = require("node:module").createRequire(workerData.from)
const problem = (message, detail) => Object.assign(new Error(message), { detail })
const prepare = {
  tensorflow: () => load("@tensorflow/tfjs-node"),
  wasm: () => {
    const entry = load.resolve("@tensorflow/tfjs-backend-wasm")
    load(entry).setWasmPaths(path.dirname(entry) + path.sep)
  },
  cpu: () => {}
}
const activate = async (tf) => {
  const skipped = []
  for (const name of workerData.backends) {
    const reason = await Promise.resolve().then(() => prepare[name]()).then(
      () => tf.setBackend(name).then((ok) => ok ? undefined : "it did not initialise"),
      (error) => errorText(error).split("\\n")[0].trim()
    )
    if (reason === undefined) return { backend: name, skipped }
    skipped.push(name + ": " + reason)
  }
  throw problem("no backend started", { _tag: "NoBackend", skipped })
}
// A layer by name, also inside nested models (Teachable Machine wraps its trunk in Sequential[Model, pooling]).
const findLayer = (model, name) => {
  for (const layer of model.layers) {
    const found = layer.name === name ? layer : Array.isArray(layer.layers) ? findLayer(layer, name) : undefined
    if (found !== undefined) return found
  }
  return undefined
}
const cut = (tf, model, output) => {
  if (output === undefined) return model
  try {
    return tf.model({ inputs: model.inputs, outputs: findLayer(model, output).output })
  } catch (error) {
    throw problem(errorText(error), { _tag: "NoSuchLayer", layers: model.layers.map((l) => l.name) })
  }
}
// The one output tensor; a model with several outputs must be told which one is the embedding.
const single = (y, names) => {
  if (!Array.isArray(y)) return y
  throw new Error("the model has " + y.length + " outputs (" + names.join(", ") + "); name the embedding with \`output\`")
}
serve(async () => {
  const tf = load("@tensorflow/tfjs")
  const { backend, skipped } = await activate(tf)
  const { format, json, weightData, output, pooling, layout, size } = workerData
  const handler = { load: () => tf.io.getModelArtifactsForJSON(json, async (m) => [tf.io.getWeightSpecs(m), weightData]) }
  const graph = format === "graph-model"
  const model = graph ? await tf.loadGraphModel(handler) : await tf.loadLayersModel(handler)
  const net = graph ? undefined : cut(tf, model, output)
  const run = graph ? (x) => single(model.execute(x, output), model.outputNodes) : (x) => single(net.predict(x), net.outputNames)
  return {
    ready: { backend, skipped, inputs: model.inputs.map((i) => i.shape) },
    handle: ({ data, count }) => {
      const values = tf.tidy(() => {
        const y = run(tf.tensor4d(data, layout === "NCHW" ? [count, 3, size, size] : [count, size, size, 3]))
        const pooled = pooling === "global-average" ? y.mean([1, 2]) : y
        return new Float32Array(pooled.reshape([count, -1]).dataSync())
      })
      return { value: values, transfer: [values.buffer] }
    },
    close: () => model.dispose()
  }
})
`

const from = fileURLToPath(import.meta.url)

type Ready = Pick<TfjsModel, "backend" | "skipped" | "inputs">

/** Load the model in a new worker thread; the worker ends with the scope. */
export const open = (spec: Spec): Effect.Effect<TfjsModel, BackboneError, Scope.Scope> => {
  const { files, output, pooling, layout, size } = spec
  return WorkerThread.open<Ready>({
    source: workerSource,
    workerData: {
      from,
      backends: spec.backends,
      format: files.format,
      json: files.json,
      weightData: files.weightData,
      output,
      pooling,
      layout,
      size
    },
    transferList: [files.weightData],
    name: "TensorFlow.js",
    loadFailed: (message, detail) => spec.loadFailed(message, (detail as LoadProblem | undefined) ?? { _tag: "Other" })
  }).pipe(Effect.map(({ ready, request }) => ({
    ...ready,
    embed: (batch, count) => {
      const data = batch.slice()
      return request<Float32Array>({ data, count }, [data.buffer])
    }
  })))
}
