/**
 * k nearest neighbours by cosine similarity.
 *
 * Rows are L2-normalised, standardised with the training statistics (`standardize`, default true), then
 * L2-normalised again; the fitted state keeps every training row (as Float32) and its label. The `k` most similar
 * training rows vote with weights `exp(similarity / temperature)` (Wu et al. 2018), and the vote shares are smoothed,
 * `p = (1 - smoothing) * share + smoothing / numClasses`, so no class gets probability 0. Ties between equally similar
 * rows go to the lower training index.
 *
 * @since 0.1.0
 */
import type { Head, Matrix } from "@loupe/core"
import { Effect, Schema } from "effect"
import * as Codec from "./internal/Codec.js"
import * as HeadKit from "./internal/HeadKit.js"
import { crossDots } from "./internal/Linalg.js"
import * as Scaler from "./internal/Scaler.js"
import type { TrainerError } from "./TrainerError.js"

export const kind = "knn"

/**
 * - `k`: neighbours that vote (default 10; fewer when the training set is smaller).
 * - `temperature`: vote weight `exp(similarity / temperature)` (default 0.1; large values approach equal votes).
 * - `smoothing`: share of probability spread evenly over the classes (default 0.01).
 * - `standardize`: standardise before the cosine (default true).
 */
export const Params = Schema.Struct({
  k: HeadKit.withDefault(Schema.Int.pipe(Schema.positive()), 10),
  temperature: HeadKit.withDefault(Schema.Number.pipe(Schema.positive(), Schema.finite()), 0.1),
  smoothing: HeadKit.withDefault(Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.lessThan(1)), 0.01),
  standardize: HeadKit.withDefault(Schema.Boolean, true)
})
export type Params = typeof Params.Type

export const State = Schema.Struct({
  /** Present when `standardize` is true. */
  scaler: Schema.optionalWith(Scaler.Scaler, { exact: true }),
  numClasses: Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)),
  dim: Schema.Int.pipe(Schema.positive()),
  /** `rows x dim` unit rows. */
  rows: Codec.Float32,
  labels: Schema.Array(Schema.Int)
})
export type State = typeof State.Type

export type Fitted = HeadKit.Fitted<Params, State>

const train = (data: Head.TrainingSet, params: Params): Effect.Effect<State, TrainerError> =>
  HeadKit.attempt(kind, () => {
    const { scaler, z } = Scaler.fitUnitRows(data, params.standardize)
    return {
      ...(scaler ? { scaler } : {}),
      numClasses: data.numClasses,
      dim: data.x.cols,
      rows: Float32Array.from(z),
      labels: Array.from(data.y)
    }
  })

/** Query rows whose similarities are computed at once; bounds that matrix at `queryChunk x n`. */
const queryChunk = 256

const predict = (state: State, params: Params, x: Matrix.Matrix): Matrix.Matrix => {
  const { numClasses, dim, labels } = state
  const n = labels.length
  const k = Math.min(params.k, n)
  const z = Scaler.unitRows(state.scaler, x)
  const train = Float64Array.from(state.rows)
  const sims = new Float64Array(Math.min(queryChunk, x.rows) * n)
  const topIndex = new Int32Array(k)
  const topSim = new Float64Array(k)
  const votes = new Float64Array(numClasses)
  const out = new Float32Array(x.rows * numClasses)
  for (let i = 0; i < x.rows; i++) {
    const q = i % queryChunk
    if (q === 0) {
      const rows = Math.min(queryChunk, x.rows - i)
      crossDots(z.subarray(i * dim, (i + rows) * dim), rows, train, n, dim, sims)
    }
    // Keep the k best in descending order (insertion; k is small).
    let filled = 0
    for (let j = 0; j < n; j++) {
      const s = sims[q * n + j]!
      if (filled === k && s <= topSim[k - 1]!) continue
      let pos = filled === k ? k - 1 : filled++
      while (pos > 0 && topSim[pos - 1]! < s) {
        topSim[pos] = topSim[pos - 1]!
        topIndex[pos] = topIndex[pos - 1]!
        pos--
      }
      topSim[pos] = s
      topIndex[pos] = j
    }
    votes.fill(0)
    let total = 0
    for (let t = 0; t < k; t++) {
      const v = Math.exp((topSim[t]! - topSim[0]!) / params.temperature)
      votes[labels[topIndex[t]!]!] += v
      total += v
    }
    for (let c = 0; c < numClasses; c++) {
      out[i * numClasses + c] = (1 - params.smoothing) * (votes[c]! / total) + params.smoothing / numClasses
    }
  }
  return { rows: x.rows, cols: numClasses, data: out }
}

export const plugin: HeadKit.Plugin<Params, State> = HeadKit.make({
  kind,
  paramsSchema: Params,
  stateSchema: State,
  train: (data, params) => train(data, params),
  predict,
  shape: (state, params) => {
    const { dim, numClasses, labels } = state
    if (state.rows.length !== labels.length * dim) return `rows hold ${state.rows.length} values for ${labels.length} labels`
    if (labels.length === 0) return "no training rows"
    if (labels.some((l) => l < 0 || l >= numClasses)) return `a label is outside 0..${numClasses - 1}`
    if (params.standardize !== (state.scaler !== undefined)) return "scaler presence does not match params.standardize"
    if (state.scaler && (state.scaler.mean.length !== dim || state.scaler.scale.length !== dim)) return "scaler width differs"
    return { numClasses, dim }
  }
})

/** Fits with defaults for the params not given. */
export const fit = HeadKit.fitWithDefaults(plugin, Params)

export const load = plugin.load
