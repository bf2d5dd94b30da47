/**
 * Tip-Adapter (Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for Few-shot Classification", ECCV 2022):
 * the labels' zero-shot classifier (see `ZeroShot`) mixed with a cache of the labelled samples, for backbones with a
 * text tower. With `f` an image's unit embedding, `W` the unit text embeddings of the labels, `F` the unit
 * embeddings of the training samples and `L` their one-hot labels (each row times its sample's weight, the weights
 * averaging 1):
 *
 * ```
 * logits = logitScale * f W^T + alpha * exp(-beta * (1 - f F^T)) L
 * probabilities = softmax(logits)
 * ```
 *
 * The first term is the zero-shot answer; the second lets each sample vote for its label with a weight that falls
 * off with the cosine distance (`beta`, the sharpness) and adds up to `alpha` per identical sample (`alpha`, how much
 * the samples weigh against the prior). Nothing is trained: fitting stores the cache, and the search chooses `alpha`
 * and `beta` by cross-validation like any head's params. Defaults are the paper's (alpha 1, beta 5.5).
 *
 * It needs the training set's `zeroShot` prior, keeps it and the cache in its state (so a saved model predicts
 * without the text tower), and exports to ONNX.
 *
 * @since 0.2.0
 */
import type { Head, Matrix } from "@loupe/core"
import { OnnxGraph } from "@loupe/core/onnx"
import { Schema } from "effect"
import * as Check from "./internal/Check.js"
import * as Codec from "./internal/Codec.js"
import * as HeadKit from "./internal/HeadKit.js"
import { crossDots, softmaxInPlace } from "./internal/Linalg.js"
import * as OnnxHead from "./internal/OnnxHead.js"
import * as Scaler from "./internal/Scaler.js"
import * as Prior from "./internal/ZeroShotPrior.js"

/**
 * The head kind, `"tip-adapter"`.
 *
 * @since 0.2.0
 * @category head
 */
export const kind = "tip-adapter"

/**
 * - `alpha`: how much the cache weighs against the zero-shot logits (default 1).
 * - `beta`: how sharply a sample's vote falls off with cosine distance (default 5.5).
 *
 * @since 0.2.0
 * @category schemas
 */
export const Params = Schema.Struct({
  alpha: HeadKit.withDefault(Schema.Number.pipe(Schema.nonNegative(), Schema.finite()), 1),
  beta: HeadKit.withDefault(Schema.Number.pipe(Schema.nonNegative(), Schema.finite()), 5.5)
})
/**
 * The decoded Tip-Adapter params, every default filled in.
 *
 * @since 0.2.0
 * @category schemas
 */
export type Params = typeof Params.Type

/**
 * The fitted Tip-Adapter state: the zero-shot prior (classes, unit text embeddings, logit scale) and the cache (every
 * training row's unit embedding as Float32, its label and its weight).
 *
 * @since 0.2.0
 * @category schemas
 */
export const State = Schema.Struct({
  ...Prior.fields,
  /** `rows x dim` unit embeddings of the training rows. */
  keys: Codec.Float32,
  labels: Schema.Array(Schema.Int),
  /** One weight per training row, averaging 1. */
  weights: Codec.Float64
})
/**
 * The decoded fitted Tip-Adapter state.
 *
 * @since 0.2.0
 * @category schemas
 */
export type State = typeof State.Type

/**
 * A fitted Tip-Adapter head: the core `FittedHead` contract plus its typed params and state.
 *
 * @since 0.2.0
 * @category models
 */
export type Fitted = HeadKit.Fitted<Params, State>

/** Query rows whose affinities are computed at once; bounds that matrix at `queryChunk x n`. */
const queryChunk = 256

const predict = (state: State, params: Params, x: Matrix.Matrix): Matrix.Matrix => {
  const k = state.numClasses
  const dim = x.cols
  const n = state.labels.length
  const z = Scaler.normalizeRows(x)
  const logits = Prior.logits(state, z, x.rows, dim)
  const keys = Float64Array.from(state.keys)
  const affinity = new Float64Array(Math.min(queryChunk, x.rows) * n)
  for (let first = 0; first < x.rows; first += queryChunk) {
    const rows = Math.min(queryChunk, x.rows - first)
    crossDots(z.subarray(first * dim, (first + rows) * dim), rows, keys, n, dim, affinity)
    for (let q = 0; q < rows; q++) {
      const i = first + q
      for (let j = 0; j < n; j++) {
        logits[i * k + state.labels[j]!] += params.alpha * state.weights[j]! * Math.exp(-params.beta * (1 - affinity[q * n + j]!))
      }
      softmaxInPlace(logits, i * k, k)
    }
  }
  return { rows: x.rows, cols: k, data: Float32Array.from(logits) }
}

const { floatInitializer, node } = OnnxGraph

/** The formula above as ONNX: two MatMuls from the unit embedding, the exponential kernel, a third MatMul, softmax. */
const toOnnx = (state: State, params: Params, io: Head.OnnxIo): Head.HeadGraph => {
  const p = "loupe_tip"
  const k = state.numClasses
  const n = state.labels.length
  const dim = io.dim
  const text = new Float32Array(dim * k)
  for (let c = 0; c < k; c++) for (let j = 0; j < dim; j++) text[j * k + c] = state.logitScale * state.classifier[c * dim + j]!
  const keys = new Float32Array(dim * n)
  for (let r = 0; r < n; r++) for (let j = 0; j < dim; j++) keys[j * n + r] = state.keys[r * dim + j]!
  const values = new Float32Array(n * k)
  state.labels.forEach((label, r) => (values[r * k + label] = params.alpha * state.weights[r]!))
  const unit = OnnxHead.l2Normalize(io.embedding, `${p}/unit`, dim, `${p}/l2`)
  return {
    nodes: [
      ...unit.nodes,
      node("MatMul", [`${p}/unit`, `${p}/text`], [`${p}/zero_shot`], `${p}/ZeroShot`),
      node("MatMul", [`${p}/unit`, `${p}/keys`], [`${p}/affinity`], `${p}/Affinity`),
      node("Mul", [`${p}/affinity`, `${p}/beta`], [`${p}/scaled`], `${p}/Scale`),
      node("Sub", [`${p}/scaled`, `${p}/beta`], [`${p}/shifted`], `${p}/Shift`),
      node("Exp", [`${p}/shifted`], [`${p}/kernel`], `${p}/Kernel`),
      node("MatMul", [`${p}/kernel`, `${p}/values`], [`${p}/cache`], `${p}/Cache`),
      node("Add", [`${p}/zero_shot`, `${p}/cache`], [`${p}/logits`], `${p}/Logits`),
      node("Softmax", [`${p}/logits`], [io.probabilities], `${p}/Softmax`, { axis: { kind: "int", value: 1 } })
    ],
    initializers: [
      ...unit.initializers,
      floatInitializer(`${p}/text`, [dim, k], text),
      floatInitializer(`${p}/keys`, [dim, n], keys),
      floatInitializer(`${p}/beta`, [1], [params.beta]),
      floatInitializer(`${p}/values`, [n, k], values)
    ]
  }
}

/**
 * The Tip-Adapter head plugin, for `Registry.layer({ heads })`, the search and bundles. `fit` fails with
 * `TrainerError` `InvalidData` (field `data.zeroShot`) when the training set has no zero-shot prior or one that does
 * not fit its classes and width; `load` fails with `InvalidState`; `toOnnx` writes the formula above.
 *
 * @since 0.2.0
 * @category head
 */
export const plugin: HeadKit.Plugin<Params, State> = HeadKit.make({
  kind,
  paramsSchema: Params,
  stateSchema: State,
  train: (data) =>
    HeadKit.attempt(kind, () => ({
      ...Prior.of(kind, data),
      keys: Float32Array.from(Scaler.normalizeRows(data.x)),
      labels: Array.from(data.y),
      weights: Float64Array.from(Check.rowWeights(data))
    })),
  predict,
  shape: (state) => {
    const shape = Prior.shape(state)
    if (typeof shape === "string") return shape
    const n = state.labels.length
    if (n === 0) return "no cached rows"
    if (state.keys.length !== n * shape.dim) return `keys hold ${state.keys.length} values for ${n} labels of ${shape.dim}-d rows`
    if (state.weights.length !== n) return `${state.weights.length} weights for ${n} cached rows`
    if (state.labels.some((l) => l < 0 || l >= state.numClasses)) return `a label is outside 0..${state.numClasses - 1}`
    return shape
  },
  toOnnx
})

/**
 * Fits a Tip-Adapter head: `fit(data, params?, seed?)`, `data.zeroShot` holding the labels' classifier. Fails as
 * `plugin.fit` does.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fit = HeadKit.fitWithDefaults(plugin, Params)

/**
 * Loads a Tip-Adapter head from its `SerializedHead`. Fails with `TrainerError` `InvalidState`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const load = plugin.load
