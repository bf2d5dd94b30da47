/** Input checks shared by the data analyses: they throw a `MetricsError` naming the offending field. */
import type { Matrix } from "@loupe/core"
import { MetricsError } from "../MetricsError.js"

export const fail = (reason: MetricsError["reason"], field: string, message: string): never => {
  throw new MetricsError({ reason, field, message })
}

/** `y` holds class indices in `0..numClasses-1` (or -1, "no label", when `unlabelled` is allowed). */
export const labels = (y: Int32Array, numClasses: number, field: string, unlabelled = false): void => {
  for (let i = 0; i < y.length; i++) {
    const c = y[i]!
    if (c >= numClasses || c < (unlabelled ? -1 : 0)) fail("InvalidLabel", field, `${field}[${i}] is ${c}, outside 0..${numClasses - 1}`)
  }
}

/** `m` has `rows` rows of finite values. */
export const matrix = (m: Matrix.Matrix, rows: number, field: string): void => {
  if (m.rows !== rows) fail("ShapeMismatch", field, `${field} has ${m.rows} rows for ${rows} samples`)
  for (let i = 0; i < m.data.length; i++) {
    if (!Number.isFinite(m.data[i]!)) fail("InvalidOption", field, `${field} row ${Math.floor(i / m.cols)} holds ${m.data[i]}`)
  }
}

/** An optional per-row array has one entry per row. */
export const aligned = (values: ArrayLike<unknown> | undefined, rows: number, field: string): void => {
  if (values !== undefined && values.length !== rows) fail("ShapeMismatch", field, `${field} has ${values.length} entries for ${rows} samples`)
}

/** A number option inside `[low, high]`. */
export const range = (value: number, low: number, high: number, field: string): void => {
  if (!(value >= low && value <= high)) fail("InvalidOption", field, `${field} must be in [${low}, ${high}], got ${value}`)
}
