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

/**
 * The head kind, `"nearest-prototype"`: the `kind` of its `SerializedHead`s, of `head.kind` in a search space, and of
 * the plugin.
 *
 * @since 0.1.0
 * @category head
 */
export const kind = "nearest-prototype"

/**
 * - `scale`: inverse temperature of the softmax over cosines (default 10).
 * - `standardize`: standardise before the cosine (default true).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Params = Schema.Struct({
  scale: HeadKit.withDefault(Schema.Number.pipe(Schema.positive(), Schema.finite()), 10),
  standardize: HeadKit.withDefault(Schema.Boolean, true)
})
/**
 * The decoded nearest-prototype params, every default filled in.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Params = typeof Params.Type

/**
 * The fitted nearest-prototype state as serialised in a `SerializedHead`: one unit prototype per class, the number of
 * classes and, when `standardize`, the scaler. Float arrays are encoded as base64 by the codec, so a state round-trips
 * through JSON exactly.
 *
 * @since 0.1.0
 * @category schemas
 */
export const State = Schema.Struct({
  scaler: Schema.optionalWith(Scaler.Scaler, { exact: true }),
  numClasses: Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)),
  /** `numClasses x dim` unit prototypes. */
  prototypes: Codec.Float64
})
/**
 * The decoded fitted nearest-prototype state.
 *
 * @since 0.1.0
 * @category schemas
 */
export type State = typeof State.Type

/**
 * A fitted nearest-prototype head: the core `FittedHead` contract plus its typed params and state.
 *
 * @since 0.1.0
 * @category models
 */
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

/**
 * The nearest-prototype head plugin, for `Registry.layer({ heads })`, the search and `Pipeline.fit`. `fit` checks the
 * params and the training set and fails with `TrainerError` (`InvalidParams`, `InvalidData`, or `TrainingFailed`);
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

/**
 * Fits a nearest-prototype head on a training set: `fit(data, params?, seed?)`, the params not given taking their
 * defaults and the seed 0. Fails with `TrainerError` (`InvalidParams`, `InvalidData` or `TrainingFailed`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fit = HeadKit.fitWithDefaults(plugin, Params)

/**
 * Loads a nearest-prototype head from its `SerializedHead` (the output of `FittedHead.serialize`). Fails with
 * `TrainerError` `InvalidState`, naming `kind`, `params` or `state`, when the head is of another kind or does not
 * decode.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = plugin.load
