/**
 * A linear support vector machine, one-vs-rest, with Platt scaling for probabilities.
 *
 * Features are L2-normalised, then standardised (fitted state), and a constant feature 1 is appended for the
 * intercept (regularised, as liblinear does). Each binary problem (class k against the rest; a two-class problem is
 * one problem) minimises `0.5 * ||w||^2 + C * sum_i w_i * loss(y_i * w.x_i)`, with `C = 1 / l2` and the squared
 * hinge (scikit-learn's `LinearSVC` default) or the hinge, by dual coordinate descent (Hsieh et al. 2008) over a
 * seeded random order of rows, with liblinear's shrinking. With no more rows than dimensions (a few images per label)
 * each step reads and updates the rows' products through their Gram matrix, shared by every problem: `O(rows)` per
 * step instead of `O(dim)`, the same iterates up to rounding.
 *
 * Probabilities: the decision values of rows held out by an inner stratified split (`calibrationFolds`, default 3)
 * fit one Platt sigmoid per problem (an image's views, `TrainingSet.groups`, stay in one inner fold); with one vector
 * per class the sigmoids are normalised to sum to 1. When a class has a single sample the sigmoids are fitted on
 * training decision values instead.
 *
 * @since 0.1.0
 */
import type { Head, Matrix } from "@loupe/core"
import { Matrix as M } from "@loupe/core"
import { Effect, Schema } from "effect"
import * as CrossValidation from "./CrossValidation.js"
import * as Check from "./internal/Check.js"
import * as Codec from "./internal/Codec.js"
import * as HeadKit from "./internal/HeadKit.js"
import * as OnnxHead from "./internal/OnnxHead.js"
import { axpy, dot } from "./internal/Linalg.js"
import * as Random from "./internal/Random.js"
import * as Scaler from "./internal/Scaler.js"
import { fitPlatt, sigmoid } from "./internal/Sigmoid.js"
import type { TrainerError } from "./TrainerError.js"

/**
 * The head kind, `"linear-svm"`: the `kind` of its `SerializedHead`s, of `head.kind` in a search space, and of the
 * plugin.
 *
 * @since 0.1.0
 * @category head
 */
export const kind = "linear-svm"

/**
 * - `l2`: regularisation strength, `1 / C` (default 1).
 * - `loss`: `"squared-hinge"` (default) or `"hinge"`.
 * - `maxIter`: passes over the data at most (default 100).
 * - `tol`: stop when the projected-gradient spread of a pass is below this (default 0.1, liblinear's).
 * - `calibrationFolds`: inner folds whose held-out decision values fit the Platt sigmoids (default 3).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Params = Schema.Struct({
  l2: HeadKit.withDefault(Schema.Number.pipe(Schema.positive(), Schema.finite()), 1),
  loss: HeadKit.withDefault(Schema.Literal("squared-hinge", "hinge"), "squared-hinge"),
  maxIter: HeadKit.withDefault(Schema.Int.pipe(Schema.positive()), 100),
  tol: HeadKit.withDefault(Schema.Number.pipe(Schema.positive(), Schema.finite()), 0.1),
  calibrationFolds: HeadKit.withDefault(Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)), 3)
})
/**
 * The decoded linear-SVM params, every default filled in.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Params = typeof Params.Type

/**
 * The fitted linear-SVM state as serialised in a `SerializedHead`: the scaler, the per-problem weights with their
 * intercept column, and the Platt sigmoid of each problem. Float arrays are encoded as base64 by the codec, so a state
 * round-trips through JSON exactly.
 *
 * @since 0.1.0
 * @category schemas
 */
export const State = Schema.Struct({
  scaler: Scaler.Scaler,
  numClasses: Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)),
  /** `problems x (dim + 1)`, row-major; the last column is the intercept. */
  weights: Codec.Float64,
  /** Platt sigmoid per problem: `p = sigmoid(plattA * f + plattB)`. */
  plattA: Codec.Float64,
  plattB: Codec.Float64
})
/**
 * The decoded fitted linear-SVM state.
 *
 * @since 0.1.0
 * @category schemas
 */
export type State = typeof State.Type

/**
 * A fitted linear-SVM head: the core `FittedHead` contract plus its typed params and state.
 *
 * @since 0.1.0
 * @category models
 */
export type Fitted = HeadKit.Fitted<Params, State>

const problems = (numClasses: number) => (numClasses === 2 ? 1 : numClasses)

/** Is row label `label` on the positive side of problem `k`? */
const positive = (numClasses: number, k: number, label: number) => (numClasses === 2 ? label === 1 : label === k)

/**
 * The inner products a problem's coordinate descent reads: row `i`'s with the weights (`w.z_i + b`), and after a
 * dual variable moves by `delta` (signed by its row's label), the update of every row's product.
 */
interface Products {
  readonly of: (i: number) => number
  readonly add: (delta: number, i: number) => void
  /** The weights, intercept last (`dim + 1` wide). */
  readonly weights: () => Float64Array
}

/** Primal products: the weight vector itself, `O(dim)` per read and per update. */
const primalProducts = (z: Float64Array, dim: number): Products => {
  const w = new Float64Array(dim + 1)
  return {
    of: (i) => dot(w, z, dim, 0, i * dim) + w[dim]!,
    add: (delta, i) => {
      axpy(delta, z, w, dim, i * dim, 0)
      w[dim] += delta
    },
    weights: () => w
  }
}

/** `(z_i . z_j + 1)` for every pair of rows, `n x n` row-major: the kernel of the rows with their intercept feature. */
const gram = (z: Float64Array, n: number, dim: number) => {
  const g = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) g[i * n + j] = g[j * n + i] = dot(z, z, dim, i * dim, j * dim) + 1
  }
  return g
}

/**
 * Dual products, for fewer rows than dimensions: every row's product kept up to date through the Gram matrix, `O(1)`
 * per read and `O(n)` per update instead of `O(dim)`. The same iterates as `primalProducts` up to rounding, and the
 * weights are formed once at the end (`w = sum_i delta_i z_i`).
 */
const dualProducts = (g: Float64Array, z: Float64Array, n: number, dim: number): Products => {
  const f = new Float64Array(n)
  const moved = new Float64Array(n)
  return {
    of: (i) => f[i]!,
    add: (delta, i) => {
      axpy(delta, g, f, n, i * n, 0)
      moved[i] += delta
    },
    weights: () => {
      const w = new Float64Array(dim + 1)
      for (let i = 0; i < n; i++) {
        if (moved[i] === 0) continue
        axpy(moved[i]!, z, w, dim, i * dim, 0)
        w[dim] += moved[i]!
      }
      return w
    }
  }
}

/**
 * Dual coordinate descent for one binary problem on standardised rows `z` (`dim` wide, intercept implicit), reading
 * and updating the rows' products with the weights through `products`. `norms[i]`: `z_i . z_i + 1`.
 */
const solve = (
  products: Products,
  norms: Float64Array,
  sign: Float64Array,
  rowWeight: Float64Array,
  params: Params,
  random: Random.Random
) => {
  const n = sign.length
  const alpha = new Float64Array(n)
  const c = 1 / params.l2
  const squared = params.loss === "squared-hinge"
  const upper = new Float64Array(n)
  const diag = new Float64Array(n)
  const q = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const ci = c * rowWeight[i]!
    upper[i] = squared ? Infinity : ci
    diag[i] = squared ? (ci > 0 ? 0.5 / ci : Infinity) : 0
    q[i] = norms[i]! + diag[i]!
  }
  // liblinear's shrinking: a row at a bound whose gradient points outward beyond last pass's extremes leaves the
  // active set; when the active rows converge, every row comes back for a final check.
  const order = Int32Array.from({ length: n }, (_, i) => i).filter((i) => rowWeight[i] !== 0)
  let active = order.length
  let pgMaxOld = Infinity
  let pgMinOld = -Infinity
  for (let pass = 0; pass < params.maxIter; pass++) {
    random.shuffle(order.subarray(0, active))
    let pgMax = -Infinity
    let pgMin = Infinity
    for (let s = 0; s < active; s++) {
      const i = order[s]!
      const yi = sign[i]!
      const g = yi * products.of(i) - 1 + diag[i]! * alpha[i]!
      const a = alpha[i]!
      const atLower = a === 0
      const atUpper = !atLower && a === upper[i]
      // Shrinking: a bound variable whose gradient points out of the box, beyond last pass's spread, leaves the
      // active set (swapped behind it) until the final check.
      if ((atLower && g > pgMaxOld) || (atUpper && g < pgMinOld)) {
        active--
        order[s] = order[active]!
        order[active] = i
        s--
        continue
      }
      const pg = atLower ? Math.min(g, 0) : atUpper ? Math.max(g, 0) : g
      if (pg > pgMax) pgMax = pg
      if (pg < pgMin) pgMin = pg
      if (pg !== 0) {
        const next = Math.min(Math.max(a - g / q[i]!, 0), upper[i]!)
        alpha[i] = next
        products.add((next - a) * yi, i)
      }
    }
    if (pgMax - pgMin < params.tol) {
      if (active === order.length) break
      active = order.length
      pgMaxOld = Infinity
      pgMinOld = -Infinity
      continue
    }
    pgMaxOld = pgMax <= 0 ? Infinity : pgMax
    pgMinOld = pgMin >= 0 ? -Infinity : pgMin
  }
  return products.weights()
}

/** Decision values `rows x problems` of standardised rows. */
const decide = (weights: Float64Array, count: number, z: Float64Array, rows: number, dim: number) => {
  const out = new Float64Array(rows * count)
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < count; k++) out[i * count + k] = dot(weights, z, dim, k * (dim + 1), i * dim) + weights[k * (dim + 1) + dim]!
  }
  return out
}

/**
 * One weight vector per problem, fitted on standardised rows. With no more rows than dimensions (few images per
 * label: the common case) the problems share the rows' Gram matrix, which then takes no more memory than the rows.
 */
const fitProblems = (z: Float64Array, dim: number, data: Head.TrainingSet, params: Params, seed: number) => {
  const { numClasses, y } = data
  const n = y.length
  const count = problems(numClasses)
  const rowWeight = Check.rowWeights(data)
  const g = n <= dim ? gram(z, n, dim) : undefined
  const norms = Float64Array.from({ length: n }, (_, i) => g ? g[i * n + i]! : dot(z, z, dim, i * dim, i * dim) + 1)
  const weights = new Float64Array(count * (dim + 1))
  for (let k = 0; k < count; k++) {
    const sign = Float64Array.from(y, (label) => (positive(numClasses, k, label) ? 1 : -1))
    const products = g ? dualProducts(g, z, n, dim) : primalProducts(z, dim)
    weights.set(solve(products, norms, sign, rowWeight, params, Random.make(Random.derive(seed, k))), k * (dim + 1))
  }
  return weights
}

/** Decision values of every row, each from a model that did not see it (or from the full model when too small). */
const heldOutScores = (data: Head.TrainingSet, params: Params, seed: number): Effect.Effect<Float64Array, TrainerError> =>
  CrossValidation.plan(data.y, data.numClasses, {
    folds: params.calibrationFolds,
    seed: Random.derive(seed, 101),
    ...(data.groups ? { groups: Array.from(data.groups) } : {})
  }).pipe(
    Effect.flatMap((plan) =>
      HeadKit.attempt(kind, () => {
        const count = problems(data.numClasses)
        const dim = data.x.cols
        const scores = new Float64Array(data.y.length * count)
        for (const fold of plan.folds) {
          const subset = {
            x: M.takeRows(data.x, fold.train),
            y: Int32Array.from(fold.train, (i) => data.y[i]!),
            numClasses: data.numClasses,
            ...(data.weights ? { weights: Float32Array.from(fold.train, (i) => data.weights![i]!) } : {})
          }
          const { scaler, z } = Scaler.fitTransform(subset)
          const weights = fitProblems(z, dim, subset, params, Random.derive(seed, 200 + fold.index))
          const test = Scaler.transform(scaler, M.takeRows(data.x, fold.test))
          const f = decide(weights, count, test, fold.test.length, dim)
          fold.test.forEach((row, t) => scores.set(f.subarray(t * count, (t + 1) * count), row * count))
        }
        return scores
      })
    )
  )

const train = (data: Head.TrainingSet, params: Params, seed: number): Effect.Effect<State, TrainerError> =>
  Effect.gen(function*() {
    const { numClasses } = data
    const dim = data.x.cols
    const count = problems(numClasses)
    const { scaler, z } = Scaler.fitTransform(data)
    const weights = yield* HeadKit.attempt(kind, () => fitProblems(z, dim, data, params, seed))
    const scores = yield* heldOutScores(data, params, seed).pipe(
      Effect.catchIf((e) => e.reason === "InvalidData", () => Effect.succeed(decide(weights, count, z, data.y.length, dim)))
    )
    const plattA = new Float64Array(count)
    const plattB = new Float64Array(count)
    const rowWeight = Check.rowWeights(data)
    for (let k = 0; k < count; k++) {
      const f = Float64Array.from(data.y, (_, i) => scores[i * count + k]!)
      const { a, b } = fitPlatt(f, Array.from(data.y, (label) => positive(numClasses, k, label)), rowWeight)
      plattA[k] = a
      plattB[k] = b
    }
    return { scaler, numClasses, weights, plattA, plattB }
  })

const predict = (state: State, _params: Params, x: Matrix.Matrix): Matrix.Matrix => {
  const { numClasses } = state
  const count = problems(numClasses)
  const f = decide(state.weights, count, Scaler.transform(state.scaler, x), x.rows, x.cols)
  const out = new Float32Array(x.rows * numClasses)
  for (let i = 0; i < x.rows; i++) {
    if (count === 1) {
      const p = sigmoid(state.plattA[0]! * f[i]! + state.plattB[0]!)
      out[i * 2] = 1 - p
      out[i * 2 + 1] = p
      continue
    }
    let sum = 0
    const p = new Float64Array(count)
    for (let k = 0; k < count; k++) {
      p[k] = sigmoid(state.plattA[k]! * f[i * count + k]! + state.plattB[k]!)
      sum += p[k]!
    }
    for (let k = 0; k < count; k++) out[i * numClasses + k] = sum > 0 ? p[k]! / sum : 1 / numClasses
  }
  return { rows: x.rows, cols: numClasses, data: out }
}

/**
 * The linear-SVM head plugin, for `Registry.layer({ heads })`, the search and `Pipeline.fit`. `fit` checks the params
 * and the training set and fails with `TrainerError` (`InvalidParams`, `InvalidData`, or `TrainingFailed`); `load`
 * fails with `InvalidState` on a serialised head of another kind or with an invalid state; `toOnnx` writes the head as
 * an ONNX graph and fails with `ShapeMismatch` when the backbone's width differs.
 *
 * @since 0.1.0
 * @category head
 */
export const plugin: HeadKit.Plugin<Params, State> = HeadKit.make({
  kind,
  paramsSchema: Params,
  stateSchema: State,
  train,
  predict,
  shape: (state) => {
    const dim = state.scaler.mean.length
    const count = problems(state.numClasses)
    if (state.scaler.scale.length !== dim) return "scaler mean and scale differ in length"
    if (state.weights.length !== count * (dim + 1)) return `weights hold ${state.weights.length} values, expected ${count * (dim + 1)}`
    if (state.plattA.length !== count || state.plattB.length !== count) return `expected ${count} Platt sigmoids`
    return { numClasses: state.numClasses, dim }
  },
  // One-vs-rest decision values through the Platt sigmoids (`sigmoid(A f + B)`, A and B folded into the weights).
  toOnnx: (state, _params, io) => {
    const k = state.numClasses
    const stride = io.dim + 1
    const layer = OnnxHead.columns(
      k,
      io.dim,
      problems(k),
      (c, j) => state.plattA[c]! * state.weights[c * stride + j]!,
      (c) => state.plattA[c]! * state.weights[c * stride + io.dim]! + state.plattB[c]!
    )
    return OnnxHead.denseGraph({
      l2: true,
      scaler: state.scaler,
      renormalize: false,
      layers: [layer],
      activation: k === 2 ? "softmax" : "sigmoid-normalized"
    }, io)
  }
})

/**
 * Fits a linear-SVM head on a training set: `fit(data, params?, seed?)`, the params not given taking their defaults
 * and the seed 0. Fails with `TrainerError` (`InvalidParams`, `InvalidData` or `TrainingFailed`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fit = HeadKit.fitWithDefaults(plugin, Params)

/**
 * Loads a linear-SVM head from its `SerializedHead` (the output of `FittedHead.serialize`). Fails with `TrainerError`
 * `InvalidState`, naming `kind`, `params` or `state`, when the head is of another kind or does not decode.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = plugin.load
