// Image tags end to end on real photos and the real MobileNetV2 model: flowers tagged `flower` + species and pets
// tagged `animal` + cat/dog, mixed in one set. The fitted model is scored on held-out photos against the best trivial
// baseline, answers every tag with a probability, and predicts the same after a bundle round trip.
import { afterAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { Bundle, Dataset, Matrix } from "@loupe/core"
import { MultiLabel } from "@loupe/metrics"
import { TagsAutoML } from "@loupe/functions"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { functionsEnvironment } from "./fixtures/environment.js"
import { tagsSamples } from "./fixtures/tagsPhotos.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-tags-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

const run = <A, E>(effect: Effect.Effect<A, E, any>) =>
  Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(functionsEnvironment(path.join(work, "cache")))) as Effect.Effect<A, E>)

// `dandelion` has 2 training photos: too few positives to choose a threshold on, so it keeps 0.5.
const train = tagsSamples("train", { daisy: 4, dandelion: 2, rose: 4, sunflower: 4, cats: 6, dogs: 6 })
const test = tagsSamples("test", { daisy: 3, rose: 3, sunflower: 3, cats: 3, dogs: 3 })

/** micro-F1 of giving every test image the same tag set: every tag, or each tag on at least half the training images. */
const trivialBaseline = (tags: ReadonlyArray<string>, truth: Matrix.Matrix) => {
  const trainTruth = TagsAutoML.truthOf(train, tags)
  const share = tags.map((_, t) => Array.from({ length: trainTruth.rows }, (_, i) => trainTruth.data[i * tags.length + t]!).reduce((a, b) => a + b, 0) / trainTruth.rows)
  const constant = (yes: (t: number) => boolean) => Matrix.make(truth.rows, tags.length, Float32Array.from({ length: truth.rows * tags.length }, (_, j) => (yes(j % tags.length) ? 1 : 0)))
  const microF1 = (predicted: Matrix.Matrix) => MultiLabel.averages(MultiLabel.perTag(truth, predicted, tags)).micro.f1
  return Math.max(microF1(constant(() => true)), microF1(constant((t) => share[t]! >= 0.5)))
}

describe("TagsAutoML on flowers and pets", () => {
  it("fits one-vs-rest heads with per-tag thresholds, beats the trivial baseline on held-out photos, and reloads identically", async () => {
    const dir = path.join(work, "bundle")
    // The backbones live as long as the scope: fit, predict and save in one.
    const options: TagsAutoML.FitOptions = { backbones: ["onnx:mobilenetv2-int8"], l2: [10, 100], seed: 0 }
    const { predicted, result, steps } = await run(Effect.gen(function*() {
      const result = yield* TagsAutoML.fit(Dataset.make(train), options)
      const predicted = yield* TagsAutoML.predictMany(result.fitted, test)
      yield* Bundle.save(result.fitted, dir, { task: "tags" })
      // The steps apart, as a durable retrain runs them, the search's result stored as JSON in between.
      const searched: TagsAutoML.Searched = JSON.parse(JSON.stringify(yield* TagsAutoML.search(Dataset.make(train), options)))
      const cv = yield* TagsAutoML.evaluate(searched)
      const refit = yield* TagsAutoML.refit(Dataset.make(train), options, searched)
      return { predicted, result, steps: { searched, cv, predicted: yield* TagsAutoML.predictMany(refit, test) } }
    }))
    const tags = result.fitted.labels
    expect(tags).toEqual(["animal", "cat", "daisy", "dandelion", "dog", "flower", "rose", "sunflower"])
    expect(result.skipped).toEqual([])
    expect(result.leaderboard.map((r) => r.l2).sort()).toEqual([10, 100])
    expect(result.outOfFold.proba.rows).toBe(train.length)
    // Cross-validated: `animal` and `flower` are easy, and every tag ranks its own photos well.
    expect(result.cv.perTag.map((t) => t.support)).toEqual([12, 6, 4, 2, 6, 14, 4, 4])
    expect(result.cv.meanAveragePrecision!).toBeGreaterThan(0.8)
    const byTag = Object.fromEntries(result.cv.perTag.map((t) => [t.tag, t]))
    expect(byTag["animal"]!.f1).toBeGreaterThan(0.9)
    expect(byTag["flower"]!.f1).toBeGreaterThan(0.9)
    // Thresholds: chosen on out-of-fold F1 where there are enough positives, 0.5 for dandelion's 2.
    const threshold = Object.fromEntries(result.thresholds.map((t) => [t.tag, t]))
    expect(threshold["dandelion"]).toMatchObject({ threshold: 0.5, source: "default", positives: 2 })
    expect(threshold["cat"]!.source).toBe("out-of-fold F1")

    // Held-out photos: every tag answered with a probability, deciding by its threshold.
    expect(predicted.skipped).toEqual([])
    for (const { tags: answers } of predicted.predictions) {
      expect(answers.map((a) => a.tag)).toEqual(tags)
      for (const a of answers) {
        expect(a.probability).toBeGreaterThanOrEqual(0)
        expect(a.probability).toBeLessThanOrEqual(1)
        expect(a.passes).toBe(a.probability >= a.threshold)
      }
    }
    const truth = TagsAutoML.truthOf(test, tags)
    const proba = Matrix.make(test.length, tags.length, Float32Array.from(predicted.predictions.flatMap((p) => p.tags.map((a) => a.probability))))
    const evaluation = await Effect.runPromise(MultiLabel.evaluate(truth, proba, result.thresholds.map((t) => t.threshold), tags))
    const baseline = trivialBaseline(tags, truth)
    expect(baseline).toBeGreaterThan(0.3)
    expect(evaluation.micro.f1).toBeGreaterThan(baseline + 0.25)
    console.log(`tags: held-out micro-F1 ${evaluation.micro.f1.toFixed(3)} (baseline ${baseline.toFixed(3)}), macro-F1 ${evaluation.macro.f1.toFixed(3)}, mAP ${evaluation.meanAveragePrecision?.toFixed(3)}; CV micro-F1 ${result.cv.micro.f1.toFixed(3)}, mAP ${result.cv.meanAveragePrecision?.toFixed(3)}`)

    // Search, evaluate and refit apart give fit's model: the same choice, thresholds, evaluation and answers.
    expect(steps.searched.selected).toEqual(result.selected)
    expect(steps.searched.thresholds).toEqual(result.thresholds)
    expect(steps.cv).toEqual(result.cv)
    expect(steps.predicted.predictions.map((p) => p.tags)).toEqual(predicted.predictions.map((p) => p.tags))

    // The bundle carries the calibrators and thresholds: reloaded, it answers the same.
    const reloaded = await run(Effect.flatMap(Bundle.load(dir), ({ fitted }) => TagsAutoML.predictMany(fitted, test)))
    expect(reloaded.predictions.map((p) => p.tags)).toEqual(predicted.predictions.map((p) => p.tags))
  }, 300_000)

  it("refuses a dataset it cannot train on, naming the tag", async () => {
    const error = await run(Effect.flip(TagsAutoML.fit(Dataset.make(tagsSamples("train", { daisy: 1, cats: 3 })), { backbones: ["onnx:mobilenetv2-int8"] })))
    expect(error.message).toContain("\"daisy\" (1 image)")
  })
})
