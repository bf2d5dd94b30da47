/**
 * Limited-memory BFGS with a strong-Wolfe line search (Nocedal & Wright, algorithms 7.4, 3.5 and 3.6), in Float64.
 * Deterministic: no randomness, a fixed order of operations.
 */
import { dot } from "./Linalg.js"

/** Writes the gradient at `x` into `grad` and returns the objective. */
export type Objective = (x: Float64Array, grad: Float64Array) => number

export interface Options {
  readonly maxIter: number
  /** Stop when the largest absolute gradient entry is at most `tol` (scipy's `pgtol`). */
  readonly tol: number
  /** Pairs kept for the inverse-Hessian estimate. */
  readonly memory?: number
}

export interface Result {
  readonly x: Float64Array
  readonly value: number
  readonly iterations: number
  readonly evaluations: number
  readonly converged: boolean
}

const C1 = 1e-4
const C2 = 0.9

const maxAbs = (v: Float64Array): number => {
  let m = 0
  for (let i = 0; i < v.length; i++) {
    const a = Math.abs(v[i]!)
    if (a > m) m = a
  }
  return m
}

/** The minimiser of the cubic through (a, fa, ga) and (b, fb, gb) when it lies well inside the bracket, else the midpoint. */
const cubicStep = (a: number, fa: number, ga: number, b: number, fb: number, gb: number): number => {
  const d1 = ga + gb - 3 * (fa - fb) / (a - b)
  const disc = d1 * d1 - ga * gb
  const lo = Math.min(a, b)
  const hi = Math.max(a, b)
  if (disc >= 0) {
    const d2 = Math.sign(b - a) * Math.sqrt(disc)
    const t = b - (b - a) * (gb + d2 - d1) / (gb - ga + 2 * d2)
    const margin = 0.1 * (hi - lo)
    if (Number.isFinite(t) && t > lo + margin && t < hi - margin) return t
  }
  return (lo + hi) / 2
}

interface Point {
  readonly t: number
  readonly f: number
  readonly slope: number
}

/**
 * Finds a step satisfying the strong Wolfe conditions along the current direction. `phi(t)` evaluates
 * f(x + t d) into the caller's trial buffers; on success the buffers hold the accepted point.
 */
const lineSearch = (phi: (t: number) => Point, f0: number, slope0: number, t0: number): boolean => {
  const sufficient = (p: Point) => p.f <= f0 + C1 * p.t * slope0
  const curvature = (p: Point) => Math.abs(p.slope) <= -C2 * slope0
  const zoom = (lo: Point, hi: Point): boolean => {
    for (let k = 0; k < 30 && Math.abs(hi.t - lo.t) > 1e-16 * Math.max(1, lo.t); k++) {
      const p = phi(cubicStep(lo.t, lo.f, lo.slope, hi.t, hi.f, hi.slope))
      if (!sufficient(p) || p.f >= lo.f) {
        hi = p
      } else {
        if (curvature(p)) return true
        if (p.slope * (hi.t - lo.t) >= 0) hi = lo
        lo = p
      }
    }
    // Accept the best decreasing point found even if the curvature condition failed.
    if (lo.t > 0 && lo.f < f0) {
      phi(lo.t)
      return true
    }
    return false
  }
  let prev: Point = { t: 0, f: f0, slope: slope0 }
  let t = t0
  for (let k = 0; k < 40; k++) {
    const p = phi(t)
    if (!sufficient(p) || !Number.isFinite(p.f) || (k > 0 && p.f >= prev.f)) return zoom(prev, p)
    if (curvature(p)) return true
    if (p.slope >= 0) return zoom(p, prev)
    prev = p
    t *= 2
  }
  return false
}

export const minimize = (objective: Objective, x0: Float64Array, options: Options): Result => {
  const n = x0.length
  const memory = options.memory ?? 10
  let x = Float64Array.from(x0)
  let g = new Float64Array(n)
  let f = objective(x, g)
  let evaluations = 1
  const s: Array<Float64Array> = []
  const y: Array<Float64Array> = []
  const rho: Array<number> = []
  const alpha = new Float64Array(memory)
  const d = new Float64Array(n)
  let trialX = new Float64Array(n)
  let trialG = new Float64Array(n)
  let trialF = f

  const phi = (t: number): Point => {
    for (let i = 0; i < n; i++) trialX[i] = x[i]! + t * d[i]!
    trialF = objective(trialX, trialG)
    evaluations++
    return { t, f: trialF, slope: dot(trialG, d) }
  }

  let iterations = 0
  let converged = maxAbs(g) <= options.tol
  while (!converged && iterations < options.maxIter) {
    // Two-loop recursion: d = -H g.
    for (let i = 0; i < n; i++) d[i] = -g[i]!
    for (let k = s.length - 1; k >= 0; k--) {
      alpha[k] = rho[k]! * dot(s[k]!, d)
      const yk = y[k]!
      for (let i = 0; i < n; i++) d[i] -= alpha[k]! * yk[i]!
    }
    if (s.length > 0) {
      const last = s.length - 1
      const gamma = dot(s[last]!, y[last]!) / dot(y[last]!, y[last]!)
      for (let i = 0; i < n; i++) d[i] *= gamma
    }
    for (let k = 0; k < s.length; k++) {
      const sk = s[k]!
      const beta = rho[k]! * dot(y[k]!, d)
      for (let i = 0; i < n; i++) d[i] += (alpha[k]! - beta) * sk[i]!
    }
    let slope0 = dot(g, d)
    if (!(slope0 < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      s.length = 0
      y.length = 0
      rho.length = 0
      for (let i = 0; i < n; i++) d[i] = -g[i]!
      slope0 = dot(g, d)
    }
    const t0 = s.length === 0 ? Math.min(1, 1 / Math.sqrt(-slope0)) : 1
    if (!lineSearch(phi, f, slope0, t0)) break

    const sNew = s.length === memory ? s.shift()! : new Float64Array(n)
    const yNew = y.length === memory ? y.shift()! : new Float64Array(n)
    if (rho.length === memory) rho.shift()
    for (let i = 0; i < n; i++) {
      sNew[i] = trialX[i]! - x[i]!
      yNew[i] = trialG[i]! - g[i]!
    }
    const fOld = f
    ;[x, trialX] = [trialX, x]
    ;[g, trialG] = [trialG, g]
    f = trialF
    iterations++
    const sy = dot(sNew, yNew)
    if (sy > 1e-10 * dot(yNew, yNew)) {
      s.push(sNew)
      y.push(yNew)
      rho.push(1 / sy)
    }
    converged = maxAbs(g) <= options.tol || (fOld - f) <= 1e-14 * Math.max(Math.abs(fOld), Math.abs(f), 1)
  }
  return { x, value: f, iterations, evaluations, converged }
}
