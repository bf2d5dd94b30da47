// The MLP head trains in float32 WebAssembly SIMD here: its weights are float32 values, a seed fixes the fitted head
// bit for bit, and fits running side by side (fibers) each keep their own instance.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Mlp } from "@loupe/trainers"
import { correct, split } from "./fixtures/helpers.js"

const data = Effect.promise(async () => ({ train: await split("cats-vs-dogs", "train"), test: await split("cats-vs-dogs", "test") }))

describe("Mlp", () => {
  it.effect("fits float32 weights, the same for the same seed", () =>
    Effect.gen(function*() {
      const { test, train } = yield* data
      const a = yield* Mlp.fit(train.set, {}, 4)
      const b = yield* Mlp.fit(train.set, {}, 4)
      expect(b.toJSON()).toEqual(a.toJSON())
      for (const layer of a.state.layers) {
        for (const values of [layer.weights, layer.bias]) expect(values.every((v) => Math.fround(v) === v)).toBe(true)
      }
      expect(correct(a.predictProba(test.x), test.y)).toBeGreaterThanOrEqual(36)
    }))

  it.effect("gives each of two interleaved fits what it gets alone", () =>
    Effect.gen(function*() {
      const { train } = yield* data
      const params = { hidden: 16, maxEpochs: 5 }
      const alone = yield* Effect.all([Mlp.fit(train.set, params, 0), Mlp.fit(train.set, params, 1)])
      const together = yield* Effect.all([Mlp.fit(train.set, params, 0), Mlp.fit(train.set, params, 1)], { concurrency: 2 })
      expect(together.map((f) => f.toJSON())).toEqual(alone.map((f) => f.toJSON()))
    }))
})
