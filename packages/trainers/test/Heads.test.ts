// A conformance suite every built-in head passes (scikit-learn's check_estimator, in spirit), on real embeddings.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Matrix } from "@loupe/core"
import { Heads } from "@loupe/trainers"
import { correct, split, throughJson } from "./fixtures/helpers.js"

const data = Effect.promise(async () => ({
  train: await split("cats-vs-dogs", "train"),
  test: await split("cats-vs-dogs", "test"),
  flowersTrain: await split("flowers-5", "train", 40),
  flowersTest: await split("flowers-5", "test", 20)
}))

describe("Heads", () => {
  it("lists each built-in kind once", () => {
    const kinds = Heads.heads.map((h) => h.kind)
    expect(new Set(kinds).size).toBe(kinds.length)
    expect(kinds).toEqual(expect.arrayContaining(["logistic-regression", "linear-svm", "knn", "nearest-prototype"]))
  })

  for (const head of Heads.heads) {
    describe(head.kind, () => {
      it.effect("beats chance by a wide margin on cats-vs-dogs (>= 36/40) and on five flower classes", () =>
        Effect.gen(function*() {
          const { flowersTest, flowersTrain, test, train } = yield* data
          const params = yield* Heads.decodeParams(head, {})
          const fitted = yield* head.fit(train.set, params, 1)
          expect(fitted.kind).toBe(head.kind)
          expect([fitted.numClasses, fitted.dim]).toEqual([2, 1280])
          const proba = fitted.predictProba(test.x)
          for (let i = 0; i < proba.rows; i++) {
            expect(proba.data[2 * i]! + proba.data[2 * i + 1]!).toBeCloseTo(1, 5)
            expect(Math.min(proba.data[2 * i]!, proba.data[2 * i + 1]!)).toBeGreaterThanOrEqual(0)
          }
          expect(correct(proba, test.y)).toBeGreaterThanOrEqual(36)
          const flowers = yield* head.fit(flowersTrain.set, params, 1)
          // Five classes, 40 images each: at least twice the 20 % of chance.
          expect(correct(flowers.predictProba(flowersTest.x), flowersTest.y) / flowersTest.y.length).toBeGreaterThan(0.4)
        }))

      it.effect("serialises to JSON and loads back bit for bit", () =>
        Effect.gen(function*() {
          const { test, train } = yield* data
          const fitted = yield* head.fit(train.set, yield* Heads.decodeParams(head, {}), 2)
          const loaded = yield* head.load(throughJson(fitted.toJSON()) as never)
          expect(loaded.toJSON()).toEqual(fitted.toJSON())
          expect(loaded.predictProba(test.x).data).toEqual(fitted.predictProba(test.x).data)
        }))

      it.effect("is a pure function of (data, params, seed)", () =>
        Effect.gen(function*() {
          const { test, train } = yield* data
          const params = yield* Heads.decodeParams(head, {})
          const a = yield* head.fit(train.set, params, 3)
          const b = yield* head.fit(train.set, params, 3)
          expect(b.predictProba(test.x).data).toEqual(a.predictProba(test.x).data)
        }))

      it.effect("rejects unknown params, a corrupt state and a wrong width", () =>
        Effect.gen(function*() {
          const { train } = yield* data
          const unknown = yield* Effect.flip(Heads.decodeParams(head, { surely: "not a param" }))
          expect(unknown.reason).toBe("InvalidParams")
          expect(unknown.field).toBe(`head.${head.kind}`)
          const fitted = yield* head.fit(train.set, yield* Heads.decodeParams(head, {}), 0)
          const json = fitted.toJSON()
          const corrupt = yield* Effect.flip(head.load({ ...json, state: { ...(json.state as object), numClasses: "two" } }))
          expect(corrupt).toMatchObject({ _tag: "TrainerError", reason: "InvalidState" })
          expect(() => fitted.predictProba(Matrix.make(1, 7))).toThrow(/1280-d features, got 7-d/)
        }))
    })
  }
})
