/**
 * Multinomial logistic regression, the linear probe of CLIP's protocol and scikit-learn's `LogisticRegression`.
 *
 * Features are L2-normalised per row, then standardised with the training mean and standard deviation (fitted
 * state). The weights minimise, in Float64 with L-BFGS from zero,
 *
 *     (1 / n) * sum_i w_i * crossEntropy_i  +  (l2 / (2 n)) * ||W||^2        (the intercept is not penalised)
 *
 * which is scikit-learn's objective with `l2 = 1 / C` (row weights are rescaled to sum to n). As in scikit-learn,
 * two classes use a single weight vector (logits `[0, w.x + b]`) and more classes the symmetric multinomial form
 * with one vector per class. The fit is deterministic and does not use the seed.
 *
 * @since 0.1.0
 */
import type { Head, Matrix } from "@loupe/core"
import { Effect, Schema } from "effect"
import * as Check from "./internal/Check.js"
import * as Codec from "./internal/Codec.js"
import * as HeadKit from "./internal/HeadKit.js"
import * as OnnxHead from "./internal/OnnxHead.js"
import * as Lbfgs from "./internal/Lbfgs.js"
import { addRowCombination, crossDots, dotRows, softmaxInPlace } from "./internal/Linalg.js"
import * as Scaler from "./internal/Scaler.js"
import { TrainerError } from "./TrainerError.js"

/**
 * The head kind, `"logistic-regression"`: the `kind` of its `SerializedHead`s, of `head.kind` in a search space, and
 * of the plugin.
 *
 * @since 0.1.0
 * @category head
 */
export const kind = "logistic-regression"

/**
 * - `l2`: L2 strength, the inverse of scikit-learn's `C` (default 1, i.e. C = 1).
 * - `maxIter`: L-BFGS iterations at most (default 500).
 * - `tol`: stop when no gradient entry of the objective exceeds this (default 1e-4, scikit-learn's, on the same scale; at 1e-8 the probabilities match a fully
 *   converged scikit-learn-objective fit to about 3e-6 on cats-vs-dogs).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Params = Schema.Struct({
  l2: HeadKit.withDefault(Schema.Number.pipe(Schema.positive(), Schema.finite()), 1),
  maxIter: HeadKit.withDefault(Schema.Int.pipe(Schema.positive()), 500),
  tol: HeadKit.withDefault(Schema.Number.pipe(Schema.positive(), Schema.finite()), 1e-4)
})
/**
 * The decoded logistic-regression params, every default filled in.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Params = typeof Params.Type

/**
 * The fitted logistic-regression state as serialised in a `SerializedHead`: the scaler, the weights and biases
 * (Float64), the L-BFGS iterations run and whether it converged. Float arrays are encoded as base64 by the codec, so a
 * state round-trips through JSON exactly.
 *
 * @since 0.1.0
 * @category schemas
 */
export const State = Schema.Struct({
  scaler: Scaler.Scaler,
  numClasses: Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)),
  /** `free x dim`, row-major, where `free` is 1 for two classes and `numClasses` otherwise. */
  weights: Codec.Float64,
  bias: Codec.Float64,
  iterations: Schema.Int,
  converged: Schema.Boolean
})
/**
 * The decoded fitted logistic-regression state.
 *
 * @since 0.1.0
 * @category schemas
 */
export type State = typeof State.Type

/**
 * A fitted logistic-regression head: the core `FittedHead` contract plus its typed params and state.
 *
 * @since 0.1.0
 * @category models
 */
export type Fitted = HeadKit.Fitted<Params, State>

/** Weight vectors the model learns: one for a binary problem, one per class otherwise. */
const freeVectors = (numClasses: number) => (numClasses === 2 ? 1 : numClasses)

/**
 * Logits of row `i` of `z` (`dim` wide) into `out[0..numClasses)`; with two classes logit 0 stays 0.
 */
const logits = (
  weights: Float64Array,
  bias: Float64Array,
  numClasses: number,
  z: Float64Array,
  i: number,
  dim: number,
  out: Float64Array
): void => {
  const free = freeVectors(numClasses)
  const offset = numClasses - free
  out[0] = 0
  dotRows(weights, 0, free, dim, z, i * dim, out, offset)
  for (let k = 0; k < free; k++) out[offset + k] += bias[k]!
}

/**
 * Rows per block of the objective below: the block's logits share passes over the weights (`crossDots`) and its
 * gradient terms one pass over each class's gradient (`addRowCombination`), where row by row the weights and the
 * gradient (free x dim, megabytes with many classes) were streamed once per row.
 */
const rowsPerBlock = 8

/** The objective above over parameters laid out as `[weights (free x dim), bias (free)]`, for any class count. */
const objective = (z: Float64Array, y: Int32Array, w: Float64Array, numClasses: number, dim: number, l2: number) => {
  const n = y.length
  const free = freeVectors(numClasses)
  const offset = numClasses - free
  const p = new Float64Array(numClasses)
  // The block's logits (rows x free), then its residuals in their place.
  const block = new Float64Array(rowsPerBlock * free)
  const column = new Float64Array(rowsPerBlock)
  const offsets = new Int32Array(rowsPerBlock)
  return (theta: Float64Array, grad: Float64Array): number => {
    const weights = theta.subarray(0, free * dim)
    const bias = theta.subarray(free * dim)
    grad.fill(0)
    let loss = 0
    for (let i = 0; i < n; i += rowsPerBlock) {
      const rows = Math.min(rowsPerBlock, n - i)
      crossDots(z.subarray(i * dim, (i + rows) * dim), rows, weights, free, dim, block)
      for (let r = 0; r < rows; r++) {
        p[0] = 0
        for (let k = 0; k < free; k++) p[offset + k] = block[r * free + k]! + bias[k]!
        const label = y[i + r]!
        const labelLogit = p[label]!
        const wi = w[i + r]!
        loss += wi * (softmaxInPlace(p, 0, numClasses) - labelLogit)
        for (let k = 0; k < free; k++) {
          const residual = wi * (p[offset + k]! - (offset + k === label ? 1 : 0))
          block[r * free + k] = residual
          grad[free * dim + k] += residual
        }
        offsets[r] = (i + r) * dim
      }
      for (let k = 0; k < free; k++) {
        for (let r = 0; r < rows; r++) column[r] = block[r * free + k]!
        addRowCombination(z, offsets, column, rows, dim, grad, k * dim)
      }
    }
    let penalty = 0
    for (let j = 0; j < free * dim; j++) {
      penalty += theta[j]! * theta[j]!
      grad[j] = (grad[j]! + l2 * theta[j]!) / n
    }
    for (let k = 0; k < free; k++) grad[free * dim + k] /= n
    return (loss + 0.5 * l2 * penalty) / n
  }
}

/**
 * The same objective for two classes (`free` = 1), four rows at a time: their logits share one pass over the weights
 * (`dotRows`) and their gradient terms one pass over the gradient (`addRowCombination`), 1.3-1.6x faster fits on the
 * 2,688-d concatenation of the `balanced` preset than row by row.
 */
const binaryObjective = (z: Float64Array, y: Int32Array, w: Float64Array, dim: number, l2: number) => {
  const n = y.length
  const p = new Float64Array(2)
  const logits = new Float64Array(4)
  const residual = new Float64Array(4)
  const offsets = new Int32Array(4)
  return (theta: Float64Array, grad: Float64Array): number => {
    const bias = theta[dim]!
    grad.fill(0)
    let loss = 0
    for (let i = 0; i < n; i += 4) {
      const rows = Math.min(4, n - i)
      dotRows(z, i, rows, dim, theta, 0, logits, 0)
      for (let k = 0; k < rows; k++) {
        const label = y[i + k]!
        const wi = w[i + k]!
        p[0] = 0
        p[1] = logits[k]! + bias
        const labelLogit = label === 1 ? p[1] : 0
        loss += wi * (softmaxInPlace(p, 0, 2) - labelLogit)
        residual[k] = wi * (p[1] - (label === 1 ? 1 : 0))
        grad[dim] += residual[k]!
        offsets[k] = (i + k) * dim
      }
      addRowCombination(z, offsets, residual, rows, dim, grad, 0)
    }
    let penalty = 0
    for (let j = 0; j < dim; j++) {
      penalty += theta[j]! * theta[j]!
      grad[j] = (grad[j]! + l2 * theta[j]!) / n
    }
    grad[dim] /= n
    return (loss + 0.5 * l2 * penalty) / n
  }
}

const train = (data: Head.TrainingSet, params: Params): Effect.Effect<State, TrainerError> =>
  HeadKit.attempt(kind, () => {
    const { numClasses } = data
    const dim = data.x.cols
    const { scaler, z } = Scaler.fitTransform(data)
    const free = freeVectors(numClasses)
    const weights = Check.rowWeights(data)
    const result = Lbfgs.minimize(
      numClasses === 2 ? binaryObjective(z, data.y, weights, dim, params.l2) : objective(z, data.y, weights, numClasses, dim, params.l2),
      new Float64Array(free * (dim + 1)),
      { maxIter: params.maxIter, tol: params.tol }
    )
    if (!Number.isFinite(result.value)) {
      throw new TrainerError({ reason: "TrainingFailed", message: `${kind}: the objective diverged` })
    }
    return {
      scaler,
      numClasses,
      weights: result.x.slice(0, free * dim),
      bias: result.x.slice(free * dim),
      iterations: result.iterations,
      converged: result.converged
    }
  })

/**
 * The probabilities of a fitted state for embeddings `x`, `rows x numClasses`, exactly as the fitted head's
 * `predictProba` computes them; for heads built from several logistic regressions (`OneVsRest`). The width of `x` is
 * not checked.
 *
 * @since 0.2.0
 * @category utils
 */
export const probabilities = (state: State, x: Matrix.Matrix): Matrix.Matrix => {
  const { numClasses } = state
  const dim = x.cols
  const z = Scaler.transform(state.scaler, x)
  const p = new Float64Array(numClasses)
  const out = new Float32Array(x.rows * numClasses)
  for (let i = 0; i < x.rows; i++) {
    logits(state.weights, state.bias, numClasses, z, i, dim, p)
    softmaxInPlace(p, 0, numClasses)
    for (let k = 0; k < numClasses; k++) out[i * numClasses + k] = p[k]!
  }
  return { rows: x.rows, cols: numClasses, data: out }
}

/**
 * The logistic-regression head plugin, for `Registry.layer({ heads })`, the search and `Pipeline.fit`. `fit` checks
 * the params and the training set and fails with `TrainerError` (`InvalidParams`, `InvalidData`, or `TrainingFailed`);
 * `load` fails with `InvalidState` on a serialised head of another kind or with an invalid state; `toOnnx` writes the
 * head as an ONNX graph and fails with `ShapeMismatch` when the backbone's width differs.
 *
 * @since 0.1.0
 * @category head
 */
export const plugin: HeadKit.Plugin<Params, State> = HeadKit.make({
  kind,
  paramsSchema: Params,
  stateSchema: State,
  train: (data, params) => train(data, params),
  predict: (state, _params, x) => probabilities(state, x),
  shape: (state) => {
    const dim = state.scaler.mean.length
    const free = freeVectors(state.numClasses)
    if (state.scaler.scale.length !== dim) return "scaler mean and scale differ in length"
    if (state.weights.length !== free * dim) return `weights hold ${state.weights.length} values, expected ${free * dim}`
    if (state.bias.length !== free) return `bias holds ${state.bias.length} values, expected ${free}`
    return { numClasses: state.numClasses, dim }
  },
  toOnnx: (state, _params, io) => {
    const k = state.numClasses
    const layer = OnnxHead.columns(k, io.dim, freeVectors(k), (c, j) => state.weights[c * io.dim + j]!, (c) => state.bias[c]!)
    return OnnxHead.denseGraph({ l2: true, scaler: state.scaler, renormalize: false, layers: [layer], activation: "softmax" }, io)
  }
})

/**
 * Fits a logistic-regression head on a training set: `fit(data, params?, seed?)`, the params not given taking their
 * defaults and the seed 0. Fails with `TrainerError` (`InvalidParams`, `InvalidData` or `TrainingFailed`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fit = HeadKit.fitWithDefaults(plugin, Params)

/**
 * Loads a logistic-regression head from its `SerializedHead` (the output of `FittedHead.serialize`). Fails with
 * `TrainerError` `InvalidState`, naming `kind`, `params` or `state`, when the head is of another kind or does not
 * decode.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = plugin.load
