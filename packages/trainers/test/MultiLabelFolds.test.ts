import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Matrix, Prng } from "@loupe/core"
import type { CrossValidation } from "@loupe/trainers"
import { MultiLabelFolds } from "@loupe/trainers"

/**
 * 90 rows, 4 tags of different frequencies that co-occur: `common` on about 60 %, `medium` on 30 %, `rare` on 7
 * rows, `pair` on every row with both `common` and `medium`; some rows have no tag.
 */
const truth = (() => {
  const random = Prng.make(7)
  const n = 90
  const data = new Float32Array(n * 4)
  for (let i = 0; i < n; i++) {
    const common = random.next() < 0.6 ? 1 : 0
    const medium = random.next() < 0.3 ? 1 : 0
    data.set([common, medium, i % 13 === 0 ? 1 : 0, common * medium], i * 4)
  }
  return Matrix.make(n, 4, data)
})()

const count = (rows: ArrayLike<number>, t: number) => Array.from(rows).filter((i) => truth.data[i * 4 + t] === 1).length

/** The largest gap between a fold's count of a tag and its share (count / k), over tags and folds. */
const worstGap = (plan: CrossValidation.Plan) =>
  Math.max(...[0, 1, 2, 3].flatMap((t) => {
    const all = count(Array.from({ length: truth.rows }, (_, i) => i), t)
    return plan.folds.map((fold) => Math.abs(count(fold.test, t) - all / plan.k))
  }))

describe("MultiLabelFolds (iterative stratification)", () => {
  it.effect("every row is in exactly one fold per repeat, and each fold's tag counts stay within one of their share", () =>
    Effect.gen(function*() {
      const plan = yield* MultiLabelFolds.plan(truth, { folds: 5, repeats: 2, seed: 3 })
      expect([plan.k, plan.repeats, plan.folds.length]).toEqual([5, 2, 10])
      for (let r = 0; r < 2; r++) {
        const seen = new Int32Array(truth.rows)
        for (const fold of plan.folds.filter((f) => f.repeat === r)) {
          expect(fold.train.length + fold.test.length).toBe(truth.rows)
          const held = new Set(fold.test)
          expect(Array.from(fold.train).some((i) => held.has(i))).toBe(false)
          for (const i of fold.test) seen[i]++
          // Rows per fold stay near n / k too.
          expect(Math.abs(fold.test.length - truth.rows / 5)).toBeLessThanOrEqual(2)
        }
        expect(Array.from(seen).every((s) => s === 1)).toBe(true)
      }
      // Each fold holds each tag's share, to within one row: 7 rare rows over 5 folds are 1 or 2 per fold.
      expect(worstGap(plan)).toBeLessThanOrEqual(1)
      for (const fold of plan.folds) expect([1, 2]).toContain(count(fold.test, 2))
    }))

  it.effect("closer to the whole set's proportions than plain shuffled folds, and deterministic for a seed", () =>
    Effect.gen(function*() {
      const plan = yield* MultiLabelFolds.plan(truth, { folds: 5, seed: 0 })
      const again = yield* MultiLabelFolds.plan(truth, { folds: 5, seed: 0 })
      const other = yield* MultiLabelFolds.plan(truth, { folds: 5, seed: 1 })
      expect(again).toEqual(plan)
      expect(other.folds.map((f) => Array.from(f.test))).not.toEqual(plan.folds.map((f) => Array.from(f.test)))
      // The same fold sizes cut from a seeded shuffle, ignoring tags.
      const order = Prng.make(0).shuffle(Array.from({ length: truth.rows }, (_, i) => i))
      const shuffled: CrossValidation.Plan = {
        k: 5,
        repeats: 1,
        leaveOneOut: false,
        folds: Array.from({ length: 5 }, (_, f) => ({
          repeat: 0,
          index: f,
          train: Int32Array.from([]),
          test: Int32Array.from(order.filter((_, j) => j % 5 === f))
        }))
      }
      expect(worstGap(plan)).toBeLessThan(worstGap(shuffled))
    }))

  it.effect("groups stay whole, and bad options name their field", () =>
    Effect.gen(function*() {
      const groups = Array.from({ length: truth.rows }, (_, i) => Math.floor(i / 2))
      const plan = yield* MultiLabelFolds.plan(truth, { folds: 4, groups })
      for (const fold of plan.folds) {
        const held = new Set(Array.from(fold.test, (i) => groups[i]))
        expect(Array.from(fold.train).some((i) => held.has(groups[i]!))).toBe(false)
      }
      expect((yield* Effect.flip(MultiLabelFolds.plan(truth, { folds: 1 }))).field).toBe("options.folds")
      expect((yield* Effect.flip(MultiLabelFolds.plan(truth, { groups: [1, 2] }))).field).toBe("options.groups")
      expect((yield* Effect.flip(MultiLabelFolds.plan(Matrix.make(1, 2)))).field).toBe("truth")
    }))
})
