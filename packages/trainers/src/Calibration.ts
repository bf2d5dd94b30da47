/**
 * Calibration of predicted probabilities, fitted on out-of-fold predictions (so it never sees a model's own training
 * rows), and the expected calibration error that tells whether it helped.
 *
 * - **Temperature scaling** (Guo et al. 2017), any number of classes: `p' = softmax(log(p) / T)`, with `T` minimising
 *   the log loss (convex in `1 / T`, solved by Newton's method).
 * - **Platt scaling**, two classes: `p1' = sigmoid(a * logit(p1) + b)`, fitted as in Platt (1999).
 * - **ECE**: equal-width bins over the top-class confidence; the bin-weighted mean of |accuracy - confidence|.
 *
 * `fit` uses temperature scaling by default (`method: "auto"`): one parameter, the ranking kept, and on
 * cats-vs-dogs out-of-fold predictions it lowered ECE where Platt's smoothed targets raised it for two of four heads.
 * Platt is there on request for two classes. `fit` reports ECE before and after. A calibrator is data and
 * serialises to JSON exactly.
 *
 * @since 0.1.0
 */
import type { Matrix } from "@loupe/core"
import { Effect, Schema } from "effect"
import { fitPlatt, sigmoid } from "./internal/Sigmoid.js"
import { TrainerError } from "./TrainerError.js"

/**
 * A temperature-scaling calibrator: `p' = softmax(log(p) / temperature)`, `temperature` positive and finite (above 1
 * softens, below 1 sharpens).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Temperature = Schema.Struct({
  kind: Schema.Literal("temperature"),
  temperature: Schema.Number.pipe(Schema.positive(), Schema.finite())
})

/**
 * A Platt-scaling calibrator for two classes: `p1' = sigmoid(a * logit(p1) + b)`, `a` and `b` finite.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Platt = Schema.Struct({
  kind: Schema.Literal("platt"),
  a: Schema.Number.pipe(Schema.finite()),
  b: Schema.Number.pipe(Schema.finite())
})

/**
 * A fitted calibrator; JSON-serialisable as is.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Calibrator = Schema.Union(Temperature, Platt)
/**
 * A decoded calibrator, temperature or Platt.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Calibrator = typeof Calibrator.Type

/**
 * Which calibrator `fit` uses: `"auto"` (the default: temperature scaling), `"temperature"`, or `"platt"` (two classes
 * only).
 *
 * @since 0.1.0
 * @category models
 */
export type Method = "auto" | "temperature" | "platt"

/**
 * `fit`'s options: `method` (default `"auto"`) and `bins`, the number of equal-width ECE bins (default 10).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly method?: Method
  /** ECE bins (default 10). */
  readonly bins?: number
}

/**
 * What `fit` returns: the calibrator, the ECE of the given probabilities before and after calibration, and the
 * calibrated probabilities (`rows x classes`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Result {
  readonly calibrator: Calibrator
  /** ECE of the given probabilities. */
  readonly eceBefore: number
  /** ECE after applying the calibrator to the same probabilities. */
  readonly eceAfter: number
  readonly calibrated: Matrix.Matrix
}

const EPS = 1e-12

/**
 * Expected calibration error with `bins` equal-width confidence bins (default 10).
 *
 * @since 0.1.0
 * @category metrics
 */
export const ece = (proba: Matrix.Matrix, y: Int32Array, bins = 10): number => {
  const k = proba.cols
  const count = new Float64Array(bins)
  const confidence = new Float64Array(bins)
  const hits = new Float64Array(bins)
  for (let i = 0; i < proba.rows; i++) {
    let best = 0
    for (let c = 1; c < k; c++) if (proba.data[i * k + c]! > proba.data[i * k + best]!) best = c
    const p = proba.data[i * k + best]!
    const bin = Math.min(bins - 1, Math.floor(p * bins))
    count[bin]++
    confidence[bin] += p
    if (best === y[i]) hits[bin]++
  }
  let total = 0
  for (let b = 0; b < bins; b++) if (count[b]! > 0) total += Math.abs(hits[b]! - confidence[b]!)
  return proba.rows > 0 ? total / proba.rows : 0
}

/**
 * Applies a calibrator; rows still sum to 1.
 *
 * @since 0.1.0
 * @category utils
 */
export const apply = (calibrator: Calibrator, proba: Matrix.Matrix): Matrix.Matrix => {
  const k = proba.cols
  const out = new Float32Array(proba.data.length)
  const row = new Float64Array(k)
  for (let i = 0; i < proba.rows; i++) {
    if (calibrator.kind === "platt") {
      const p1 = sigmoid(calibrator.a * logit(proba.data[i * k + 1]!) + calibrator.b)
      out[i * k] = 1 - p1
      out[i * k + 1] = p1
      continue
    }
    let max = -Infinity
    for (let c = 0; c < k; c++) {
      row[c] = Math.log(Math.max(proba.data[i * k + c]!, EPS)) / calibrator.temperature
      if (row[c]! > max) max = row[c]!
    }
    let sum = 0
    for (let c = 0; c < k; c++) {
      row[c] = Math.exp(row[c]! - max)
      sum += row[c]!
    }
    for (let c = 0; c < k; c++) out[i * k + c] = row[c]! / sum
  }
  return { rows: proba.rows, cols: k, data: out }
}

const logit = (p: number) => {
  const q = Math.min(Math.max(p, EPS), 1 - EPS)
  return Math.log(q / (1 - q))
}

/** The temperature minimising the log loss of `softmax(log(p) / T)`: Newton on `beta = 1 / T`, which is convex. */
const fitTemperature = (proba: Matrix.Matrix, y: Int32Array): number => {
  const k = proba.cols
  const n = proba.rows
  const logp = Float64Array.from(proba.data, (p) => Math.log(Math.max(p, EPS)))
  const e = new Float64Array(k)
  const loss = (beta: number) => {
    let f = 0
    for (let i = 0; i < n; i++) {
      let max = -Infinity
      for (let c = 0; c < k; c++) max = Math.max(max, beta * logp[i * k + c]!)
      let sum = 0
      for (let c = 0; c < k; c++) sum += Math.exp(beta * logp[i * k + c]! - max)
      f += max + Math.log(sum) - beta * logp[i * k + y[i]!]!
    }
    return f / n
  }
  let beta = 1
  let f = loss(beta)
  for (let iter = 0; iter < 50; iter++) {
    let g = 0
    let h = 0
    for (let i = 0; i < n; i++) {
      let max = -Infinity
      for (let c = 0; c < k; c++) max = Math.max(max, beta * logp[i * k + c]!)
      let sum = 0
      for (let c = 0; c < k; c++) {
        e[c] = Math.exp(beta * logp[i * k + c]! - max)
        sum += e[c]!
      }
      let mean = 0
      let second = 0
      for (let c = 0; c < k; c++) {
        const l = logp[i * k + c]!
        mean += (e[c]! / sum) * l
        second += (e[c]! / sum) * l * l
      }
      g += mean - logp[i * k + y[i]!]!
      h += second - mean * mean
    }
    g /= n
    h /= n
    if (Math.abs(g) < 1e-10) break
    // Newton step, halved until the loss decreases and beta stays positive.
    let step = h > 1e-12 ? -g / h : -Math.sign(g) * beta
    let moved = false
    for (let halving = 0; halving < 40; halving++) {
      const next = beta + step
      if (next > 1e-6) {
        const fNext = loss(next)
        if (fNext < f) {
          beta = next
          f = fNext
          moved = true
          break
        }
      }
      step /= 2
    }
    if (!moved) break
  }
  return 1 / beta
}

const invalid = (field: string, message: string) => new TrainerError({ reason: "InvalidData", field, message })

/**
 * Fits a calibrator on (out-of-fold) probabilities and their labels, and reports ECE before and after. Fails with
 * `TrainerError` `InvalidData` naming `y` (a label count that differs from the rows, or a label outside the classes),
 * `proba` (no rows) or `method` (Platt asked for with other than 2 classes).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fit = (proba: Matrix.Matrix, y: Int32Array, options: Options = {}): Effect.Effect<Result, TrainerError> =>
  Effect.suspend((): Effect.Effect<Result, TrainerError> => {
    const method = options.method ?? "auto"
    const bins = options.bins ?? 10
    if (y.length !== proba.rows) return invalid("y", `${y.length} labels for ${proba.rows} rows`)
    if (proba.rows === 0) return invalid("proba", "no rows to calibrate on")
    if (y.some((label) => label < 0 || label >= proba.cols)) return invalid("y", `a label is outside 0..${proba.cols - 1}`)
    if (method === "platt" && proba.cols !== 2) return invalid("method", `Platt scaling needs 2 classes, got ${proba.cols}`)
    const calibrator: Calibrator = method === "platt"
      ? {
        kind: "platt",
        ...fitPlatt(Array.from({ length: proba.rows }, (_, i) => logit(proba.data[i * 2 + 1]!)), Array.from(y, (l) => l === 1))
      }
      : { kind: "temperature", temperature: fitTemperature(proba, y) }
    const calibrated = apply(calibrator, proba)
    return Effect.succeed({ calibrator, eceBefore: ece(proba, y, bins), eceAfter: ece(calibrated, y, bins), calibrated })
  })

/**
 * Decodes a calibrator from JSON (the output of `JSON.stringify` on a `Calibrator`). Fails with `TrainerError`
 * `InvalidState` (field `calibrator`) when it does not decode or carries unknown keys.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (json: unknown): Effect.Effect<Calibrator, TrainerError> =>
  Schema.decodeUnknown(Calibrator, { onExcessProperty: "error" })(json).pipe(
    Effect.mapError((e) => new TrainerError({ reason: "InvalidState", field: "calibrator", message: e.message, cause: e }))
  )
