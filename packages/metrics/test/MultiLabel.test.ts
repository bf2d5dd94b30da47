import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { Matrix } from "@loupe/core"
import { MultiLabel } from "@loupe/metrics"

/*
 * Constructed by hand so every expected value can be checked on paper. Tags a, b, c; four samples:
 *
 *   sample  truth   proba (a, b, c)     predicted at 0.5
 *   s0      a b     0.9  0.6  0.2       a b
 *   s1      a       0.8  0.4  0.3       a
 *   s2      b c     0.3  0.7  0.25      b
 *   s3      -       0.85 0.1  0.1       a
 *
 * a: support 2, predicted 3, correct 2: P 2/3, R 1, F1 4/5. Ranked by probability: + - + - , so
 *    AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
 * b: support 2, predicted 2, correct 2: P = R = F1 = 1; ranked + + - -: AP 1.
 * c: support 1, predicted 0: P = R = F1 = 0; ranked - + - -: AP = 1 * 1/2.
 * micro: tp 4, predicted 5, support 5: P = R = F1 = 0.8. macro: P 5/9, R 2/3, F1 (0.8 + 1 + 0) / 3 = 0.6.
 * mAP = (5/6 + 1 + 1/2) / 3 = 7/9. Exact matches: s0 and s1, 1/2.
 */
const tags = ["a", "b", "c"]
const truth = Matrix.make(4, 3, Float32Array.from([1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0]))
const proba = Matrix.make(4, 3, Float32Array.from([0.9, 0.6, 0.2, 0.8, 0.4, 0.3, 0.3, 0.7, 0.25, 0.85, 0.1, 0.1]))
const half = [0.5, 0.5, 0.5]

describe("MultiLabel", () => {
  it("per-tag precision, recall, F1 and counts", () => {
    const scored = MultiLabel.perTag(truth, MultiLabel.decide(proba, half), tags)
    expect(scored.map((t) => [t.tag, t.support, t.predicted, t.correct])).toEqual([["a", 2, 3, 2], ["b", 2, 2, 2], ["c", 1, 0, 0]])
    expect(scored[0]!.precision).toBeCloseTo(2 / 3, 12)
    expect(scored[0]!.recall).toBe(1)
    expect(scored[0]!.f1).toBeCloseTo(0.8, 12)
    expect([scored[1]!.precision, scored[1]!.recall, scored[1]!.f1]).toEqual([1, 1, 1])
    expect([scored[2]!.precision, scored[2]!.recall, scored[2]!.f1]).toEqual([0, 0, 0])
  })

  it("micro and macro averages", () => {
    const { macro, micro } = MultiLabel.averages(MultiLabel.perTag(truth, MultiLabel.decide(proba, half), tags))
    expect(micro.precision).toBeCloseTo(0.8, 12)
    expect(micro.recall).toBeCloseTo(0.8, 12)
    expect(micro.f1).toBeCloseTo(0.8, 12)
    expect(macro.precision).toBeCloseTo(5 / 9, 12)
    expect(macro.recall).toBeCloseTo(2 / 3, 12)
    expect(macro.f1).toBeCloseTo(0.6, 12)
    expect(MultiLabel.uncheckedMicroF1(truth, proba, half)).toBeCloseTo(0.8, 12)
  })

  it("per-tag thresholds decide each tag on its own", () => {
    // c at 0.25 finds s2's c (and s1's 0.3, a false positive); a at 0.86 drops s3 and s1 but keeps s0.
    const decided = MultiLabel.decide(proba, [0.86, 0.5, 0.25])
    expect(Array.from(decided.data)).toEqual([1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0])
  })

  it("average precision per tag, mAP, ties entering together, a tag nobody has", () => {
    const ap = MultiLabel.averagePrecision(truth, proba)
    expect(ap[0]).toBeCloseTo(5 / 6, 12)
    expect(ap[1]).toBe(1)
    expect(ap[2]).toBeCloseTo(0.5, 12)
    expect(MultiLabel.meanAveragePrecision(truth, proba)).toBeCloseTo(7 / 9, 12)
    // One positive tied with one negative: a single threshold, precision 1/2 at recall 1 (scikit-learn gives 0.5).
    const tied = MultiLabel.averagePrecision(Matrix.make(2, 2, Float32Array.from([1, 0, 0, 0])), Matrix.make(2, 2, Float32Array.from([0.5, 0.2, 0.5, 0.1])))
    expect(tied).toEqual([0.5, null])
  })

  it.effect("evaluate gathers everything, and names the bad field", () =>
    Effect.gen(function*() {
      const evaluation = yield* MultiLabel.evaluate(truth, proba, half, tags)
      expect(evaluation.total).toBe(4)
      expect(evaluation.micro.f1).toBeCloseTo(0.8, 12)
      expect(evaluation.macro.f1).toBeCloseTo(0.6, 12)
      expect(evaluation.meanAveragePrecision).toBeCloseTo(7 / 9, 12)
      expect(evaluation.exactMatch).toBe(0.5)
      expect(evaluation.perTag.map((t) => t.averagePrecision)).toEqual(MultiLabel.averagePrecision(truth, proba))

      const notBinary = yield* Effect.exit(MultiLabel.evaluate(Matrix.make(1, 1, Float32Array.from([2])), Matrix.make(1, 1), [0.5], ["a"]))
      expect(Exit.isFailure(notBinary) && JSON.stringify(notBinary.cause)).toContain("\"field\":\"truth\"")
      const shape = yield* Effect.flip(MultiLabel.evaluate(truth, Matrix.make(4, 2), half, tags))
      expect([shape.reason, shape.field]).toEqual(["ShapeMismatch", "proba"])
      const thresholds = yield* Effect.flip(MultiLabel.evaluate(truth, proba, [0.5], tags))
      expect([thresholds.reason, thresholds.field]).toEqual(["ShapeMismatch", "thresholds"])
      const twice = yield* Effect.flip(MultiLabel.evaluate(truth, proba, half, ["a", "a", "c"]))
      expect([twice.reason, twice.field]).toEqual(["InvalidLabel", "tags"])
    }))
})
