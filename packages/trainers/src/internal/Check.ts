/** Input checks shared by every head: clear, typed errors naming the offending field. */
import type { Head } from "@loupe/core"
import { Effect } from "effect"
import { TrainerError } from "../TrainerError.js"

const invalid = (field: string, message: string) => new TrainerError({ reason: "InvalidData", field, message })

/** Shapes, label range, finite values, weights, and at least one sample per class. */
export const trainingSet = (kind: string, data: Head.TrainingSet): Effect.Effect<void, TrainerError> =>
  Effect.suspend(() => {
    const { x, y, numClasses, weights } = data
    if (!Number.isInteger(numClasses) || numClasses < 2) {
      return invalid("data.numClasses", `${kind}: numClasses must be an integer >= 2, got ${numClasses}`)
    }
    if (x.data.length !== x.rows * x.cols || x.cols < 1) {
      return invalid("data.x", `${kind}: x holds ${x.data.length} values for ${x.rows} x ${x.cols}`)
    }
    if (y.length !== x.rows) return invalid("data.y", `${kind}: ${y.length} labels for ${x.rows} rows`)
    if (weights !== undefined && weights.length !== x.rows) {
      return invalid("data.weights", `${kind}: ${weights.length} weights for ${x.rows} rows`)
    }
    const counts = new Array<number>(numClasses).fill(0)
    for (let i = 0; i < y.length; i++) {
      const label = y[i]!
      if (label < 0 || label >= numClasses) {
        return invalid("data.y", `${kind}: label ${label} at row ${i} is outside 0..${numClasses - 1}`)
      }
      counts[label]++
      if (weights !== undefined && !(weights[i]! >= 0 && Number.isFinite(weights[i]!))) {
        return invalid("data.weights", `${kind}: weight ${weights[i]} at row ${i} is not a finite non-negative number`)
      }
    }
    const empty = counts.findIndex((c) => c === 0)
    if (empty >= 0) return invalid("data.y", `${kind}: class ${empty} has no training samples`)
    for (let i = 0; i < x.data.length; i++) {
      if (!Number.isFinite(x.data[i]!)) {
        return invalid("data.x", `${kind}: non-finite value at row ${Math.floor(i / x.cols)}, column ${i % x.cols}`)
      }
    }
    return Effect.void
  })

/** Per-row weights normalised to sum to the row count (all ones when absent). */
export const rowWeights = (data: Head.TrainingSet): Float64Array => {
  const n = data.y.length
  const w = new Float64Array(n).fill(1)
  if (data.weights === undefined) return w
  let sum = 0
  for (let i = 0; i < n; i++) sum += data.weights[i]!
  for (let i = 0; i < n; i++) w[i] = sum > 0 ? (data.weights[i]! * n) / sum : 1
  return w
}
