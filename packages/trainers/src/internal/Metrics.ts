/**
 * The scores the search ranks by, as core `Metric`s. Local until `@loupe/trainers` depends on `@loupe/metrics`
 * (whose `Classification` module has the same definitions): accuracy, macro-F1 (a class never predicted nor present
 * scores 0, as scikit-learn's `zero_division=0`) and log loss (probabilities clipped to [1e-15, 1]).
 */
import type { Metric } from "@loupe/core"
import { Matrix } from "@loupe/core"

const predicted = (proba: Matrix.Matrix): Int32Array => Int32Array.from({ length: proba.rows }, (_, i) => Matrix.argmaxRow(proba, i))

export const accuracy: Metric.Metric = {
  name: "accuracy",
  higherIsBetter: true,
  compute: ({ proba, yTrue }) => {
    const p = predicted(proba)
    let ok = 0
    for (let i = 0; i < yTrue.length; i++) if (p[i] === yTrue[i]) ok++
    return yTrue.length > 0 ? ok / yTrue.length : 0
  }
}

export const macroF1: Metric.Metric = {
  name: "macroF1",
  higherIsBetter: true,
  compute: ({ numClasses, proba, yTrue }) => {
    const p = predicted(proba)
    const tp = new Float64Array(numClasses)
    const fp = new Float64Array(numClasses)
    const fn = new Float64Array(numClasses)
    for (let i = 0; i < yTrue.length; i++) {
      if (p[i] === yTrue[i]) tp[yTrue[i]!]++
      else {
        fp[p[i]!]++
        fn[yTrue[i]!]++
      }
    }
    let sum = 0
    for (let c = 0; c < numClasses; c++) {
      const denominator = 2 * tp[c]! + fp[c]! + fn[c]!
      sum += denominator > 0 ? (2 * tp[c]!) / denominator : 0
    }
    return sum / numClasses
  }
}

export const logLoss: Metric.Metric = {
  name: "logLoss",
  higherIsBetter: false,
  compute: ({ proba, yTrue }) => {
    let sum = 0
    for (let i = 0; i < yTrue.length; i++) sum -= Math.log(Math.max(proba.data[i * proba.cols + yTrue[i]!]!, 1e-15))
    return yTrue.length > 0 ? sum / yTrue.length : 0
  }
}

export const all: ReadonlyArray<Metric.Metric> = [macroF1, logLoss, accuracy]
