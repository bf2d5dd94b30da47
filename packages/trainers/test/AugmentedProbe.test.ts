import { describe, expect, it } from "@effect/vitest"
import { Dataset, DiskEmbeddingCache, EmbeddingCache, LoupeConfig, Pipeline, Registry } from "@loupe/core"
import type { Backbone, Sample } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { AugmentedProbe, LogisticRegression } from "@loupe/trainers"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { sharedDir } from "../../../test/fixtures/shared.mjs"

const services = Layer.mergeAll(
  NodeFileSystem.layer,
  Registry.Registry.layer({ backbones: Catalog.builtins, heads: [LogisticRegression.plugin] }),
  LoupeConfig.LoupeConfig.layer({ modelsDir: path.join(sharedDir, "models"), cacheDir: path.join(os.tmpdir(), "loupe-augprobe-test") })
)
const views = { views: 2, augment: { scale: [0.25, 1] as const, flipProbability: 0.5, brightness: 0.2 }, seed: 7 }

const subset = Effect.gen(function*() {
  const { train, test } = yield* Dataset.fromSplitFolders(path.join(sharedDir, "datasets/cats-vs-dogs"))
  const pick = (samples: ReadonlyArray<Sample.Sample>, perClass: number) =>
    train.labels.flatMap((label) => samples.filter((s) => s.label === label).slice(0, perClass))
  return { labels: train.labels, train: pick(train.samples, 25), test: test!.samples }
})

const accuracy = (proba: { readonly rows: number; readonly cols: number; readonly data: Float32Array }, y: Int32Array) => {
  let correct = 0
  for (let i = 0; i < proba.rows; i++) if ((proba.data[2 * i + 1]! > proba.data[2 * i]! ? 1 : 0) === y[i]) correct++
  return correct / proba.rows
}

describe("AugmentedProbe (MobileNetV2-int8, 25 + 25 cats-vs-dogs, 2 views each)", () => {
  it.effect("embeds originals then views with image groups; CV never splits an image from its views", () =>
    Effect.gen(function*() {
      const data = yield* subset
      const backbone = yield* Registry.loadBackbone("onnx:mobilenetv2-int8")
      const set = yield* AugmentedProbe.embed(backbone, [...data.train, { id: "broken", source: new Uint8Array(8) }], views)
      expect(set.images).toBe(50)
      expect(set.skipped.map((s) => s.sample.id)).toEqual(["broken"])
      expect([set.x.rows, set.x.cols]).toEqual([150, 1280])
      expect(Array.from(set.groups.subarray(0, 3))).toEqual([0, 1, 2])
      expect(Array.from(set.groups.subarray(50, 56))).toEqual([0, 0, 1, 1, 2, 2])
      // views differ from their original, and the same seed gives the same views
      expect(set.x.data.subarray(50 * 1280, 51 * 1280)).not.toEqual(set.x.data.subarray(0, 1280))
      const again = yield* AugmentedProbe.embed(backbone, data.train.slice(0, 1), views)
      expect(Array.from(again.x.data.subarray(1280, 2560))).toEqual(Array.from(set.x.data.subarray(50 * 1280, 51 * 1280)))

      const y = yield* Pipeline.labelIndices(data.labels, set.samples)
      const result = yield* AugmentedProbe.crossValidate(LogisticRegression.plugin, LogisticRegression.Params.make({}), set, y, 2, { seed: 1 })
      for (const fold of result.cv.folds) {
        const trainGroups = new Set(Array.from(fold.train, (r) => set.groups[r]!))
        for (const r of fold.test) expect(trainGroups.has(set.groups[r]!)).toBe(false)
      }
      const plain = accuracy(result.proba, y)
      const tta = accuracy(result.probaTta, y)
      console.log(`augmented probe CV on 50 images: originals ${plain}, with TTA ${tta}`)
      expect(plain).toBeGreaterThanOrEqual(0.85)
      expect(tta).toBeGreaterThanOrEqual(0.85)
    }).pipe(Effect.scoped, Effect.provide(services)), 300_000)

  it.effect("an image's views do not depend on its position; with a cache, a second run embeds nothing", () =>
    Effect.gen(function*() {
      const data = yield* subset
      const loaded = yield* Registry.loadBackbone("onnx:mobilenetv2-int8")
      let embedded = 0
      const backbone: Backbone.LoadedBackbone = { ...loaded, embedBatch: (tensor, count) => (embedded += count, loaded.embedBatch(tensor, count)) }
      const four = data.train.slice(0, 4)
      const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-views-cache-"))
      const withCache = Effect.provide(DiskEmbeddingCache.layer(cacheDir))
      const first = yield* AugmentedProbe.embed(backbone, four, views).pipe(withCache)
      expect(embedded).toBe(4 + 4 * 2)
      embedded = 0
      const reversed = yield* AugmentedProbe.embed(backbone, [...four].reverse(), views).pipe(withCache)
      expect(embedded).toBe(0)
      // Views of image 0 (rows 4, 5 of the first run) are views of image 3 (rows 10, 11) of the reversed run.
      expect(Array.from(reversed.x.data.subarray(10 * 1280, 12 * 1280))).toEqual(Array.from(first.x.data.subarray(4 * 1280, 6 * 1280)))
      // The views alone, as training rows for `four` (the caller has the originals): the same vectors, from the cache.
      const only = yield* AugmentedProbe.embedTrainingViews(backbone, four, views).pipe(withCache)
      expect(embedded).toBe(0)
      expect(Array.from(only.image)).toEqual([0, 0, 1, 1, 2, 2, 3, 3])
      expect(Array.from(only.x.data)).toEqual(Array.from(first.x.data.subarray(4 * 1280)))
      // And without a cache they are computed again, the same.
      const uncached = yield* AugmentedProbe.embed(backbone, [four[2]!, four[0]!], views)
      Array.from(uncached.x.data.subarray(4 * 1280, 6 * 1280)).forEach((v, k) => expect(v).toBeCloseTo(first.x.data[4 * 1280 + k]!, 4))
    }).pipe(Effect.scoped, Effect.provide(services)), 300_000)

  it.effect("asks a batching cache once per view for a chunk of images, and stores a batch's vectors at once", () =>
    Effect.gen(function*() {
      const data = yield* subset
      const backbone = yield* Registry.loadBackbone("onnx:mobilenetv2-int8")
      // A cache in memory with the batch methods (as the Postgres cache has), counting each kind of call.
      const stored = new Map<string, Float32Array>()
      const calls = { get: 0, set: 0, getMany: 0, setMany: 0 }
      const cache: EmbeddingCache.EmbeddingCacheShape = {
        get: (ns, h) => Effect.sync(() => (calls.get++, stored.get(`${ns}/${h}`))),
        set: (ns, h, v) => Effect.sync(() => void (calls.set++, stored.set(`${ns}/${h}`, v.slice()))),
        getMany: (ns, hs) => Effect.sync(() => (calls.getMany++, hs.map((h) => stored.get(`${ns}/${h}`)))),
        setMany: (ns, entries) => Effect.sync(() => void (calls.setMany++, entries.forEach((e) => stored.set(`${ns}/${e.contentHash}`, e.vector.slice()))))
      }
      const withCache = Effect.provideService(EmbeddingCache.EmbeddingCache, cache)
      const twenty = data.train.slice(0, 20)
      const first = yield* AugmentedProbe.embedTrainingViews(backbone, twenty, views).pipe(withCache)
      // 20 images: two chunks of lookups (16 + 4), one per view each; the 40 views embed in two batches of 32 and 8,
      // stored one call per view of each batch.
      expect(calls).toEqual({ get: 0, set: 0, getMany: 2 * 2, setMany: 2 * 2 })
      const again = yield* AugmentedProbe.embedTrainingViews(backbone, twenty, views).pipe(withCache)
      expect(calls).toMatchObject({ get: 0, set: 0, getMany: 2 * 2 * 2, setMany: 2 * 2 })
      expect(Array.from(again.x.data)).toEqual(Array.from(first.x.data))
    }).pipe(Effect.scoped, Effect.provide(services)), 300_000)

  it.effect("fits on originals + views and predicts the test split, with and without test-time augmentation", () =>
    Effect.gen(function*() {
      const data = yield* subset
      const { fitted } = yield* AugmentedProbe.fit(
        { backbone: "onnx:mobilenetv2-int8", head: { kind: "logistic-regression" }, views },
        { labels: data.labels, samples: data.train }
      )
      const plain = yield* Pipeline.predictMany(fitted, data.test)
      const tta = yield* AugmentedProbe.predictMany(fitted, data.test, { views: 2, augment: { scale: [0.5, 1] } })
      const correct = (r: Pipeline.PredictResults) => r.predictions.filter((p) => p.prediction.labelName === p.sample.label).length
      console.log(`augmented probe (50 train images) test: ${correct(plain)}/40, with TTA ${correct(tta)}/40`)
      expect(correct(plain)).toBeGreaterThanOrEqual(34)
      expect(correct(tta)).toBeGreaterThanOrEqual(34)
      expect(tta.proba.rows).toBe(40)
      for (let i = 0; i < 40; i++) expect(tta.proba.data[2 * i]! + tta.proba.data[2 * i + 1]!).toBeCloseTo(1, 5)
      // TTA averages in the standard view: it is not the plain prediction
      expect(tta.proba.data).not.toEqual(plain.proba.data)
    }).pipe(Effect.scoped, Effect.provide(services)), 300_000)
})
