/**
 * Nearest prototype by cosine similarity: each class is the normalised mean of its unit rows, and probabilities are
 * `softmax(scale * cosine)` over the classes.
 *
 * Rows are L2-normalised, standardised with the training statistics (`standardize`, default true), then
 * L2-normalised again. Row weights weight the means. Cheap to fit and strong with very few samples per class
 * (Tip-Adapter's and SimpleShot's observation).
 *
 * @since 0.1.0
 */
import type { Head, Matrix } from "@loupe/core"
import { Effect, Schema } from "effect"
import * as Check from "./internal/Check.js"
import * as Codec from "./internal/Codec.js"
import * as HeadKit from "./internal/HeadKit.js"
import * as OnnxHead from "./internal/OnnxHead.js"
import { axpy, dotRows, softmaxInPlace } from "./internal/Linalg.js"
import * as Scaler from "./internal/Scaler.js"
import type { TrainerError } from "./TrainerError.js"

export const kind = "nearest-prototype"

/**
 * - `scale`: inverse temperature of the softmax over cosines (default 10).
 * - `standardize`: standardise before the cosine (default true).
 */
export const Params = Schema.Struct({
  scale: HeadKit.withDefault(Schema.Number.pipe(Schema.positive(), Schema.finite()), 10),
  standardize: HeadKit.withDefault(Schema.Boolean, true)
})
export type Params = typeof Params.Type

export const State = Schema.Struct({
  scaler: Schema.optionalWith(Scaler.Scaler, { exact: true }),
  numClasses: Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)),
  /** `numClasses x dim` unit prototypes. */
  prototypes: Codec.Float64
})
export type State = typeof State.Type

export type Fitted = HeadKit.Fitted<Params, State>

const train = (data: Head.TrainingSet, params: Params): Effect.Effect<State, TrainerError> =>
  HeadKit.attempt(kind, () => {
    const { numClasses } = data
    const dim = data.x.cols
    const { scaler, z } = Scaler.fitUnitRows(data, params.standardize)
    const w = Check.rowWeights(data)
    const prototypes = new Float64Array(numClasses * dim)
    for (let i = 0; i < data.y.length; i++) axpy(w[i]!, z, prototypes, dim, i * dim, data.y[i]! * dim)
    Scaler.normalizeInto(prototypes, numClasses, dim, prototypes)
    return { ...(scaler ? { scaler } : {}), numClasses, prototypes }
  })

const predict = (state: State, params: Params, x: Matrix.Matrix): Matrix.Matrix => {
  const { numClasses } = state
  const z = Scaler.unitRows(state.scaler, x)
  const logits = new Float64Array(x.rows * numClasses)
  for (let i = 0; i < x.rows; i++) {
    dotRows(state.prototypes, 0, numClasses, x.cols, z, i * x.cols, logits, i * numClasses)
    for (let c = 0; c < numClasses; c++) logits[i * numClasses + c] *= params.scale
    softmaxInPlace(logits, i * numClasses, numClasses)
  }
  return { rows: x.rows, cols: numClasses, data: Float32Array.from(logits) }
}

export const plugin: HeadKit.Plugin<Params, State> = HeadKit.make({
  kind,
  paramsSchema: Params,
  stateSchema: State,
  train: (data, params) => train(data, params),
  predict,
  shape: (state, params) => {
    const dim = state.prototypes.length / state.numClasses
    if (!Number.isInteger(dim) || dim < 1) return `prototypes hold ${state.prototypes.length} values for ${state.numClasses} classes`
    if (params.standardize !== (state.scaler !== undefined)) return "scaler presence does not match params.standardize"
    if (state.scaler && (state.scaler.mean.length !== dim || state.scaler.scale.length !== dim)) return "scaler width differs"
    return { numClasses: state.numClasses, dim }
  },
  // Cosine similarity to unit prototypes, times the temperature `scale`, through a softmax.
  toOnnx: (state, params, io) => {
    const k = state.numClasses
    const layer = OnnxHead.columns(k, io.dim, k, (c, j) => params.scale * state.prototypes[c * io.dim + j]!, () => 0)
    return OnnxHead.denseGraph({ l2: true, scaler: state.scaler, renormalize: true, layers: [layer], activation: "softmax" }, io)
  }
})

/** Fits with defaults for the params not given. */
export const fit = HeadKit.fitWithDefaults(plugin, Params)

export const load = plugin.load
