import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Matrix } from "@loupe/core"
import { LogisticRegression } from "@loupe/trainers"
import { correct, split, throughJson } from "./fixtures/helpers.js"

describe("LogisticRegression", () => {
  it.effect("decodes params with defaults and rejects unknown keys", () =>
    Effect.gen(function*() {
      expect(LogisticRegression.Params.make({})).toEqual({ l2: 1, maxIter: 500, tol: 1e-4 })
      const error = yield* Effect.flip(
        LogisticRegression.plugin.load({ kind: "logistic-regression", params: { C: 1 }, state: {} })
      )
      expect(error.reason).toBe("InvalidState")
      expect(error.field).toBe("params")
    }))

  it.effect("gets at least 38/40 on cats-vs-dogs test with MobileNetV2 embeddings", () =>
    Effect.gen(function*() {
      const train = yield* Effect.promise(() => split("cats-vs-dogs", "train"))
      const test = yield* Effect.promise(() => split("cats-vs-dogs", "test"))
      const head = yield* LogisticRegression.fit(train.set)
      expect(head.state.converged).toBe(true)
      expect(head.numClasses).toBe(2)
      expect(head.dim).toBe(1280)
      const proba = head.predictProba(test.x)
      expect(proba.rows).toBe(40)
      for (let i = 0; i < proba.rows; i++) expect(proba.data[i * 2]! + proba.data[i * 2 + 1]!).toBeCloseTo(1, 5)
      expect(correct(proba, test.y)).toBeGreaterThanOrEqual(38)
    }))

  it.effect("fits the multinomial form on five flower classes", () =>
    Effect.gen(function*() {
      const train = yield* Effect.promise(() => split("flowers-5", "train", 40))
      const test = yield* Effect.promise(() => split("flowers-5", "test", 20))
      const set = { ...train.set, numClasses: 5 }
      const head = yield* LogisticRegression.fit(set, { l2: 10 })
      expect(head.state.weights.length).toBe(5 * 1280)
      // 5 classes, 40 images each: far above the 20 % of chance.
      expect(correct(head.predictProba(test.x), test.y) / test.y.length).toBeGreaterThan(0.6)
    }))

  it.effect("serialises to JSON and loads back bit for bit", () =>
    Effect.gen(function*() {
      const train = yield* Effect.promise(() => split("cats-vs-dogs", "train"))
      const test = yield* Effect.promise(() => split("cats-vs-dogs", "test"))
      const head = yield* LogisticRegression.fit(train.set, { l2: 0.5 })
      const loaded = yield* LogisticRegression.load(throughJson(head.toJSON()) as never)
      expect(loaded.params).toEqual(head.params)
      expect(loaded.predictProba(test.x).data).toEqual(head.predictProba(test.x).data)
    }))

  it.effect("names the offending field on bad input", () =>
    Effect.gen(function*() {
      const x = Matrix.make(3, 2, Float32Array.from([1, 0, 0, 1, 1, 1]))
      const badLabel = yield* Effect.flip(LogisticRegression.fit({ x, y: Int32Array.from([0, 1, 2]), numClasses: 2 }))
      expect(badLabel.reason).toBe("InvalidData")
      expect(badLabel.field).toBe("data.y")
      const nan = Matrix.make(3, 2, Float32Array.from([1, 0, NaN, 1, 1, 1]))
      const badValue = yield* Effect.flip(LogisticRegression.fit({ x: nan, y: Int32Array.from([0, 1, 0]), numClasses: 2 }))
      expect(badValue.field).toBe("data.x")
      const badParams = yield* Effect.flip(LogisticRegression.fit({ x, y: Int32Array.from([0, 1, 0]), numClasses: 2 }, { l2: -1 }))
      expect(badParams.reason).toBe("InvalidParams")
      const head = yield* LogisticRegression.fit({ x, y: Int32Array.from([0, 1, 0]), numClasses: 2 })
      expect(() => head.predictProba(Matrix.make(1, 3))).toThrow(/2-d features, got 3-d/)
    }))
})
