/**
 * The feature preprocessing heads share: L2-normalise each row, then standardise with the training mean and
 * standard deviation (population, as scikit-learn's StandardScaler; a constant feature keeps scale 1). Float64.
 */
import type { Matrix } from "@loupe/core"
import { Schema } from "effect"
import * as Codec from "./Codec.js"

export const Scaler = Schema.Struct({
  mean: Codec.Float64,
  scale: Codec.Float64
})
export type Scaler = typeof Scaler.Type

/** Row-wise L2 normalisation of `rows x cols` values into `out` (a zero row stays zero); `out` may be `data`. */
export const normalizeInto = (data: ArrayLike<number>, rows: number, cols: number, out: Float64Array): Float64Array => {
  for (let i = 0; i < rows; i++) {
    let ss = 0
    for (let j = 0; j < cols; j++) ss += data[i * cols + j]! * data[i * cols + j]!
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0
    for (let j = 0; j < cols; j++) out[i * cols + j] = data[i * cols + j]! * inv
  }
  return out
}

/** Row-wise L2 normalisation into a new Float64 buffer. */
export const normalizeRows = (x: Matrix.Matrix): Float64Array =>
  normalizeInto(x.data, x.rows, x.cols, new Float64Array(x.rows * x.cols))

/** Fits the scaler on `x` and returns it with the transformed rows. */
export const fitTransform = (x: Matrix.Matrix): { readonly scaler: Scaler; readonly z: Float64Array } => {
  const { rows, cols } = x
  const z = normalizeRows(x)
  const mean = new Float64Array(cols)
  const scale = new Float64Array(cols)
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) mean[j] += z[i * cols + j]!
  for (let j = 0; j < cols; j++) mean[j] /= rows
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const c = z[i * cols + j]! - mean[j]!
      scale[j] += c * c
    }
  }
  for (let j = 0; j < cols; j++) {
    const sd = Math.sqrt(scale[j]! / rows)
    scale[j] = sd > 1e-12 ? sd : 1
  }
  applyInPlace({ mean, scale }, z, rows)
  return { scaler: { mean, scale }, z }
}

const applyInPlace = (scaler: Scaler, z: Float64Array, rows: number): void => {
  const cols = scaler.mean.length
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) z[i * cols + j] = (z[i * cols + j]! - scaler.mean[j]!) / scaler.scale[j]!
  }
}

/** L2-normalise, then standardise with the fitted statistics. */
export const transform = (scaler: Scaler, x: Matrix.Matrix): Float64Array => {
  const z = normalizeRows(x)
  applyInPlace(scaler, z, x.rows)
  return z
}

/**
 * Rows for cosine similarity: L2-normalised, standardised when a scaler is given, then L2-normalised again so a dot
 * product is a cosine.
 */
export const unitRows = (scaler: Scaler | undefined, x: Matrix.Matrix): Float64Array => {
  const z = scaler === undefined ? normalizeRows(x) : transform(scaler, x)
  return scaler === undefined ? z : normalizeInto(z, x.rows, x.cols, z)
}
