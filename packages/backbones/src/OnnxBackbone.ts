/**
 * The ONNX runtime plugin: any image model file, configured by data. The embedding is a graph output, or the
 * output of an intermediate node (added to the graph's outputs in memory, dequantized when it is an int8 tensor),
 * optionally pooled to one value per channel. Sessions run on onnxruntime-node's CPU provider in a worker thread,
 * so decoding the next batch on the main thread overlaps inference.
 *
 * @example
 * ```ts
 * import { Preprocess } from "@loupe/core"
 * import { OnnxBackbone } from "@loupe/backbones"
 *
 * // The plain MobileNetV2 classifier: the embedding is the output of its global-average-pool node.
 * const mobilenet = OnnxBackbone.plugin({
 *   id: "onnx:mobilenetv2-int8-gap",
 *   description: "MobileNetV2 int8, global average pool",
 *   weights: { _tag: "ModelsDir", path: "mobilenetv2-12-int8-onnx/mobilenetv2-12-int8.onnx" },
 *   node: "GlobalAveragePool_97_quant",
 *   pooling: "flatten",
 *   embeddingSize: 1280,
 *   preprocess: Preprocess.imagenet(),
 *   tags: ["onnx", "imagenet"],
 *   license: "Apache-2.0"
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect, Schema } from "effect"
import type { Backbone, LoupeConfig, Preprocess } from "@loupe/core"
import { OnnxModel } from "@loupe/core/onnx"
import { createHash } from "node:crypto"
import { BackboneError } from "./BackboneError.js"
import * as ExposeTensor from "./internal/ExposeTensor.js"
import * as OrtEmbed from "./internal/ortEmbed.js"
import * as OrtWorker from "./internal/ortWorker.js"
import type { ChannelAxis, Pooling } from "./internal/pooling.js"
import { resolveLocalPath } from "./internal/weights.js"

export type { ChannelAxis, Pooling } from "./internal/pooling.js"

/**
 * An ONNX image model, described by data. Give exactly one of `outputName` and `node`.
 *
 * @since 0.1.0
 * @category models
 */
export interface OnnxModelConfig {
  readonly id: string
  readonly description: string
  readonly weights: Backbone.WeightsSource
  /** The image input. Default: the model's only input. */
  readonly inputName?: string
  /** A graph output that holds the embedding. */
  readonly outputName?: string
  /**
   * An intermediate node whose output is the embedding: a node name, or the name of a tensor a node produces.
   * A quantized tensor (the output of a QLinear op) is dequantized with its own scale and zero point.
   */
  readonly node?: string
  /** How the output becomes one vector per image. Default `flatten`. */
  readonly pooling?: Pooling
  /** Where the channel axis of the output is, for `mean` and `max` pooling. Default `first` (NCHW). */
  readonly channels?: ChannelAxis
  /** The vector length after pooling; checked when the model loads. */
  readonly embeddingSize: number
  readonly preprocess: Preprocess.PreprocessSpec
  readonly tags: ReadonlyArray<string>
  readonly license: string
}

/**
 * The options an ONNX backbone accepts at load (`backboneOptions`), as a Schema. `Registry.loadBackbone` decodes
 * them and refuses unknown keys or values out of range (`CoreError` `InvalidConfig`).
 *
 * @since 0.1.0
 * @category options
 */
export const OnnxOptions = Schema.Struct({
  /** Threads for one inference call. Default 2. */
  intraOpNumThreads: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 256)), { default: () => 2 }),
  /** Largest batch per call. Default 32. */
  maxBatchSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1024)), { default: () => 32 }),
  /**
   * Let idle intra-op threads spin while waiting for work. Default false: spinning threads take CPU from image
   * decoding running beside inference.
   */
  spinning: Schema.optionalWith(Schema.Boolean, { default: () => false })
})
/**
 * The decoded ONNX backbone options, defaults filled in.
 *
 * @since 0.1.0
 * @category options
 */
export type OnnxOptions = typeof OnnxOptions.Type

/** The model bytes to load and the output to request. */
interface Target {
  readonly model: Uint8Array
  readonly output: string
}

const chooseTarget = (config: OnnxModelConfig, model: Uint8Array, file: string): Effect.Effect<Target, BackboneError> => {
  const invalid = (field: string, message: string) =>
    new BackboneError({ reason: "LoadFailed", file, field, message })
  if ((config.outputName === undefined) === (config.node === undefined)) {
    return Effect.fail(invalid("outputName", "give exactly one of outputName (a graph output) and node (an intermediate node)"))
  }
  if (config.outputName !== undefined) return Effect.succeed({ model, output: config.outputName })
  const ref = config.node!
  return Effect.try({
    try: () => OnnxModel.readGraph(model),
    catch: (cause) => invalid("weights", `${file} is not a readable ONNX model: ${String(cause)}`)
  }).pipe(
    Effect.flatMap((graph) => {
      const found = ExposeTensor.findNode(graph, ref)
      if (found === undefined) {
        const pools = graph.nodes.filter((n) => n.opType.endsWith("Pool")).map((n) => n.name)
        const last = graph.nodes.slice(-4).map((n) => n.name)
        return Effect.fail(invalid(
          "node",
          `${file} has no node or tensor named "${ref}"; it has ${graph.nodes.length} nodes, among them the pooling ` +
            `nodes [${pools.join(", ")}] and the last ones [${last.join(", ")}]`
        ))
      }
      return Effect.succeed(ExposeTensor.exposeTensor(model, graph, found.tensor))
    })
  )
}

/** Read a model's weights and pick the output that holds the embedding. */
const readModel = (config: OnnxModelConfig, loupeConfig: LoupeConfig.LoupeConfigShape) =>
  Effect.gen(function*() {
    const file = yield* resolveLocalPath(config.id, config.weights, loupeConfig)
    const fs = yield* FileSystem.FileSystem
    const bytes = yield* Effect.mapError(
      fs.readFile(file),
      (cause) =>
        new BackboneError({ reason: "WeightsNotFound", file, field: config.id, message: `Cannot read ${file}: ${String(cause)}`, cause })
    )
    const weightsHash = createHash("sha256").update(bytes).digest("hex")
    const target = yield* chooseTarget(config, bytes, file)
    return { file, weightsHash, target }
  })

const loadModel = Effect.fn("OnnxBackbone.load")(function*(
  config: OnnxModelConfig,
  info: Backbone.BackboneInfo,
  context: Backbone.LoadContext
) {
  const opts = context.options as OnnxOptions
  const { file, target, weightsHash } = yield* readModel(config, context.config)
  const session = yield* OrtWorker.open(target.model, opts, file)

  const { inputNames, outputNames } = session
  const input = config.inputName ?? (inputNames.length === 1 ? inputNames[0]! : undefined)
  if (input === undefined || !inputNames.includes(input)) {
    return yield* new BackboneError({
      reason: "LoadFailed",
      file,
      field: "inputName",
      message: `${file} has inputs [${inputNames.join(", ")}]; ` +
        (config.inputName === undefined ? "name the image input with inputName" : `there is no input "${config.inputName}"`)
    })
  }
  if (!outputNames.includes(target.output)) {
    return yield* new BackboneError({
      reason: "LoadFailed",
      file,
      field: "outputName",
      message: `${file} has outputs [${outputNames.join(", ")}], not "${target.output}" ` +
        `(to use an intermediate tensor, give it as node instead)`
    })
  }

  const { size, layout } = config.preprocess
  const perImage = size * size * 3

  const run = OrtEmbed.embedder(session, {
    id: config.id,
    file,
    input,
    output: target.output,
    outputField: config.node === undefined ? "outputName" : "node",
    pooling: config.pooling ?? "flatten",
    channels: config.channels ?? "first",
    embeddingSize: config.embeddingSize,
    inputDims: (count) => layout === "NCHW" ? [count, 3, size, size] : [count, size, size, 3]
  })

  const embedBatch = Effect.fn("OnnxBackbone.embedBatch")(function*(batch: Float32Array, count: number) {
    if (!Number.isInteger(count) || count < 1 || count > opts.maxBatchSize || batch.length !== count * perImage) {
      return yield* new BackboneError({
        reason: "InvalidInput",
        field: "batch",
        message: `${config.id} takes 1 to ${opts.maxBatchSize} images of ${perImage} values ` +
          `(${layout} ${size}x${size}x3); got ${batch.length} values for ${count} images`
      })
    }
    return yield* run(batch, count)
  })

  // One blank image: checks the output's type and size now rather than on the first real batch.
  yield* embedBatch(new Float32Array(perImage), 1)
  return { info, weightsHash, maxBatchSize: opts.maxBatchSize, embedBatch } satisfies Backbone.LoadedBackbone
})

/**
 * An ONNX backbone plugin: it keeps its model config, so export targets can find the graph behind a registered id.
 *
 * @since 0.1.0
 * @category models
 */
export interface OnnxPlugin extends Backbone.BackbonePlugin {
  readonly onnx: OnnxModelConfig
}

/**
 * A backbone plugin for an ONNX model file.
 *
 * @since 0.1.0
 * @category constructors
 */
export const plugin = (config: OnnxModelConfig): OnnxPlugin => {
  const info: Backbone.BackboneInfo = {
    id: config.id,
    runtime: "onnx",
    description: config.description,
    embeddingSize: config.embeddingSize,
    preprocess: config.preprocess,
    tags: config.tags,
    license: config.license,
    weights: config.weights
  }
  return {
    info,
    optionsSchema: OnnxOptions,
    load: (context) => Effect.provide(loadModel(config, info, context), NodeFileSystem.layer),
    onnx: config
  }
}

/**
 * The model config behind a plugin made by `plugin`, or `undefined` for a plugin of another runtime.
 *
 * @since 0.1.0
 * @category getters
 */
export const configOf = (backbone: Backbone.BackbonePlugin): OnnxModelConfig | undefined =>
  "onnx" in backbone ? (backbone as OnnxPlugin).onnx : undefined

/**
 * The graph a backbone runs, for export: the model bytes (an intermediate embedding tensor exposed as a graph
 * output, dequantized when it is int8), the names of its image input and of its embedding output, and the sha256 of
 * the weights file. The config's pooling is not part of the graph.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmbeddingGraph {
  readonly file: string
  readonly weightsHash: string
  readonly model: Uint8Array
  readonly input: string
  readonly output: string
}

/**
 * Read the graph an ONNX backbone config runs, for export (see `EmbeddingGraph`), without starting a session.
 * Fails with `WeightsNotFound` when the weights are absent or unreadable, `LoadFailed` when the file is not a
 * readable ONNX model, or its image input, output or node cannot be found.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embeddingGraph = (
  config: OnnxModelConfig,
  loupeConfig: LoupeConfig.LoupeConfigShape
): Effect.Effect<EmbeddingGraph, BackboneError> =>
  Effect.gen(function*() {
    const { file, target, weightsHash } = yield* readModel(config, loupeConfig)
    const inputs = yield* Effect.try({
      try: () => OnnxModel.readGraph(target.model).inputs,
      catch: (cause) =>
        new BackboneError({ reason: "LoadFailed", file, field: "weights", message: `${file} is not a readable ONNX model: ${String(cause)}` })
    })
    const input = config.inputName ?? (inputs.length === 1 ? inputs[0]! : undefined)
    if (input === undefined || !inputs.includes(input)) {
      return yield* new BackboneError({
        reason: "LoadFailed",
        file,
        field: "inputName",
        message: `${file} has inputs [${inputs.join(", ")}]; ` +
          (config.inputName === undefined ? "name the image input with inputName" : `there is no input "${config.inputName}"`)
      })
    }
    return { file, weightsHash, model: target.model, input, output: target.output }
  }).pipe(Effect.provide(NodeFileSystem.layer))
