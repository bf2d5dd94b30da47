/**
 * Export a fitted pipeline as one ONNX graph that any ONNX runtime can run: the backbone's own graph (an ONNX
 * backbone's model file, with the embedding exposed the way Loupe runs it), the pooling, then the head:
 *
 * ```
 * input [batch, 3, 224, 224] -> backbone -> embedding [batch, d]
 *   -> L2 normalise (x / max(||x||, 1e-12)) -> Sub(mean) -> Div(scale) -> MatMul(W) -> Add(b) -> Softmax
 *   -> probabilities [batch, classes]
 * ```
 *
 * A pipeline trained with mirror images (`Pipeline`'s `mirror`) exports with them: the graph flips the input left
 * to right (a `Gather` over the width axis), runs the backbone and head on both as one batch of `2 x batch`, and
 * averages the two probability rows of each image; the embedding output is the images' own.
 *
 * The input is the preprocessed image tensor (decode, resize and crop, then `(x / scale - mean) / std`, as
 * `model.json` describes); decoding images stays outside the graph, as it must for any runtime. The labels and the
 * preprocessing are also stored in the model's metadata (`loupe.labels`, `loupe.preprocess`).
 *
 * Exportable: backbones of the ONNX runtime (`OnnxBackbone.plugin`), and the heads in `exportableHeads`: logistic
 * regression; linear SVM with its Platt sigmoids; nearest prototype (a cosine head); the MLP; manual mode's `linear`
 * head. kNN (which keeps every training row) is not, nor the fine-tuned head (its layers run in TensorFlow.js), nor
 * multi-backbone pipelines. Other backbones and heads fail with `NotExportable` naming them.
 *
 * Every export is verified before it is written: the exported graph and Loupe's own predictor (backbone then head)
 * run on the same input tensors, and the export fails unless every probability agrees within `tolerance` (1e-4).
 *
 * @since 0.1.0
 */
import { Bundle, Embedder, LoupeConfig, Matrix, Pipeline, Preprocess, Registry } from "@loupe/core"
import type { Head, Sample } from "@loupe/core"
import { OnnxBackbone } from "@loupe/backbones"
import { LinearSvm, LogisticRegression, ManualTraining, Mlp, NearestPrototype } from "@loupe/trainers"
import type { FileSystem } from "@effect/platform"
import { Effect, Schema } from "effect"
import type { Scope } from "effect"
import * as ort from "onnxruntime-node"
import * as path from "node:path"
import { DeployError } from "./DeployError.js"
import * as Proto from "./internal/OnnxProto.js"

/**
 * The nodes that turn the embedding into probabilities.
 *
 * @since 0.1.0
 * @category models
 */
export interface HeadGraph {
  readonly nodes: ReadonlyArray<Uint8Array>
  readonly initializers: ReadonlyArray<Uint8Array>
}

/**
 * Builds a head's nodes, reading `embedding` ([batch, dim]) and writing `probabilities` ([batch, classes]).
 *
 * @since 0.1.0
 * @category models
 */
export type HeadExporter = (
  head: Head.SerializedHead,
  io: { readonly embedding: string; readonly probabilities: string; readonly dim: number }
) => Effect.Effect<HeadGraph, DeployError>

const notExportable = (field: string, message: string) => new DeployError({ reason: "NotExportable", field, message })

/** `x / max(||x||_2, 1e-12)` per row, with ops whose form is the same in every opset. */
const l2Normalize = (input: string, output: string, dim: number, prefix: string): HeadGraph => ({
  nodes: [
    Proto.node("Mul", [input, input], [`${prefix}/squares`], `${prefix}/Square`),
    Proto.node("MatMul", [`${prefix}/squares`, `${prefix}/ones`], [`${prefix}/sum_squares`], `${prefix}/SumSquares`),
    Proto.node("Sqrt", [`${prefix}/sum_squares`], [`${prefix}/norm`], `${prefix}/Norm`),
    Proto.node("Max", [`${prefix}/norm`, `${prefix}/eps`], [`${prefix}/norm_safe`], `${prefix}/NormSafe`),
    Proto.node("Div", [input, `${prefix}/norm_safe`], [output], `${prefix}/Normalize`)
  ],
  initializers: [
    Proto.floatInitializer(`${prefix}/ones`, [dim, 1], new Float32Array(dim).fill(1)),
    Proto.floatInitializer(`${prefix}/eps`, [1], [1e-12])
  ]
})

/**
 * The shape every exportable head has: features optionally L2-normalised, standardised with the training mean and
 * scale, L2-normalised again (cosine heads); then dense layers (`z W + b`, ReLU between them); then an activation:
 * softmax, or per-class sigmoids normalised to sum to 1.
 */
interface DenseForm {
  readonly l2: boolean
  readonly scaler: { readonly mean: ArrayLike<number>; readonly scale: ArrayLike<number> } | undefined
  readonly renormalize: boolean
  /** Input first; weights `inputs x outputs`, row-major. */
  readonly layers: ReadonlyArray<{ readonly weights: Float32Array; readonly bias: Float32Array }>
  readonly activation: "softmax" | "sigmoid-normalized"
}

const denseGraph = (form: DenseForm, io: { readonly embedding: string; readonly probabilities: string; readonly dim: number }): HeadGraph => {
  const p = "loupe_head"
  const parts: Array<HeadGraph> = []
  let features = io.embedding
  if (form.l2) {
    parts.push(l2Normalize(features, `${p}/normalized`, io.dim, `${p}/l2`))
    features = `${p}/normalized`
  }
  if (form.scaler !== undefined) {
    parts.push({
      nodes: [
        Proto.node("Sub", [features, `${p}/mean`], [`${p}/centered`], `${p}/Center`),
        Proto.node("Div", [`${p}/centered`, `${p}/scale`], [`${p}/standardized`], `${p}/Standardize`)
      ],
      initializers: [
        Proto.floatInitializer(`${p}/mean`, [io.dim], form.scaler.mean),
        Proto.floatInitializer(`${p}/scale`, [io.dim], form.scaler.scale)
      ]
    })
    features = `${p}/standardized`
    if (form.renormalize) {
      parts.push(l2Normalize(features, `${p}/unit`, io.dim, `${p}/l2_again`))
      features = `${p}/unit`
    }
  }
  let width = io.dim
  form.layers.forEach((layer, l) => {
    const outputs = layer.bias.length
    const q = `${p}/layer${l}`
    const last = l === form.layers.length - 1
    parts.push({
      nodes: [
        Proto.node("MatMul", [features, `${q}/weights`], [`${q}/linear`], `${q}/MatMul`),
        Proto.node("Add", [`${q}/linear`, `${q}/bias`], [last ? `${p}/logits` : `${q}/affine`], `${q}/Add`),
        ...(last ? [] : [Proto.node("Relu", [`${q}/affine`], [`${q}/relu`], `${q}/Relu`)])
      ],
      initializers: [
        Proto.floatInitializer(`${q}/weights`, [width, outputs], layer.weights),
        Proto.floatInitializer(`${q}/bias`, [outputs], layer.bias)
      ]
    })
    features = `${q}/relu`
    width = outputs
  })
  const logits = `${p}/logits`
  const k = width
  parts.push(
    form.activation === "softmax"
      ? { nodes: [Proto.node("Softmax", [logits], [io.probabilities], `${p}/Softmax`, { axis: { kind: "int", value: 1 } })], initializers: [] }
      : {
        nodes: [
          Proto.node("Sigmoid", [logits], [`${p}/sigmoids`], `${p}/Sigmoid`),
          Proto.node("MatMul", [`${p}/sigmoids`, `${p}/class_ones`], [`${p}/sigmoid_sum`], `${p}/SigmoidSum`),
          Proto.node("Div", [`${p}/sigmoids`, `${p}/sigmoid_sum`], [io.probabilities], `${p}/SigmoidNormalize`)
        ],
        initializers: [Proto.floatInitializer(`${p}/class_ones`, [k, 1], new Float32Array(k).fill(1))]
      }
  )
  return { nodes: parts.flatMap((g) => g.nodes), initializers: parts.flatMap((g) => g.initializers) }
}

/** Dense layers as stored by the trainers (`outputs x inputs`, row-major, Float64), transposed for `z W + b`. */
const transposed = (layers: ReadonlyArray<{ readonly inputs: number; readonly outputs: number; readonly weights: ArrayLike<number>; readonly bias: ArrayLike<number> }>) =>
  layers.map(({ bias, inputs, outputs, weights }) => {
    const w = new Float32Array(inputs * outputs)
    for (let o = 0; o < outputs; o++) for (let i = 0; i < inputs; i++) w[i * outputs + o] = weights[o * inputs + i]!
    return { weights: w, bias: Float32Array.from(bias) }
  })

/** Decode a head's serialised state with its own Schema. */
const decodeState = <A, I>(schema: Schema.Schema<A, I>, head: Head.SerializedHead) =>
  Schema.decodeUnknown(schema)(head.state).pipe(
    Effect.mapError((e) =>
      new DeployError({ reason: "BundleFailed", field: "head.state", message: `The ${head.kind} state does not decode: ${e.message}` })
    )
  )

const checkDim = (kind: string, expected: number, dim: number) =>
  expected === dim
    ? Effect.void
    : Effect.fail(new DeployError({
      reason: "BundleFailed",
      field: "head.state",
      message: `The ${kind} head expects ${expected}-d embeddings but the backbone gives ${dim}`
    }))

/**
 * `count` weight vectors of `dim` (plus a bias each) as the `dim x classes` matrix of a softmax or sigmoid head.
 * Two classes keep one vector (logit 0 for class 0): it fills class 1's column, class 0's stays zero, and the
 * softmax of `[0, t]` is `[1 - sigmoid(t), sigmoid(t)]`.
 */
const columns = (
  classes: number,
  dim: number,
  count: number,
  weight: (c: number, j: number) => number,
  bias: (c: number) => number
) => {
  const offset = classes - count
  const weights = new Float32Array(dim * classes)
  const biases = new Float32Array(classes)
  for (let c = 0; c < count; c++) {
    for (let j = 0; j < dim; j++) weights[j * classes + offset + c] = weight(c, j)
    biases[offset + c] = bias(c)
  }
  return { weights, bias: biases }
}

const logisticRegression: HeadExporter = (head, io) =>
  Effect.gen(function*() {
    const state = yield* decodeState(LogisticRegression.State, head)
    yield* checkDim(head.kind, state.scaler.mean.length, io.dim)
    const k = state.numClasses
    const count = k === 2 ? 1 : k
    const { bias, weights } = columns(k, io.dim, count, (c, j) => state.weights[c * io.dim + j]!, (c) => state.bias[c]!)
    return denseGraph({ l2: true, scaler: state.scaler, renormalize: false, layers: [{ weights, bias }], activation: "softmax" }, io)
  })

/** One-vs-rest decision values through Platt sigmoids (`sigmoid(A f + B)`, A and B folded into the weights). */
const linearSvm: HeadExporter = (head, io) =>
  Effect.gen(function*() {
    const state = yield* decodeState(LinearSvm.State, head)
    yield* checkDim(head.kind, state.scaler.mean.length, io.dim)
    const k = state.numClasses
    const count = k === 2 ? 1 : k
    const stride = io.dim + 1
    const { bias, weights } = columns(
      k,
      io.dim,
      count,
      (c, j) => state.plattA[c]! * state.weights[c * stride + j]!,
      (c) => state.plattA[c]! * state.weights[c * stride + io.dim]! + state.plattB[c]!
    )
    return denseGraph({
      l2: true,
      scaler: state.scaler,
      renormalize: false,
      layers: [{ weights, bias }],
      activation: k === 2 ? "softmax" : "sigmoid-normalized"
    }, io)
  })

/** Cosine similarity to unit prototypes, times the temperature `scale`, through a softmax. */
const nearestPrototype: HeadExporter = (head, io) =>
  Effect.gen(function*() {
    const state = yield* decodeState(NearestPrototype.State, head)
    const params = yield* Schema.decodeUnknown(NearestPrototype.Params)(head.params).pipe(
      Effect.mapError((e) => new DeployError({ reason: "BundleFailed", field: "head.params", message: `The ${head.kind} params do not decode: ${e.message}` }))
    )
    const k = state.numClasses
    yield* checkDim(head.kind, state.prototypes.length / k, io.dim)
    const { bias, weights } = columns(k, io.dim, k, (c, j) => params.scale * state.prototypes[c * io.dim + j]!, () => 0)
    return denseGraph({ l2: true, scaler: state.scaler, renormalize: true, layers: [{ weights, bias }], activation: "softmax" }, io)
  })

/** The MLP: L2-normalised and standardised features, a ReLU hidden layer, a softmax. */
const mlp: HeadExporter = (head, io) =>
  Effect.gen(function*() {
    const state = yield* decodeState(Mlp.State, head)
    yield* checkDim(head.kind, state.layers[0]?.inputs ?? 0, io.dim)
    return denseGraph({ l2: true, scaler: state.scaler, renormalize: false, layers: transposed(state.layers), activation: "softmax" }, io)
  })

/** Manual mode's head: dense layers on the raw embedding (the notebook's `Linear(d, classes)`), a softmax. */
const manualLinear: HeadExporter = (head, io) =>
  Effect.gen(function*() {
    const state = yield* decodeState(ManualTraining.HeadState, head)
    yield* checkDim(head.kind, state.layers[0]?.inputs ?? 0, io.dim)
    return denseGraph({ l2: false, scaler: undefined, renormalize: false, layers: transposed(state.layers), activation: "softmax" }, io)
  })

/**
 * The heads that have an ONNX form, by kind.
 *
 * @since 0.1.0
 * @category exporters
 */
export const headExporters: Readonly<Record<string, HeadExporter>> = {
  [LogisticRegression.kind]: logisticRegression,
  [LinearSvm.kind]: linearSvm,
  [NearestPrototype.kind]: nearestPrototype,
  [Mlp.kind]: mlp,
  [ManualTraining.headKind]: manualLinear
}

/**
 * @since 0.1.0
 * @category exporters
 */
export const exportableHeads: ReadonlyArray<string> = Object.keys(headExporters)

/**
 * What `model.json` says beside `model.onnx`.
 *
 * @since 0.1.0
 * @category models
 */
export interface OnnxManifest {
  readonly format: "loupe-onnx"
  readonly formatVersion: 1
  readonly labels: ReadonlyArray<string>
  readonly input: {
    readonly name: string
    readonly shape: ReadonlyArray<number | string>
    readonly preprocess: Preprocess.PreprocessSpec
  }
  readonly outputs: {
    readonly probabilities: { readonly name: string; readonly shape: ReadonlyArray<number | string> }
    readonly embedding: { readonly name: string; readonly shape: ReadonlyArray<number | string> }
  }
  readonly backbone: { readonly id: string; readonly weightsHash: string }
  readonly head: { readonly kind: string }
  /** The graph averages each image with its mirror image. */
  readonly mirror: boolean
  readonly verification: { readonly inputs: number; readonly maxAbsDiff: number; readonly tolerance: number }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Exported {
  readonly model: Uint8Array
  readonly manifest: OnnxManifest
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ExportOptions {
  /** Images to verify on (decoded as Loupe decodes them). Default: a few synthetic images. */
  readonly verifyImages?: ReadonlyArray<Sample.ImageSource>
  /** Largest difference allowed between a probability of the export and of Loupe's predictor. Default 1e-4. */
  readonly tolerance?: number
}

const BATCH = "batch"

/** `wanted`, or `loupe_<wanted>` when the backbone's graph already uses that name. */
const freeName = (taken: ReadonlySet<string>, wanted: string) => (taken.has(wanted) ? `loupe_${wanted}` : wanted)

const session = (model: Uint8Array, file: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => ort.InferenceSession.create(model, { intraOpNumThreads: 2, graphOptimizationLevel: "all" }),
      catch: (cause) =>
        new DeployError({ reason: "ExportFailed", file, message: `onnxruntime cannot load the exported graph: ${String(cause)}`, cause })
    }),
    (s) => Effect.promise(() => s.release())
  )

const run = (s: ort.InferenceSession, input: string, data: Float32Array, dims: ReadonlyArray<number>, output: string) =>
  Effect.tryPromise({
    try: () => s.run({ [input]: new ort.Tensor("float32", data, dims) }, [output]),
    catch: (cause) => new DeployError({ reason: "ExportFailed", message: `onnxruntime failed: ${String(cause)}`, cause })
  }).pipe(Effect.map((result) => result[output]!))

/** Nodes that pool the backbone's raw output (rank `rank`) into [batch, dim], following the plugin's config. */
const poolingNodes = (
  config: OnnxBackbone.OnnxModelConfig,
  raw: string,
  rank: number
): { readonly nodes: ReadonlyArray<Uint8Array>; readonly output: string } => {
  if (rank <= 2) return { nodes: [], output: raw }
  const pooling = config.pooling ?? "flatten"
  const p = "loupe_pool"
  if (pooling === "flatten") {
    return { nodes: [Proto.node("Flatten", [raw], [`${p}/flat`], `${p}/Flatten`, { axis: { kind: "int", value: 1 } })], output: `${p}/flat` }
  }
  const nodes: Array<Uint8Array> = []
  let channelsFirst = raw
  if ((config.channels ?? "first") === "last") {
    const perm = [0, rank - 1, ...Array.from({ length: rank - 2 }, (_, i) => i + 1)]
    nodes.push(Proto.node("Transpose", [raw], [`${p}/channels_first`], `${p}/Transpose`, { perm: { kind: "ints", value: perm } }))
    channelsFirst = `${p}/channels_first`
  }
  const op = pooling === "mean" ? "GlobalAveragePool" : "GlobalMaxPool"
  nodes.push(Proto.node(op, [channelsFirst], [`${p}/pooled`], `${p}/${op}`))
  nodes.push(Proto.node("Flatten", [`${p}/pooled`], [`${p}/flat`], `${p}/Flatten`, { axis: { kind: "int", value: 1 } }))
  return { nodes, output: `${p}/flat` }
}

/** The width axis of an image tensor. */
const widthAxis = (spec: Preprocess.PreprocessSpec) => (spec.layout === "NCHW" ? 3 : 2)

/** `batch` normalised images flipped left to right (the tensor of their mirror images). */
const mirrorTensor = (batch: Float32Array, spec: Preprocess.PreprocessSpec): Float32Array => {
  const out = new Float32Array(batch.length)
  const w = spec.size
  // Both layouts are rows of `w` pixels, each pixel `step` values wide: NCHW rows of one channel, NHWC rows of RGB.
  const step = spec.layout === "NCHW" ? 1 : 3
  const rowLength = w * step
  for (let row = 0; row < batch.length / rowLength; row++) {
    const base = row * rowLength
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < step; c++) out[base + (w - 1 - x) * step + c] = batch[base + x * step + c]!
    }
  }
  return out
}

/**
 * The nodes around the backbone and head that add mirror images: `image` is flipped and stacked under itself into
 * the backbone's `input`; the head's `2 x batch` probability rows (`views`) are averaged per image into
 * `probabilities`, and the first `batch` rows of `embedding` become `imageEmbedding`. Only ops whose form is the
 * same in every opset (Gather, Concat, Reshape, MatMul).
 */
const mirrorNodes = (io: {
  readonly spec: Preprocess.PreprocessSpec
  readonly image: string
  readonly input: string
  readonly views: string
  readonly probabilities: string
  readonly classes: number
  readonly embedding: string
  readonly imageEmbedding: string
  readonly dim: number
}): { readonly before: ReadonlyArray<Uint8Array>; readonly after: ReadonlyArray<Uint8Array> } => {
  const p = "loupe_mirror"
  /** `x` ([2 x batch, width]) -> [batch, width]: `weights[0]` times the first half plus `weights[1]` times the second. */
  const combine = (x: string, out: string, width: number, weights: readonly [number, number], name: string) => [
    Proto.node("Reshape", [x, `${p}/two_rows`], [`${p}/${name}_halves`], `${p}/${name}/Reshape`),
    Proto.node("MatMul", [`${p}/${name}_weights`, `${p}/${name}_halves`], [`${p}/${name}_combined`], `${p}/${name}/MatMul`),
    Proto.node("Reshape", [`${p}/${name}_combined`, `${p}/${name}_shape`], [out], `${p}/${name}/Reshape_back`),
    Proto.floatInitializer(`${p}/${name}_weights`, [1, 2], weights),
    Proto.int64Initializer(`${p}/${name}_shape`, [2], [-1, width])
  ]
  return {
    before: [
      Proto.node("Gather", [io.image, `${p}/reversed_columns`], [`${p}/mirrored`], `${p}/Flip`, {
        axis: { kind: "int", value: widthAxis(io.spec) }
      }),
      Proto.node("Concat", [io.image, `${p}/mirrored`], [io.input], `${p}/Stack`, { axis: { kind: "int", value: 0 } })
    ],
    after: [
      Proto.int64Initializer(`${p}/reversed_columns`, [io.spec.size], Array.from({ length: io.spec.size }, (_, x) => io.spec.size - 1 - x)),
      Proto.int64Initializer(`${p}/two_rows`, [2], [2, -1]),
      ...combine(io.views, io.probabilities, io.classes, [0.5, 0.5], "mean"),
      ...combine(io.embedding, io.imageEmbedding, io.dim, [1, 0], "embedding")
    ]
  }
}

/** Deterministic image-like inputs: smooth colour gradients with noise, normalised per `spec`. */
const syntheticInputs = (spec: Preprocess.PreprocessSpec, count: number): Float32Array => {
  let seed = 12345
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
  }
  const images = Array.from({ length: count }, (_, n) => {
    const rgb = new Uint8Array(spec.size * spec.size * 3)
    for (let y = 0; y < spec.size; y++) {
      for (let x = 0; x < spec.size; x++) {
        for (let c = 0; c < 3; c++) {
          const base = ((x * (c + 1) + y * (n + 1)) / (2 * spec.size)) * 255
          rgb[(y * spec.size + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base + (next() - 0.5) * 60)))
        }
      }
    }
    return rgb
  })
  return Preprocess.toTensor(images, spec)
}

/**
 * Check, without loading anything, that a backbone id and a head kind have an ONNX form; `NotExportable` names the
 * one that has none.
 *
 * @since 0.1.0
 * @category exporters
 */
export const exportable = (
  backboneId: string,
  headKind: string
): Effect.Effect<{ readonly config: OnnxBackbone.OnnxModelConfig; readonly exporter: HeadExporter }, DeployError, Registry.Registry> =>
  Effect.gen(function*() {
    const exporter = headExporters[headKind]
    if (exporter === undefined) {
      return yield* notExportable(
        "head.kind",
        `The ${headKind} head has no ONNX form; exportable heads: ${exportableHeads.join(", ")}. ` +
          "Export it as a bundle or a Docker context instead."
      )
    }
    const registry = yield* Registry.Registry
    const plugin = yield* registry.backbone(backboneId).pipe(
      Effect.mapError((e) => new DeployError({ reason: "BundleFailed", field: "backbone.id", message: e.message, cause: e }))
    )
    const config = OnnxBackbone.configOf(plugin)
    if (config === undefined) {
      return yield* notExportable(
        "backbone.id",
        `The backbone ${backboneId} runs on ${plugin.info.runtime}, not onnxruntime; only ONNX backbones export to ONNX. ` +
          "Export it as a bundle or a Docker context instead."
      )
    }
    return { config, exporter }
  })

/**
 * Build the single graph for a fitted pipeline and verify it against the pipeline. Needs the registry the pipeline's
 * backbone came from (to find its ONNX model) and the config that locates the weights.
 *
 * @since 0.1.0
 * @category constructors
 */
export const build = (
  fitted: Pipeline.FittedPipeline,
  options: ExportOptions = {}
): Effect.Effect<Exported, DeployError, Registry.Registry | LoupeConfig.LoupeConfig> =>
  Effect.scoped(Effect.gen(function*() {
    const { info } = fitted.backbone
    const headJson = fitted.head.toJSON()
    if ((fitted.extraBackbones ?? []).length > 0) {
      return yield* notExportable(
        "extraBackbones",
        "Multi-backbone pipelines have no single-graph ONNX form yet. Export it as a bundle or a Docker context instead."
      )
    }
    const { config, exporter } = yield* exportable(info.id, headJson.kind)
    const graph = yield* OnnxBackbone.embeddingGraph(config, yield* LoupeConfig.LoupeConfig).pipe(
      Effect.mapError((e) => new DeployError({ reason: "ExportFailed", file: e.file, field: e.field, message: e.message, cause: e }))
    )
    if (graph.weightsHash !== fitted.backbone.weightsHash) {
      return yield* new DeployError({
        reason: "ExportFailed",
        file: graph.file,
        field: "backbone.weightsHash",
        message: `The model was trained with ${info.id} weights sha256 ${fitted.backbone.weightsHash}, ` +
          `but ${graph.file} has sha256 ${graph.weightsHash}`
      })
    }
    const spec = info.preprocess
    const inputDims = (n: number) => (spec.layout === "NCHW" ? [n, 3, spec.size, spec.size] : [n, spec.size, spec.size, 3])

    // The rank of the raw output decides the pooling nodes; one blank image tells it.
    const probe = yield* session(graph.model, graph.file)
    const rawDims = (yield* run(probe, graph.input, new Float32Array(spec.size * spec.size * 3), inputDims(1), graph.output)).dims
    const pooled = poolingNodes(config, graph.output, rawDims.length)
    const dim = info.embeddingSize
    const taken = yield* Effect.try({
      try: () => Proto.tensorNames(graph.model),
      catch: (cause) => new DeployError({ reason: "ExportFailed", file: graph.file, message: `Cannot read ${graph.file}: ${String(cause)}`, cause })
    })
    // The embedding output is the backbone's own output when no pooling was added (e.g. MobileNetV2's `embedding`).
    const EMBEDDING = pooled.nodes.length === 0 ? pooled.output : freeName(taken, "embedding")
    const PROBABILITIES = freeName(taken, "probabilities")
    const labels = fitted.labels
    const mirror = fitted.mirror === true
    // With mirror images, the graph's input is a new tensor, and its outputs are computed from the 2 x batch rows.
    const IMAGE = mirror ? freeName(taken, "image") : graph.input
    const VIEW_PROBABILITIES = mirror ? "loupe_mirror/view_probabilities" : PROBABILITIES
    const IMAGE_EMBEDDING = mirror ? freeName(taken, "image_embedding") : EMBEDDING
    const head = yield* exporter(headJson, { embedding: EMBEDDING, probabilities: VIEW_PROBABILITIES, dim })
    const mirrored = mirror
      ? mirrorNodes({
        spec,
        image: IMAGE,
        input: graph.input,
        views: VIEW_PROBABILITIES,
        probabilities: PROBABILITIES,
        classes: labels.length,
        embedding: EMBEDDING,
        imageEmbedding: IMAGE_EMBEDDING,
        dim
      })
      : { before: [], after: [] }

    const edit: Proto.GraphEdit = {
      ...(mirror
        ? {
          before: Proto.concat([
            Proto.floatValueInfo(Proto.GRAPH_INPUT, IMAGE, [BATCH, ...inputDims(1).slice(1)]),
            ...mirrored.before
          ]),
          dropInputs: [graph.input]
        }
        : {}),
      after: Proto.concat([
        ...pooled.nodes,
        ...(EMBEDDING === pooled.output ? [] : [Proto.node("Identity", [pooled.output], [EMBEDDING], "loupe_embedding")]),
        ...head.nodes,
        ...head.initializers,
        ...mirrored.after,
        Proto.floatValueInfo(Proto.GRAPH_OUTPUT, PROBABILITIES, [BATCH, labels.length]),
        Proto.floatValueInfo(Proto.GRAPH_OUTPUT, IMAGE_EMBEDDING, [BATCH, dim])
      ])
    }
    const model = yield* Effect.try({
      try: () =>
        Proto.rewriteModel(
          graph.model,
          edit,
          Proto.concat([
            Proto.metadata("loupe.labels", JSON.stringify(labels)),
            Proto.metadata("loupe.preprocess", JSON.stringify(spec)),
            Proto.metadata("loupe.backbone", info.id),
            Proto.metadata("loupe.head", headJson.kind),
            ...(mirror ? [Proto.metadata("loupe.mirror", "true")] : [])
          ])
        ),
      catch: (cause) =>
        new DeployError({ reason: "ExportFailed", file: graph.file, message: `Cannot rewrite ${graph.file}: ${String(cause)}`, cause })
    })

    // Verify: the same input tensors through the export and through Loupe's backbone + head.
    const tolerance = options.tolerance ?? 1e-4
    const perImage = spec.size * spec.size * 3
    const inputs = options.verifyImages === undefined || options.verifyImages.length === 0
      ? syntheticInputs(spec, 4)
      : Preprocess.toTensor(
        yield* Effect.forEach(options.verifyImages, (source) => Preprocess.loadRgb(source, spec)).pipe(
          Effect.mapError((e) => new DeployError({ reason: "InvalidImage", file: e.file, message: e.message, cause: e }))
        ),
        spec
      )
    const count = inputs.length / perImage
    const exported = yield* session(model, "model.onnx")
    let maxAbsDiff = 0
    const chunk = Math.max(1, Math.min(8, fitted.backbone.maxBatchSize))
    for (let start = 0; start < count; start += chunk) {
      const n = Math.min(chunk, count - start)
      const batch = inputs.subarray(start * perImage, (start + n) * perImage)
      const embed = (tensor: Float32Array) =>
        Embedder.embedTensor(fitted.backbone, tensor, n).pipe(
          Effect.map((vectors) => Matrix.make(n, dim, vectors)),
          Effect.mapError((e) => new DeployError({ reason: "ExportFailed", message: e.message, cause: e }))
        )
      const want = Pipeline.predictProba(fitted.head, {
        vectors: yield* embed(batch),
        ...(mirror ? { mirrored: yield* embed(mirrorTensor(batch, spec)) } : {})
      })
      const got = yield* run(exported, IMAGE, batch.slice(), inputDims(n), PROBABILITIES)
      const data = got.data as Float32Array
      if (data.length !== want.data.length) {
        return yield* new DeployError({
          reason: "ExportFailed",
          message: `The export gives ${data.length} probabilities for ${n} inputs; Loupe gives ${want.data.length}`
        })
      }
      for (let i = 0; i < data.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(data[i]! - want.data[i]!))
    }
    if (!(maxAbsDiff <= tolerance)) {
      return yield* new DeployError({
        reason: "ExportFailed",
        message: `The exported graph differs from Loupe's predictor by ${maxAbsDiff} (tolerance ${tolerance})`
      })
    }

    const manifest: OnnxManifest = {
      format: "loupe-onnx",
      formatVersion: 1,
      labels,
      input: { name: IMAGE, shape: [BATCH, ...inputDims(1).slice(1)], preprocess: spec },
      outputs: {
        probabilities: { name: PROBABILITIES, shape: [BATCH, labels.length] },
        embedding: { name: IMAGE_EMBEDDING, shape: [BATCH, dim] }
      },
      mirror,
      backbone: { id: info.id, weightsHash: graph.weightsHash },
      head: { kind: headJson.kind },
      verification: { inputs: count, maxAbsDiff, tolerance }
    }
    return { model, manifest }
  }))

/**
 * Export a bundle directory as `model.onnx` + `model.json` in `outDir` (written atomically).
 *
 * @since 0.1.0
 * @category exports
 */
export const exportBundle = (
  bundleDir: string,
  outDir: string,
  options: ExportOptions = {}
): Effect.Effect<
  OnnxManifest,
  DeployError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope | FileSystem.FileSystem
> =>
  Effect.gen(function*() {
    const bundleManifest = yield* Bundle.readManifest(bundleDir).pipe(
      Effect.mapError((e) => new DeployError({ reason: "BundleFailed", file: e.file ?? bundleDir, message: e.message, cause: e }))
    )
    // Fail before loading the model when it has no ONNX form.
    yield* exportable(bundleManifest.backbone.id, bundleManifest.head.kind)
    const { fitted } = yield* Bundle.load(bundleDir).pipe(
      Effect.mapError((e) => new DeployError({ reason: "BundleFailed", file: e.file ?? bundleDir, message: e.message, cause: e }))
    )
    const { manifest, model } = yield* build(fitted, options)
    yield* Bundle.writeDirectoryAtomic(outDir, {
      "model.onnx": model,
      "model.json": JSON.stringify(manifest, null, 2) + "\n"
    }).pipe(
      Effect.mapError((e) => new DeployError({ reason: "ExportFailed", file: path.resolve(outDir), message: e.message, cause: e }))
    )
    return manifest
  })
