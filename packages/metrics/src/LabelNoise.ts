/**
 * Label-noise suspects by confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty
 * in Dataset Labels", JAIR 2021) on out-of-fold probabilities: images whose given label the cross-validated model
 * confidently disagrees with, each with the label it suggests instead.
 *
 * - Each label `j` gets a threshold `t_j`: the mean out-of-fold probability of `j` over the images labelled `j` (the
 *   model's average self-confidence on that label).
 * - An image counts towards label `j` when its probability of `j` reaches `t_j`; among several such labels the most
 *   probable wins. Counting every image this way fills the confident joint `C[given][counted]`.
 * - The images off its diagonal (counted towards a label other than their own) are the suspects, and the label they
 *   count towards is the suggestion. They are ranked by self-confidence, the probability of the given label, lowest
 *   first.
 *
 * The probabilities must come from models that did not train on the image (out-of-fold), or the model has learned the
 * wrong label and agrees with it.
 *
 * @since 0.2.0
 */
import { Matrix } from "@loupe/core"
import * as Check from "./internal/Check.js"

/**
 * An image whose label looks wrong. Indices are rows of the inputs and classes of `proba`'s columns.
 *
 * @since 0.2.0
 * @category models
 */
export interface Suspect {
  /** Row of the image. */
  readonly index: number
  /** The label it has. */
  readonly given: number
  /** The label confident learning counts it towards. */
  readonly suggested: number
  /** Out-of-fold probability of the given label, in [0, 1]: the ranking key, lowest first. */
  readonly selfConfidence: number
  /** Out-of-fold probability of the suggested label, in [0, 1]. */
  readonly suggestedConfidence: number
}

/**
 * What `find` computes.
 *
 * @since 0.2.0
 * @category models
 */
export interface LabelNoise {
  /** Per label, the mean out-of-fold probability of that label over its images (`Infinity` for a label with none). */
  readonly thresholds: ReadonlyArray<number>
  /** `confidentJoint[given][counted]`: images counted confidently; an image below every threshold is not counted. */
  readonly confidentJoint: ReadonlyArray<ReadonlyArray<number>>
  /** The off-diagonal images, lowest self-confidence first (ties by row). */
  readonly suspects: ReadonlyArray<Suspect>
}

// Float32 probabilities averaged in float64 can land a hair above an image's own value: cleanlab allows the same slack.
const slack = 1e-6

/**
 * Confident learning on `proba` (`n x classes`, one out-of-fold probability row per image) for the given labels `y`
 * (class indices). Throws a `MetricsError`: `ShapeMismatch` when `proba.rows !== y.length`, `InvalidLabel` for an
 * index outside `0..proba.cols-1`, `InvalidOption` for a probability that is not finite.
 *
 * @example
 * const { suspects } = LabelNoise.find(y, outOfFold.proba)
 * suspects[0] // { index: 17, given: 0, suggested: 1, selfConfidence: 0.02, suggestedConfidence: 0.98 }
 *
 * @since 0.2.0
 * @category analyses
 */
export const find = (y: Int32Array, proba: Matrix.Matrix): LabelNoise => {
  Check.matrix(proba, y.length, "proba")
  const k = proba.cols
  Check.labels(y, k, "y")
  const sums = new Float64Array(k)
  const counts = new Float64Array(k)
  for (let i = 0; i < y.length; i++) {
    sums[y[i]!] += proba.data[i * k + y[i]!]!
    counts[y[i]!]++
  }
  const thresholds = Array.from(sums, (s, j) => (counts[j] === 0 ? Infinity : s / counts[j]!))
  const joint = Array.from({ length: k }, () => new Array<number>(k).fill(0))
  const suspects: Array<Suspect> = []
  for (let i = 0; i < y.length; i++) {
    const row = Matrix.row(proba, i)
    let counted = -1
    for (let j = 0; j < k; j++) {
      if (row[j]! >= thresholds[j]! - slack && (counted < 0 || row[j]! > row[counted]!)) counted = j
    }
    if (counted < 0) continue
    const given = y[i]!
    joint[given]![counted]!++
    if (counted !== given) {
      suspects.push({ index: i, given, suggested: counted, selfConfidence: row[given]!, suggestedConfidence: row[counted]! })
    }
  }
  suspects.sort((a, b) => a.selfConfidence - b.selfConfidence || a.index - b.index)
  return { thresholds, confidentJoint: joint, suspects }
}
