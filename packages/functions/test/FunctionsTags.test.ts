// Image tags (multi-label) through the function API, end to end, on a real multi-label set built at run time from the
// shared photos: flowers-5 photos tagged `flower` and their species, cats-vs-dogs photos tagged `animal` and `cat` or
// `dog` (`fixtures/tagsPhotos`). The `fast` preset (the offline MobileNetV2-int8) with 3 folds; SQLite in process.
// Workers sleep on the real clock, so these tests run with `it.live`.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Functions } from "@loupe/functions"
import { functionsEnvironment } from "./fixtures/environment.js"
import { tagsSamples } from "./fixtures/tagsPhotos.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-functions-tags-"))

const functionsIn = (dir: string) =>
  Functions.layerDirectory(dir, { debounce: "100 millis" }).pipe(Layer.provide(functionsEnvironment(path.join(work, "cache"))))

/** Tagged samples as the function API takes them. */
const inputs = (split: "train" | "test", counts: Readonly<Record<string, number>>): Array<Functions.SampleInput> =>
  tagsSamples(split, counts).map((s) => ({ data: s.source as string, tags: s.tags! }))

/** Whether the answer says the image has `tag`. */
const has = (answer: Functions.TagsInvokeResult, tag: string) => answer.tags.find((t) => t.labelName === tag)!.present

describe("Functions with image tags", () => {
  it.live("a Tags function: tagged samples, a retrain by itself, every tag with its probability, multi-label metrics, retagging", () =>
    Effect.gen(function*() {
      const functions = yield* Functions.Functions
      const fn = yield* functions.create("WhatIsInIt", { preset: "fast", overrides: { folds: 3 }, output: "Tags" })
      expect(fn.output).toBe("Tags")
      expect((yield* functions.list).map((f) => [f.name, f.output])).toEqual([["WhatIsInIt", "Tags"]])
      const badOutput = yield* Effect.flip(functions.create("x", { output: "Text" as Functions.FunctionOutput }))
      expect(badOutput).toMatchObject({ reason: "InvalidInput", field: "output" })

      // Before any data: not trained, saying what the tags rule needs; the classification operations refuse it.
      const probe = inputs("test", { daisy: 1 })[0]!.data
      const empty = yield* Effect.flip(functions.invokeTags(fn.id, probe))
      expect(empty).toMatchObject({ reason: "NotTrained", field: "functionId" })
      expect(empty.message).toContain("at least 1 tag that at least 2 tagged samples have and at least 2 do not")
      expect(yield* Effect.flip(functions.invoke(fn.id, probe))).toMatchObject({ reason: "InvalidInput", field: "functionId" })
      expect(yield* Effect.flip(functions.metrics(fn.id))).toMatchObject({ reason: "InvalidInput", field: "functionId" })
      expect(yield* Effect.flip(functions.insights(fn.id))).toMatchObject({ reason: "InvalidInput", field: "functionId" })
      const labelled = yield* Effect.flip(functions.createSamples(fn.id, [{ data: probe, label: "flower" }]))
      expect(labelled).toMatchObject({ reason: "InvalidInput", field: "samples[0].labelName" })

      // 3 photos of each kind: every tag has at least 2 samples with it and 2 without. One photo is posted untagged
      // (as an invocation capture would be): it is kept but not trained on.
      const train = inputs("train", { daisy: 3, sunflower: 3, cats: 3, dogs: 3 })
      const untagged = inputs("train", { tulip: 1 })[0]!
      const added = yield* functions.createSamples(fn.id, [...train, { data: untagged.data }])
      expect(added.filter((a) => a.created).length).toBe(13)
      expect(added[0]!.sample.tags?.map((t) => t.labelName)).toEqual(["daisy", "flower"])
      expect(added[12]!.sample.tags).toBeNull()

      const trained = yield* functions.awaitTrained(fn.id)
      expect(trained.trainError).toBeNull()
      expect(trained.model).not.toBeNull()
      expect(trained.model!.upToDate).toBe(true)
      expect(trained.labels.map((l) => [l.name, l.sampleCount])).toEqual([
        ["animal", 6], ["cat", 3], ["daisy", 3], ["dog", 3], ["flower", 6], ["sunflower", 3]
      ])
      expect(trained.leftOutLabels).toEqual([])

      // Unseen photos: every tag answered with a probability and its threshold; flower against animal is easy.
      for (const [kind, yes, no] of [["daisy", "flower", "animal"], ["cats", "animal", "flower"], ["dogs", "animal", "flower"]] as const) {
        for (const { data } of inputs("test", { [kind]: 2 })) {
          const answer = yield* functions.invokeTags(fn.id, data)
          expect(answer.modelId).toBe(trained.model!.id)
          expect(answer.tags.map((t) => t.labelName).sort()).toEqual(["animal", "cat", "daisy", "dog", "flower", "sunflower"])
          for (const t of answer.tags) {
            expect(t.confidence).toBeGreaterThanOrEqual(0)
            expect(t.confidence).toBeLessThanOrEqual(1)
            expect(t.present).toBe(t.confidence >= t.threshold)
          }
          // Most likely first.
          expect(answer.tags.map((t) => t.confidence)).toEqual([...answer.tags.map((t) => t.confidence)].sort((a, b) => b - a))
          expect([kind, yes, has(answer, yes)]).toEqual([kind, yes, true])
          expect([kind, no, has(answer, no)]).toEqual([kind, no, false])
        }
      }

      // The multi-label metrics, out of fold: per tag, micro, macro, mAP; the status' accuracy is the exact-match ratio.
      const metrics = yield* functions.tagsMetrics(fn.id)
      expect(metrics).toMatchObject({ functionId: fn.id, modelId: trained.model!.id, upToDate: true, output: "Tags", sampleCount: 12 })
      expect(metrics.cv.folds).toBe(3)
      expect(metrics.cv.total).toBe(12)
      expect(metrics.cv.tags).toEqual(["animal", "cat", "daisy", "dog", "flower", "sunflower"])
      expect(metrics.cv.perTag.map((t) => [t.labelName, t.support])).toEqual([
        ["animal", 6], ["cat", 3], ["daisy", 3], ["dog", 3], ["flower", 6], ["sunflower", 3]
      ])
      for (const t of metrics.cv.perTag) {
        for (const score of [t.precision, t.recall, t.f1, t.averagePrecision!, t.threshold]) {
          expect(score).toBeGreaterThanOrEqual(0)
          expect(score).toBeLessThanOrEqual(1)
        }
      }
      const byTag = new Map(metrics.cv.perTag.map((t) => [t.labelName, t]))
      expect(byTag.get("flower")!.f1).toBeGreaterThan(0.9)
      expect(byTag.get("animal")!.f1).toBeGreaterThan(0.9)
      expect(metrics.cv.meanAveragePrecision).toBeGreaterThan(0.6)
      expect(metrics.cv.micro.f1).toBeGreaterThan(0.6)
      expect(metrics.cv.macro.f1).toBeGreaterThan(0)
      expect(trained.model!.cvAccuracy).toBe(metrics.cv.exactMatch)
      const [version] = yield* functions.models(fn.id)
      expect(version!.labels.map((l) => l.name)).toEqual(metrics.cv.tags)

      // Tagging the untagged photo (a flower, and a tulip: a tag on 1 sample, left out) and deleting a tag retrain
      // with the rest.
      const tulip = yield* functions.updateTags(fn.id, added[12]!.sample.id, [{ labelName: "flower" }, { labelName: "tulip" }])
      expect(tulip.tags?.map((t) => t.labelName)).toEqual(["flower", "tulip"])
      const sunflower = (yield* functions.listLabels(fn.id)).find((l) => l.name === "sunflower")!
      expect((yield* functions.deleteLabel(fn.id, sunflower.id)).unannotatedSamples).toBe(3)
      const retrained = yield* functions.awaitTrained(fn.id)
      expect(retrained.model!.id).not.toBe(trained.model!.id)
      expect(retrained.model!.upToDate).toBe(true)
      expect(retrained.leftOutLabels).toEqual([expect.objectContaining({ name: "tulip", sampleCount: 1 })])
      expect(retrained.leftOutLabels[0]!.reason).toBe("1 tagged sample with it and 12 without it; a tag needs at least 2 of each to be trained on")
      const again = yield* functions.tagsMetrics(fn.id)
      expect(again.cv.tags).toEqual(["animal", "cat", "daisy", "dog", "flower"])
      expect(again.cv.total).toBe(13)
      expect(again.cv.perTag.find((t) => t.labelName === "flower")!.support).toBe(7)
      // The previous version still answers by id, with the tags it was trained on.
      const old = yield* functions.invokeTags(fn.id, probe, { modelId: trained.model!.id })
      expect(old.tags.length).toBe(6)
    }).pipe(Effect.provide(functionsIn(path.join(work, "store")))), 300_000)

  it.live("a Classification function refuses the tags operations, naming the field", () =>
    Effect.gen(function*() {
      const functions = yield* Functions.Functions
      const fn = yield* functions.create("Plain", { preset: "fast" })
      expect(fn.output).toBe("Classification")
      const [photo] = inputs("train", { cats: 1 })
      const tagged = yield* Effect.flip(functions.createSamples(fn.id, [photo!]))
      expect(tagged).toMatchObject({ reason: "InvalidInput", field: "samples[0].tags" })
      const badTags = yield* Effect.flip(functions.createSamples(fn.id, [{ data: photo!.data, tags: ["ok", ""] }]))
      expect(badTags).toMatchObject({ reason: "InvalidInput", field: "samples[0].tags[1]" })
      const [{ sample }] = yield* functions.createSamples(fn.id, [{ data: photo!.data, label: "cats" }])
      expect(sample.tags).toBeNull()
      expect(yield* Effect.flip(functions.updateTags(fn.id, sample.id, []))).toMatchObject({ reason: "InvalidInput", field: "tags" })
      expect(yield* Effect.flip(functions.invokeTags(fn.id, photo!.data))).toMatchObject({ reason: "InvalidInput", field: "functionId" })
      expect(yield* Effect.flip(functions.tagsMetrics(fn.id))).toMatchObject({ reason: "InvalidInput", field: "functionId" })
    }).pipe(Effect.provide(functionsIn(path.join(work, "plain")))), 180_000)
})
