import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Matrix } from "@loupe/core"
import { Classification } from "@loupe/metrics"

/*
 * Expected values computed once with scikit-learn 1.2.1 (Debian python3-sklearn, NumPy 1.24.2) and stored below.
 * ECE is not in scikit-learn; its expected value comes from the independent NumPy lines at the end of `report`.
 * Probabilities are cast to float32 first, as Loupe stores them.
 *
 *   import numpy as np
 *   from sklearn import metrics as M
 *   f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)
 *   def report(y, P, ks):
 *       P = f32(P); y = np.asarray(y); pred = P.argmax(1); L = list(range(P.shape[1]))
 *       p, r, f, s = M.precision_recall_fscore_support(y, pred, labels=L, zero_division=0)
 *       avg = lambda a: M.precision_recall_fscore_support(y, pred, average=a, zero_division=0)[:3]
 *       auc = [M.roc_auc_score(y == c, P[:, c]) if 0 < (y == c).sum() < len(y) else None for c in L]
 *       conf = P.max(1); B = 15; idx = np.clip(np.ceil(conf * B).astype(int) - 1, 0, B - 1)
 *       ece = sum((idx == b).mean() * abs((pred == y)[idx == b].mean() - conf[idx == b].mean())
 *                 for b in range(B) if (idx == b).any())
 *       return dict(accuracy=M.accuracy_score(y, pred), balancedAccuracy=M.balanced_accuracy_score(y, pred),
 *                   confusion=M.confusion_matrix(y, pred, labels=L), precision=p, recall=r, f1=f, support=s,
 *                   macro=avg("macro"), micro=avg("micro"), weighted=avg("weighted"),
 *                   logLoss=M.log_loss(y, P, labels=L),
 *                   topK={k: M.top_k_accuracy_score(y, P, k=k, labels=L) for k in ks},
 *                   rocAucPerClass=auc, ece=ece,
 *                   # C only (every class present): M.roc_auc_score(y, P, multi_class="ovr", average="macro")
 *                   # B only (binary): M.roc_auc_score(y, P[:, 1]))
 *   report(A_y, A_P, [2, 3]); report(B_y, B_P, []); report(C_y, C_P, [2, 3])
 *
 *   # C was drawn once, then rounded to 3 decimals (the literals below are what was scored):
 *   rng = np.random.default_rng(7); C_y = rng.integers(0, 5, 60); C_P = rng.dirichlet(np.ones(5) * 0.7, 60)
 *   C_P[np.arange(60), C_y] += rng.uniform(0, 0.8, 60)
 *   C_P = np.round(C_P / C_P.sum(1, keepdims=True), 3); C_P[:, 4] = np.round(1 - C_P[:, :4].sum(1), 3)
 */

// A: 4 classes; class 3 never occurs in yTrue but is predicted; class 2 is never predicted.
const A_y = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 0, 1, 2, 0, 1]
// prettier-ignore
const A_P = [
  [.70, .10, .15, .05], [.50, .30, .10, .10], [.20, .60, .10, .10], [.40, .05, .25, .30], [.10, .25, .25, .40],
  [.10, .80, .05, .05], [.30, .45, .20, .05], [.55, .35, .05, .05], [.05, .90, .03, .02], [.20, .30, .20, .30],
  [.15, .35, .10, .40], [.45, .10, .40, .05], [.20, .45, .30, .05], [.10, .20, .30, .40], [.60, .28, .07, .05],
  [.85, .05, .05, .05], [.05, .65, .25, .05], [.35, .30, .33, .02], [.30, .20, .10, .40], [.40, .35, .20, .05]
]

// B: binary with tied scores across the classes (0.3 appears for both).
const B_y = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
const B_p1 = [.1, .2, .3, .3, .6, .8, .3, .55, .7, .9, .95, .4]
const B_P = B_p1.map((p) => [Math.round((1 - p) * 100) / 100, p])

// C: 5 classes, 60 samples, informative but imperfect.
const C_y = [4, 3, 3, 4, 2, 3, 4, 1, 0, 1, 1, 4, 4, 0, 2, 4, 0, 3, 0, 2, 4, 1, 1, 1, 3, 1, 4, 2, 2, 2, 2, 2, 2, 4, 4, 3, 3, 3, 1, 4, 2, 1, 4, 0, 4, 3, 0, 0, 2, 0, 0, 2, 4, 2, 4, 4, 4, 3, 2, 2]
// prettier-ignore
const C_P = [
  [0.111, 0, 0.226, 0.394, 0.269], [0.167, 0.269, 0.013, 0.544, 0.007], [0.192, 0.085, 0.11, 0.102, 0.511], [0.106, 0.246, 0.008, 0.393, 0.247],
  [0.02, 0.407, 0.508, 0.063, 0.002], [0.064, 0.035, 0.001, 0.274, 0.626], [0.057, 0.327, 0.105, 0.042, 0.469], [0.022, 0.437, 0.44, 0.1, 0.001],
  [0.389, 0.142, 0.015, 0.013, 0.441], [0.023, 0.357, 0.466, 0.047, 0.107], [0.196, 0.423, 0.014, 0.279, 0.088], [0.374, 0.315, 0.1, 0.049, 0.162],
  [0.438, 0.174, 0.168, 0.054, 0.166], [0.405, 0.003, 0.15, 0.132, 0.31], [0.499, 0.002, 0.471, 0.025, 0.003], [0.011, 0.001, 0.39, 0.192, 0.406],
  [0.416, 0.178, 0.225, 0.006, 0.175], [0.281, 0.009, 0.312, 0.295, 0.103], [0.42, 0.201, 0.029, 0.248, 0.102], [0.266, 0.131, 0.554, 0.019, 0.03],
  [0.482, 0.082, 0.037, 0.069, 0.33], [0.113, 0.396, 0.011, 0.442, 0.038], [0.185, 0.399, 0.073, 0.01, 0.333], [0.22, 0.142, 0.302, 0.043, 0.293],
  [0.009, 0.211, 0.154, 0.51, 0.116], [0.281, 0.524, 0.067, 0.002, 0.126], [0.107, 0.056, 0.512, 0.013, 0.312], [0.393, 0.006, 0.339, 0.09, 0.172],
  [0.283, 0.049, 0.629, 0.004, 0.035], [0.056, 0.004, 0.121, 0.778, 0.041], [0.035, 0.038, 0.454, 0.063, 0.41], [0.007, 0.543, 0.423, 0.024, 0.003],
  [0.054, 0.161, 0.404, 0.236, 0.145], [0.017, 0.016, 0.125, 0.571, 0.271], [0.382, 0.14, 0.139, 0.075, 0.264], [0.18, 0.046, 0.023, 0.545, 0.206],
  [0.463, 0.041, 0.064, 0.359, 0.073], [0.003, 0.173, 0.006, 0.34, 0.478], [0.081, 0.283, 0.304, 0.149, 0.183], [0.083, 0.079, 0.074, 0.306, 0.458],
  [0.047, 0.216, 0.588, 0.049, 0.1], [0.364, 0.346, 0.043, 0.084, 0.163], [0.15, 0.527, 0.041, 0.109, 0.173], [0.191, 0.036, 0.514, 0.134, 0.125],
  [0.081, 0.032, 0.187, 0.161, 0.539], [0.155, 0.151, 0.084, 0.569, 0.041], [0.043, 0.441, 0.078, 0.154, 0.284], [0.575, 0.072, 0.107, 0.02, 0.226],
  [0.166, 0.464, 0.149, 0.214, 0.007], [0.297, 0.387, 0.199, 0.094, 0.023], [0.673, 0.002, 0.074, 0.014, 0.237], [0.157, 0.586, 0.134, 0.057, 0.066],
  [0.486, 0.158, 0.014, 0.047, 0.295], [0.292, 0.229, 0.28, 0.019, 0.18], [0.014, 0.346, 0.11, 0.172, 0.358], [0.01, 0.374, 0.065, 0.118, 0.433],
  [0.186, 0.07, 0.234, 0.002, 0.508], [0.439, 0.168, 0.155, 0.186, 0.052], [0.032, 0.14, 0.604, 0.061, 0.163], [0.013, 0.097, 0.445, 0.444, 0.001]
]

interface Expected {
  readonly accuracy: number
  readonly balancedAccuracy: number
  readonly confusion: ReadonlyArray<ReadonlyArray<number>>
  readonly precision: ReadonlyArray<number>
  readonly recall: ReadonlyArray<number>
  readonly f1: ReadonlyArray<number>
  readonly support: ReadonlyArray<number>
  readonly macro: readonly [number, number, number]
  readonly micro: readonly [number, number, number]
  readonly weighted: readonly [number, number, number]
  readonly logLoss: number
  readonly topK: Readonly<Record<number, number>>
  readonly rocAucPerClass: ReadonlyArray<number | null>
  readonly rocAuc: number
  readonly ece: number
}

const sklearn: Record<"A" | "B" | "C", Expected> = {
  A: {
    accuracy: 0.45,
    balancedAccuracy: 0.3988095238095238,
    confusion: [[4, 1, 0, 2], [2, 5, 0, 1], [3, 1, 0, 1], [0, 0, 0, 0]],
    precision: [0.4444444444444444, 0.7142857142857143, 0, 0],
    recall: [0.5714285714285714, 0.625, 0, 0],
    f1: [0.5, 0.6666666666666666, 0, 0],
    support: [7, 8, 5, 0],
    macro: [0.28968253968253965, 0.29910714285714285, 0.29166666666666663],
    micro: [0.45, 0.45, 0.45],
    weighted: [0.4412698412698413, 0.45, 0.4416666666666666],
    logLoss: 1.0124010255012137,
    topK: { 2: 0.9, 3: 0.95 },
    rocAucPerClass: [0.6923076923076923, 0.8906250000000001, 0.8533333333333334, null],
    // mean of the three defined per-class values (scikit-learn's OvR refuses a class absent from y_true)
    rocAuc: 0.8120886752136753,
    ece: 0.27250000089406967
  },
  B: {
    accuracy: 0.6666666666666666,
    balancedAccuracy: 0.6666666666666666,
    confusion: [[4, 2], [2, 4]],
    precision: [0.6666666666666666, 0.6666666666666666],
    recall: [0.6666666666666666, 0.6666666666666666],
    f1: [0.6666666666666666, 0.6666666666666666],
    support: [6, 6],
    macro: [0.6666666666666666, 0.6666666666666666, 0.6666666666666666],
    micro: [0.6666666666666666, 0.6666666666666666, 0.6666666666666666],
    weighted: [0.6666666666666666, 0.6666666666666666, 0.6666666666666666],
    logLoss: 0.5665843266024707,
    topK: {},
    rocAucPerClass: [0.7777777777777778, 0.7777777777777779],
    rocAuc: 0.7777777777777779, // roc_auc_score(y, P[:, 1])
    ece: 0.22500001390775048
  },
  C: {
    accuracy: 0.45,
    balancedAccuracy: 0.446797385620915,
    confusion: [[5, 2, 1, 0, 1], [1, 3, 4, 1, 0], [3, 3, 8, 1, 0], [2, 0, 1, 4, 3], [5, 1, 1, 3, 7]],
    precision: [0.3125, 0.3333333333333333, 0.5333333333333333, 0.4444444444444444, 0.6363636363636364],
    recall: [0.5555555555555556, 0.3333333333333333, 0.5333333333333333, 0.4, 0.4117647058823529],
    f1: [0.39999999999999997, 0.3333333333333333, 0.5333333333333333, 0.4210526315789474, 0.5],
    support: [9, 9, 15, 10, 17],
    macro: [0.4519949494949495, 0.446797385620915, 0.4375438596491228],
    micro: [0.45, 0.45, 0.45],
    weighted: [0.4845854377104377, 0.45, 0.45517543859649123],
    logLoss: 1.1026363691363243,
    topK: { 2: 0.8833333333333333, 3: 0.9166666666666666 },
    rocAucPerClass: [0.8017429193899782, 0.8322440087145969, 0.874074074074074, 0.866, 0.826265389876881],
    rocAuc: 0.840065278411106, // roc_auc_score(y, P, multi_class="ovr", average="macro")
    ece: 0.14193333387374873
  }
}

const cases = {
  A: { y: A_y, P: A_P },
  B: { y: B_y, P: B_P },
  C: { y: C_y, P: C_P }
} as const

const labelsFor = (k: number) => Array.from({ length: k }, (_, i) => `class ${i}`)

const close = (actual: number | null, expected: number | null, digits = 6) => {
  if (expected === null) expect(actual).toBeNull()
  else expect(actual).toBeCloseTo(expected, digits)
}

describe("Classification against scikit-learn", () => {
  for (const name of ["A", "B", "C"] as const) {
    it.effect(`case ${name}`, () =>
      Effect.gen(function*() {
        const { P, y } = cases[name]
        const want = sklearn[name]
        const proba = Matrix.fromRows(P)
        const labels = labelsFor(proba.cols)
        const ev = yield* Classification.evaluate(Int32Array.from(y), proba, labels, { topK: [2, 3] })
        close(ev.accuracy, want.accuracy, 12)
        close(ev.balancedAccuracy, want.balancedAccuracy, 12)
        expect(ev.confusionMatrix).toEqual(want.confusion)
        ev.perClass.forEach((c, i) => {
          expect(c.label).toBe(labels[i])
          close(c.precision, want.precision[i]!, 12)
          close(c.recall, want.recall[i]!, 12)
          close(c.f1, want.f1[i]!, 12)
          expect(c.support).toBe(want.support[i])
          close(c.rocAuc, want.rocAucPerClass[i]!, 9)
        })
        for (const avg of ["macro", "micro", "weighted"] as const) {
          close(ev[avg].precision, want[avg][0], 12)
          close(ev[avg].recall, want[avg][1], 12)
          close(ev[avg].f1, want[avg][2], 12)
        }
        close(ev.logLoss, want.logLoss, 6)
        expect(ev.topKAccuracy.map((t) => t.k)).toEqual(Object.keys(want.topK).map(Number))
        ev.topKAccuracy.forEach((t) => close(t.accuracy, want.topK[t.k]!, 12))
        close(ev.rocAuc, want.rocAuc, 9)
        close(ev.ece, want.ece, 6)
        expect(ev.total).toBe(y.length)
        expect(ev.correct).toBe(Math.round(want.accuracy * y.length))
      }))
  }
})

// Worked by hand: predictions 0, 1, 1, 1 (sample 1 is a confident mistake).
const hand = {
  y: Int32Array.from([0, 0, 1, 1]),
  proba: Matrix.fromRows([[.9, .1], [.25, .75], [.3, .7], [.15, .85]])
}

describe("Classification by hand", () => {
  it.effect("a 4-sample binary case", () =>
    Effect.gen(function*() {
      const ev = yield* Classification.evaluate(hand.y, hand.proba, ["cat", "dog"])
      expect(ev.accuracy).toBe(0.75)
      expect(ev.correct).toBe(3)
      expect(ev.confusionMatrix).toEqual([[1, 1], [0, 2]])
      // cat: P = 1/1, R = 1/2, F1 = 2/3; dog: P = 2/3, R = 2/2, F1 = 0.8
      expect(ev.perClass.map((c) => [c.precision, c.recall, c.support, c.predicted, c.correct])).toEqual([
        [1, 0.5, 2, 1, 1],
        [2 / 3, 1, 2, 3, 2]
      ])
      close(ev.perClass[0]!.f1, 2 / 3, 12)
      close(ev.perClass[1]!.f1, 0.8, 12)
      close(ev.macro.f1, (2 / 3 + 0.8) / 2, 12)
      close(ev.macro.precision, 5 / 6, 12)
      close(ev.balancedAccuracy, 0.75, 12)
      close(ev.micro.f1, 0.75, 12)
      close(ev.logLoss, -(Math.log(.9) + Math.log(.25) + Math.log(.7) + Math.log(.85)) / 4, 6)
      // dog scores .1 .75 | .7 .85: positives beat negatives in 3 of 4 pairs; the cat column mirrors it
      expect(ev.perClass.map((c) => c.rocAuc)).toEqual([0.75, 0.75])
      expect(ev.rocAuc).toBe(0.75)
      expect(ev.topKAccuracy).toEqual([])
      // confidences .9 (right), .75 (wrong), .7 (right), .85 (right), each alone in its bin of 15
      close(ev.ece, (0.1 + 0.75 + 0.3 + 0.15) / 4, 6)
      expect(ev.calibration).toHaveLength(15)
      const filled = ev.calibration.filter((b) => b.count > 0)
      expect(filled.map((b) => [Math.round(b.lower * 15), b.count, b.accuracy])).toEqual([
        [10, 1, 1],
        [11, 1, 0],
        [12, 1, 1],
        [13, 1, 1]
      ])
      expect(ev.calibration[0]).toEqual({ lower: 0, upper: 1 / 15, count: 0, confidence: null, accuracy: null })
      expect(Classification.mistakes(hand.y, hand.proba)).toEqual([
        { index: 1, trueClass: 0, predictedClass: 1, confidence: Math.fround(0.75) }
      ])
    }))

  it.effect("a class absent from yTrue and from the predictions is left out of the averages", () =>
    Effect.gen(function*() {
      const three = Matrix.fromRows([[.9, .1, 0], [.25, .75, 0], [.3, .7, 0], [.15, .85, 0]])
      const ev = yield* Classification.evaluate(hand.y, three, ["cat", "dog", "bird"])
      const two = yield* Classification.evaluate(hand.y, hand.proba, ["cat", "dog"])
      expect(ev.perClass[2]).toEqual({
        label: "bird", precision: 0, recall: 0, f1: 0, support: 0, predicted: 0, correct: 0, rocAuc: null
      })
      expect(ev.macro).toEqual(two.macro)
      expect(ev.weighted).toEqual(two.weighted)
      expect(ev.balancedAccuracy).toBe(two.balancedAccuracy)
      expect(ev.rocAuc).toBe(0.75)
      expect(ev.topKAccuracy.map((t) => t.k)).toEqual([2])
    }))

  it.effect("ROC-AUC is null when yTrue holds a single class", () =>
    Effect.gen(function*() {
      const ev = yield* Classification.evaluate(
        Int32Array.from([1, 1, 1]),
        Matrix.fromRows([[.2, .8], [.6, .4], [.3, .7]]),
        ["cat", "dog"]
      )
      expect(ev.rocAuc).toBeNull()
      expect(ev.perClass.map((c) => c.rocAuc)).toEqual([null, null])
      close(ev.balancedAccuracy, 2 / 3, 12)
      // cat is predicted once and never right: precision 0, recall 0 (zero_division = 0)
      expect(ev.perClass[0]).toMatchObject({ precision: 0, recall: 0, f1: 0, support: 0, predicted: 1 })
    }))

  it("plain functions agree with evaluate", () => {
    const yPred = Classification.predictions(hand.proba)
    expect([...yPred]).toEqual([0, 1, 1, 1])
    expect(Classification.accuracy(hand.y, yPred)).toBe(0.75)
    expect(Classification.balancedAccuracy(hand.y, yPred, 2)).toBe(0.75)
    expect(Classification.confusionMatrix(hand.y, yPred, 2)).toEqual([[1, 1], [0, 2]])
    expect(Classification.rocAuc(hand.y, hand.proba)).toEqual({ perClass: [0.75, 0.75], macro: 0.75 })
    const C = Matrix.fromRows(C_P)
    close(Classification.topKAccuracy(Int32Array.from(C_y), C, 2), sklearn.C.topK[2]!, 12)
    expect(Classification.topKAccuracy(Int32Array.from(C_y), C, 5)).toBe(1)
    close(Classification.calibration(hand.y, hand.proba, 1).ece, Math.abs(0.75 - (0.9 + 0.75 + 0.7 + 0.85) / 4), 6)
  })
})

describe("Classification input errors name the field", () => {
  const errorOf = (effect: Effect.Effect<unknown, { reason: string; field?: string; message: string }>) =>
    Effect.flip(effect)

  it.effect("shape, label, probability and option mistakes", () =>
    Effect.gen(function*() {
      const short = yield* errorOf(Classification.evaluate(Int32Array.from([0, 1]), hand.proba, ["cat", "dog"]))
      expect(short).toMatchObject({ _tag: "MetricsError", reason: "ShapeMismatch", field: "proba" })
      expect(short.message).toContain("4 rows")

      const labels = yield* errorOf(Classification.evaluate(hand.y, hand.proba, ["cat"]))
      expect(labels).toMatchObject({ reason: "ShapeMismatch", field: "labels" })

      const twice = yield* errorOf(Classification.evaluate(hand.y, hand.proba, ["cat", "cat"]))
      expect(twice).toMatchObject({ reason: "InvalidLabel", field: "labels" })

      const outOfRange = yield* errorOf(Classification.evaluate(Int32Array.from([0, 2, 1, 1]), hand.proba, ["a", "b"]))
      expect(outOfRange).toMatchObject({ reason: "InvalidLabel", field: "yTrue" })
      expect(outOfRange.message).toContain("yTrue[1] is 2")

      const logits = yield* errorOf(
        Classification.evaluate(Int32Array.from([0, 1]), Matrix.fromRows([[2.1, -0.3], [0.2, 1.4]]), ["a", "b"])
      )
      expect(logits).toMatchObject({ reason: "InvalidProbability", field: "proba" })

      const nan = yield* errorOf(
        Classification.evaluate(Int32Array.from([0]), Matrix.fromRows([[NaN, 1]]), ["a", "b"])
      )
      expect(nan).toMatchObject({ reason: "InvalidProbability", field: "proba" })

      const empty = yield* errorOf(Classification.evaluate(new Int32Array(0), Matrix.make(0, 2), ["a", "b"]))
      expect(empty).toMatchObject({ reason: "EmptyInput", field: "yTrue" })

      const bins = yield* errorOf(Classification.evaluate(hand.y, hand.proba, ["a", "b"], { calibrationBins: 0 }))
      expect(bins).toMatchObject({ reason: "InvalidOption", field: "bins" })

      const level = yield* errorOf(
        Classification.evaluate(hand.y, hand.proba, ["a", "b"], { bootstrap: { level: 95 } })
      )
      expect(level).toMatchObject({ reason: "InvalidOption", field: "bootstrap.level" })
    }))

  it("plain functions throw the same typed error", () => {
    expect(() => Classification.accuracy(Int32Array.from([0, 1]), Int32Array.from([0])))
      .toThrow(expect.objectContaining({ _tag: "MetricsError", reason: "ShapeMismatch", field: "yPred" }))
  })
})

describe("Classification.accuracyInterval", () => {
  // 400 samples, 320 right: the normal approximation gives 0.8 +- 1.96 * sqrt(0.8 * 0.2 / 400) = 0.8 +- 0.0392
  const yTrue = new Int32Array(400)
  const yPred = Int32Array.from({ length: 400 }, (_, i) => (i % 5 === 0 ? 1 : 0))

  it("is reproducible for a seed and close to the normal approximation", () => {
    const ci = Classification.accuracyInterval(yTrue, yPred)
    expect(ci).toMatchObject({ level: 0.95, resamples: 1000, seed: 0 })
    expect(Classification.accuracyInterval(yTrue, yPred)).toEqual(ci)
    expect(ci.lower).toBeGreaterThan(0.8 - 0.0392 - 0.01)
    expect(ci.lower).toBeLessThan(0.8 - 0.0392 + 0.01)
    expect(ci.upper).toBeGreaterThan(0.8 + 0.0392 - 0.01)
    expect(ci.upper).toBeLessThan(0.8 + 0.0392 + 0.01)
    const other = Classification.accuracyInterval(yTrue, yPred, { seed: 1 })
    expect(other).not.toEqual(ci)
    const narrow = Classification.accuracyInterval(yTrue, yPred, { level: 0.5 })
    expect(narrow.lower).toBeGreaterThan(ci.lower)
    expect(narrow.upper).toBeLessThan(ci.upper)
  })

  it("is a point when every prediction is right", () => {
    const ci = Classification.accuracyInterval(yTrue, yTrue)
    expect([ci.lower, ci.upper]).toEqual([1, 1])
  })
})

describe("Classification.metrics (the core Metric contract)", () => {
  it("selects by name and agrees with evaluate", () => {
    const names = Classification.metrics.map((m) => m.name)
    expect(new Set(names).size).toBe(names.length)
    expect(names).toEqual(["accuracy", "balancedAccuracy", "macroF1", "weightedF1", "logLoss", "ece"])
    const input = { yTrue: Int32Array.from(C_y), proba: Matrix.fromRows(C_P), numClasses: 5 }
    const score = (name: string) => Option.getOrThrow(Classification.metricNamed(name)).compute(input)
    close(score("accuracy"), sklearn.C.accuracy, 12)
    close(score("balancedAccuracy"), sklearn.C.balancedAccuracy, 12)
    close(score("macroF1"), sklearn.C.macro[2], 12)
    close(score("weightedF1"), sklearn.C.weighted[2], 12)
    close(score("logLoss"), sklearn.C.logLoss, 6)
    close(score("ece"), sklearn.C.ece, 6)
    expect(Option.getOrThrow(Classification.metricNamed("logLoss")).higherIsBetter).toBe(false)
    expect(Option.getOrThrow(Classification.metricNamed("macroF1")).higherIsBetter).toBe(true)
    expect(Option.isNone(Classification.metricNamed("f2"))).toBe(true)
    expect(() => Option.getOrThrow(Classification.metricNamed("accuracy")).compute({ ...input, numClasses: 4 }))
      .toThrow(expect.objectContaining({ reason: "ShapeMismatch" }))
  })
})
