/**
 * Outliers: images far from every label's centre, such as a photo that belongs to none of the labels.
 *
 * Each label's centre is the mean of its images' unit-length embeddings; an image is compared with its own label's
 * centre computed without it, so a stray image does not pull its centre towards itself. Its distance to a centre is
 * one minus the cosine similarity. How far is "far" is a robust z-score (Iglewicz and Hoaglin's modified z-score):
 * `(distance - median) / (1.4826 x MAD)`, where the median is that of the label's own images' distances to their
 * centre and the MAD (median absolute deviation from each label's median) is pooled over every labelled image (each
 * label's own, from a few images, is too noisy); 1.4826 x MAD estimates the standard deviation of a normal spread
 * and, unlike it, is not inflated by the outliers themselves. The estimate is taken as at least 0.01 of cosine, so
 * that among near-identical images a slightly different one is not far. An image's score is its smallest over the
 * labels, that of the label it is closest to in spread units; it is an outlier when even that exceeds `cutoff`,
 * by default Iglewicz and Hoaglin's 3.5.
 *
 * Measured in `bench/inspect` (`outliers.mjs`, MobileNetV2-int8 embeddings): a flower photo put among 12 to 100
 * cats and as many dogs is flagged in about nine trials in ten, and about 1 % of the cats and dogs are flagged too
 * (their distances have a longer tail than a normal spread's). See bench/RESULTS.md.
 *
 * @since 0.2.0
 */
import type { Matrix } from "@loupe/core"
import * as Check from "./internal/Check.js"

/**
 * Settings of `find`.
 *
 * @since 0.2.0
 * @category options
 */
export interface Options {
  /** Robust z-score (spread units above a label's median distance) from which an image is an outlier, > 0. Default 3.5. */
  readonly cutoff?: number
  /** Labels with fewer images have no reliable spread and are left out (they neither claim nor flag images); >= 3. Default 5. */
  readonly minimumPerLabel?: number
}

/**
 * An image far from every label's centre.
 *
 * @since 0.2.0
 * @category models
 */
export interface Outlier {
  /** Row of the image. */
  readonly index: number
  /** The label whose centre it is closest to, in that label's spread units. */
  readonly nearest: number
  /** Cosine similarity to that label's centre. */
  readonly similarity: number
  /** Its smallest score over the labels: its robust z-score, how many spread units its distance to the nearest label's centre lies above that label's median. */
  readonly score: number
}

const minimumSpread = 0.01

/** The `p`-quantile of sorted `values`, interpolated linearly. */
const quantile = (values: ReadonlyArray<number>, p: number): number => {
  const at = p * (values.length - 1)
  const i = Math.floor(at)
  return values[i]! + (values[Math.min(i + 1, values.length - 1)]! - values[i]!) * (at - i)
}

/**
 * The outliers among `embeddings` (one row per image) with labels `y` (class indices in `0..numClasses-1`, -1 for an
 * unlabelled image, which is scored but shapes no centre), highest score first. Throws a `MetricsError`:
 * `ShapeMismatch` when `y` and the rows differ in length, `InvalidLabel` for an index out of range, `InvalidOption`
 * for an option out of range or an embedding that is not finite.
 *
 * @example
 * const outliers = Outliers.find(embeddings, y, labels.length)
 *
 * @since 0.2.0
 * @category analyses
 */
export const find = (embeddings: Matrix.Matrix, y: Int32Array, numClasses: number, options: Options = {}): Array<Outlier> => {
  const n = embeddings.rows
  const d = embeddings.cols
  Check.matrix(embeddings, y.length, "embeddings")
  Check.labels(y, numClasses, "y", true)
  const cutoff = options.cutoff ?? 3.5
  const minimum = options.minimumPerLabel ?? 5
  Check.range(cutoff, Number.MIN_VALUE, Infinity, "cutoff")
  if (!(Number.isInteger(minimum) && minimum >= 3)) Check.fail("InvalidOption", "minimumPerLabel", `minimumPerLabel must be an integer >= 3, got ${minimum}`)

  const unit = new Float64Array(n * d)
  for (let i = 0; i < n; i++) {
    let s = 0
    for (let t = 0; t < d; t++) s += embeddings.data[i * d + t]! ** 2
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0
    for (let t = 0; t < d; t++) unit[i * d + t] = embeddings.data[i * d + t]! * inv
  }
  const sums = new Float64Array(numClasses * d)
  const counts = new Array<number>(numClasses).fill(0)
  for (let i = 0; i < n; i++) {
    const c = y[i]!
    if (c < 0) continue
    counts[c]++
    for (let t = 0; t < d; t++) sums[c * d + t] += unit[i * d + t]!
  }
  const used = counts.flatMap((count, c) => (count >= minimum ? [c] : []))
  // sims[i * numClasses + c]: cosine of image i to label c's centre (without image i when it is labelled c).
  const sims = new Float64Array(n * numClasses)
  for (let i = 0; i < n; i++) {
    for (const c of used) {
      const own = y[i] === c
      let dotted = 0
      let norm = 0
      for (let t = 0; t < d; t++) {
        const centre = sums[c * d + t]! - (own ? unit[i * d + t]! : 0)
        dotted += unit[i * d + t]! * centre
        norm += centre * centre
      }
      sims[i * numClasses + c] = norm > 0 ? dotted / Math.sqrt(norm) : 0
    }
  }
  // Each label's median distance to its centre, and one spread pooled over every labelled image (a few images per label
  // give a noisy spread of their own): 1.4826 x the median absolute deviation, a normal spread's standard deviation.
  const ownOf = (c: number): Array<number> => {
    const own: Array<number> = []
    for (let i = 0; i < n; i++) if (y[i] === c) own.push(1 - sims[i * numClasses + c]!)
    return own.sort((a, b) => a - b)
  }
  const medians = new Map(used.map((c) => [c, quantile(ownOf(c), 0.5)] as const))
  const deviations = used.flatMap((c) => ownOf(c).map((v) => Math.abs(v - medians.get(c)!))).sort((a, b) => a - b)
  // At least 0.01 of cosine: among near-identical images, a slightly different one is not far.
  const scale = Math.max(1.4826 * quantile(deviations, 0.5), minimumSpread)
  const outliers: Array<Outlier> = []
  for (let i = 0; i < n; i++) {
    if (y[i]! >= 0 && !medians.has(y[i]!)) continue
    let best: Outlier | undefined
    for (const c of used) {
      const similarity = sims[i * numClasses + c]!
      const score = (1 - similarity - medians.get(c)!) / scale
      if (best === undefined || score < best.score) best = { index: i, nearest: c, similarity, score }
    }
    if (best !== undefined && best.score > cutoff) outliers.push(best)
  }
  return outliers.sort((a, b) => b.score - a.score || a.index - b.index)
}
