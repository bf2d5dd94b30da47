import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Bundle, Pipeline } from "@loupe/core"
import { MultiBackbone } from "@loupe/trainers"
import { Predictor } from "@loupe/deploy"
import * as fs from "node:fs"
import * as path from "node:path"
import { environment, fitBundle, photos, tempDir } from "./fixtures/shared.js"

describe("Predictor", () => {
  const dir = path.join(tempDir("predictor"), "bundle")
  const images = [...photos("test", "cats", 6), ...photos("test", "dogs", 6)]

  it.effect("answers concurrent calls in batches with the pipeline's own predictions", () =>
    Effect.gen(function*() {
      yield* fitBundle(dir)
      const predictor = yield* Predictor.load(dir, { maxBatch: 8 })
      const { fitted } = yield* Bundle.load(dir)
      const expected = yield* Pipeline.predictMany(fitted, images.map((source) => ({ id: source, source })))
      const bytes = images.map((f) => new Uint8Array(fs.readFileSync(f)))
      const got = yield* Effect.forEach(bytes, (b) => predictor.predict(b), { concurrency: "unbounded" })
      got.forEach((prediction, i) => {
        const want = expected.predictions[i]!.prediction
        expect(prediction.labelName).toBe(want.labelName)
        expect(prediction.confidence).toBeCloseTo(want.confidence, 6)
      })
      // The held-out photos are mostly right (12 photos, a 24-photo fit).
      const right = got.filter((p, i) => images[i]!.includes(`/${p.labelName}/`)).length
      expect(right).toBeGreaterThanOrEqual(10)
      expect(predictor.manifest?.labels).toEqual(["cats", "dogs"])
    }).pipe(Effect.scoped, Effect.provide(environment)))

  it.effect("serves mirror-image and multi-backbone pipelines with the pipeline's own predictions", () =>
    Effect.gen(function*() {
      const labels = ["cats", "dogs"]
      const samples = labels.flatMap((label) => photos("train", label, 8).map((source) => ({ id: source, source, label })))
      const mirrored = yield* Pipeline.fit({ backbone: "onnx:mobilenetv2-int8", head: { kind: "logistic-regression" }, mirror: true }, { labels, samples })
      const concat = yield* MultiBackbone.fitConcat(
        { backbones: ["onnx:mobilenetv2-int8", "tfjs:darknet-tiny"], head: { kind: "logistic-regression" } },
        { labels, samples }
      )
      const bytes = images.map((f) => new Uint8Array(fs.readFileSync(f)))
      for (const fitted of [mirrored.fitted, concat.fitted]) {
        const predictor = yield* Predictor.make(fitted, { maxBatch: 4 })
        const expected = yield* Pipeline.predictMany(fitted, images.map((source) => ({ id: source, source })))
        const got = yield* Effect.forEach(bytes, (b) => predictor.predict(b), { concurrency: "unbounded" })
        got.forEach((prediction, i) => {
          expect(prediction.labelName).toBe(expected.predictions[i]!.prediction.labelName)
          expect(prediction.confidence).toBeCloseTo(expected.predictions[i]!.prediction.confidence, 5)
        })
      }
      // Mirror images change the answer: the mean differs from the image alone.
      const alone = yield* Pipeline.predictMany({ ...mirrored.fitted, mirror: false }, images.map((source) => ({ id: source, source })))
      const withMirror = yield* Pipeline.predictMany(mirrored.fitted, images.map((source) => ({ id: source, source })))
      const moved = alone.predictions.some((p, i) => Math.abs(p.prediction.confidence - withMirror.predictions[i]!.prediction.confidence) > 1e-3)
      expect(moved).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(environment)))

  it.effect("fails one bad image with InvalidImage and still serves the others in its batch", () =>
    Effect.gen(function*() {
      const predictor = yield* Predictor.load(dir)
      const good = new Uint8Array(fs.readFileSync(images[0]!))
      const truncated = good.subarray(0, 2000)
      const [a, b] = yield* Effect.all([Effect.either(predictor.predict(truncated)), predictor.predict(good)], {
        concurrency: "unbounded"
      })
      expect(Either.isLeft(a) && a.left.reason).toBe("InvalidImage")
      expect(Either.isLeft(a) && a.left.field).toBe("data")
      expect(b.labelName).toBe("cats")
    }).pipe(Effect.scoped, Effect.provide(environment)))

  it.effect("names the file when a bundle cannot be loaded", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.either(Predictor.load(path.join(dir, "nope")))
      expect(Either.isLeft(missing) && missing.left.reason).toBe("BundleFailed")
      expect(Either.isLeft(missing) && missing.left.file).toMatch(/nope/)
    }).pipe(Effect.scoped, Effect.provide(environment)))
})
