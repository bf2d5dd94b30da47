/**
 * The TensorFlow.js runtime plugin: layers and graph models saved as `model.json` plus weight shards, read from
 * local files (no `file://` handler or `@tensorflow/tfjs-node` needed). The embedding is the model's output, or the
 * output of a named layer (layers models) or node (graph models), optionally averaged over height and width.
 *
 * Two engines run the model. A layers model whose layers all have an ONNX translation (Conv2D, DepthwiseConv2D,
 * BatchNormalization, ReLU, pooling, ... see `internal/KerasLayers.ts`) is translated in memory and runs on
 * onnxruntime, several times faster than tfjs on the wasm backend; any other model (a graph model, or a layer without
 * a translation) runs on TensorFlow.js. Both engines run in a worker thread, so the main thread keeps decoding the
 * next batch (and answering requests) while a batch is inferred. The `engine` option chooses, and the loaded
 * backbone's `info.engine` and a log line say which one runs and why.
 *
 * TensorFlow.js keeps one active backend per thread. The backend is picked in order: `@tensorflow/tfjs-node` when it
 * can be imported (an optional peer dependency), else the wasm backend (initialised offline from the `.wasm` files
 * inside `@tensorflow/tfjs-backend-wasm`), else the pure-JavaScript `cpu` backend, and the choice is logged. The tfjs
 * engine's worker picks its own; the main thread picks one when a model is trained here (partial fine-tuning,
 * `loadLayersModel`), both following the `backend` option.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect, Schema } from "effect"
import type { Scope } from "effect"
import type * as Tf from "@tensorflow/tfjs"
import type { Backbone, LoupeConfig, Preprocess } from "@loupe/core"
import { createHash } from "node:crypto"
import { BackboneError } from "./BackboneError.js"
import * as KerasOnnx from "./internal/KerasOnnx.js"
import * as OrtEmbed from "./internal/ortEmbed.js"
import * as OrtWorker from "./internal/ortWorker.js"
import { type BackendCandidate, defaultBackends, logBackend, noBackend, selectBackend } from "./internal/tfjsBackends.js"
import {
  decodeFloatWeights,
  errorText,
  fileHandler,
  importTf,
  readModelFiles,
  type TfjsModelFiles,
  type TfModule
} from "./internal/tfjsFiles.js"
import * as TfjsTrainableTail from "./internal/TfjsTrainableTail.js"
import * as TfjsWorker from "./internal/tfjsWorker.js"
import { resolveLocalPath } from "./internal/weights.js"
import { OnnxOptions } from "./OnnxBackbone.js"

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
 * The options a TensorFlow.js backbone accepts at load (`backboneOptions`), as a Schema. `Registry.loadBackbone`
 * decodes them and refuses unknown keys or values out of range (`CoreError` `InvalidConfig`).
 *
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
/**
 * The decoded TensorFlow.js backbone options, defaults filled in.
 *
 * @since 0.1.0
 * @category options
 */
export type TfjsOptions = typeof TfjsOptions.Type

const candidatesFor = (backend: TfjsOptions["backend"]): ReadonlyArray<BackendCandidate> =>
  backend === "auto" ? defaultBackends : defaultBackends.filter((c) => c.name === backend)

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

const locate = (config: TfjsModelConfig, loupeConfig: LoupeConfig.LoupeConfigShape) =>
  Effect.flatMap(resolveLocalPath(config.id, config.weights, loupeConfig), (location) => readModelFiles(config.id, location))

const loadFailed = (config: TfjsModelConfig, message: string, file?: string, cause?: unknown) =>
  new BackboneError({ reason: "LoadFailed", field: config.id, message, ...(file === undefined ? {} : { file }), cause })

/**
 * Load the layers model behind a config, whole, on the main thread (partial fine-tuning trains its last layers
 * here). The main thread's backend is activated first (as the `backend` option says). The model is disposed with the scope. A
 * graph model fails with `LoadFailed`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadLayersModel = (
  config: TfjsModelConfig,
  loupeConfig: LoupeConfig.LoupeConfigShape,
  backend: TfjsOptions["backend"] = "auto"
): Effect.Effect<{ readonly tf: TfModule; readonly model: Tf.LayersModel }, BackboneError, Scope.Scope> =>
  Effect.gen(function*() {
    const files = yield* locate(config, loupeConfig)
    if (files.format === "graph-model") {
      return yield* loadFailed(config, `${files.modelJson} is a graph model; only layers models have layers to train`, files.modelJson)
    }
    const tf = yield* importTf
    yield* selectBackend(candidatesFor(backend))
    const model = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => tf.loadLayersModel(fileHandler(tf, files)),
        catch: (cause) => loadFailed(config, `Cannot load ${files.modelJson}: ${errorText(cause)}`, files.modelJson, cause)
      }),
      (m) => Effect.sync(() => m.dispose())
    )
    return { tf, model }
  }).pipe(Effect.provide(NodeFileSystem.layer))

/** Partial fine-tuning's capability: the layers model loaded whole on the main thread, cut by the capability. */
const trainableTail = (config: TfjsModelConfig) =>
  TfjsTrainableTail.make({
    id: config.id,
    load: (loupeConfig, options) =>
      Effect.gen(function*() {
        const decoded = yield* Schema.decodeUnknown(TfjsOptions, { onExcessProperty: "error" })(options).pipe(
          Effect.mapError((e) =>
            new BackboneError({ reason: "InvalidInput", field: "backboneOptions", message: `Invalid options for ${config.id}: ${e.message}` })
          )
        )
        // A load failure names no option: it is the model's, not the request's.
        const { model, tf } = yield* loadLayersModel(config, loupeConfig, decoded.backend).pipe(
          Effect.mapError((e) =>
            new BackboneError({ reason: e.reason, message: e.message, ...(e.file === undefined ? {} : { file: e.file }), cause: e })
          )
        )
        return { tf, model, output: decoded.output ?? config.output, pooling: decoded.pooling ?? config.pooling ?? "none" }
      }),
    tf: Effect.zipRight(selectBackend(), importTf)
  })

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
): Effect.Effect<Engine, BackboneError, Scope.Scope | FileSystem.FileSystem> =>
  Effect.map(OrtWorker.open(translated.model, opts, files.modelJson), (session) => ({
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

/**
 * The model on TensorFlow.js, in a worker thread. Takes the model's weight bytes: `files.weightData` moves to the
 * worker (it is detached here afterwards).
 */
const tfjsEngine = (
  config: TfjsModelConfig,
  files: TfjsModelFiles,
  target: Target,
  opts: TfjsOptions
): Effect.Effect<Engine, BackboneError, Scope.Scope | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const { output, pooling } = target
    const file = files.modelJson
    const model = yield* TfjsWorker.open({
      backends: candidatesFor(opts.backend).map((c) => c.name),
      files,
      output,
      pooling,
      layout: config.preprocess.layout,
      size: config.preprocess.size,
      loadFailed: (message, problem) =>
        problem._tag === "NoBackend"
          ? noBackend(problem.skipped, file)
          : problem._tag === "NoSuchLayer"
          ? loadFailed(config, noLayer(files, output, problem.layers), file)
          : loadFailed(config, `Cannot load ${file}: ${message}`, file)
    })
    yield* logBackend(model.backend, model.skipped)
    const embed: Embed = (batch, count) =>
      Effect.mapError(
        model.embed(batch, count),
        (cause) => new BackboneError({ reason: "InferenceFailed", field: config.id, file, message: `${config.id}: ${cause.message}`, cause })
      )
    return { name: "tfjs", inputs: model.inputs, embed, detail: `TensorFlow.js ${model.backend}` }
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
    trainableTail: trainableTail(config),
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
      }).pipe(Effect.provide(NodeFileSystem.layer))
  }
}
