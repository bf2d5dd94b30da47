/**
 * The feature preprocessing heads share: L2-normalise each row, then standardise with the training mean and
 * standard deviation (population, as scikit-learn's StandardScaler; a constant feature keeps scale 1). Float64.
 *
 * A search fits every candidate head on the same cross-validation folds, and each of them would standardise the
 * fold's rows the same way. `reuseStandardized` marks such a matrix (CrossValidation marks its fold rows): the
 * statistics fitted on it and the standardised rows are kept with it, and later fits get them as they are. Neither
 * the marked matrix nor the rows `fitTransform` returns for it may be written to.
 */
import type { Matrix } from "@loupe/core"
import { Schema } from "effect"
import * as Codec from "./Codec.js"

export const Scaler = Schema.Struct({
  mean: Codec.Float64,
  scale: Codec.Float64
})
export type Scaler = typeof Scaler.Type

interface Standardized {
  readonly scaler: Scaler
  readonly z: Float64Array
}

/** What `fitTransform` gave for a marked matrix (`null` until the first fit); weak, so it goes with the matrix. */
const fittedOn = new WeakMap<Matrix.Matrix, Standardized | null>()

/** Keep what `fitTransform` gives for `x` for later fits on the same matrix; neither may be written to. */
export const reuseStandardized = (x: Matrix.Matrix): Matrix.Matrix => {
  if (!fittedOn.has(x)) fittedOn.set(x, null)
  return x
}

/** `1 / ||row i||`, or 0 for a zero row. */
const inverseNorm = (data: ArrayLike<number>, offset: number, cols: number): number => {
  let ss = 0
  for (let j = 0; j < cols; j++) ss += data[offset + j]! * data[offset + j]!
  return ss > 0 ? 1 / Math.sqrt(ss) : 0
}

/** Row-wise L2 normalisation of `rows x cols` values into `out` (a zero row stays zero); `out` may be `data`. */
export const normalizeInto = (data: ArrayLike<number>, rows: number, cols: number, out: Float64Array): Float64Array => {
  for (let i = 0; i < rows; i++) {
    const o = i * cols
    const inv = inverseNorm(data, o, cols)
    for (let j = 0; j < cols; j++) out[o + j] = data[o + j]! * inv
  }
  return out
}

/** Row-wise L2 normalisation into a new Float64 buffer. */
export const normalizeRows = (x: Matrix.Matrix): Float64Array =>
  normalizeInto(x.data, x.rows, x.cols, new Float64Array(x.rows * x.cols))

const inverseScales = (scaler: Scaler): Float64Array => scaler.scale.map((s) => 1 / s)

/** L2-normalise, then standardise with the fitted statistics: one pass over `x`. */
export const transform = (scaler: Scaler, x: Matrix.Matrix): Float64Array => {
  const { rows, cols, data } = x
  const { mean } = scaler
  const inverseScale = inverseScales(scaler)
  const z = new Float64Array(rows * cols)
  for (let i = 0; i < rows; i++) {
    const o = i * cols
    const inv = inverseNorm(data, o, cols)
    for (let j = 0; j < cols; j++) z[o + j] = (data[o + j]! * inv - mean[j]!) * inverseScale[j]!
  }
  return z
}

/** The mean and standard deviation of `x`'s L2-normalised rows, normalised on the fly. */
const statistics = (x: Matrix.Matrix): Scaler => {
  const { rows, cols, data } = x
  const inv = Float64Array.from({ length: rows }, (_, i) => inverseNorm(data, i * cols, cols))
  const mean = new Float64Array(cols)
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) mean[j] += data[i * cols + j]! * inv[i]!
  for (let j = 0; j < cols; j++) mean[j] /= rows
  const scale = new Float64Array(cols)
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const c = data[i * cols + j]! * inv[i]! - mean[j]!
      scale[j] += c * c
    }
  }
  for (let j = 0; j < cols; j++) {
    const sd = Math.sqrt(scale[j]! / rows)
    scale[j] = sd > 1e-12 ? sd : 1
  }
  return { mean, scale }
}

/**
 * Fits the scaler on `x` and returns it with the transformed rows; for a marked matrix, the ones kept from its first
 * fit (read-only).
 */
export const fitTransform = (x: Matrix.Matrix): Standardized => {
  const known = fittedOn.get(x)
  if (known) return known
  const scaler = statistics(x)
  const fitted = { scaler, z: transform(scaler, x) }
  if (fittedOn.has(x)) fittedOn.set(x, fitted)
  return fitted
}

/**
 * Rows for cosine similarity: L2-normalised, standardised when a scaler is given, then L2-normalised again so a dot
 * product is a cosine.
 */
export const unitRows = (scaler: Scaler | undefined, x: Matrix.Matrix): Float64Array => {
  const z = scaler === undefined ? normalizeRows(x) : transform(scaler, x)
  return scaler === undefined ? z : normalizeInto(z, x.rows, x.cols, z)
}

/** `unitRows` for the training rows: fits the scaler first when `standardize`, and returns it with the rows. */
export const fitUnitRows = (x: Matrix.Matrix, standardize: boolean): { readonly scaler?: Scaler; readonly z: Float64Array } => {
  if (!standardize) return { z: normalizeRows(x) }
  const { scaler, z } = fitTransform(x)
  return { scaler, z: normalizeInto(z, x.rows, x.cols, new Float64Array(z.length)) }
}
