/** Float64 vector kernels, unrolled by four so V8 keeps independent accumulators in registers. */

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>, n = a.length, aOffset = 0, bOffset = 0): number => {
  let s0 = 0
  let s1 = 0
  let s2 = 0
  let s3 = 0
  let j = 0
  for (; j + 3 < n; j += 4) {
    s0 += a[aOffset + j]! * b[bOffset + j]!
    s1 += a[aOffset + j + 1]! * b[bOffset + j + 1]!
    s2 += a[aOffset + j + 2]! * b[bOffset + j + 2]!
    s3 += a[aOffset + j + 3]! * b[bOffset + j + 3]!
  }
  for (; j < n; j++) s0 += a[aOffset + j]! * b[bOffset + j]!
  return s0 + s1 + s2 + s3
}

/** `y[yOffset..] += alpha * x[xOffset..]` over `n` entries. */
export const axpy = (
  alpha: number,
  x: ArrayLike<number>,
  y: Float64Array,
  n: number,
  xOffset = 0,
  yOffset = 0
): void => {
  let j = 0
  for (; j + 3 < n; j += 4) {
    y[yOffset + j] += alpha * x[xOffset + j]!
    y[yOffset + j + 1] += alpha * x[xOffset + j + 1]!
    y[yOffset + j + 2] += alpha * x[xOffset + j + 2]!
    y[yOffset + j + 3] += alpha * x[xOffset + j + 3]!
  }
  for (; j < n; j++) y[yOffset + j] += alpha * x[xOffset + j]!
}

/** In place: `z[offset..offset+k)` becomes its softmax; returns log-sum-exp of the inputs. */
export const softmaxInPlace = (z: Float64Array, offset: number, k: number): number => {
  let max = -Infinity
  for (let c = 0; c < k; c++) if (z[offset + c]! > max) max = z[offset + c]!
  let sum = 0
  for (let c = 0; c < k; c++) {
    const e = Math.exp(z[offset + c]! - max)
    z[offset + c] = e
    sum += e
  }
  for (let c = 0; c < k; c++) z[offset + c] /= sum
  return max + Math.log(sum)
}

/**
 * `out[outOffset + k] = <W row (first + k), x[xOffset .. xOffset + dim)>` for `k < count`, `W` row-major `dim` wide.
 * Four rows share one pass over `x`, which roughly halves the time of separate dot products.
 */
export const dotRows = (
  w: Float64Array,
  first: number,
  count: number,
  dim: number,
  x: Float64Array,
  xOffset: number,
  out: Float64Array,
  outOffset: number
): void => {
  let k = 0
  for (; k + 3 < count; k += 4) {
    const w0 = (first + k) * dim
    const w1 = w0 + dim
    const w2 = w1 + dim
    const w3 = w2 + dim
    let a0 = 0
    let a1 = 0
    let a2 = 0
    let a3 = 0
    for (let j = 0; j < dim; j++) {
      const v = x[xOffset + j]!
      a0 += v * w[w0 + j]!
      a1 += v * w[w1 + j]!
      a2 += v * w[w2 + j]!
      a3 += v * w[w3 + j]!
    }
    out[outOffset + k] = a0
    out[outOffset + k + 1] = a1
    out[outOffset + k + 2] = a2
    out[outOffset + k + 3] = a3
  }
  for (; k < count; k++) out[outOffset + k] = dot(w, x, dim, (first + k) * dim, xOffset)
}

/**
 * `out[i * bRows + k] = <a row i, b row k>` for every row of `a` (`aRows x dim`) and of `b` (`bRows x dim`), each value
 * exactly as `dotRows(b, 0, bRows, dim, a, i * dim, out, i * bRows)` gives it. Two rows of `a` meet four rows of `b`
 * per pass, so each loaded value serves two or four products (1.7x faster than `dotRows` row by row for kNN's
 * similarities).
 */
export const crossDots = (a: Float64Array, aRows: number, b: Float64Array, bRows: number, dim: number, out: Float64Array): void => {
  const blocked = bRows - (bRows % 4)
  let i = 0
  for (; i + 1 < aRows; i += 2) {
    const p = i * dim
    const q = p + dim
    for (let k = 0; k < blocked; k += 4) {
      const r0 = k * dim
      const r1 = r0 + dim
      const r2 = r1 + dim
      const r3 = r2 + dim
      let a0 = 0
      let a1 = 0
      let a2 = 0
      let a3 = 0
      let b0 = 0
      let b1 = 0
      let b2 = 0
      let b3 = 0
      for (let j = 0; j < dim; j++) {
        const u = a[p + j]!
        const v = a[q + j]!
        const t0 = b[r0 + j]!
        const t1 = b[r1 + j]!
        const t2 = b[r2 + j]!
        const t3 = b[r3 + j]!
        a0 += u * t0
        a1 += u * t1
        a2 += u * t2
        a3 += u * t3
        b0 += v * t0
        b1 += v * t1
        b2 += v * t2
        b3 += v * t3
      }
      const o = i * bRows + k
      out[o] = a0
      out[o + 1] = a1
      out[o + 2] = a2
      out[o + 3] = a3
      out[o + bRows] = b0
      out[o + bRows + 1] = b1
      out[o + bRows + 2] = b2
      out[o + bRows + 3] = b3
    }
    // The last `bRows % 4` rows, as dotRows computes them.
    dotRows(b, blocked, bRows - blocked, dim, a, p, out, i * bRows + blocked)
    dotRows(b, blocked, bRows - blocked, dim, a, q, out, (i + 1) * bRows + blocked)
  }
  if (i < aRows) dotRows(b, 0, bRows, dim, a, i * dim, out, i * bRows)
}

/**
 * `g[gOffset + j] += sum_k coefficients[k] * x[offsets[k] + j]` for `j < dim`, `k < count`: a weighted sum of rows of
 * `x` (a gradient's outer products, row by row). Eight rows share one read and write of `g`, then four, then one.
 */
export const addRowCombination = (
  x: ArrayLike<number>,
  offsets: Int32Array,
  coefficients: Float64Array,
  count: number,
  dim: number,
  g: Float64Array,
  gOffset: number
): void => {
  let k = 0
  for (; k + 7 < count; k += 8) {
    const x0 = offsets[k]!
    const x1 = offsets[k + 1]!
    const x2 = offsets[k + 2]!
    const x3 = offsets[k + 3]!
    const x4 = offsets[k + 4]!
    const x5 = offsets[k + 5]!
    const x6 = offsets[k + 6]!
    const x7 = offsets[k + 7]!
    const c0 = coefficients[k]!
    const c1 = coefficients[k + 1]!
    const c2 = coefficients[k + 2]!
    const c3 = coefficients[k + 3]!
    const c4 = coefficients[k + 4]!
    const c5 = coefficients[k + 5]!
    const c6 = coefficients[k + 6]!
    const c7 = coefficients[k + 7]!
    for (let j = 0; j < dim; j++) {
      g[gOffset + j] += c0 * x[x0 + j]! + c1 * x[x1 + j]! + c2 * x[x2 + j]! + c3 * x[x3 + j]! +
        c4 * x[x4 + j]! + c5 * x[x5 + j]! + c6 * x[x6 + j]! + c7 * x[x7 + j]!
    }
  }
  for (; k + 3 < count; k += 4) {
    const x0 = offsets[k]!
    const x1 = offsets[k + 1]!
    const x2 = offsets[k + 2]!
    const x3 = offsets[k + 3]!
    const c0 = coefficients[k]!
    const c1 = coefficients[k + 1]!
    const c2 = coefficients[k + 2]!
    const c3 = coefficients[k + 3]!
    for (let j = 0; j < dim; j++) g[gOffset + j] += c0 * x[x0 + j]! + c1 * x[x1 + j]! + c2 * x[x2 + j]! + c3 * x[x3 + j]!
  }
  for (; k < count; k++) axpy(coefficients[k]!, x, g, dim, offsets[k]!, gOffset)
}
