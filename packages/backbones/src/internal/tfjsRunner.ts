/**
 * The TensorFlow.js worker's module (built as `dist/tfjsRunner.js`, started by `tfjsWorker.ts`): the worker imports
 * TensorFlow.js itself, activates the first backend of the list it is given that starts (`tfjsBackends.ts`), loads
 * the model with `Load` and disposes of it when the worker closes.
 */
import * as WorkerRunner from "@effect/platform/WorkerRunner"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeWorkerRunner from "@effect/platform-node/NodeWorkerRunner"
import type * as Tf from "@tensorflow/tfjs"
import { Context, Effect, Layer } from "effect"
import { activate, type BackendCandidate, defaultBackends } from "./tfjsBackends.js"
import { errorText, type TfModule } from "./tfjsFiles.js"
import { type Load, LoadFailure, type LoadProblem, TfjsRequest } from "./tfjsProtocol.js"
import { EngineFailure } from "./workerProtocol.js"

interface Model {
  readonly backend: string
  readonly skipped: ReadonlyArray<string>
  readonly inputs: ReadonlyArray<ReadonlyArray<number | null> | undefined>
  /** `count` images through the model, pooled and flattened into `count x n` values. */
  readonly embed: (data: Float32Array, count: number) => Float32Array
}

class Loaded extends Context.Tag("@loupe/backbones/tfjsRunner/Loaded")<Loaded, Model>() {}

const loadFailure = (cause: unknown, problem: LoadProblem = { _tag: "Other" }) =>
  new LoadFailure({ message: errorText(cause), problem })

// A layer by name, also inside nested models (Teachable Machine wraps its trunk in Sequential[Model, pooling]).
const findLayer = (model: Tf.LayersModel, name: string): Tf.layers.Layer | undefined => {
  for (const layer of model.layers) {
    const found = layer.name === name
      ? layer
      : "layers" in layer && Array.isArray(layer.layers)
      ? findLayer(layer as Tf.LayersModel, name)
      : undefined
    if (found !== undefined) return found
  }
  return undefined
}

const cut = (tf: TfModule, model: Tf.LayersModel, output: string | undefined): Tf.LayersModel => {
  if (output === undefined) return model
  try {
    return tf.model({ inputs: model.inputs, outputs: findLayer(model, output)!.output as Tf.SymbolicTensor })
  } catch (error) {
    throw loadFailure(error, { _tag: "NoSuchLayer", layers: model.layers.map((l) => l.name) })
  }
}

// The one output tensor; a model with several outputs must be told which one is the embedding.
const single = (y: Tf.Tensor | Array<Tf.Tensor>, names: ReadonlyArray<string>): Tf.Tensor => {
  if (!Array.isArray(y)) return y
  throw new Error(`the model has ${y.length} outputs (${names.join(", ")}); name the embedding with \`output\``)
}

const load = (request: Load) =>
  Effect.gen(function*() {
    const tf: TfModule = yield* Effect.tryPromise({ try: () => import("@tensorflow/tfjs"), catch: (cause) => loadFailure(cause) })
    const candidates = request.backends.flatMap((name) => defaultBackends.filter((c) => c.name === name)) as Array<BackendCandidate>
    const { backend, skipped } = yield* Effect.mapError(
      activate(tf, candidates),
      (none) => loadFailure("no backend started", { _tag: "NoBackend", skipped: none.skipped })
    )
    const { format, json, layout, output, pooling, size, weightData } = request
    const handler: Tf.io.IOHandler = {
      load: () => tf.io.getModelArtifactsForJSON(json, async (m) => [tf.io.getWeightSpecs(m), weightData])
    }
    const model = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: (): Promise<Tf.LayersModel | Tf.GraphModel> =>
          format === "graph-model" ? tf.loadGraphModel(handler) : tf.loadLayersModel(handler),
        catch: (cause) => loadFailure(cause)
      }),
      (m) => Effect.sync(() => m.dispose())
    )
    const run = yield* Effect.try({
      try: (): (x: Tf.Tensor) => Tf.Tensor => {
        if (model instanceof tf.GraphModel) {
          return (x) => single(model.execute(x, output) as Tf.Tensor | Array<Tf.Tensor>, model.outputNodes)
        }
        const net = cut(tf, model, output)
        return (x) => single(net.predict(x) as Tf.Tensor | Array<Tf.Tensor>, net.outputNames)
      },
      catch: (error) => error instanceof LoadFailure ? error : loadFailure(error)
    })
    return {
      backend,
      skipped,
      inputs: model.inputs.map((i) => i.shape),
      embed: (data, count) =>
        tf.tidy(() => {
          const y = run(tf.tensor4d(data, layout === "NCHW" ? [count, 3, size, size] : [count, size, size, 3]))
          const pooled = pooling === "global-average" ? y.mean([1, 2]) : y
          return new Float32Array(pooled.reshape([count, -1]).dataSync())
        })
    } satisfies Model
  })

WorkerRunner.layerSerialized(TfjsRequest, {
  InitialMessage: (request) => Layer.scoped(Loaded, load(request)),
  Describe: () => Effect.map(Loaded, ({ backend, inputs, skipped }) => ({ backend, skipped, inputs })),
  Embed: ({ count, data }) =>
    Effect.flatMap(Loaded, (model) =>
      Effect.try({
        try: () => model.embed(data, count),
        catch: (cause) => new EngineFailure({ message: errorText(cause) })
      }))
}).pipe(Layer.provide(NodeWorkerRunner.layer), WorkerRunner.launch, NodeRuntime.runMain)
