/**
 * One-dimensional logistic fits: Platt scaling `p = sigmoid(a * s + b)` with Platt's smoothed targets, solved by
 * Newton's method with backtracking (Lin, Lin & Weng 2007), and the numerically safe sigmoid and log-sigmoid.
 */

export const sigmoid = (t: number): number => (t >= 0 ? 1 / (1 + Math.exp(-t)) : Math.exp(t) / (1 + Math.exp(t)))

/** log(1 + exp(t)) without overflow. */
export const softplus = (t: number): number => (t > 0 ? t + Math.log1p(Math.exp(-t)) : Math.log1p(Math.exp(t)))

export interface Platt {
  readonly a: number
  readonly b: number
}

/**
 * Fits `p = sigmoid(a * score + b)` to `positive` (row weights optional). Targets are smoothed as in Platt (1999):
 * `(N+ + 1) / (N+ + 2)` and `1 / (N- + 2)`, which keeps the fit finite on separable scores.
 */
export const fitPlatt = (scores: ArrayLike<number>, positive: ArrayLike<boolean>, weights?: ArrayLike<number>): Platt => {
  const n = scores.length
  const w = (i: number) => (weights === undefined ? 1 : weights[i]!)
  let nPos = 0
  let nNeg = 0
  for (let i = 0; i < n; i++) {
    if (positive[i]) nPos += w(i)
    else nNeg += w(i)
  }
  const hi = (nPos + 1) / (nPos + 2)
  const lo = 1 / (nNeg + 2)
  const target = (i: number) => (positive[i] ? hi : lo)
  const objective = (a: number, b: number) => {
    let f = 0
    for (let i = 0; i < n; i++) {
      const t = a * scores[i]! + b
      // Cross-entropy of sigmoid(t) against the smoothed target.
      f += w(i) * (softplus(t) - target(i) * t)
    }
    return f
  }
  let a = 0
  let b = Math.log((nPos + 1) / (nNeg + 1))
  let f = objective(a, b)
  for (let iter = 0; iter < 100; iter++) {
    let ga = 0
    let gb = 0
    let haa = 1e-12
    let hab = 0
    let hbb = 1e-12
    for (let i = 0; i < n; i++) {
      const s = scores[i]!
      const p = sigmoid(a * s + b)
      const r = w(i) * (p - target(i))
      const v = w(i) * p * (1 - p)
      ga += r * s
      gb += r
      haa += v * s * s
      hab += v * s
      hbb += v
    }
    if (Math.abs(ga) < 1e-9 && Math.abs(gb) < 1e-9) break
    const det = haa * hbb - hab * hab
    const da = -(hbb * ga - hab * gb) / det
    const db = -(haa * gb - hab * ga) / det
    const slope = ga * da + gb * db
    let step = 1
    let accepted = false
    while (step >= 1e-10) {
      const fNew = objective(a + step * da, b + step * db)
      if (fNew <= f + 1e-4 * step * slope) {
        a += step * da
        b += step * db
        f = fNew
        accepted = true
        break
      }
      step /= 2
    }
    if (!accepted) break
  }
  return { a, b }
}
