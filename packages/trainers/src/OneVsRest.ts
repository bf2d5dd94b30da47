/**
 * One-vs-rest heads for image tags (multi-label): one binary logistic regression per tag on the backbone's embeddings
 * (`LogisticRegression`, the same params for every tag), each tag's probability calibrated and thresholded on its own.
 *
 * - **Training rows** of a tag are weighted as classification weighs labels (scikit-learn's `class_weight="balanced"`:
 *   its positives and its negatives weigh the same in all), so a rare tag is not learned as "never".
 * - A tag whose training rows are all positive or all negative (a small fold can hold every negative of a common tag)
 *   gets a **constant** head: the share of its rows that have it.
 * - **Calibration** is fitted per tag on the out-of-fold probabilities, as classification calibrates
 *   (`Calibration.fit`, temperature scaling on the tag's `[no, yes]` probabilities), and is part of the fitted head:
 *   `predictProba` answers calibrated probabilities.
 * - **Thresholds** are chosen per tag on the calibrated out-of-fold probabilities (`chooseThresholds`): the one that
 *   maximises the tag's F1, or 0.5 for a tag with too few positives to choose on. They travel with the head, so a
 *   saved bundle answers the same yes / no.
 *
 * `predictProba` answers one independent probability per tag: its rows do not sum to 1, unlike single-label heads.
 * The registered plugin only loads bundles; heads are fitted with `fit` (tags, not class indices).
 *
 * @since 0.2.0
 */
import { Matrix } from "@loupe/core"
import type { Head } from "@loupe/core"
import { Effect, Schema } from "effect"
import * as Calibration from "./Calibration.js"
import type * as CrossValidation from "./CrossValidation.js"
import * as HeadKit from "./internal/HeadKit.js"
import * as Random from "./internal/Random.js"
import * as LogisticRegression from "./LogisticRegression.js"
import { TrainerError } from "./TrainerError.js"

/**
 * The head kind, `"one-vs-rest"`: the `kind` of its `SerializedHead`s and of the plugin.
 *
 * @since 0.2.0
 * @category head
 */
export const kind = "one-vs-rest"

/**
 * The params every tag's logistic regression is fitted with (`LogisticRegression.Params`: `l2`, `maxIter`, `tol`).
 *
 * @since 0.2.0
 * @category schemas
 */
export const Params = LogisticRegression.Params
/**
 * The decoded params, every default filled in.
 *
 * @since 0.2.0
 * @category schemas
 */
export type Params = typeof Params.Type

/**
 * One tag's head before calibration: a fitted logistic regression, or a constant probability for a tag whose training
 * rows were all one way.
 *
 * @since 0.2.0
 * @category schemas
 */
export const TagHead = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("logistic-regression"), state: LogisticRegression.State }),
  Schema.Struct({ kind: Schema.Literal("constant"), probability: Schema.Number.pipe(Schema.between(0, 1)) })
)
/**
 * A decoded tag head.
 *
 * @since 0.2.0
 * @category schemas
 */
export type TagHead = typeof TagHead.Type

/**
 * Where a tag's threshold comes from: `"out-of-fold F1"` (chosen to maximise its F1 on the out-of-fold
 * probabilities) or `"default"` (0.5, the tag having too few positives to choose on).
 *
 * @since 0.2.0
 * @category schemas
 */
export const ThresholdSource = Schema.Literal("out-of-fold F1", "default")

/**
 * The fitted state: the feature width, and per tag (in the pipeline's label order) its head, its calibrator and its
 * decision threshold on the calibrated probability.
 *
 * @since 0.2.0
 * @category schemas
 */
export const State = Schema.Struct({
  dim: Schema.Int.pipe(Schema.positive()),
  tags: Schema.Array(TagHead),
  calibrators: Schema.Array(Calibration.Calibrator),
  thresholds: Schema.Array(Schema.Number.pipe(Schema.between(0, 1))),
  thresholdSources: Schema.Array(ThresholdSource)
})
/**
 * The decoded fitted state.
 *
 * @since 0.2.0
 * @category schemas
 */
export type State = typeof State.Type

/**
 * A fitted one-vs-rest head: the core `FittedHead` contract (one column per tag) plus its typed params and state.
 *
 * @since 0.2.0
 * @category models
 */
export type Fitted = HeadKit.Fitted<Params, State>

const invalid = (field: string, message: string) => new TrainerError({ reason: "InvalidData", field, message })

/** Whether row `i` of `truth` has tag `t`. */
const has = (truth: Matrix.Matrix, i: number, t: number) => truth.data[i * truth.cols + t] === 1

/** Each tag head's probability of its tag for every row of `x`: `rows x tags`, uncalibrated. */
const rawProba = (heads: ReadonlyArray<TagHead>, x: Matrix.Matrix): Matrix.Matrix => {
  const out = new Float32Array(x.rows * heads.length)
  heads.forEach((head, t) => {
    if (head.kind === "constant") {
      for (let i = 0; i < x.rows; i++) out[i * heads.length + t] = head.probability
      return
    }
    const p = LogisticRegression.probabilities(head.state, x)
    for (let i = 0; i < x.rows; i++) out[i * heads.length + t] = p.data[i * 2 + 1]!
  })
  return Matrix.make(x.rows, heads.length, out)
}

/** Column `t` of `proba` as a two-class `[no, yes]` matrix, the shape `Calibration` works on. */
const twoClass = (proba: Matrix.Matrix, t: number): Matrix.Matrix => {
  const out = new Float32Array(proba.rows * 2)
  for (let i = 0; i < proba.rows; i++) {
    const p = proba.data[i * proba.cols + t]!
    out[i * 2] = 1 - p
    out[i * 2 + 1] = p
  }
  return Matrix.make(proba.rows, 2, out)
}

/** `proba` with tag `t`'s column replaced by `calibrator` applied to it, in place. */
const calibrateColumn = (proba: Matrix.Matrix, t: number, calibrator: Calibration.Calibrator): void => {
  const calibrated = Calibration.apply(calibrator, twoClass(proba, t))
  for (let i = 0; i < proba.rows; i++) proba.data[i * proba.cols + t] = calibrated.data[i * 2 + 1]!
}

const predict = (state: State, _params: Params, x: Matrix.Matrix): Matrix.Matrix => {
  const proba = rawProba(state.tags, x)
  state.calibrators.forEach((calibrator, t) => calibrateColumn(proba, t, calibrator))
  return proba
}

/**
 * The one-vs-rest head plugin, for `Registry.layer({ heads })` so that bundles holding one load. Its `fit` fails with
 * `TrainerError` `InvalidData`: a training set of class indices has no tags (fit with `fit`); `load` fails with
 * `InvalidState` on a head of another kind or a state whose parts disagree.
 *
 * @since 0.2.0
 * @category head
 */
export const plugin: HeadKit.Plugin<Params, State> = HeadKit.make({
  kind,
  paramsSchema: Params,
  stateSchema: State,
  train: () => invalid("data.y", `${kind}: fitted on tags with OneVsRest.fit, not on one class per row`),
  predict,
  shape: (state) => {
    const n = state.tags.length
    if (n === 0) return "no tags"
    if (state.calibrators.length !== n) return `${state.calibrators.length} calibrators for ${n} tags`
    if (state.thresholds.length !== n) return `${state.thresholds.length} thresholds for ${n} tags`
    if (state.thresholdSources.length !== n) return `${state.thresholdSources.length} threshold sources for ${n} tags`
    const wrong = state.tags.findIndex((head) => head.kind === "logistic-regression" && (head.state.numClasses !== 2 || head.state.scaler.mean.length !== state.dim))
    if (wrong >= 0) return `tag ${wrong}'s head is not a two-class head on ${state.dim}-d features`
    return { numClasses: n, dim: state.dim }
  }
})

const checkTruth = (x: Matrix.Matrix, truth: Matrix.Matrix): Effect.Effect<void, TrainerError> => {
  if (truth.rows !== x.rows) return invalid("truth", `${truth.rows} tag rows for ${x.rows} embeddings`)
  if (truth.cols < 1) return invalid("truth", "no tags")
  if (truth.data.some((v) => v !== 0 && v !== 1)) return invalid("truth", "tags must be 0 or 1")
  return Effect.void
}

/**
 * Fits one uncalibrated head per tag (column of `truth`, 1 where a row has the tag) on embeddings `x`, each a
 * balanced-weight logistic regression with `params` (or a constant for a tag whose rows are all one way). Fails with
 * `TrainerError` `InvalidData` naming `truth` when its shape or values are wrong, and as `LogisticRegression` does.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fitTagHeads = (
  x: Matrix.Matrix,
  truth: Matrix.Matrix,
  params: Partial<Params> = {},
  seed = 0
): Effect.Effect<ReadonlyArray<TagHead>, TrainerError> =>
  Effect.gen(function*() {
    yield* checkTruth(x, truth)
    const n = x.rows
    return yield* Effect.forEach(Array.from({ length: truth.cols }, (_, t) => t), (t) => {
      const y = Int32Array.from({ length: n }, (_, i) => (has(truth, i, t) ? 1 : 0))
      const positives = y.reduce((a, b) => a + b, 0)
      if (positives === 0 || positives === n) return Effect.succeed<TagHead>({ kind: "constant", probability: positives / n })
      const weights = Float32Array.from(y, (v) => n / (2 * (v === 1 ? positives : n - positives)))
      return LogisticRegression.fit({ x, y, numClasses: 2, weights }, params, Random.derive(seed, t)).pipe(
        Effect.map((fitted): TagHead => ({ kind: "logistic-regression", state: fitted.state }))
      )
    })
  })

/**
 * Out-of-fold probabilities of every tag (uncalibrated, `rows x tags`, the mean over the plan's repeats) and each
 * repeat's own: per fold, `fitTagHeads` on its training rows, predicting its held-out rows. The plan comes from
 * `MultiLabelFolds.plan`. Fails as `fitTagHeads` does, naming the fold.
 *
 * @since 0.2.0
 * @category cross-validation
 */
export const crossValidate = (
  x: Matrix.Matrix,
  truth: Matrix.Matrix,
  params: Partial<Params>,
  plan: CrossValidation.Plan,
  seed = 0
): Effect.Effect<{ readonly proba: Matrix.Matrix; readonly repeatProba: ReadonlyArray<Matrix.Matrix> }, TrainerError> =>
  Effect.gen(function*() {
    yield* checkTruth(x, truth)
    const k = truth.cols
    const perRepeat = Array.from({ length: plan.repeats }, () => Matrix.make(x.rows, k))
    for (const fold of plan.folds) {
      const heads = yield* fitTagHeads(Matrix.takeRows(x, fold.train), Matrix.takeRows(truth, fold.train), params, Random.derive(seed, fold.repeat, fold.index)).pipe(
        Effect.mapError((e) => new TrainerError({ reason: "TrainingFailed", field: `fold ${fold.repeat}.${fold.index}`, message: `${kind}: ${e.message}`, cause: e }))
      )
      const held = rawProba(heads, Matrix.takeRows(x, fold.test))
      const own = perRepeat[fold.repeat]!
      fold.test.forEach((row, j) => own.data.set(held.data.subarray(j * k, (j + 1) * k), row * k))
    }
    const mean = Matrix.make(x.rows, k)
    for (const m of perRepeat) for (let i = 0; i < mean.data.length; i++) mean.data[i] += m.data[i]! / perRepeat.length
    return { proba: mean, repeatProba: perRepeat }
  })

/**
 * A calibrator per tag fitted on its out-of-fold probabilities (`Calibration.fit`, as classification calibrates) and
 * the calibrated probabilities. Fails with `TrainerError` `InvalidData` when the shapes differ.
 *
 * @since 0.2.0
 * @category calibration
 */
export const calibrate = (
  truth: Matrix.Matrix,
  proba: Matrix.Matrix
): Effect.Effect<{ readonly calibrators: ReadonlyArray<Calibration.Calibrator>; readonly calibrated: Matrix.Matrix }, TrainerError> =>
  Effect.gen(function*() {
    if (proba.rows !== truth.rows || proba.cols !== truth.cols) return yield* invalid("proba", `proba is ${proba.rows} x ${proba.cols}, truth ${truth.rows} x ${truth.cols}`)
    const calibrated = Matrix.make(proba.rows, proba.cols, Float32Array.from(proba.data))
    const calibrators = yield* Effect.forEach(Array.from({ length: truth.cols }, (_, t) => t), (t) =>
      Calibration.fit(twoClass(proba, t), Int32Array.from({ length: truth.rows }, (_, i) => (has(truth, i, t) ? 1 : 0))).pipe(
        Effect.map((r) => r.calibrator)
      ))
    calibrators.forEach((calibrator, t) => calibrateColumn(calibrated, t, calibrator))
    return { calibrators, calibrated }
  })

/**
 * The threshold chosen for one tag, where it comes from, and the tag's out-of-fold F1 at it.
 *
 * @since 0.2.0
 * @category models
 */
export interface Threshold {
  readonly threshold: number
  readonly source: typeof ThresholdSource.Type
  /** The tag's out-of-fold positives. */
  readonly positives: number
  /** The tag's F1 on the out-of-fold probabilities at `threshold` (optimistic when chosen on them). */
  readonly f1: number
}

/** F1 of deciding `p >= threshold` on one tag's scores. */
const f1At = (positives: ReadonlyArray<boolean>, scores: ReadonlyArray<number>, threshold: number): number => {
  let tp = 0
  let wrong = 0
  scores.forEach((p, i) => {
    const said = p >= threshold
    if (said && positives[i]) tp++
    else if (said || positives[i]) wrong++
  })
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + wrong)
}

/**
 * Per-tag decision thresholds on (calibrated) out-of-fold probabilities: for a tag with at least `minPositives`
 * positives (default 3), the threshold maximising its F1, taken midway between consecutive distinct probabilities (so
 * it does not sit on a training image's own score), ties going to the one nearest 0.5; for a tag with fewer, 0.5
 * (`source: "default"`: too few positives to choose on).
 *
 * @since 0.2.0
 * @category calibration
 */
export const chooseThresholds = (
  truth: Matrix.Matrix,
  proba: Matrix.Matrix,
  options: { readonly minPositives?: number } = {}
): ReadonlyArray<Threshold> =>
  Array.from({ length: truth.cols }, (_, t): Threshold => {
    const positives = Array.from({ length: truth.rows }, (_, i) => has(truth, i, t))
    const scores = Array.from({ length: truth.rows }, (_, i) => proba.data[i * proba.cols + t]!)
    const count = positives.filter(Boolean).length
    if (count < (options.minPositives ?? 3)) return { threshold: 0.5, source: "default", positives: count, f1: f1At(positives, scores, 0.5) }
    const distinct = [...new Set(scores)].sort((a, b) => b - a)
    const candidates = distinct.map((s, j) => (s + (distinct[j + 1] ?? 0)) / 2)
    let best = { threshold: 0.5, f1: -1 }
    for (const threshold of candidates) {
      const f1 = f1At(positives, scores, threshold)
      if (f1 > best.f1 + 1e-12 || (Math.abs(f1 - best.f1) <= 1e-12 && Math.abs(threshold - 0.5) < Math.abs(best.threshold - 0.5))) best = { threshold, f1 }
    }
    return { threshold: best.threshold, source: "out-of-fold F1", positives: count, f1: best.f1 }
  })

/**
 * A fitted one-vs-rest head from its tag heads (`fitTagHeads` on every row), their calibrators (`calibrate`) and
 * thresholds (`chooseThresholds`), all in the same tag order. Fails with `TrainerError` `InvalidState` when their
 * counts differ.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  parts: {
    readonly dim: number
    readonly tags: ReadonlyArray<TagHead>
    readonly calibrators: ReadonlyArray<Calibration.Calibrator>
    readonly thresholds: ReadonlyArray<Threshold>
  },
  params: Partial<Params> = {}
): Effect.Effect<Fitted, TrainerError> =>
  plugin.load({
    kind,
    params: Schema.encodeSync(Params)(Params.make(params)),
    state: Schema.encodeSync(State)({
      dim: parts.dim,
      tags: parts.tags,
      calibrators: parts.calibrators,
      thresholds: parts.thresholds.map((t) => t.threshold),
      thresholdSources: parts.thresholds.map((t) => t.source)
    })
  })

/**
 * The per-tag thresholds of a fitted head when it is a one-vs-rest head (a bundle's head, once loaded); `undefined`
 * for any other head.
 *
 * @since 0.2.0
 * @category utils
 */
export const thresholdsOf = (head: Head.FittedHead): ReadonlyArray<number> | undefined =>
  head.kind === kind && "state" in head ? (head as Fitted).state.thresholds : undefined
