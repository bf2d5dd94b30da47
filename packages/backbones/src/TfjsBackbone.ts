/**
 * The TensorFlow.js runtime plugin: layers and graph models saved as `model.json` plus weight shards, read from
 * local files (no `file://` handler or `@tensorflow/tfjs-node` needed). The embedding is the model's output, or the
 * output of a named layer (layers models) or node (graph models), optionally averaged over height and width.
 *
 * Two engines run the model. A layers model whose layers all have an ONNX translation (Conv2D, DepthwiseConv2D,
 * BatchNormalization, ReLU, pooling, ... see `internal/kerasOnnx.ts`) is translated in memory and runs on
 * onnxruntime in a worker thread, off the main thread, several times faster than tfjs on the wasm backend; any other
 * model (a graph model, or a layer without a translation) runs on TensorFlow.js. The `engine` option chooses, and the
 * loaded backbone's `info.engine` and a log line say which one runs and why.
 *
 * TensorFlow.js keeps one active backend per process. `selectBackend` picks it: `@tensorflow/tfjs-node` when it can
 * be imported (an optional peer dependency), else the wasm backend (initialised offline from the `.wasm` files inside
 * `@tensorflow/tfjs-backend-wasm`), else the pure-JavaScript `cpu` backend, and logs the choice.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import type { Scope } from "effect"
import type * as Tf from "@tensorflow/tfjs"
import type { Backbone, LoupeConfig, Preprocess } from "@loupe/core"
import { createHash } from "node:crypto"
import { createRequire } from "node:module"
import * as path from "node:path"
import { BackboneError } from "./BackboneError.js"
import * as KerasOnnx from "./internal/kerasOnnx.js"
import * as OrtEmbed from "./internal/ortEmbed.js"
import * as OrtWorker from "./internal/ortWorker.js"
import {
  decodeFloatWeights,
  errorText,
  fileHandler,
  importTf,
  readModelFiles,
  type TfjsModelFiles,
  type TfModule
} from "./internal/tfjsFiles.js"
import { resolveLocalPath } from "./internal/weights.js"
import { OnnxOptions } from "./OnnxBackbone.js"

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

/** `@tensorflow/tfjs-node` (native TensorFlow), when installed and its binary loads. */
export const tensorflowBackend: BackendCandidate = {
  name: "tensorflow",
  prepare: async () => {
    await import(optionalPeer)
  }
}

/** The wasm backend, pointed at the `.wasm` files inside the installed package, so it starts offline. */
export const wasmBackend: BackendCandidate = {
  name: "wasm",
  prepare: async () => {
    const wasm = await import("@tensorflow/tfjs-backend-wasm")
    const entry = createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm")
    wasm.setWasmPaths(path.dirname(entry) + path.sep)
  }
}

/** The pure-JavaScript backend bundled with `@tensorflow/tfjs`: always available, about 10x slower than wasm. */
export const cpuBackend: BackendCandidate = { name: "cpu", prepare: async () => {} }

/** The order `auto` tries. */
export const defaultBackends: ReadonlyArray<BackendCandidate> = [tensorflowBackend, wasmBackend, cpuBackend]

/**
 * Activates the first candidate that prepares and initialises, and logs which one it chose and why the earlier
 * ones were skipped. Fails with every reason when none works. The choice is process-wide (TensorFlow.js has one
 * active backend).
 *
 * @since 0.1.0
 * @category backends
 */
export const selectBackend = (
  candidates: ReadonlyArray<BackendCandidate> = defaultBackends
): Effect.Effect<string, BackboneError> =>
  Effect.gen(function*() {
    const tf = yield* importTf
    const skipped: Array<string> = []
    for (const candidate of candidates) {
      const outcome = yield* Effect.tryPromise(async () => {
        await candidate.prepare(tf)
        return await tf.setBackend(candidate.name)
      }).pipe(Effect.either)
      if (outcome._tag === "Right" && outcome.right) {
        const why = skipped.length > 0 ? ` (skipped ${skipped.join("; ")})` : ""
        yield* Effect.logInfo(`TensorFlow.js backend: ${candidate.name}${why}`)
        return candidate.name
      }
      const reason = outcome._tag === "Left" ? firstLine(errorText(outcome.left.error)) : "it did not initialise"
      skipped.push(`${candidate.name}: ${reason}`)
    }
    return yield* new BackboneError({
      reason: "LoadFailed",
      field: "backend",
      message: `No TensorFlow.js backend could start: ${skipped.join("; ") || "no candidates given"}`
    })
  })

const firstLine = (text: string) => text.split("\n")[0]!.trim()

/**
 * A TensorFlow.js model described as data.
 *
 * @since 0.1.0
 * @category models
 */
export interface TfjsModelConfig {
  readonly id: string
  readonly description: string
  /** `model.json`, or the folder holding it. */
  readonly weights: Backbone.WeightsSource
  /** The layer (layers models) or node (graph models) whose output is the embedding. Default: the model output. */
  readonly output?: string
  /** `global-average`: the mean over height and width of an NHWC feature map. Default: `none`. */
  readonly pooling?: "none" | "global-average"
  readonly embeddingSize: number
  readonly preprocess: Preprocess.PreprocessSpec
  readonly tags: ReadonlyArray<string>
  readonly license: string
}

/**
 * @since 0.1.0
 * @category options
 */
export const TfjsOptions = Schema.Struct({
  /**
   * `auto`: onnxruntime when every layer the embedding needs translates to ONNX, else TensorFlow.js.
   * `onnxruntime`: fail with the reason when the model does not translate. `tfjs`: never translate.
   */
  engine: Schema.optionalWith(Schema.Literal("auto", "tfjs", "onnxruntime"), { default: () => "auto" as const }),
  /** The TensorFlow.js backend. `auto` tries tfjs-node, then wasm, then cpu. Naming one uses only that one. */
  backend: Schema.optionalWith(Schema.Literal("auto", "tensorflow", "wasm", "cpu"), { default: () => "auto" as const }),
  /** onnxruntime engine: threads for one inference call, as the ONNX plugin's option. Default 2. */
  intraOpNumThreads: OnnxOptions.fields.intraOpNumThreads,
  /** onnxruntime engine: let idle threads spin, as the ONNX plugin's option. Default false. */
  spinning: OnnxOptions.fields.spinning,
  /** Largest batch per call. */
  maxBatchSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1024)), { default: () => 16 }),
  /**
   * Take the embedding from this layer (layers models) or node (graph models) instead of the catalog entry's; the
   * embedding size is then whatever that output holds (partial fine-tuning embeds with the frozen trunk this way).
   */
  output: Schema.optional(Schema.String),
  /** Override the catalog entry's pooling (the embedding size follows). */
  pooling: Schema.optional(Schema.Literal("none", "global-average"))
})
export type TfjsOptions = typeof TfjsOptions.Type

const candidatesFor = (backend: TfjsOptions["backend"]): ReadonlyArray<BackendCandidate> =>
  backend === "auto" ? defaultBackends : defaultBackends.filter((c) => c.name === backend)

type Run = (x: Tf.Tensor) => Tf.Tensor

/**
 * A layer by name, also inside nested models (Teachable Machine wraps its trunk in `Sequential[Model, pooling]`, and
 * the trunk's layers are what partial fine-tuning cuts at). Throws when there is none.
 */
const findLayer = (model: Tf.LayersModel, name: string): Tf.layers.Layer => {
  const search = (m: Tf.LayersModel): Tf.layers.Layer | undefined => {
    for (const layer of m.layers) {
      if (layer.name === name) return layer
      const inner = "layers" in layer && Array.isArray(layer.layers) ? search(layer as Tf.LayersModel) : undefined
      if (inner !== undefined) return inner
    }
    return undefined
  }
  const found = search(model)
  if (found === undefined) throw new Error(`No such layer: ${name}`)
  return found
}

/** The one output tensor; a model with several outputs must be told which one is the embedding. */
const single = (y: Tf.Tensor | Array<Tf.Tensor>, names: ReadonlyArray<string>): Tf.Tensor => {
  if (!Array.isArray(y)) return y
  throw new Error(`the model has ${y.length} outputs (${names.join(", ")}); name the embedding with \`output\``)
}

/**
 * A TensorFlow.js backbone plugin, carrying the model config it was made from.
 *
 * @since 0.1.0
 * @category models
 */
export interface TfjsBackbonePlugin extends Backbone.BackbonePlugin {
  readonly model: TfjsModelConfig
}

/**
 * Whether a registered plugin is a TensorFlow.js one (and so has a `model` config).
 *
 * @since 0.1.0
 * @category guards
 */
export const isTfjsPlugin = (plugin: Backbone.BackbonePlugin): plugin is TfjsBackbonePlugin =>
  plugin.info.runtime === "tfjs" && "model" in plugin

type Opened =
  | { readonly _tag: "layers"; readonly tf: TfModule; readonly files: TfjsModelFiles; readonly model: Tf.LayersModel }
  | { readonly _tag: "graph"; readonly tf: TfModule; readonly files: TfjsModelFiles; readonly model: Tf.GraphModel }

const locate = (config: TfjsModelConfig, loupeConfig: LoupeConfig.LoupeConfigShape) =>
  Effect.flatMap(resolveLocalPath(config.id, config.weights, loupeConfig), (location) => readModelFiles(config.id, location))

/** Reads the model's files, activates a backend and loads the model, disposed with the scope. */
const open = (
  config: TfjsModelConfig,
  loupeConfig: LoupeConfig.LoupeConfigShape,
  backend: TfjsOptions["backend"]
): Effect.Effect<Opened, BackboneError, Scope.Scope> =>
  Effect.flatMap(locate(config, loupeConfig), (files) => openFiles(config, files, backend))

/** Activates a backend and loads the model from files already read, disposed with the scope. */
const openFiles = (
  config: TfjsModelConfig,
  files: TfjsModelFiles,
  backend: TfjsOptions["backend"]
): Effect.Effect<Opened, BackboneError, Scope.Scope> =>
  Effect.gen(function*() {
    const tf = yield* importTf
    yield* selectBackend(candidatesFor(backend))
    const handler = fileHandler(tf, files)
    const loading = <M extends { dispose(): unknown }>(load: () => Promise<M>) =>
      Effect.acquireRelease(
        Effect.tryPromise({
          try: load,
          catch: (cause) =>
            new BackboneError({
              reason: "LoadFailed",
              field: config.id,
              file: files.modelJson,
              message: `Cannot load ${files.modelJson}: ${errorText(cause)}`,
              cause
            })
        }),
        (m) => Effect.sync(() => m.dispose())
      )
    return files.format === "graph-model"
      ? { _tag: "graph", tf, files, model: yield* loading(() => tf.loadGraphModel(handler)) } as const
      : { _tag: "layers", tf, files, model: yield* loading(() => tf.loadLayersModel(handler)) } as const
  })

/**
 * Load the layers model behind a config, whole (partial fine-tuning trains its last layers). It is disposed with
 * the scope. A graph model fails with `LoadFailed`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadLayersModel = (
  config: TfjsModelConfig,
  loupeConfig: LoupeConfig.LoupeConfigShape,
  backend: TfjsOptions["backend"] = "auto"
): Effect.Effect<{ readonly tf: TfModule; readonly model: Tf.LayersModel }, BackboneError, Scope.Scope> =>
  Effect.flatMap(open(config, loupeConfig, backend), (opened) =>
    opened._tag === "layers"
      ? Effect.succeed({ tf: opened.tf, model: opened.model })
      : Effect.fail(
        new BackboneError({
          reason: "LoadFailed",
          field: config.id,
          file: opened.files.modelJson,
          message: `${opened.files.modelJson} is a graph model; only layers models have layers to train`
        })
      ))

/**
 * What a loaded TensorFlow.js backbone reports: the plugin's info and the engine that runs it.
 *
 * @since 0.1.0
 * @category models
 */
export interface TfjsLoadedInfo extends Backbone.BackboneInfo {
  readonly engine: "onnxruntime" | "tfjs"
}

type Embed = (batch: Float32Array, count: number) => Effect.Effect<Float32Array, BackboneError>

interface Engine {
  readonly name: TfjsLoadedInfo["engine"]
  /** The model's declared input shapes, batch first. */
  readonly inputs: ReadonlyArray<ReadonlyArray<number | null | undefined> | undefined>
  readonly embed: Embed
  /** For the log line. */
  readonly detail: string
}

/** What the embedding is taken from. */
interface Target {
  readonly output: string | undefined
  readonly pooling: "none" | "global-average"
}

const loadFailed = (config: TfjsModelConfig, message: string, file?: string, cause?: unknown) =>
  new BackboneError({ reason: "LoadFailed", field: config.id, message, ...(file === undefined ? {} : { file }), cause })

const noLayer = (files: TfjsModelFiles, output: string | undefined, layers: ReadonlyArray<string>) =>
  `${files.modelJson} has no layer "${output}" (layers: ${layers.join(", ")})`

/** The model translated to ONNX, or why it is not. */
const translate = (config: TfjsModelConfig, files: TfjsModelFiles, target: Target): KerasOnnx.Translation => {
  const untranslatable = (reason: string) => ({ _tag: "Untranslatable", reason } as const)
  if (files.format === "graph-model") return untranslatable("it is a graph model (only layers models are translated)")
  if (config.preprocess.layout !== "NHWC") return untranslatable("its input is laid out NCHW (the translation takes NHWC)")
  try {
    const weights = decodeFloatWeights(files.json.weightsManifest ?? [], files.weightData)
    return KerasOnnx.translate(files.json.modelTopology, weights, { ...target, size: config.preprocess.size })
  } catch (cause) {
    return untranslatable(errorText(cause))
  }
}

const onnxEngine = (
  config: TfjsModelConfig,
  files: TfjsModelFiles,
  translated: Extract<KerasOnnx.Translation, { _tag: "Translated" }>,
  opts: TfjsOptions
): Effect.Effect<Engine, BackboneError, Scope.Scope> =>
  Effect.map(OrtWorker.open(translated.model, OrtEmbed.sessionOptions(opts), files.modelJson), (session) => ({
    name: "onnxruntime",
    inputs: [translated.inputShape],
    embed: OrtEmbed.embedder(session, {
      id: config.id,
      file: files.modelJson,
      input: translated.input,
      output: translated.output,
      outputField: "output",
      // The translated graph already pools (or flattens NHWC, as tfjs does) into [count, embeddingSize].
      pooling: "flatten",
      channels: "last",
      embeddingSize: translated.embeddingSize,
      inputDims: (count) => [count, config.preprocess.size, config.preprocess.size, 3]
    }),
    detail: `Keras layers translated to ${translated.nodes} ONNX nodes, ${opts.intraOpNumThreads} intra-op ` +
      (opts.intraOpNumThreads === 1 ? "thread" : "threads")
  }))

const tfjsEngine = (
  config: TfjsModelConfig,
  files: TfjsModelFiles,
  target: Target,
  opts: TfjsOptions
): Effect.Effect<Engine, BackboneError, Scope.Scope> =>
  Effect.gen(function*() {
    const { output, pooling } = target
    const opened = yield* openFiles(config, files, opts.backend)
    const { tf } = opened
    const run: Run = opened._tag === "graph"
      ? (x) => single(opened.model.execute(x, output), opened.model.outputNodes)
      : yield* Effect.try({
        try: () => {
          const m = opened.model
          const net = output === undefined
            ? m
            : tf.model({ inputs: m.inputs, outputs: findLayer(m, output).output as Tf.SymbolicTensor })
          return (x: Tf.Tensor) => single(net.predict(x) as Tf.Tensor | Array<Tf.Tensor>, net.outputNames)
        },
        catch: (cause) => loadFailed(config, noLayer(files, output, opened.model.layers.map((l) => l.name)), files.modelJson, cause)
      })
    const { layout, size } = config.preprocess
    const embed: Embed = (batch, count) =>
      Effect.try({
        try: () =>
          tf.tidy(() => {
            const y = run(tf.tensor4d(batch, layout === "NCHW" ? [count, 3, size, size] : [count, size, size, 3]))
            const pooled = pooling === "global-average" ? y.mean([1, 2]) : y
            return new Float32Array(pooled.reshape([count, -1]).dataSync())
          }),
        catch: (cause) =>
          new BackboneError({ reason: "InferenceFailed", field: config.id, message: `${config.id}: ${errorText(cause)}`, cause })
      })
    return { name: "tfjs", inputs: opened.model.inputs.map((i) => i.shape), embed, detail: `TensorFlow.js ${tf.getBackend()}` }
  })

/**
 * The plugin for one TensorFlow.js model.
 *
 * `weightsHash` is the sha256 of `model.json` and its shards (in manifest order), combined with the choice of
 * output and pooling, so changing how the embedding is taken never reuses cached vectors.
 *
 * @since 0.1.0
 * @category constructors
 */
export const plugin = (config: TfjsModelConfig): TfjsBackbonePlugin => {
  const info: Backbone.BackboneInfo = {
    id: config.id,
    runtime: "tfjs",
    description: config.description,
    embeddingSize: config.embeddingSize,
    preprocess: config.preprocess,
    tags: config.tags,
    license: config.license,
    weights: config.weights
  }
  const { size, layout } = config.preprocess

  return {
    info,
    model: config,
    optionsSchema: TfjsOptions,
    load: ({ config: loupeConfig, options }) =>
      Effect.gen(function*() {
        const opts = options as TfjsOptions
        const target: Target = { output: opts.output ?? config.output, pooling: opts.pooling ?? config.pooling ?? "none" }
        const { output, pooling } = target
        const custom = opts.output !== undefined || opts.pooling !== undefined
        const files = yield* locate(config, loupeConfig)
        // The engine is not part of the key: both compute the same function (the tests hold them within 1e-4 on
        // the catalog models), so vectors cached by one serve the other, as vectors from tfjs-node and wasm do.
        const weightsHash = createHash("sha256")
          .update(JSON.stringify([files.sha256, output ?? null, pooling]))
          .digest("hex")

        const translation = opts.engine === "tfjs" ? undefined : translate(config, files, target)
        if (translation?._tag === "NoSuchLayer") {
          return yield* loadFailed(config, noLayer(files, output, translation.layers), files.modelJson)
        }
        if (translation?._tag === "Untranslatable" && opts.engine === "onnxruntime") {
          return yield* loadFailed(
            config,
            `${config.id}: engine "onnxruntime" cannot run ${files.modelJson}: ${translation.reason}`,
            files.modelJson
          )
        }
        const engine = translation?._tag === "Translated"
          ? yield* onnxEngine(config, files, translation, opts)
          : yield* tfjsEngine(config, files, target, opts)
        const why = translation?._tag === "Untranslatable" ? `; not translated to ONNX: ${translation.reason}` : ""
        yield* Effect.logInfo(`${config.id}: engine ${engine.name} (${engine.detail})${why}`)

        const expected = layout === "NCHW" ? [-1, 3, size, size] : [-1, size, size, 3]
        const inputs = engine.inputs
        const shapeOk = inputs.length === 1 &&
          (inputs[0] ?? []).length === 4 &&
          (inputs[0] ?? []).every((d, i) => i === 0 || d === null || d === undefined || d < 0 || d === expected[i])
        if (!shapeOk) {
          return yield* loadFailed(
            config,
            `${files.modelJson} takes inputs ${JSON.stringify(inputs)}; ${config.id} is configured for one ` +
              `${layout} input of ${size}x${size}x3`,
            files.modelJson
          )
        }

        const probe = yield* engine.embed(new Float32Array(size * size * 3), 1)
        if (!custom && probe.length !== config.embeddingSize) {
          return yield* loadFailed(
            config,
            `${config.id} gives ${probe.length} values per image from ${output ?? "the model output"}` +
              `${pooling === "global-average" ? " (global-average pooled)" : ""}; the config says ${config.embeddingSize}`,
            files.modelJson
          )
        }

        const embedBatch = (batch: Float32Array, count: number) =>
          Effect.gen(function*() {
            const per = size * size * 3
            if (!Number.isInteger(count) || count < 1 || count > opts.maxBatchSize || batch.length !== count * per) {
              return yield* new BackboneError({
                reason: "InvalidInput",
                field: config.id,
                message: `${config.id} expects 1..${opts.maxBatchSize} images of ${per} values; got count ${count} and ` +
                  `${batch.length} values`
              })
            }
            return yield* engine.embed(batch, count)
          })
        const loadedInfo: TfjsLoadedInfo = { ...info, embeddingSize: custom ? probe.length : info.embeddingSize, engine: engine.name }
        return { info: loadedInfo, weightsHash, maxBatchSize: opts.maxBatchSize, embedBatch } satisfies Backbone.LoadedBackbone
      })
  }
}
