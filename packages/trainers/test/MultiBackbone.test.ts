import { describe, expect, it } from "@effect/vitest"
import { Bundle, Dataset, EmbeddingCache, LoupeConfig, Pipeline, Registry } from "@loupe/core"
import type { Sample } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { LogisticRegression, MultiBackbone } from "@loupe/trainers"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { sharedDir } from "../../../test/fixtures/shared.mjs"

// The three tests embed the same photos: share the vectors through an in-memory embedding cache.
const vectors = new Map<string, Float32Array>()
const memoryCache = Layer.succeed(EmbeddingCache.EmbeddingCache, {
  get: (namespace, hash) => Effect.sync(() => vectors.get(`${namespace}/${hash}`)),
  set: (namespace, hash, vector) => Effect.sync(() => void vectors.set(`${namespace}/${hash}`, vector.slice()))
})
const services = Layer.mergeAll(
  NodeFileSystem.layer,
  memoryCache,
  Registry.Registry.layer({ backbones: Catalog.builtins, heads: [LogisticRegression.plugin, ...MultiBackbone.heads] }),
  LoupeConfig.LoupeConfig.layer({ modelsDir: path.join(sharedDir, "models"), cacheDir: path.join(os.tmpdir(), "loupe-multi-test") })
)
const backbones = ["onnx:mobilenetv2-int8", "tfjs:darknet-tiny"]
const head = { kind: "logistic-regression" }

const subset = Effect.gen(function*() {
  const { train, test } = yield* Dataset.fromSplitFolders(path.join(sharedDir, "datasets/cats-vs-dogs"))
  const pick = (samples: ReadonlyArray<Sample.Sample>, perClass: number) =>
    train.labels.flatMap((label) => samples.filter((s) => s.label === label).slice(0, perClass))
  return { train: { labels: train.labels, samples: pick(train.samples, 20) }, test: pick(test!.samples, 10) }
})

const accuracy = (predictions: Pipeline.PredictResults["predictions"]) =>
  predictions.filter((p) => p.prediction.labelName === p.sample.label).length / predictions.length

const reloads = (fitted: Pipeline.FittedPipeline, test: ReadonlyArray<Sample.Sample>) =>
  Effect.gen(function*() {
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "loupe-multi-")), "bundle")
    const manifest = yield* Bundle.save(fitted, dir)
    const loaded = yield* Bundle.load(dir)
    const before = yield* Pipeline.predictMany(fitted, test)
    const after = yield* Pipeline.predictMany(loaded.fitted, test)
    expect(after.proba.data).toEqual(before.proba.data)
    return { manifest, loaded: loaded.fitted }
  })

describe("MultiBackbone (MobileNetV2-int8 + Tiny Darknet, 20 + 20 train, 10 + 10 test)", () => {
  it.effect("concatenated embeddings: one head on 1280 + 128 features; the bundle lists both backbones", () =>
    Effect.gen(function*() {
      const { train, test } = yield* subset
      const { fitted } = yield* MultiBackbone.fitConcat({ backbones, head }, train)
      expect(fitted.backbone.info.id).toBe("onnx:mobilenetv2-int8")
      expect(fitted.extraBackbones?.map((b) => b.backbone.info.id)).toEqual(["tfjs:darknet-tiny"])
      expect(fitted.head.dim).toBe(1280 + 128)

      // The head's input is exactly [mobilenet | darknet] per image
      const features = yield* Pipeline.embedFeatures(Pipeline.backbonesOf(fitted).map((b) => b.backbone), test.slice(0, 2))
      const darknet = yield* Pipeline.embedFeatures([fitted.extraBackbones![0]!.backbone], test.slice(0, 2))
      expect(Array.from(features.vectors.data.subarray(1280, 1408))).toEqual(Array.from(darknet.vectors.data.subarray(0, 128)))

      const { predictions } = yield* Pipeline.predictMany(fitted, test)
      expect(accuracy(predictions)).toBeGreaterThanOrEqual(0.85)
      const { manifest } = yield* reloads(fitted, test)
      expect(manifest.extraBackbones?.map((b) => [b.id, b.embeddingSize])).toEqual([["tfjs:darknet-tiny", 128]])
    }).pipe(Effect.scoped, Effect.provide(services)), 120_000)

  it.effect("probability ensemble: the mean of the per-backbone pipelines' probabilities, saved and loaded", () =>
    Effect.gen(function*() {
      const { train, test } = yield* subset
      const { fitted, members } = yield* MultiBackbone.fitEnsemble({ backbones, head }, train)
      expect(fitted.head.kind).toBe("ensemble")
      expect(members).toHaveLength(2)
      const ensembled = yield* Pipeline.predictMany(fitted, test)
      const each = yield* Effect.forEach(members, (m) => Pipeline.predictMany(m, test))
      ensembled.proba.data.forEach((p, k) => expect(p).toBeCloseTo((each[0]!.proba.data[k]! + each[1]!.proba.data[k]!) / 2, 6))
      expect(accuracy(ensembled.predictions)).toBeGreaterThanOrEqual(0.85)
      console.log(
        `ensemble test accuracy ${accuracy(ensembled.predictions)}; members ${each.map((r) => accuracy(r.predictions)).join(", ")}`
      )
      const { loaded } = yield* reloads(fitted, test)
      expect(loaded.head.kind).toBe("ensemble")

      // weights shift the mean; a shared backbone is embedded once
      const weighted = yield* MultiBackbone.ensemble(members, [3, 1])
      const p = (yield* Pipeline.predictMany(weighted, test.slice(0, 1))).proba.data[0]!
      expect(p).toBeCloseTo(0.75 * each[0]!.proba.data[0]! + 0.25 * each[1]!.proba.data[0]!, 6)
      const twice = yield* MultiBackbone.ensemble([members[0]!, members[0]!])
      expect(twice.extraBackbones).toBeUndefined()
      expect(twice.head.dim).toBe(1280)
    }).pipe(Effect.scoped, Effect.provide(services)), 120_000)

  it.effect("an unreadable image is skipped with its reason; mismatched labels and bad weights are typed errors", () =>
    Effect.gen(function*() {
      const { train, test } = yield* subset
      const { fitted } = yield* MultiBackbone.fitConcat({ backbones, head }, train)
      const broken: Sample.Sample = { id: "broken", source: new Uint8Array([1, 2, 3]) }
      const result = yield* Pipeline.predictMany(fitted, [test[0]!, broken, test[1]!])
      expect(result.predictions.map((p) => p.sample.id)).toEqual([test[0]!.id, test[1]!.id])
      expect(result.skipped.map((s) => s.sample.id)).toEqual(["broken"])

      const other = { ...fitted, labels: ["dogs", "cats"] }
      const labels = yield* Effect.flip(MultiBackbone.ensemble([fitted, other]))
      expect([labels.reason, labels.field]).toEqual(["InvalidData", "members.1.labels"])
      const weights = yield* Effect.flip(MultiBackbone.ensemble([fitted], [0]))
      expect(weights.field).toBe("weights")
      const none = yield* Effect.flip(MultiBackbone.fitConcat({ backbones: [], head }, train))
      expect(none._tag === "TrainerError" && none.field).toBe("backbones")
    }).pipe(Effect.scoped, Effect.provide(services)), 120_000)
})
