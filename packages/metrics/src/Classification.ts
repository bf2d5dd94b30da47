/**
 * Classification metrics from true class indices and predicted probabilities: accuracy, balanced accuracy, the
 * confusion matrix, per-class / macro / micro / weighted precision, recall and F1, top-k accuracy, log loss,
 * one-vs-rest ROC-AUC, expected calibration error and a bootstrap confidence interval for accuracy.
 *
 * Conventions (they match scikit-learn's defaults unless noted):
 * - `yTrue[i]` is a class index in `0..labels.length-1`; `proba` is `n x labels.length`, one probability row per
 *   sample; the predicted class is the row's argmax (the first one on ties).
 * - A precision, recall or F1 whose denominator is zero is 0 (`zero_division=0`); F1 is computed from the counts,
 *   `2 tp / (2 tp + fp + fn)`, as scikit-learn does.
 * - Macro and micro averages run over the classes that occur in `yTrue` or in the predictions (scikit-learn's
 *   `labels=None`); a class absent from both still gets a zero row in `perClass` but does not drag the averages.
 *   Weighted averages weight each class by its support.
 * - Balanced accuracy is the mean recall over classes present in `yTrue`.
 * - ROC-AUC is one-vs-rest per class; it is `null` for a class that is absent from `yTrue` or is every sample's
 *   class, and the macro value averages the defined ones (`null` when none is).
 * - Expected calibration error uses equal-width confidence bins (default 15, as in Guo et al. 2017 and most
 *   libraries) over the top-class confidence: `ECE = sum_b (n_b / n) * |accuracy_b - confidence_b|`, bin `b`
 *   holding confidences in `(b/B, (b+1)/B]` (the first bin also holds 0).
 * - Log loss clips the true class's probability below at `eps` (1e-15) only: a probability of 1 costs nothing.
 * - The accuracy interval is a percentile bootstrap (default 1000 resamples, 95 %, seed 0), so it is reproducible.
 *
 * The plain functions are synchronous and throw a `MetricsError` on malformed input; `evaluate` wraps everything
 * into one Effect. `metrics` are the main ones under the core `Metric` contract, checked the same way;
 * `uncheckedMetrics` are the same computations without the checks, for a search that scores thousands of
 * candidates whose probabilities it made itself.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import { Matrix, type Metric, Prng } from "@loupe/core"
import { MetricsError } from "./MetricsError.js"


/**
 * Precision, recall and F1 of one class, with the counts they come from. The scores are in [0, 1]; one whose
 * denominator is zero is 0 (scikit-learn's `zero_division=0`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ClassMetrics {
  readonly label: string
  /** `correct / predicted`: how many of the samples predicted as this class are this class. */
  readonly precision: number
  /** `correct / support`: how many of this class's samples were found. */
  readonly recall: number
  /** Harmonic mean of precision and recall. */
  readonly f1: number
  /** Samples whose true class is this one. */
  readonly support: number
  /** Samples predicted as this class. */
  readonly predicted: number
  /** Samples of this class predicted correctly (true positives). */
  readonly correct: number
  /** One-vs-rest ROC-AUC of this class; `null` when undefined (the class is absent from, or all of, `yTrue`). */
  readonly rocAuc: number | null
}

/**
 * Precision, recall and F1 averaged over classes, each in [0, 1]; `Averages` says how the classes are weighted.
 *
 * @since 0.1.0
 * @category models
 */
export interface Average {
  readonly precision: number
  readonly recall: number
  readonly f1: number
}

/**
 * The three usual averages of the per-class scores, over the classes that occur in `yTrue` or in the predictions.
 *
 * @since 0.1.0
 * @category models
 */
export interface Averages {
  /** Unweighted mean over the classes: every class counts the same, however rare. */
  readonly macro: Average
  /** Scores of the pooled counts; with one predicted class per sample, all three equal the accuracy. */
  readonly micro: Average
  /** Mean weighted by each class's support. */
  readonly weighted: Average
}

/**
 * The top-`k` accuracy for one `k`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TopKAccuracy {
  readonly k: number
  /** Fraction of samples, in [0, 1], whose true class is among the `k` most probable. */
  readonly accuracy: number
}

/**
 * One equal-width confidence bin of the reliability diagram: the samples whose top-class confidence falls in
 * `(lower, upper]` (the first bin also holds a confidence of exactly 0).
 *
 * @since 0.1.0
 * @category models
 */
export interface CalibrationBin {
  /** Lower edge in [0, 1), exclusive (except for the first bin). */
  readonly lower: number
  /** Upper edge in (0, 1], inclusive. */
  readonly upper: number
  /** Samples in the bin. */
  readonly count: number
  /** Mean top-class confidence in the bin; `null` when the bin is empty. */
  readonly confidence: number | null
  /** Fraction of the bin's samples predicted correctly; `null` when the bin is empty. */
  readonly accuracy: number | null
}

/**
 * What `calibration` computes: the expected calibration error and the bins it comes from.
 *
 * @since 0.1.0
 * @category models
 */
export interface Calibration {
  /** `sum_b (n_b / n) * |accuracy_b - confidence_b|`, in [0, 1]; 0 is perfectly calibrated. */
  readonly ece: number
  /** Every bin in order of confidence, empty ones included. */
  readonly bins: ReadonlyArray<CalibrationBin>
}

/**
 * A percentile-bootstrap confidence interval for accuracy, with the settings that reproduce it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfidenceInterval {
  /** Coverage in (0, 1), e.g. 0.95. */
  readonly level: number
  /** Lower bound, an accuracy in [0, 1]. */
  readonly lower: number
  /** Upper bound, an accuracy in [0, 1]. */
  readonly upper: number
  /** Bootstrap resamples drawn. */
  readonly resamples: number
  /** Seed of the resampling; the same inputs and seed give the same interval. */
  readonly seed: number
}

/**
 * One-vs-rest ROC-AUC, each value in [0, 1] (0.5 is chance).
 *
 * @since 0.1.0
 * @category models
 */
export interface RocAuc {
  /** Per class, in label order; `null` where undefined. */
  readonly perClass: ReadonlyArray<number | null>
  /** Mean of the defined per-class values; `null` when none is defined. */
  readonly macro: number | null
}

/**
 * Settings of `accuracyInterval`. A value out of range fails with `MetricsError` reason `InvalidOption`, its `field`
 * being `bootstrap.resamples` or `bootstrap.level`.
 *
 * @since 0.1.0
 * @category options
 */
export interface BootstrapOptions {
  /** Resamples to draw, a positive integer. Default 1000. */
  readonly resamples?: number
  /** Coverage of the interval, in (0, 1). Default 0.95. */
  readonly level?: number
  /** Seed of the resampling (used as an unsigned 32-bit integer). Default 0. */
  readonly seed?: number
}

/**
 * Settings of `evaluate`.
 *
 * @since 0.1.0
 * @category options
 */
export interface EvaluateOptions {
  /** Which top-k accuracies to report; values `>= labels.length` are dropped (they are always 1). Default `[2, 3, 5]`. */
  readonly topK?: ReadonlyArray<number>
  /** Equal-width bins for the calibration error and reliability diagram, a positive integer. Default 15. */
  readonly calibrationBins?: number
  /** Settings of the accuracy interval (1000 resamples, 95 %, seed 0 by default). */
  readonly bootstrap?: BootstrapOptions
}

/**
 * Everything `evaluate` computes. The field names are a public contract: the JSON report embeds this object as is
 * (see the package README). Scores are in [0, 1] unless noted.
 *
 * @since 0.1.0
 * @category models
 */
export interface Evaluation {
  /** The class names, in class-index order. */
  readonly labels: ReadonlyArray<string>
  /** Samples evaluated. */
  readonly total: number
  /** Samples whose predicted class is the true one. */
  readonly correct: number
  /** `correct / total`. */
  readonly accuracy: number
  /** Bootstrap confidence interval of `accuracy`. */
  readonly accuracyCI: ConfidenceInterval
  /** Mean recall over the classes present in `yTrue`. */
  readonly balancedAccuracy: number
  /** `confusionMatrix[t][p]`: samples of true class `t` predicted as `p`. */
  readonly confusionMatrix: ReadonlyArray<ReadonlyArray<number>>
  /** One entry per label, in label order, with its one-vs-rest ROC-AUC filled in. */
  readonly perClass: ReadonlyArray<ClassMetrics>
  readonly macro: Average
  readonly micro: Average
  readonly weighted: Average
  /** One entry per requested `k` below the number of labels. */
  readonly topKAccuracy: ReadonlyArray<TopKAccuracy>
  /** Mean negative log-likelihood of the true class in nats, >= 0 (lower is better). */
  readonly logLoss: number
  /** Macro one-vs-rest ROC-AUC; `null` when no class has both positives and negatives. */
  readonly rocAuc: number | null
  /** Expected calibration error (lower is better). */
  readonly ece: number
  /** The reliability-diagram bins `ece` comes from. */
  readonly calibration: ReadonlyArray<CalibrationBin>
}

/**
 * A prediction that disagrees with the true class.
 *
 * @since 0.1.0
 * @category models
 */
export interface Mistake {
  /** The sample's row in `yTrue` and `proba`. */
  readonly index: number
  readonly trueClass: number
  readonly predictedClass: number
  /** The predicted class's probability, in [0, 1]. */
  readonly confidence: number
}

const fail = (reason: MetricsError["reason"], field: string, message: string): never => {
  throw new MetricsError({ reason, field, message })
}

const checkLabels = (yTrue: Int32Array, numClasses: number, field: string): void => {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    fail("InvalidLabel", "numClasses", `numClasses must be a positive integer, got ${numClasses}`)
  }
  if (yTrue.length === 0) fail("EmptyInput", field, `${field} is empty: there is nothing to evaluate`)
  for (let i = 0; i < yTrue.length; i++) {
    const y = yTrue[i]!
    if (y < 0 || y >= numClasses) {
      fail("InvalidLabel", field, `${field}[${i}] is ${y}, outside the ${numClasses} classes 0..${numClasses - 1}`)
    }
  }
}

/** Same length, not empty, and (when `numClasses` is given) every index in range. */
const checkPair = (yTrue: Int32Array, yPred: Int32Array, numClasses?: number): void => {
  if (yPred.length !== yTrue.length) {
    fail("ShapeMismatch", "yPred", `yPred has ${yPred.length} values but yTrue has ${yTrue.length}`)
  }
  if (yTrue.length === 0) fail("EmptyInput", "yTrue", "yTrue is empty: there is nothing to evaluate")
  if (numClasses !== undefined) {
    checkLabels(yTrue, numClasses, "yTrue")
    checkLabels(yPred, numClasses, "yPred")
  }
}

const checkProba = (yTrue: Int32Array, proba: Matrix.Matrix): void => {
  if (proba.rows !== yTrue.length) {
    fail("ShapeMismatch", "proba", `proba has ${proba.rows} rows but yTrue has ${yTrue.length} values`)
  }
  checkLabels(yTrue, proba.cols, "yTrue")
  for (let i = 0; i < proba.rows; i++) {
    let sum = 0
    for (let j = 0; j < proba.cols; j++) {
      const p = proba.data[i * proba.cols + j]!
      if (!(p >= 0) || !Number.isFinite(p)) {
        fail("InvalidProbability", "proba", `proba[${i}][${j}] is ${p}; probabilities must be finite and >= 0`)
      }
      sum += p
    }
    if (Math.abs(sum - 1) > 1e-3) {
      fail("InvalidProbability", "proba", `proba row ${i} sums to ${sum}; pass probabilities (e.g. a softmax), not scores`)
    }
  }
}

const ratio = (num: number, den: number): number => (den === 0 ? 0 : num / den)

const harmonic = (p: number, r: number): number => (p + r === 0 ? 0 : (2 * p * r) / (p + r))

/**
 * The predicted class of each row of `proba`: its argmax (the first on ties). The rows are not checked.
 *
 * @since 0.1.0
 * @category metrics
 */
export const predictions = (proba: Matrix.Matrix): Int32Array => {
  const out = new Int32Array(proba.rows)
  for (let i = 0; i < proba.rows; i++) out[i] = Matrix.argmaxRow(proba, i)
  return out
}

/**
 * The `numClasses x numClasses` confusion matrix: `matrix[t][p]` counts samples of true class `t` predicted as class
 * `p`. Throws a `MetricsError`: `ShapeMismatch` when `yPred` and `yTrue` differ in length, `EmptyInput` when they are
 * empty, `InvalidLabel` when `numClasses` is not a positive integer or an index is outside `0..numClasses-1`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const confusionMatrix = (yTrue: Int32Array, yPred: Int32Array, numClasses: number): Array<Array<number>> => {
  checkPair(yTrue, yPred, numClasses)
  return countConfusion(yTrue, yPred, numClasses)
}

const countConfusion = (yTrue: Int32Array, yPred: Int32Array, numClasses: number): Array<Array<number>> => {
  const matrix = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0))
  for (let i = 0; i < yTrue.length; i++) matrix[yTrue[i]!]![yPred[i]!]!++
  return matrix
}

/**
 * Fraction of samples predicted correctly, in [0, 1]. Throws a `MetricsError`: `ShapeMismatch` when the arrays differ
 * in length, `EmptyInput` when they are empty.
 *
 * @since 0.1.0
 * @category metrics
 */
export const accuracy = (yTrue: Int32Array, yPred: Int32Array): number => {
  checkPair(yTrue, yPred)
  return countAccuracy(yTrue, yPred)
}

const countAccuracy = (yTrue: Int32Array, yPred: Int32Array): number => {
  let correct = 0
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) correct++
  return correct / yTrue.length
}

/**
 * Mean recall over the classes present in `yTrue`, in [0, 1]; it does not reward predicting the majority class.
 * Throws a `MetricsError` as `confusionMatrix` does.
 *
 * @since 0.1.0
 * @category metrics
 */
export const balancedAccuracy = (yTrue: Int32Array, yPred: Int32Array, numClasses: number): number =>
  balancedFromConfusion(confusionMatrix(yTrue, yPred, numClasses))

const balancedFromConfusion = (matrix: ReadonlyArray<ReadonlyArray<number>>): number => {
  let sum = 0
  let present = 0
  matrix.forEach((row, c) => {
    const support = row.reduce((a, b) => a + b, 0)
    if (support > 0) {
      sum += row[c]! / support
      present++
    }
  })
  return sum / present
}

/**
 * Per-class precision, recall, F1 and counts from a confusion matrix, one entry per label (`rocAuc` is left `null`;
 * `evaluate` fills it). `matrix` must be `labels.length x labels.length`, as `confusionMatrix` returns; it is not
 * checked.
 *
 * @since 0.1.0
 * @category metrics
 */
export const perClass = (
  matrix: ReadonlyArray<ReadonlyArray<number>>,
  labels: ReadonlyArray<string>
): Array<ClassMetrics> =>
  labels.map((label, c) => {
    const correct = matrix[c]![c]!
    const support = matrix[c]!.reduce((a, b) => a + b, 0)
    const predicted = matrix.reduce((a, row) => a + row[c]!, 0)
    // F1 from the counts (2 tp / (2 tp + fp + fn)): the harmonic mean of the two ratios can differ in the last bit.
    const f1 = ratio(2 * correct, support + predicted)
    return { label, precision: ratio(correct, predicted), recall: ratio(correct, support), f1, support, predicted, correct, rocAuc: null }
  })

/**
 * Macro, micro and weighted averages of `perClass`'s scores over the classes that occur in `yTrue` or in the
 * predictions (a class with zero support and zero predictions is left out). All zero when no class is included.
 *
 * @since 0.1.0
 * @category metrics
 */
export const averages = (classes: ReadonlyArray<ClassMetrics>): Averages => {
  const included = classes.filter((c) => c.support > 0 || c.predicted > 0)
  const mean = (pick: (c: ClassMetrics) => number) =>
    included.length === 0 ? 0 : included.reduce((a, c) => a + pick(c), 0) / included.length
  const totalSupport = included.reduce((a, c) => a + c.support, 0)
  const weightedMean = (pick: (c: ClassMetrics) => number) =>
    ratio(included.reduce((a, c) => a + c.support * pick(c), 0), totalSupport)
  const tp = included.reduce((a, c) => a + c.correct, 0)
  const microPrecision = ratio(tp, included.reduce((a, c) => a + c.predicted, 0))
  const microRecall = ratio(tp, totalSupport)
  return {
    macro: { precision: mean((c) => c.precision), recall: mean((c) => c.recall), f1: mean((c) => c.f1) },
    micro: { precision: microPrecision, recall: microRecall, f1: harmonic(microPrecision, microRecall) },
    weighted: {
      precision: weightedMean((c) => c.precision),
      recall: weightedMean((c) => c.recall),
      f1: weightedMean((c) => c.f1)
    }
  }
}

/**
 * Fraction of samples, in [0, 1], whose true class is among the `k` most probable. Ties are counted in the sample's
 * favour: a hit when fewer than `k` classes score strictly higher than the true class. Throws a `MetricsError`:
 * `ShapeMismatch` when `proba.rows !== yTrue.length`, `EmptyInput` when there are no samples, `InvalidLabel` when a
 * class index is outside `0..proba.cols-1`, `InvalidProbability` when a row has a negative or non-finite value or does
 * not sum to 1 (within 1e-3), and `InvalidOption` (field `k`) when `k` is not a positive integer.
 *
 * @since 0.1.0
 * @category metrics
 */
export const topKAccuracy = (yTrue: Int32Array, proba: Matrix.Matrix, k: number): number => {
  checkProba(yTrue, proba)
  if (!Number.isInteger(k) || k < 1) fail("InvalidOption", "k", `k must be a positive integer, got ${k}`)
  let hits = 0
  for (let i = 0; i < yTrue.length; i++) {
    const base = i * proba.cols
    const own = proba.data[base + yTrue[i]!]!
    let higher = 0
    for (let j = 0; j < proba.cols; j++) if (proba.data[base + j]! > own) higher++
    if (higher < k) hits++
  }
  return hits / yTrue.length
}

/**
 * Mean negative log-likelihood of the true class in nats (natural log), with the true class's probability clipped
 * below at `eps`: >= 0, lower is better, at most `-ln(eps)` (about 34.5 with the default `eps = 1e-15`).
 * Throws a `MetricsError`: `ShapeMismatch` when `proba.rows !== yTrue.length`, `EmptyInput` when there are no samples,
 * `InvalidLabel` when a class index is outside `0..proba.cols-1`, `InvalidProbability` when a row has a negative or
 * non-finite value or does not sum to 1 (within 1e-3).
 *
 * @since 0.1.0
 * @category metrics
 */
export const logLoss = (yTrue: Int32Array, proba: Matrix.Matrix, eps = 1e-15): number => {
  checkProba(yTrue, proba)
  return meanLogLoss(yTrue, proba, eps)
}

const meanLogLoss = (yTrue: Int32Array, proba: Matrix.Matrix, eps: number): number => {
  let sum = 0
  for (let i = 0; i < yTrue.length; i++) sum -= Math.log(Math.max(eps, proba.data[i * proba.cols + yTrue[i]!]!))
  return sum / yTrue.length
}

/**
 * Area under the ROC curve (Mann-Whitney U, ties get half credit) from every sample's score and the positives'
 * scores, both sorted ascending: each positive's rank is found by walking the two sorted arrays once.
 */
const binaryAuc = (sortedAll: Float64Array, sortedPositive: Float64Array): number | null => {
  const n = sortedAll.length
  const positives = sortedPositive.length
  const negatives = n - positives
  if (positives === 0 || negatives === 0) return null
  let rankSum = 0
  let below = 0
  for (let j = 0; j < positives;) {
    const v = sortedPositive[j]!
    let jEnd = j
    while (jEnd < positives && sortedPositive[jEnd] === v) jEnd++
    while (below < n && sortedAll[below]! < v) below++
    let through = below
    while (through < n && sortedAll[through] === v) through++
    // Samples tied at v hold ranks below + 1 .. through; each gets their mean.
    rankSum += (jEnd - j) * ((below + 1 + through) / 2)
    j = jEnd
  }
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives)
}

/**
 * One-vs-rest ROC-AUC per class (Mann-Whitney U, ties count half) and its macro average over the classes where it is
 * defined; a class absent from `yTrue` or present in every sample gets `null`. For two classes the macro value is
 * scikit-learn's binary `roc_auc_score(y, proba[:, 1])`.
 * Throws a `MetricsError`: `ShapeMismatch` when `proba.rows !== yTrue.length`, `EmptyInput` when there are no samples,
 * `InvalidLabel` when a class index is outside `0..proba.cols-1`, `InvalidProbability` when a row has a negative or
 * non-finite value or does not sum to 1 (within 1e-3).
 *
 * @since 0.1.0
 * @category metrics
 */
export const rocAuc = (yTrue: Int32Array, proba: Matrix.Matrix): RocAuc => {
  checkProba(yTrue, proba)
  const counts = new Int32Array(proba.cols)
  for (let i = 0; i < yTrue.length; i++) counts[yTrue[i]!]!++
  const perClassAuc: Array<number | null> = []
  for (let c = 0; c < proba.cols; c++) {
    const all = new Float64Array(yTrue.length)
    const positive = new Float64Array(counts[c]!)
    for (let i = 0, k = 0; i < yTrue.length; i++) {
      all[i] = proba.data[i * proba.cols + c]!
      if (yTrue[i] === c) positive[k++] = all[i]!
    }
    perClassAuc.push(binaryAuc(all.sort(), positive.sort()))
  }
  const defined = perClassAuc.filter((v): v is number => v !== null)
  return {
    perClass: perClassAuc,
    macro: defined.length === 0 ? null : defined.reduce((a, b) => a + b, 0) / defined.length
  }
}

/**
 * Expected calibration error and the reliability-diagram bins: `bins` equal-width bins over the top-class confidence
 * (15 by default, as in Guo et al. 2017). Throws a `MetricsError`: `ShapeMismatch` when `proba.rows !== yTrue.length`,
 * `EmptyInput` when there are no samples, `InvalidLabel` when a class index is outside `0..proba.cols-1`,
 * `InvalidProbability` when a row has a negative or non-finite value or does not sum to 1 (within 1e-3), and
 * `InvalidOption` (field `bins`) when `bins` is not a positive integer.
 *
 * @since 0.1.0
 * @category metrics
 */
export const calibration = (yTrue: Int32Array, proba: Matrix.Matrix, bins = 15): Calibration => {
  checkProba(yTrue, proba)
  if (!Number.isInteger(bins) || bins < 1) fail("InvalidOption", "bins", `bins must be a positive integer, got ${bins}`)
  return binCalibration(yTrue, proba, bins)
}

const binCalibration = (yTrue: Int32Array, proba: Matrix.Matrix, bins: number): Calibration => {
  const yPred = predictions(proba)
  const count = new Float64Array(bins)
  const confidenceSum = new Float64Array(bins)
  const correctSum = new Float64Array(bins)
  for (let i = 0; i < yTrue.length; i++) {
    const confidence = proba.data[i * proba.cols + yPred[i]!]!
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(confidence * bins) - 1))
    count[b]!++
    confidenceSum[b]! += confidence
    if (yPred[i] === yTrue[i]) correctSum[b]!++
  }
  let ece = 0
  const out: Array<CalibrationBin> = []
  for (let b = 0; b < bins; b++) {
    const n = count[b]!
    const confidence = n === 0 ? null : confidenceSum[b]! / n
    const binAccuracy = n === 0 ? null : correctSum[b]! / n
    if (confidence !== null && binAccuracy !== null) ece += (n / yTrue.length) * Math.abs(binAccuracy - confidence)
    out.push({ lower: b / bins, upper: (b + 1) / bins, count: n, confidence, accuracy: binAccuracy })
  }
  return { ece, bins: out }
}

/** The `q`-quantile of sorted values with linear interpolation (NumPy's default). */
const quantile = (sorted: Float64Array, q: number): number => {
  const position = q * (sorted.length - 1)
  const lo = Math.floor(position)
  const hi = Math.min(sorted.length - 1, lo + 1)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (position - lo)
}

/**
 * Percentile-bootstrap confidence interval for accuracy: the samples are resampled with replacement `resamples` times
 * from a seeded generator, so the same inputs give the same interval. Throws a `MetricsError`: `ShapeMismatch` when the
 * arrays differ in length, `EmptyInput` when they are empty, and `InvalidOption` for a `resamples` or `level` out of
 * range (see `BootstrapOptions`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const accuracyInterval = (
  yTrue: Int32Array,
  yPred: Int32Array,
  options: BootstrapOptions = {}
): ConfidenceInterval => {
  checkPair(yTrue, yPred)
  const resamples = options.resamples ?? 1000
  const level = options.level ?? 0.95
  const seed = options.seed ?? 0
  if (!Number.isInteger(resamples) || resamples < 1) {
    fail("InvalidOption", "bootstrap.resamples", `resamples must be a positive integer, got ${resamples}`)
  }
  if (!(level > 0 && level < 1)) fail("InvalidOption", "bootstrap.level", `level must be in (0, 1), got ${level}`)
  const n = yTrue.length
  const hit = new Uint8Array(n)
  for (let i = 0; i < n; i++) hit[i] = yTrue[i] === yPred[i] ? 1 : 0
  // The seed is the generator's state as given (not scrambled), as since the first release: same seed, same interval.
  const random = Prng.fromState(seed)
  const accuracies = new Float64Array(resamples)
  for (let r = 0; r < resamples; r++) {
    let correct = 0
    for (let i = 0; i < n; i++) correct += hit[random.int(n)]!
    accuracies[r] = correct / n
  }
  accuracies.sort()
  const tail = (1 - level) / 2
  return { level, lower: quantile(accuracies, tail), upper: quantile(accuracies, 1 - tail), resamples, seed }
}

/**
 * Every sample whose predicted class (the argmax of its row) differs from its true class, most confident mistakes first
 * (then by row). Throws a `MetricsError`: `ShapeMismatch` when `proba.rows !== yTrue.length`, `EmptyInput` when there
 * are no samples, `InvalidLabel` when a class index is outside `0..proba.cols-1`, `InvalidProbability` when a row has a
 * negative or non-finite value or does not sum to 1 (within 1e-3).
 *
 * @since 0.1.0
 * @category metrics
 */
export const mistakes = (yTrue: Int32Array, proba: Matrix.Matrix): Array<Mistake> => {
  checkProba(yTrue, proba)
  const yPred = predictions(proba)
  const out: Array<Mistake> = []
  for (let i = 0; i < yTrue.length; i++) {
    if (yPred[i] !== yTrue[i]) {
      out.push({
        index: i,
        trueClass: yTrue[i]!,
        predictedClass: yPred[i]!,
        confidence: proba.data[i * proba.cols + yPred[i]!]!
      })
    }
  }
  return out.sort((a, b) => b.confidence - a.confidence || a.index - b.index)
}

const checkLabelNames = (labels: ReadonlyArray<string>, proba: Matrix.Matrix): void => {
  if (labels.length !== proba.cols) {
    fail("ShapeMismatch", "labels", `${labels.length} labels but proba has ${proba.cols} columns`)
  }
  const seen = new Set<string>()
  for (const label of labels) {
    if (seen.has(label)) fail("InvalidLabel", "labels", `label "${label}" appears twice`)
    seen.add(label)
  }
}

const compute = (
  yTrue: Int32Array,
  proba: Matrix.Matrix,
  labels: ReadonlyArray<string>,
  options: EvaluateOptions
): Evaluation => {
  checkLabelNames(labels, proba)
  checkProba(yTrue, proba)
  const yPred = predictions(proba)
  const matrix = confusionMatrix(yTrue, yPred, labels.length)
  const auc = rocAuc(yTrue, proba)
  const classes = perClass(matrix, labels).map((c, i) => ({ ...c, rocAuc: auc.perClass[i]! }))
  const { macro, micro, weighted } = averages(classes)
  const correct = classes.reduce((a, c) => a + c.correct, 0)
  const topK = (options.topK ?? [2, 3, 5]).filter((k) => k < labels.length)
  const { bins, ece } = calibration(yTrue, proba, options.calibrationBins ?? 15)
  return {
    labels: [...labels],
    total: yTrue.length,
    correct,
    accuracy: correct / yTrue.length,
    accuracyCI: accuracyInterval(yTrue, yPred, options.bootstrap),
    balancedAccuracy: balancedFromConfusion(matrix),
    confusionMatrix: matrix,
    perClass: classes,
    macro,
    micro,
    weighted,
    topKAccuracy: topK.map((k) => ({ k, accuracy: topKAccuracy(yTrue, proba, k) })),
    logLoss: logLoss(yTrue, proba),
    rocAuc: auc.macro,
    ece,
    calibration: bins
  }
}

/**
 * Every metric of this module at once, for `labels.length` classes: `yTrue` holds class indices into `labels`,
 * `proba` one probability row per sample and one column per label. Fails with a `MetricsError` naming the offending
 * field when the inputs do not agree: the errors of the functions above, plus `ShapeMismatch` (field `labels`) when
 * `labels.length !== proba.cols` and `InvalidLabel` when a label appears twice.
 *
 * @example
 * const evaluation = yield* Classification.evaluate(yTrue, proba, ["cats", "dogs"])
 * evaluation.accuracy, evaluation.macro.f1, evaluation.confusionMatrix
 *
 * @since 0.1.0
 * @category evaluation
 */
export const evaluate: (
  yTrue: Int32Array,
  proba: Matrix.Matrix,
  labels: ReadonlyArray<string>,
  options?: EvaluateOptions
) => Effect.Effect<Evaluation, MetricsError> = Effect.fn("Classification.evaluate")(function*(
  yTrue: Int32Array,
  proba: Matrix.Matrix,
  labels: ReadonlyArray<string>,
  options: EvaluateOptions = {}
) {
  return yield* Effect.try({
    try: () => compute(yTrue, proba, labels, options),
    catch: (cause) =>
      cause instanceof MetricsError
        ? cause
        : new MetricsError({ reason: "InvalidOption", message: `evaluation failed: ${String(cause)}`, cause })
  })
})

/** A score of `yTrue` against `proba` (`yTrue.length x numClasses`, labels in range), without input checks. */
type Score = (yTrue: Int32Array, proba: Matrix.Matrix, numClasses: number) => number

const f1Average = (which: "macro" | "weighted"): Score => (yTrue, proba, numClasses) => {
  const matrix = countConfusion(yTrue, predictions(proba), numClasses)
  return averages(perClass(matrix, matrix.map((_, i) => String(i))))[which].f1
}

const scores: ReadonlyArray<{ readonly name: string; readonly higherIsBetter: boolean; readonly score: Score }> = [
  { name: "accuracy", higherIsBetter: true, score: (yTrue, proba) => countAccuracy(yTrue, predictions(proba)) },
  {
    name: "balancedAccuracy",
    higherIsBetter: true,
    score: (yTrue, proba, k) => balancedFromConfusion(countConfusion(yTrue, predictions(proba), k))
  },
  { name: "macroF1", higherIsBetter: true, score: f1Average("macro") },
  { name: "weightedF1", higherIsBetter: true, score: f1Average("weighted") },
  { name: "logLoss", higherIsBetter: false, score: (yTrue, proba) => meanLogLoss(yTrue, proba, 1e-15) },
  { name: "ece", higherIsBetter: false, score: (yTrue, proba) => binCalibration(yTrue, proba, 15).ece }
]

/**
 * The main metrics under the core `Metric` contract, so a search can pick one by name: `accuracy`,
 * `balancedAccuracy`, `macroF1`, `weightedF1` (higher is better), `logLoss`, `ece` (lower is better). Their
 * `compute` throws a `MetricsError` on malformed input, and `ShapeMismatch` when `proba.cols !== numClasses`.
 *
 * @since 0.1.0
 * @category scorers
 */
export const metrics: ReadonlyArray<Metric.Metric> = scores.map(({ higherIsBetter, name, score }) => ({
  name,
  higherIsBetter,
  compute: ({ numClasses, proba, yTrue }) => {
    if (proba.cols !== numClasses) {
      fail("ShapeMismatch", "proba", `proba has ${proba.cols} columns but numClasses is ${numClasses}`)
    }
    checkProba(yTrue, proba)
    return score(yTrue, proba, numClasses)
  }
}))

/**
 * `metrics` without their input checks, for a caller that made the probabilities itself (`yTrue.length x
 * numClasses`, labels in range, not empty), as a search does for each of thousands of candidates: the checks would
 * cost as much as the scores. A NaN probability gives a NaN or meaningless score, not an error.
 *
 * @since 0.1.0
 */
export const uncheckedMetrics: ReadonlyArray<Metric.Metric> = scores.map(({ higherIsBetter, name, score }) => ({
  name,
  higherIsBetter,
  compute: ({ numClasses, proba, yTrue }) => score(yTrue, proba, numClasses)
}))

/**
 * The metric called `name` among `metrics`, or `None` when there is none.
 *
 * @since 0.1.0
 * @category scorers
 */
export const metricNamed = (name: string): Option.Option<Metric.Metric> =>
  Option.fromNullable(metrics.find((m) => m.name === name))
