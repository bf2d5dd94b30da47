/**
 * Exact and near-duplicate images, and the two ways they hurt: a pair whose copies sit in different cross-validation
 * folds or on both sides of a train/test split (leakage: the model is scored on an image it trained on), and a pair
 * whose copies carry different labels (a conflict: at least one of them is wrong).
 *
 * - Exact duplicates share a content hash (the embedding cache's sha256 of the file's bytes).
 * - Near duplicates have embeddings whose cosine similarity reaches a threshold. The default, `defaultThreshold`, was
 *   chosen on re-encoded, resized and cropped copies of shared photos against distinct photos with the default
 *   backbone (`bench/inspect`, where its precision and recall are recorded); another backbone may want another value.
 *
 * The search never holds an all-pairs matrix, and it never misses a pair. Two unit-length embeddings at cosine `c`
 * are `sqrt(2 - 2c)` apart, and projecting onto orthonormal directions only shortens distances, so a pair whose
 * projections are farther apart than `sqrt(2 - 2 threshold)` cannot reach the threshold. The directions are the
 * leading principal components of (a sample of) the embeddings, where distinct images differ most: the images are
 * sorted by the first one and each is compared only with those within that distance on it, the other components
 * drop most of the rest after a few coordinates, and the few pairs left are checked with the exact cosine. Memory is
 * one unit-length copy of the embeddings plus `dims` numbers per image.
 *
 * @since 0.2.0
 */
import { type Matrix, Prng } from "@loupe/core"
import * as Check from "./internal/Check.js"

/**
 * The images to compare, one row each. The optional arrays, aligned with the rows, say what makes a pair matter.
 *
 * @since 0.2.0
 * @category models
 */
export interface Input {
  /** One embedding per image. A row of zeros is compared by content hash only. */
  readonly embeddings: Matrix.Matrix
  /** A hash of each image's bytes: rows sharing one are exact duplicates. */
  readonly contentHashes?: ReadonlyArray<string>
  /** Each image's label as a class index, -1 for none: copies with different labels conflict. */
  readonly y?: Int32Array
  /** Each image's cross-validation fold, -1 for none: copies in different folds leak. */
  readonly folds?: Int32Array
  /** Each image's split (`train`, `test`, ...): copies in different splits leak. */
  readonly splits?: ReadonlyArray<string>
}

/**
 * Settings of `find`. A value out of range throws a `MetricsError` `InvalidOption` naming it.
 *
 * @since 0.2.0
 * @category options
 */
export interface Options {
  /** Cosine similarity from which two images are near duplicates, in (0, 1]. Default `defaultThreshold`. */
  readonly threshold?: number
  /** Principal components the pairs are pruned on, an integer >= 1 (capped by the embedding size). Default 64. */
  readonly dims?: number
  /** Seed of the principal components' starting directions. Default 0. */
  readonly seed?: number
}

/**
 * Why a pair leaks: its copies are in different splits (`split`) or, within one split, in different folds (`fold`).
 *
 * @since 0.2.0
 * @category models
 */
export type Leak = "split" | "fold"

/**
 * Two images that are copies of each other (`a < b`, rows of the input).
 *
 * @since 0.2.0
 * @category models
 */
export interface Pair {
  readonly a: number
  readonly b: number
  /** `exact`: same content hash; `near`: embeddings at least `threshold` alike. */
  readonly kind: "exact" | "near"
  /** Cosine similarity of the embeddings (1 for exact duplicates). */
  readonly similarity: number
  /** Set when the pair leaks across splits or folds. */
  readonly leak?: Leak
  /** The two images carry different labels. */
  readonly conflict: boolean
}

/**
 * The near-duplicate threshold for the default backbone (`onnx:mobilenetv2-int8`), chosen in `bench/inspect` on
 * edited copies of shared photos against distinct photos; see bench/RESULTS.md.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultThreshold = 0.89

/** Each row scaled to unit length (a row of zeros stays zero). */
const unitRows = (x: Matrix.Matrix): Float32Array => {
  const d = x.cols
  const out = new Float32Array(x.data.length)
  for (let i = 0; i < x.rows; i++) {
    let s = 0
    for (let t = 0; t < d; t++) s += x.data[i * d + t]! ** 2
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0
    for (let t = 0; t < d; t++) out[i * d + t] = x.data[i * d + t]! * inv
  }
  return out
}

/** The dot product of `d` values of `u` from `a` and from `b`, with four accumulators (about twice as fast in V8). */
const dotRows = (u: Float32Array, a: number, b: number, d: number): number => {
  let s0 = 0
  let s1 = 0
  let s2 = 0
  let s3 = 0
  let t = 0
  for (; t + 3 < d; t += 4) {
    s0 += u[a + t]! * u[b + t]!
    s1 += u[a + t + 1]! * u[b + t + 1]!
    s2 += u[a + t + 2]! * u[b + t + 2]!
    s3 += u[a + t + 3]! * u[b + t + 3]!
  }
  for (; t < d; t++) s0 += u[a + t]! * u[b + t]!
  return s0 + s1 + s2 + s3
}

/** Orthonormalises the `k` columns of `q` (`d x k`, row-major) in place, by modified Gram-Schmidt. */
const orthonormalise = (q: Float64Array, d: number, k: number): void => {
  for (let c = 0; c < k; c++) {
    for (let p = 0; p < c; p++) {
      let s = 0
      for (let t = 0; t < d; t++) s += q[t * k + c]! * q[t * k + p]!
      for (let t = 0; t < d; t++) q[t * k + c] -= s * q[t * k + p]!
    }
    let norm = 0
    for (let t = 0; t < d; t++) norm += q[t * k + c]! ** 2
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0
    for (let t = 0; t < d; t++) q[t * k + c] *= inv
  }
}

// Rows the components are estimated from, and subspace iterations: enough to rank the main directions, which is all
// the pruning needs (any orthonormal directions keep the search exact).
const sampleRows = 400
const iterations = 4

/**
 * `k` orthonormal directions (`k x d`, one per row), the leading principal components of a sample of the rows of `u` (`n x d`), in
 * order of variance: subspace iteration from seeded random directions.
 */
const components = (u: Float32Array, n: number, d: number, k: number, seed: number): Float64Array => {
  const rng = Prng.make(seed)
  const rows = n <= sampleRows ? Array.from({ length: n }, (_, i) => i) : rng.shuffle(Array.from({ length: n }, (_, i) => i)).slice(0, sampleRows)
  const s = rows.length
  const mean = new Float64Array(d)
  for (const r of rows) for (let t = 0; t < d; t++) mean[t] += u[r * d + t]! / s
  const x = new Float64Array(s * d)
  rows.forEach((r, i) => {
    for (let t = 0; t < d; t++) x[i * d + t] = u[r * d + t]! - mean[t]!
  })
  const q = Float64Array.from({ length: d * k }, () => rng.normal())
  orthonormalise(q, d, k)
  const xq = new Float64Array(s * k)
  for (let it = 0; it < iterations; it++) {
    // q <- orth(X^T X q)
    xq.fill(0)
    for (let i = 0; i < s; i++) {
      for (let t = 0; t < d; t++) {
        const v = x[i * d + t]!
        for (let c = 0; c < k; c++) xq[i * k + c] += v * q[t * k + c]!
      }
    }
    q.fill(0)
    for (let i = 0; i < s; i++) {
      for (let t = 0; t < d; t++) {
        const v = x[i * d + t]!
        for (let c = 0; c < k; c++) q[t * k + c] += v * xq[i * k + c]!
      }
    }
    orthonormalise(q, d, k)
  }
  // Order the directions by the variance they carry, largest first.
  const variance = Array.from({ length: k }, (_, c) => {
    let v = 0
    for (let i = 0; i < s; i++) {
      let p = 0
      for (let t = 0; t < d; t++) p += x[i * d + t]! * q[t * k + c]!
      v += p * p
    }
    return v
  })
  const order = variance.map((_, c) => c).sort((a, b) => variance[b]! - variance[a]!)
  return Float64Array.from({ length: k * d }, (_, j) => q[(j % d) * k + order[Math.floor(j / d)]!]!)
}

/**
 * Every exact and near-duplicate pair of `input`, most similar first (then by rows). Throws a `MetricsError`:
 * `ShapeMismatch` when an optional array does not have one entry per row, `InvalidOption` for an option out of range or
 * an embedding that is not finite, `InvalidLabel` for a label below -1.
 *
 * @example
 * const pairs = Duplicates.find({ embeddings, contentHashes, y, folds })
 * pairs.filter((p) => p.leak !== undefined) // copies on both sides of a fold boundary
 *
 * @since 0.2.0
 * @category analyses
 */
export const find = (input: Input, options: Options = {}): Array<Pair> => {
  const x = input.embeddings
  const n = x.rows
  Check.matrix(x, n, "embeddings")
  Check.aligned(input.contentHashes, n, "contentHashes")
  Check.aligned(input.y, n, "y")
  Check.aligned(input.folds, n, "folds")
  Check.aligned(input.splits, n, "splits")
  if (input.y) Check.labels(input.y, Number.MAX_SAFE_INTEGER, "y", true)
  const threshold = options.threshold ?? defaultThreshold
  const dims = options.dims ?? 64
  Check.range(threshold, Number.MIN_VALUE, 1, "threshold")
  if (!(Number.isInteger(dims) && dims >= 1)) Check.fail("InvalidOption", "dims", `dims must be an integer >= 1, got ${dims}`)

  const pair = (a: number, b: number, kind: Pair["kind"], similarity: number): Pair => {
    const leak: Leak | undefined = input.splits !== undefined && input.splits[a] !== input.splits[b]
      ? "split"
      : input.folds !== undefined && input.folds[a]! >= 0 && input.folds[b]! >= 0 && input.folds[a] !== input.folds[b]
      ? "fold"
      : undefined
    const conflict = input.y !== undefined && input.y[a]! >= 0 && input.y[b]! >= 0 && input.y[a] !== input.y[b]
    return { a, b, kind, similarity, ...(leak ? { leak } : {}), conflict }
  }

  const pairs: Array<Pair> = []
  const hashes = input.contentHashes
  if (hashes !== undefined) {
    const rowsOf = new Map<string, Array<number>>()
    hashes.forEach((h, i) => rowsOf.set(h, [...(rowsOf.get(h) ?? []), i]))
    for (const rows of rowsOf.values()) {
      for (let s = 0; s < rows.length; s++) for (let t = s + 1; t < rows.length; t++) pairs.push(pair(rows[s]!, rows[t]!, "exact", 1))
    }
  }

  const d = x.cols
  const k = Math.min(dims, d)
  const u = unitRows(x)
  const q = components(u, n, d, k, options.seed ?? 0)
  const projected = new Float64Array(n * k)
  for (let i = 0; i < n; i++) {
    // Four directions per pass over the row: a quarter of the loads of `u`.
    for (let c = 0; c < k; c += 4) {
      const oi = i * d
      const o0 = c * d
      const o1 = Math.min(c + 1, k - 1) * d
      const o2 = Math.min(c + 2, k - 1) * d
      const o3 = Math.min(c + 3, k - 1) * d
      let p0 = 0
      let p1 = 0
      let p2 = 0
      let p3 = 0
      for (let t = 0; t < d; t++) {
        const v = u[oi + t]!
        p0 += v * q[o0 + t]!
        p1 += v * q[o1 + t]!
        p2 += v * q[o2 + t]!
        p3 += v * q[o3 + t]!
      }
      const values = [p0, p1, p2, p3]
      for (let m = 0; m < 4 && c + m < k; m++) projected[i * k + c + m] = values[m]!
    }
  }
  const nonZero = Array.from({ length: n }, (_, i) => i).filter((i) => u.subarray(i * d, (i + 1) * d).some((v) => v !== 0))
  const byFirst = nonZero.sort((a, b) => projected[a * k]! - projected[b * k]!)
  // The projections in that order, so the scan reads memory in sequence.
  const sorted = new Float64Array(byFirst.length * k)
  byFirst.forEach((row, s) => sorted.set(projected.subarray(row * k, (row + 1) * k), s * k))
  // Unit vectors at cosine >= threshold are at most `radius` apart; float32 rounding gets a little slack.
  const radius = Math.sqrt(Math.max(0, 2 - 2 * threshold)) + 1e-6
  const radius2 = radius * radius
  for (let s = 0; s < byFirst.length; s++) {
    const pi = s * k
    for (let r = s + 1; r < byFirst.length; r++) {
      const pj = r * k
      const first = sorted[pj]! - sorted[pi]!
      if (first > radius) break
      let dist2 = first * first
      for (let c = 1; c < k && dist2 <= radius2; c++) dist2 += (sorted[pj + c]! - sorted[pi + c]!) ** 2
      if (dist2 > radius2) continue
      const i = byFirst[s]!
      const j = byFirst[r]!
      if (hashes !== undefined && hashes[i] === hashes[j]) continue
      const similarity = Math.min(1, dotRows(u, i * d, j * d, d))
      if (similarity >= threshold) pairs.push(pair(Math.min(i, j), Math.max(i, j), "near", similarity))
    }
  }
  return pairs.sort((p, q) => q.similarity - p.similarity || p.a - q.a || p.b - q.b)
}
