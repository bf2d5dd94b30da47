/**
 * The metric contract: a named function of true labels and predicted probabilities.
 *
 * @since 0.1.0
 */
import type { Matrix } from "./Matrix.js"

/**
 * What a metric scores: the true class index per row (`0..numClasses-1`) and the predicted probabilities.
 *
 * @since 0.1.0
 * @category models
 */
export interface MetricInput {
  readonly yTrue: Int32Array
  /** `n x numClasses` predicted probabilities. */
  readonly proba: Matrix
  readonly numClasses: number
}

/**
 * A named metric: `compute` scores predictions, and `higherIsBetter` says which way is better (accuracy: true; log
 * loss: false).
 *
 * @since 0.1.0
 * @category models
 */
export interface Metric {
  readonly name: string
  readonly higherIsBetter: boolean
  readonly compute: (input: MetricInput) => number
}
