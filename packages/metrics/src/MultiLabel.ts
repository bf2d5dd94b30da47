/**
 * Multi-label (image tags) metrics from true tag sets and predicted per-tag probabilities: per-tag precision, recall,
 * F1 and support; micro and macro averages; average precision per tag and its mean (mAP).
 *
 * Conventions (they match scikit-learn's multi-label defaults unless noted):
 * - `truth` is an `n x tags` matrix of 0 / 1: `truth[i][t]` is 1 when sample `i` has tag `t`. `proba` is `n x tags`,
 *   each entry the independent probability of that tag (rows need not sum to 1). A tag is predicted when its
 *   probability reaches its threshold (`p >= threshold`).
 * - A precision, recall or F1 whose denominator is zero is 0 (`zero_division=0`); F1 is `2 tp / (2 tp + fp + fn)`.
 * - Macro averages are the unweighted mean over every tag (scikit-learn's `average="macro"` with all labels
 *   given); micro averages score the counts pooled over tags.
 * - Average precision is scikit-learn's `average_precision_score`: `sum_k (R_k - R_{k-1}) P_k` over the distinct
 *   probabilities taken as thresholds, highest first (tied probabilities enter together). It is `null` for a tag with
 *   no positive sample; mAP averages the defined ones (`null` when none is).
 *
 * The plain functions are synchronous and throw a `MetricsError` on malformed input; `evaluate` wraps everything
 * into one Effect.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import { Matrix } from "@loupe/core"
import { MetricsError } from "./MetricsError.js"

/**
 * Precision, recall and F1 of one tag, with the counts they come from, and its average precision.
 *
 * @since 0.2.0
 * @category models
 */
export interface TagMetrics {
  readonly tag: string
  /** `correct / predicted`. */
  readonly precision: number
  /** `correct / support`. */
  readonly recall: number
  readonly f1: number
  /** Samples that have the tag. */
  readonly support: number
  /** Samples predicted to have it. */
  readonly predicted: number
  /** Samples that have it and are predicted to (true positives). */
  readonly correct: number
  /** Average precision of the tag's probabilities; `null` when no sample has the tag. */
  readonly averagePrecision: number | null
}

/**
 * Precision, recall and F1, averaged over tags one way or another.
 *
 * @since 0.2.0
 * @category models
 */
export interface Average {
  readonly precision: number
  readonly recall: number
  readonly f1: number
}

/**
 * What `evaluate` computes: the tags, the sample count, each tag's scores, the micro and macro averages, mAP, and the
 * fraction of samples whose predicted tag set is exactly their true one.
 *
 * @since 0.2.0
 * @category models
 */
export interface Evaluation {
  readonly tags: ReadonlyArray<string>
  readonly total: number
  readonly perTag: ReadonlyArray<TagMetrics>
  /** Scores of the counts pooled over tags: frequent tags weigh more. */
  readonly micro: Average
  /** Unweighted mean over tags: every tag counts the same, however rare. */
  readonly macro: Average
  /** Mean average precision over the tags that some sample has; `null` when none is. */
  readonly meanAveragePrecision: number | null
  /** Fraction of samples whose predicted tag set equals their true tag set. */
  readonly exactMatch: number
}

const fail = (reason: MetricsError["reason"], field: string, message: string): never => {
  throw new MetricsError({ reason, field, message })
}

const ratio = (num: number, den: number): number => (den === 0 ? 0 : num / den)

const harmonic = (p: number, r: number): number => (p + r === 0 ? 0 : (2 * p * r) / (p + r))

const checkTruth = (truth: Matrix.Matrix): void => {
  if (truth.rows === 0) fail("EmptyInput", "truth", "no samples to evaluate")
  for (let i = 0; i < truth.data.length; i++) {
    const v = truth.data[i]
    if (v !== 0 && v !== 1) {
      fail("InvalidLabel", "truth", `truth row ${Math.floor(i / truth.cols)}, tag ${i % truth.cols} is ${v}; expected 0 or 1`)
    }
  }
}

const checkSameShape = (truth: Matrix.Matrix, other: Matrix.Matrix, field: string): void => {
  if (other.rows !== truth.rows || other.cols !== truth.cols) {
    fail("ShapeMismatch", field, `${field} is ${other.rows} x ${other.cols} but truth is ${truth.rows} x ${truth.cols}`)
  }
}

const checkProba = (truth: Matrix.Matrix, proba: Matrix.Matrix): void => {
  checkSameShape(truth, proba, "proba")
  for (let i = 0; i < proba.data.length; i++) {
    const p = proba.data[i]!
    if (!(p >= 0 && p <= 1)) fail("InvalidProbability", "proba", `proba row ${Math.floor(i / proba.cols)}, tag ${i % proba.cols} is ${p}; expected a probability in [0, 1]`)
  }
}

/**
 * The `n x tags` 0 / 1 decisions: 1 where `proba` reaches its tag's threshold (`p >= thresholds[t]`). Throws a
 * `MetricsError` `ShapeMismatch` (field `thresholds`) when there is not one threshold per column.
 *
 * @since 0.2.0
 * @category metrics
 */
export const decide = (proba: Matrix.Matrix, thresholds: ArrayLike<number>): Matrix.Matrix => {
  if (thresholds.length !== proba.cols) fail("ShapeMismatch", "thresholds", `${thresholds.length} thresholds for ${proba.cols} tags`)
  const out = new Float32Array(proba.data.length)
  for (let i = 0; i < proba.data.length; i++) out[i] = proba.data[i]! >= thresholds[i % proba.cols]! ? 1 : 0
  return Matrix.make(proba.rows, proba.cols, out)
}

/**
 * Per-tag precision, recall, F1 and counts of 0 / 1 `predicted` against `truth` (both `n x tags.length`), one entry
 * per tag; `averagePrecision` is left `null` (`evaluate` fills it). Throws a `MetricsError` on shapes that differ
 * (`ShapeMismatch`), no rows (`EmptyInput`) or an entry other than 0 or 1 (`InvalidLabel`).
 *
 * @since 0.2.0
 * @category metrics
 */
export const perTag = (truth: Matrix.Matrix, predicted: Matrix.Matrix, tags: ReadonlyArray<string>): Array<TagMetrics> => {
  checkTruth(truth)
  checkSameShape(truth, predicted, "predicted")
  checkTruth(predicted)
  if (tags.length !== truth.cols) fail("ShapeMismatch", "tags", `${tags.length} tag names for ${truth.cols} columns`)
  return tags.map((tag, t) => {
    let support = 0
    let count = 0
    let correct = 0
    for (let i = 0; i < truth.rows; i++) {
      const yes = truth.data[i * truth.cols + t] === 1
      const said = predicted.data[i * truth.cols + t] === 1
      if (yes) support++
      if (said) count++
      if (yes && said) correct++
    }
    return {
      tag,
      precision: ratio(correct, count),
      recall: ratio(correct, support),
      f1: ratio(2 * correct, support + count),
      support,
      predicted: count,
      correct,
      averagePrecision: null
    }
  })
}

/**
 * Micro (pooled counts) and macro (mean over every tag) precision, recall and F1 of `perTag`'s scores. All zero
 * when there is no tag.
 *
 * @since 0.2.0
 * @category metrics
 */
export const averages = (tags: ReadonlyArray<TagMetrics>): { readonly micro: Average; readonly macro: Average } => {
  const mean = (pick: (t: TagMetrics) => number) => (tags.length === 0 ? 0 : tags.reduce((a, t) => a + pick(t), 0) / tags.length)
  const tp = tags.reduce((a, t) => a + t.correct, 0)
  const precision = ratio(tp, tags.reduce((a, t) => a + t.predicted, 0))
  const recall = ratio(tp, tags.reduce((a, t) => a + t.support, 0))
  return {
    micro: { precision, recall, f1: harmonic(precision, recall) },
    macro: { precision: mean((t) => t.precision), recall: mean((t) => t.recall), f1: mean((t) => t.f1) }
  }
}

/**
 * Average precision of one tag: `positives[i]` says whether sample `i` has it, `scores[i]` is its probability. `null`
 * when no sample has it. Not checked; `evaluate` and `meanAveragePrecision` check their inputs.
 */
const tagAveragePrecision = (positives: ReadonlyArray<boolean>, scores: ReadonlyArray<number>): number | null => {
  const total = positives.filter(Boolean).length
  if (total === 0) return null
  const order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!)
  let ap = 0
  let tp = 0
  let seen = 0
  let lastRecall = 0
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!
    seen++
    if (positives[i]) tp++
    // A threshold between distinct scores only: tied samples are taken (or not) together.
    const next = order[k + 1]
    if (next !== undefined && scores[next] === scores[i]) continue
    const recall = tp / total
    ap += (recall - lastRecall) * (tp / seen)
    lastRecall = recall
  }
  return ap
}

/**
 * Average precision of each tag (column) of `proba` against `truth`, `null` for a tag no sample has. Throws a
 * `MetricsError` when the shapes differ, there are no rows, `truth` holds other than 0 / 1 or `proba` a value outside
 * [0, 1].
 *
 * @since 0.2.0
 * @category metrics
 */
export const averagePrecision = (truth: Matrix.Matrix, proba: Matrix.Matrix): Array<number | null> => {
  checkTruth(truth)
  checkProba(truth, proba)
  return Array.from({ length: truth.cols }, (_, t) => {
    const positives = Array.from({ length: truth.rows }, (_, i) => truth.data[i * truth.cols + t] === 1)
    const scores = Array.from({ length: truth.rows }, (_, i) => proba.data[i * truth.cols + t]!)
    return tagAveragePrecision(positives, scores)
  })
}

/**
 * mAP: the mean of `averagePrecision` over the tags some sample has; `null` when none has any. Throws as
 * `averagePrecision` does.
 *
 * @since 0.2.0
 * @category metrics
 */
export const meanAveragePrecision = (truth: Matrix.Matrix, proba: Matrix.Matrix): number | null => {
  const defined = averagePrecision(truth, proba).filter((ap): ap is number => ap !== null)
  return defined.length === 0 ? null : defined.reduce((a, b) => a + b, 0) / defined.length
}

/**
 * micro-F1 of `proba` against `truth` at `thresholds`, without input checks: for a search scoring candidates whose
 * probabilities it made itself.
 *
 * @since 0.2.0
 * @category scorers
 */
export const uncheckedMicroF1 = (truth: Matrix.Matrix, proba: Matrix.Matrix, thresholds: ArrayLike<number>): number => {
  let tp = 0
  let wrong = 0
  for (let i = 0; i < truth.data.length; i++) {
    const yes = truth.data[i] === 1
    const said = proba.data[i]! >= thresholds[i % truth.cols]!
    if (yes && said) tp++
    else if (yes || said) wrong++
  }
  return ratio(2 * tp, 2 * tp + wrong)
}

const compute = (truth: Matrix.Matrix, proba: Matrix.Matrix, thresholds: ArrayLike<number>, tags: ReadonlyArray<string>): Evaluation => {
  checkTruth(truth)
  checkProba(truth, proba)
  if (new Set(tags).size !== tags.length) fail("InvalidLabel", "tags", "a tag appears twice")
  const predicted = decide(proba, thresholds)
  const ap = averagePrecision(truth, proba)
  const scored = perTag(truth, predicted, tags).map((t, i) => ({ ...t, averagePrecision: ap[i]! }))
  const defined = ap.filter((x): x is number => x !== null)
  let exact = 0
  for (let i = 0; i < truth.rows; i++) {
    let same = true
    for (let t = 0; t < truth.cols && same; t++) same = truth.data[i * truth.cols + t] === predicted.data[i * truth.cols + t]
    if (same) exact++
  }
  return {
    tags: [...tags],
    total: truth.rows,
    perTag: scored,
    ...averages(scored),
    meanAveragePrecision: defined.length === 0 ? null : defined.reduce((a, b) => a + b, 0) / defined.length,
    exactMatch: exact / truth.rows
  }
}

/**
 * Every metric of this module at once: `truth` and `proba` are `n x tags.length`, `thresholds` one per tag. Fails
 * with a `MetricsError` naming the offending field when the inputs do not agree (the errors of the functions above,
 * and `InvalidLabel` when a tag appears twice).
 *
 * @example
 * const evaluation = yield* MultiLabel.evaluate(truth, proba, [0.5, 0.4], ["animal", "cat"])
 * evaluation.micro.f1, evaluation.macro.f1, evaluation.meanAveragePrecision
 *
 * @since 0.2.0
 * @category evaluation
 */
export const evaluate: (
  truth: Matrix.Matrix,
  proba: Matrix.Matrix,
  thresholds: ArrayLike<number>,
  tags: ReadonlyArray<string>
) => Effect.Effect<Evaluation, MetricsError> = Effect.fn("MultiLabel.evaluate")(function*(
  truth: Matrix.Matrix,
  proba: Matrix.Matrix,
  thresholds: ArrayLike<number>,
  tags: ReadonlyArray<string>
) {
  return yield* Effect.try({
    try: () => compute(truth, proba, thresholds, tags),
    catch: (cause) =>
      cause instanceof MetricsError
        ? cause
        : new MetricsError({ reason: "InvalidOption", message: `evaluation failed: ${String(cause)}`, cause })
  })
})
