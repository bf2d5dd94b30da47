/**
 * Class health: how many images each label has, whether the labels are badly imbalanced or some have too few images
 * to learn from, and, given out-of-fold predictions, each label's cross-validated recall.
 *
 * @since 0.2.0
 */
import { Matrix } from "@loupe/core"
import * as Check from "./internal/Check.js"

/**
 * Settings of `check`. A value out of range throws a `MetricsError` `InvalidOption` naming it.
 *
 * @since 0.2.0
 * @category options
 */
export interface Options {
  /** A label with fewer images gets a `TooFew` warning; an integer >= 1. Default 10. */
  readonly minimumPerLabel?: number
  /** Largest over smallest label count above which the set gets an `Imbalance` warning; >= 1. Default 3. */
  readonly imbalanceRatio?: number
}

/**
 * One label's numbers.
 *
 * @since 0.2.0
 * @category models
 */
export interface LabelHealth {
  readonly label: number
  readonly count: number
  /** Share of its images the cross-validated model predicted as this label; `null` without predictions or images. */
  readonly recall: number | null
}

/**
 * A problem with the label counts: a label with no images, one with fewer than the minimum, or counts too uneven.
 *
 * @since 0.2.0
 * @category models
 */
export type Warning =
  | { readonly kind: "Empty"; readonly label: number }
  | { readonly kind: "TooFew"; readonly label: number; readonly count: number; readonly minimum: number }
  | { readonly kind: "Imbalance"; readonly largest: number; readonly smallest: number; readonly ratio: number }

/**
 * What `check` computes.
 *
 * @since 0.2.0
 * @category models
 */
export interface ClassHealth {
  /** One entry per label, in label order. */
  readonly perLabel: ReadonlyArray<LabelHealth>
  /** Images without a label. */
  readonly unlabelled: number
  /** Largest over smallest non-zero label count (1 with fewer than two non-empty labels). */
  readonly imbalanceRatio: number
  readonly warnings: ReadonlyArray<Warning>
}

/**
 * The health of labels `y` (class indices in `0..numClasses-1`, -1 for an unlabelled image). With `proba`, one
 * out-of-fold probability row per row of `y` (unlabelled rows are ignored), each label's recall is filled in. Throws a
 * `MetricsError`: `ShapeMismatch` when `proba` has another number of rows, `InvalidLabel` for an index out of range,
 * `InvalidOption` for an option out of range.
 *
 * @example
 * const health = ClassHealth.check(y, 2, outOfFold.proba)
 * health.warnings // [{ kind: "TooFew", label: 1, count: 4, minimum: 10 }]
 *
 * @since 0.2.0
 * @category analyses
 */
export const check = (y: Int32Array, numClasses: number, proba?: Matrix.Matrix, options: Options = {}): ClassHealth => {
  Check.labels(y, numClasses, "y", true)
  if (proba !== undefined) {
    Check.matrix(proba, y.length, "proba")
    if (proba.cols !== numClasses) Check.fail("ShapeMismatch", "proba", `proba has ${proba.cols} columns for ${numClasses} labels`)
  }
  const minimum = options.minimumPerLabel ?? 10
  const ratioLimit = options.imbalanceRatio ?? 3
  if (!(Number.isInteger(minimum) && minimum >= 1)) Check.fail("InvalidOption", "minimumPerLabel", `minimumPerLabel must be an integer >= 1, got ${minimum}`)
  Check.range(ratioLimit, 1, Infinity, "imbalanceRatio")

  const counts = new Array<number>(numClasses).fill(0)
  const correct = new Array<number>(numClasses).fill(0)
  let unlabelled = 0
  for (let i = 0; i < y.length; i++) {
    const c = y[i]!
    if (c < 0) {
      unlabelled++
      continue
    }
    counts[c]++
    if (proba !== undefined && Matrix.argmaxRow(proba, i) === c) correct[c]++
  }
  const perLabel = counts.map((count, label) => ({
    label,
    count,
    recall: proba === undefined || count === 0 ? null : correct[label]! / count
  }))
  const nonEmpty = perLabel.filter((l) => l.count > 0)
  const largest = nonEmpty.reduce<LabelHealth | undefined>((a, l) => (a === undefined || l.count > a.count ? l : a), undefined)
  const smallest = nonEmpty.reduce<LabelHealth | undefined>((a, l) => (a === undefined || l.count < a.count ? l : a), undefined)
  const imbalanceRatio = largest && smallest && nonEmpty.length > 1 ? largest.count / smallest.count : 1
  const warnings: Array<Warning> = [
    ...perLabel.flatMap((l): Array<Warning> =>
      l.count === 0
        ? [{ kind: "Empty", label: l.label }]
        : l.count < minimum
        ? [{ kind: "TooFew", label: l.label, count: l.count, minimum }]
        : []
    ),
    ...(imbalanceRatio > ratioLimit ? [{ kind: "Imbalance", largest: largest!.label, smallest: smallest!.label, ratio: imbalanceRatio } as const] : [])
  ]
  return { perLabel, unlabelled, imbalanceRatio, warnings }
}
