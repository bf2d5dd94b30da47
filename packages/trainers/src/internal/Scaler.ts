/**
 * The feature preprocessing heads share: L2-normalise each row, then standardise with the training mean and
 * standard deviation (population, as scikit-learn's StandardScaler; a constant feature keeps scale 1). Float64.
 *
 * A search fits every candidate head on the same cross-validation folds, and each of them would standardise the
 * fold's rows the same way. So a training set may carry its standardisation (`Rows.standardized`, which
 * CrossValidation's kept folds attach): `fitTransform` and `fitUnitRows` take it from there instead of fitting
 * again. Neither the rows nor the standardised rows `fitTransform` returns for them may be written to.
 */
import type { Head, Matrix } from "@loupe/core"
import { Schema } from "effect"
import * as Codec from "./Codec.js"

export const Scaler = Schema.Struct({
  mean: Codec.Float64,
  scale: Codec.Float64
})
export type Scaler = typeof Scaler.Type

/** A fitted scaler and the rows it standardised. */
export interface Standardized {
  readonly scaler: Scaler
  readonly z: Float64Array
}

/** Training rows, with the standardisation of `x` when their owner computes it once for several fits. */
export interface Rows extends Head.TrainingSet {
  /** `fitTransform` of `of` (read-only), used while `of` is still the set's `x` (a copy that replaces `x` refits). */
  readonly standardized?: { readonly of: Matrix.Matrix; readonly get: () => Standardized }
}

/** `rows` with their standardisation, computed on the first `fitTransform` and kept by the returned set. */
export const withStandardized = (rows: Head.TrainingSet): Rows => {
  let kept: Standardized | undefined
  return { ...rows, standardized: { of: rows.x, get: () => (kept ??= fit(rows.x)) } }
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

const fit = (x: Matrix.Matrix): Standardized => {
  const scaler = statistics(x)
  return { scaler, z: transform(scaler, x) }
}

/**
 * Fits the scaler on `data.x` and returns it with the transformed rows; the set's own `standardized` when it has one
 * (read-only).
 */
export const fitTransform = (data: Rows): Standardized =>
  data.standardized?.of === data.x ? data.standardized.get() : fit(data.x)

/**
 * Rows for cosine similarity: L2-normalised, standardised when a scaler is given, then L2-normalised again so a dot
 * product is a cosine.
 */
export const unitRows = (scaler: Scaler | undefined, x: Matrix.Matrix): Float64Array => {
  const z = scaler === undefined ? normalizeRows(x) : transform(scaler, x)
  return scaler === undefined ? z : normalizeInto(z, x.rows, x.cols, z)
}

/** `unitRows` for the training rows: fits the scaler first when `standardize`, and returns it with the rows. */
export const fitUnitRows = (data: Rows, standardize: boolean): { readonly scaler?: Scaler; readonly z: Float64Array } => {
  const { x } = data
  if (!standardize) return { z: normalizeRows(x) }
  const { scaler, z } = fitTransform(data)
  return { scaler, z: normalizeInto(z, x.rows, x.cols, new Float64Array(z.length)) }
}
