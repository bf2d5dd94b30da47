import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Matrix, Prng } from "@loupe/core"
import { Calibration, MultiLabelFolds, OneVsRest } from "@loupe/trainers"
import { throughJson } from "./fixtures/helpers.js"

/**
 * 60 rows in 6 dimensions. Tag 0 is on when feature 0 is high, tag 1 when feature 1 is, independently (with noise,
 * so neither is perfectly separable); tag 2 is on 2 rows only.
 */
const data = (() => {
  const random = Prng.make(11)
  const n = 60
  const x = Matrix.make(n, 6)
  const truth = Matrix.make(n, 3)
  for (let i = 0; i < n; i++) {
    const a = i % 2
    const b = Math.floor(i / 2) % 3 === 0 ? 1 : 0
    for (let j = 0; j < 6; j++) x.data[i * 6 + j] = random.normal() * 0.8
    x.data[i * 6] += 2 * a
    x.data[i * 6 + 1] += 2 * b
    truth.data.set([a, b, i === 5 || i === 40 ? 1 : 0], i * 3)
  }
  return { x, truth }
})()

const f1Of = (t: number, proba: Matrix.Matrix, threshold: number) => {
  let tp = 0
  let wrong = 0
  for (let i = 0; i < proba.rows; i++) {
    const yes = data.truth.data[i * 3 + t] === 1
    const said = proba.data[i * 3 + t]! >= threshold
    if (yes && said) tp++
    else if (yes || said) wrong++
  }
  return (2 * tp) / (2 * tp + wrong)
}

describe("OneVsRest", () => {
  it.effect("cross-validates, calibrates per tag and picks each tag's F1-best threshold, 0.5 for a tag with too few positives", () =>
    Effect.gen(function*() {
      const plan = yield* MultiLabelFolds.plan(data.truth, { folds: 5, seed: 0 })
      const oof = yield* OneVsRest.crossValidate(data.x, data.truth, { l2: 1 }, plan)
      expect([oof.proba.rows, oof.proba.cols]).toEqual([60, 3])
      const { calibrated, calibrators } = yield* OneVsRest.calibrate(data.truth, oof.proba)
      // The same calibration classification uses, applied to the tag's [no, yes] column.
      const column = Matrix.make(60, 2, Float32Array.from({ length: 120 }, (_, j) => (j % 2 === 1 ? oof.proba.data[Math.floor(j / 2) * 3]! : 1 - oof.proba.data[Math.floor(j / 2) * 3]!)))
      const expected = Calibration.apply(calibrators[0]!, column)
      for (let i = 0; i < 60; i++) expect(calibrated.data[i * 3]).toBeCloseTo(expected.data[i * 2 + 1]!, 6)

      const thresholds = OneVsRest.chooseThresholds(data.truth, calibrated)
      expect(thresholds.map((t) => t.source)).toEqual(["out-of-fold F1", "out-of-fold F1", "default"])
      expect(thresholds[2]).toMatchObject({ threshold: 0.5, positives: 2 })
      for (const t of [0, 1]) {
        // No threshold does better than the one chosen, and it is not 0.5's F1 by accident only.
        const chosen = thresholds[t]!
        expect(chosen.f1).toBeCloseTo(f1Of(t, calibrated, chosen.threshold), 12)
        for (let c = 0.01; c < 1; c += 0.01) expect(f1Of(t, calibrated, c)).toBeLessThanOrEqual(chosen.f1 + 1e-12)
        expect(chosen.f1).toBeGreaterThan(0.7)
      }
    }))

  it.effect("a fitted head answers calibrated per-tag probabilities, carries its thresholds, and round-trips through JSON", () =>
    Effect.gen(function*() {
      const heads = yield* OneVsRest.fitTagHeads(data.x, data.truth, { l2: 1 })
      expect(heads.map((h) => h.kind)).toEqual(["logistic-regression", "logistic-regression", "logistic-regression"])
      const calibrators: ReadonlyArray<Calibration.Calibrator> = [1.5, 0.8, 1].map((temperature) => ({ kind: "temperature", temperature }))
      const thresholds = [0.4, 0.6, 0.5].map((threshold) => ({ threshold, source: "out-of-fold F1" as const, positives: 9, f1: 1 }))
      const head = yield* OneVsRest.make({ dim: 6, tags: heads, calibrators, thresholds }, { l2: 1 })
      expect([head.kind, head.numClasses, head.dim]).toEqual(["one-vs-rest", 3, 6])
      expect(OneVsRest.thresholdsOf(head)).toEqual([0.4, 0.6, 0.5])
      const proba = head.predictProba(data.x)
      // Tag 0 ranks its own rows first: its probabilities are independent of tag 1's (rows do not sum to 1).
      const mean = (t: number, on: number) => {
        const rows = Array.from({ length: 60 }, (_, i) => i).filter((i) => data.truth.data[i * 3 + t] === on)
        return rows.reduce((a, i) => a + proba.data[i * 3 + t]!, 0) / rows.length
      }
      expect(mean(0, 1)).toBeGreaterThan(mean(0, 0) + 0.4)
      expect(mean(1, 1)).toBeGreaterThan(mean(1, 0) + 0.4)
      const loaded = yield* OneVsRest.plugin.load(throughJson(head.toJSON()) as never)
      expect(Array.from(loaded.predictProba(data.x).data)).toEqual(Array.from(proba.data))
      expect(OneVsRest.thresholdsOf(loaded)).toEqual([0.4, 0.6, 0.5])
    }))

  it.effect("a tag that a fold sees only one way gets a constant head; fitting on class indices is refused", () =>
    Effect.gen(function*() {
      const allOn = Matrix.make(4, 1, Float32Array.from([1, 1, 1, 1]))
      const heads = yield* OneVsRest.fitTagHeads(Matrix.takeRows(data.x, [0, 1, 2, 3]), allOn)
      expect(heads).toEqual([{ kind: "constant", probability: 1 }])
      const refused = yield* Effect.flip(OneVsRest.plugin.fit({ x: data.x, y: new Int32Array(60), numClasses: 2 }, OneVsRest.Params.make({}), 0))
      expect([refused.reason, refused.field]).toEqual(["InvalidData", "data.y"])
      const bad = yield* Effect.flip(OneVsRest.fitTagHeads(data.x, Matrix.make(3, 1)))
      expect(bad.field).toBe("truth")
    }))
})
