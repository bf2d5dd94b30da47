/**
 * A dense row-major float32 matrix: the currency between backbones, heads and metrics.
 *
 * @since 0.1.0
 */

/**
 * A `rows x cols` matrix of float32 values, row-major: entry (i, j) is `data[i * cols + j]`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Matrix {
  readonly rows: number
  readonly cols: number
  readonly data: Float32Array
}

/**
 * A `rows x cols` matrix over `data`, or over new zeros when `data` is omitted. Throws a `RangeError` when `data`
 * does not hold `rows * cols` values.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (rows: number, cols: number, data?: Float32Array): Matrix => {
  const d = data ?? new Float32Array(rows * cols)
  if (d.length !== rows * cols) {
    throw new RangeError(`Matrix data has ${d.length} values, expected ${rows} x ${cols}`)
  }
  return { rows, cols, data: d }
}

/**
 * The view of row `i` (no copy).
 *
 * @since 0.1.0
 * @category getters
 */
export const row = (m: Matrix, i: number): Float32Array => m.data.subarray(i * m.cols, (i + 1) * m.cols)

/**
 * A new matrix holding the given rows, in order.
 *
 * @since 0.1.0
 * @category combinators
 */
export const takeRows = (m: Matrix, indices: ArrayLike<number>): Matrix => {
  const out = new Float32Array(indices.length * m.cols)
  for (let k = 0; k < indices.length; k++) out.set(row(m, indices[k]!), k * m.cols)
  return { rows: indices.length, cols: m.cols, data: out }
}

/**
 * Stack rows (each of the same length) into a matrix.
 *
 * Throws a `RangeError` when a row's length differs from `cols` (by default the first row's length).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromRows = (rows: ReadonlyArray<ArrayLike<number>>, cols?: number): Matrix => {
  const c = cols ?? rows[0]?.length ?? 0
  const out = new Float32Array(rows.length * c)
  rows.forEach((r, i) => {
    if (r.length !== c) throw new RangeError(`Row ${i} has ${r.length} values, expected ${c}`)
    out.set(r, i * c)
  })
  return { rows: rows.length, cols: c, data: out }
}

/**
 * Concatenate matrices with the same row count side by side (feature concatenation).
 *
 * Throws a `RangeError` when the row counts differ.
 *
 * @since 0.1.0
 * @category combinators
 */
export const concatColumns = (parts: ReadonlyArray<Matrix>): Matrix => {
  const rows = parts[0]?.rows ?? 0
  const cols = parts.reduce((s, p) => s + p.cols, 0)
  const out = new Float32Array(rows * cols)
  for (let i = 0; i < rows; i++) {
    let offset = i * cols
    for (const p of parts) {
      if (p.rows !== rows) throw new RangeError(`Cannot concatenate matrices with ${p.rows} and ${rows} rows`)
      out.set(row(p, i), offset)
      offset += p.cols
    }
  }
  return { rows, cols, data: out }
}

/**
 * Stack matrices with the same column count on top of each other, in order.
 *
 * Throws a `RangeError` when the column counts differ.
 *
 * @since 0.1.0
 * @category combinators
 */
export const concatRows = (parts: ReadonlyArray<Matrix>): Matrix => {
  const cols = parts[0]?.cols ?? 0
  const rows = parts.reduce((s, p) => s + p.rows, 0)
  const out = new Float32Array(rows * cols)
  let offset = 0
  for (const p of parts) {
    if (p.cols !== cols) throw new RangeError(`Cannot stack matrices with ${p.cols} and ${cols} columns`)
    out.set(p.data, offset)
    offset += p.data.length
  }
  return { rows, cols, data: out }
}

/**
 * Index of the largest value in row `i`.
 *
 * The first such index on ties.
 *
 * @since 0.1.0
 * @category getters
 */
export const argmaxRow = (m: Matrix, i: number): number => {
  let best = 0
  let bestValue = -Infinity
  for (let j = 0; j < m.cols; j++) {
    const v = m.data[i * m.cols + j]!
    if (v > bestValue) {
      bestValue = v
      best = j
    }
  }
  return best
}
