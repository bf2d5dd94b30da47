import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Matrix, Progress } from "@loupe/core"
import type { Progress as P } from "@loupe/core"
import { CrossValidation, Knn, LogisticRegression, NearestPrototype, Search } from "@loupe/trainers"
import * as Scaler from "../src/internal/Scaler.js"
import { correct, split } from "./fixtures/helpers.js"

/** Checks every invariant a plan promises, for labels `y` and optional groups. */
const checkIntegrity = (plan: CrossValidation.Plan, y: Int32Array, numClasses: number, groups?: ReadonlyArray<number>) => {
  const n = y.length
  for (let r = 0; r < plan.repeats; r++) {
    const folds = plan.folds.filter((f) => f.repeat === r)
    expect(folds.length).toBe(plan.k)
    const seen = new Int32Array(n)
    for (const fold of folds) {
      expect(fold.train.length + fold.test.length).toBe(n)
      const inTest = new Set(fold.test)
      for (const i of fold.train) expect(inTest.has(i)).toBe(false)
      for (const i of fold.test) seen[i]++
      // Every class stays in every training fold.
      const trainClasses = new Set(Array.from(fold.train, (i) => y[i]))
      expect(trainClasses.size).toBe(numClasses)
      if (groups) {
        const testGroups = new Set(Array.from(fold.test, (i) => groups[i]))
        for (const i of fold.train) expect(testGroups.has(groups[i]!)).toBe(false)
      }
    }
    // Every sample exactly once out of fold per repeat.
    expect(Array.from(seen).every((s) => s === 1)).toBe(true)
    if (!groups && !plan.leaveOneOut) {
      for (let c = 0; c < numClasses; c++) {
        const counts = folds.map((f) => Array.from(f.test).filter((i) => y[i] === c).length)
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1)
      }
    }
  }
}

const labels = (...counts: Array<number>) => Int32Array.from(counts.flatMap((count, c) => new Array<number>(count).fill(c)))

describe("CrossValidation", () => {
  it.effect("stratifies, never repeats a sample, and adapts k to the smallest class", () =>
    Effect.gen(function*() {
      const y = labels(100, 100)
      const five = yield* CrossValidation.plan(y, 2, { repeats: 2, seed: 3 })
      expect(five.k).toBe(5)
      expect(five.folds.length).toBe(10)
      checkIntegrity(five, y, 2)

      const uneven = labels(80, 3, 40)
      const three = yield* CrossValidation.plan(uneven, 3)
      expect(three.k).toBe(3)
      expect(three.leaveOneOut).toBe(false)
      checkIntegrity(three, uneven, 3)

      const tiny = labels(3, 2, 4)
      const loo = yield* CrossValidation.plan(tiny, 3, { repeats: 4 })
      expect(loo.leaveOneOut).toBe(true)
      expect(loo.k).toBe(9)
      expect(loo.repeats).toBe(1)
      checkIntegrity(loo, tiny, 3)
    }))

  it.effect("keeps groups whole (augmented views, duplicate content)", () =>
    Effect.gen(function*() {
      const y = labels(60, 45)
      // Groups of one to four rows, inside a class, as augmented views of one image would be.
      const groups: Array<number> = []
      let g = 0
      for (let i = 0; i < y.length; i++) {
        if (i === 0 || y[i] !== y[i - 1] || groups.filter((x) => x === g).length >= 1 + (g % 4)) g++
        groups.push(g)
      }
      const plan = yield* CrossValidation.plan(y, 2, { groups, repeats: 3, seed: 7 })
      expect(plan.k).toBe(5)
      checkIntegrity(plan, y, 2, groups)
    }))

  it.effect("is deterministic given the seed", () =>
    Effect.gen(function*() {
      const y = labels(30, 30, 30)
      const a = yield* CrossValidation.plan(y, 3, { seed: 11 })
      const b = yield* CrossValidation.plan(y, 3, { seed: 11 })
      const c = yield* CrossValidation.plan(y, 3, { seed: 12 })
      expect(b).toEqual(a)
      expect(c.folds.map((f) => Array.from(f.test))).not.toEqual(a.folds.map((f) => Array.from(f.test)))
    }))

  it.effect("names the class that is too small", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(CrossValidation.plan(labels(10, 1), 2))
      expect(error.reason).toBe("InvalidData")
      expect(error.message).toContain("class 1")
      const groups = yield* Effect.flip(CrossValidation.plan(labels(10, 10), 2, { groups: [1, 2] }))
      expect(groups.field).toBe("options.groups")
    }))

  it.effect("mirror images: a fold never trains on a held-out image's mirror image, and scores the mean of both", () =>
    Effect.gen(function*() {
      const train = yield* Effect.promise(() => split("cats-vs-dogs", "train"))
      // Labels that no feature predicts: a 1-nearest-neighbour head would score 100 % only by finding a held-out
      // image's own copy in its training rows.
      const y = Int32Array.from(train.y, (_, i) => (i * 7919) % 3 === 0 ? 1 : 0)
      const knn1 = Knn.Params.make({ k: 1 })
      // The control: the copies as plain rows, folds unaware of them.
      const leaky = yield* CrossValidation.crossValidate(
        Knn.plugin,
        knn1,
        { x: Matrix.concatRows([train.set.x, train.set.x]), y: Int32Array.from([...y, ...y]), numClasses: 2 },
        { seed: 1 }
      )
      expect(correct(leaky.proba, Int32Array.from([...y, ...y])) / (2 * y.length)).toBeGreaterThan(0.9)
      const mirrored = yield* CrossValidation.crossValidate(Knn.plugin, knn1, { ...train.set, y, mirrored: train.set.x }, { seed: 1 })
      expect(correct(mirrored.proba, y) / y.length).toBeLessThan(0.8)
      // Copies as mirror images change nothing for class means: out-of-fold results equal the plain run's.
      const params = NearestPrototype.Params.make({})
      const plain = yield* CrossValidation.crossValidate(NearestPrototype.plugin, params, train.set, { seed: 1 })
      const copies = yield* CrossValidation.crossValidate(NearestPrototype.plugin, params, { ...train.set, mirrored: train.set.x }, { seed: 1 })
      plain.proba.data.forEach((v, i) => expect(copies.proba.data[i]).toBeCloseTo(v, 5))
    }))

  it.effect("augmented views train with their image's fold only and are never scored", () =>
    Effect.gen(function*() {
      const train = yield* Effect.promise(() => split("cats-vs-dogs", "train"))
      // As above: labels no feature predicts, and two exact copies of every image as its views. A fold that trained
      // on a held-out image's views would find them with 1-NN and score ~100 %.
      const y = Int32Array.from(train.y, (_, i) => (i * 7919) % 3 === 0 ? 1 : 0)
      const n = y.length
      const views = {
        x: Matrix.concatRows([train.set.x, train.set.x]),
        image: Int32Array.from({ length: 2 * n }, (_, r) => r % n)
      }
      const knn1 = Knn.Params.make({ k: 1 })
      const cv = yield* CrossValidation.crossValidate(Knn.plugin, knn1, { ...train.set, y, views }, { seed: 1 })
      expect(cv.proba.rows).toBe(n)
      expect(correct(cv.proba, y) / n).toBeLessThan(0.8)
      // A fold's training rows: its images, then their views (label and group of their image).
      const rows = CrossValidation.trainingRows(CrossValidation.subset({ ...train.set, y, views }, [3, 10]))
      expect(rows.x.rows).toBe(6)
      expect(Array.from(rows.y)).toEqual([y[3], y[10], y[3], y[10], y[3], y[10]])
      expect(Array.from(rows.groups!)).toEqual([0, 1, 0, 1, 0, 1])
      expect(Array.from(rows.x.data.subarray(4 * 1280, 5 * 1280))).toEqual(Array.from(train.set.x.data.subarray(3 * 1280, 4 * 1280)))
    }))

  it.effect("logistic regression reaches >= 96 % 5-fold CV on cats-vs-dogs, with out-of-fold probabilities", () =>
    Effect.gen(function*() {
      const train = yield* Effect.promise(() => split("cats-vs-dogs", "train"))
      const events: Array<P.ProgressEvent> = []
      const result = yield* CrossValidation.crossValidate(LogisticRegression.plugin, LogisticRegression.Params.make({}), train.set, { seed: 1 }).pipe(
        Effect.provide(Progress.Progress.make((e) => events.push(e)))
      )
      expect(result.plan.k).toBe(5)
      expect(result.proba.rows).toBe(200)
      for (let i = 0; i < 200; i++) expect(result.proba.data[2 * i]! + result.proba.data[2 * i + 1]!).toBeCloseTo(1, 5)
      expect(correct(result.proba, train.y) / 200).toBeGreaterThanOrEqual(0.96)
      expect(events.map((e) => e.done)).toEqual([1, 2, 3, 4, 5])
      expect(events.every((e) => e.stage === "cv" && e.total === 5)).toBe(true)

      const refit = yield* CrossValidation.refit(LogisticRegression.plugin, LogisticRegression.Params.make({}), train.set)
      const test = yield* Effect.promise(() => split("cats-vs-dogs", "test"))
      expect(correct(refit.predictProba(test.x), test.y)).toBeGreaterThanOrEqual(38)
    }))

  it.effect("keeps each repeat's out-of-fold probabilities, so each fold is scored alone, with a standard error across folds", () =>
    Effect.gen(function*() {
      const train = yield* Effect.promise(() => split("cats-vs-dogs", "train", 15))
      const result = yield* CrossValidation.crossValidate(NearestPrototype.plugin, NearestPrototype.Params.make({}), train.set, { seed: 2, repeats: 2 })
      expect(result.plan.k).toBe(5)
      expect(result.repeatProba).toHaveLength(2)
      // `proba` is the mean of the repeats.
      result.proba.data.forEach((p, i) => expect(p).toBeCloseTo((result.repeatProba[0]!.data[i]! + result.repeatProba[1]!.data[i]!) / 2, 6))
      const scores = CrossValidation.foldScores(result.plan, result.repeatProba, train.y, Search.accuracy)
      expect(scores).toHaveLength(10)
      // Each fold's accuracy, counted by hand from its own repeat's predictions of the rows it held out.
      result.plan.folds.forEach((fold, f) => {
        const own = result.repeatProba[fold.repeat]!
        const right = Array.from(fold.test).filter((row) => Matrix.argmaxRow(own, row) === train.y[row]).length
        expect(scores[f]).toBeCloseTo(right / fold.test.length, 10)
      })
      const mean = scores.reduce((a, b) => a + b, 0) / scores.length
      const variance = scores.reduce((a, s) => a + (s - mean) ** 2, 0) / (scores.length - 1)
      // Over the folds of one repeat: the second repeat scores the same rows again.
      expect(CrossValidation.foldStandardError(result.plan, scores)).toBeCloseTo(Math.sqrt(variance / 5), 12)
      expect(CrossValidation.foldStandardError(result.plan, [0.5])).toBe(0)
    }))

  it.effect("candidates sharing prepared folds reuse the folds' rows and statistics, with the same results as fresh copies", () =>
    Effect.gen(function*() {
      const train = yield* Effect.promise(() => split("cats-vs-dogs", "train"))
      const data = { ...train.set, mirrored: train.set.x }
      const plan = yield* CrossValidation.plan(data.y, data.numClasses, { seed: 3 })
      const lr = LogisticRegression.Params.make({ l2: 10 })
      const folds = CrossValidation.prepare(data, plan)
      expect(folds.rows).toHaveLength(5)
      // The second and third runs fit on the folds (and standardisation statistics) the first one computed.
      const first = yield* CrossValidation.runPlan(LogisticRegression.plugin, lr, folds)
      const kept = folds.rows!.map((f) => Scaler.fitTransform(f.train))
      const again = yield* CrossValidation.runPlan(LogisticRegression.plugin, lr, folds)
      const prototypes = yield* CrossValidation.runPlan(NearestPrototype.plugin, NearestPrototype.Params.make({}), folds)
      folds.rows!.forEach((f, i) => expect(Scaler.fitTransform(f.train)).toBe(kept[i]))
      // Fresh copies of the same values share nothing with them.
      const copy = { ...data, x: Matrix.make(200, 1280, data.x.data.slice()), mirrored: Matrix.make(200, 1280, data.x.data.slice()) }
      const fresh = yield* CrossValidation.runPlan(LogisticRegression.plugin, lr, CrossValidation.prepare(copy, plan))
      const freshPrototypes = yield* CrossValidation.runPlan(NearestPrototype.plugin, NearestPrototype.Params.make({}), CrossValidation.prepare(copy, plan))
      expect(Array.from(again.proba.data)).toEqual(Array.from(first.proba.data))
      expect(Array.from(fresh.proba.data)).toEqual(Array.from(first.proba.data))
      expect(Array.from(freshPrototypes.proba.data)).toEqual(Array.from(prototypes.proba.data))
    }))
})
