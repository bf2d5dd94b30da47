// AutoML with partial fine-tuning as a candidate, on real cats-vs-dogs photos and the TM MobileNetV2 0.35 layers
// model: the fine-tune candidate joins the leaderboard, and when it is selected (forced here by searching only the
// `finetune` head) its bundle reloads and predicts exactly what AutoML's fitted pipeline predicts.
import { describe, expect, it } from "@effect/vitest"
import { Bundle, Dataset, DiskEmbeddingCache, LoupeConfig, Pipeline } from "@loupe/core"
import type { Sample } from "@loupe/core"
import { Plugins } from "@loupe/cli"
import { AutoML } from "@loupe/functions"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { trunkId } from "../src/internal/Candidates.js"
import { modelsDir, sharedDir } from "../../../test/fixtures/shared.mjs"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-finetune-automl-"))
const config = LoupeConfig.LoupeConfig.layer({ modelsDir, cacheDir: path.join(work, "cache"), offline: true })
const environment = Layer.mergeAll(
  config,
  NodeFileSystem.layer,
  DiskEmbeddingCache.layer().pipe(Layer.provide(config)),
  Plugins.registryLayer()
)

const backbone = "tfjs:mobilenetv2-0.35"
const trunk = trunkId(backbone, "block_16_project_BN")

/** The first `perClass` photos of each class of a split. */
const firstOf = (dataset: Dataset.Dataset, perClass: number): ReadonlyArray<Sample.Sample> =>
  dataset.labels.flatMap((label) => dataset.samples.filter((s) => s.label === label).slice(0, perClass))

describe("AutoML with fineTune", () => {
  const options: AutoML.FitOptions = {
    backbones: ["onnx:mobilenetv2-int8", backbone],
    folds: 3,
    mirror: true,
    fineTune: { trainableLayers: 1, epochs: 1 }
  }

  it.effect("fine-tunes the first TensorFlow.js backbone as one more candidate, on its trunk's features only", () =>
    Effect.gen(function*() {
      const { train } = yield* Dataset.fromSplitFolders(path.join(sharedDir, "datasets/cats-vs-dogs"))
      const dataset = Dataset.make(firstOf(train, 12), { labels: train.labels })
      const result = yield* AutoML.fit(dataset, options)
      const fineTuned = result.leaderboard.filter((row) => row.candidate.head.kind === "finetune")
      expect(fineTuned.map((row) => row.candidate)).toEqual([{ backbone: trunk, head: { kind: "finetune", params: expect.objectContaining({ epochs: 1 }) } }])
      expect(fineTuned[0]!.accuracy).toBeGreaterThan(0.5)
      // No other head searched the trunk, and the trunk is not part of the concatenation.
      expect(result.leaderboard.filter((row) => row.candidate.backbone === trunk)).toHaveLength(1)
      expect(result.leaderboard.some((row) => row.candidate.backbone === `onnx:mobilenetv2-int8+${backbone}`)).toBe(true)
      console.log(
        `AutoML + fine-tune on 24 photos: ${result.leaderboard.length} candidates, selected ${AutoML.describeCandidate(result.selected)}; ` +
          `fine-tune CV accuracy ${fineTuned[0]!.accuracy.toFixed(3)}; train ${result.timings.trainMs} ms`
      )
    }).pipe(Effect.scoped, Effect.provide(environment)), 400_000)

  it.effect("selected, its bundle records the trunk, reloads and predicts identically; the same seed gives the same model", () =>
    Effect.gen(function*() {
      const { train, test } = yield* Dataset.fromSplitFolders(path.join(sharedDir, "datasets/cats-vs-dogs"))
      const dataset = Dataset.make(firstOf(train, 12), { labels: train.labels })
      const forced = { ...options, backbones: [backbone], heads: ["finetune"] }
      const result = yield* AutoML.fit(dataset, forced)
      expect(result.selected.backbone).toBe(trunk)
      expect(result.fitted.head.kind).toBe("finetune")
      expect(result.fitted.backboneOptions).toEqual({ output: "block_16_project_BN", pooling: "none" })

      const photos = firstOf(test!, 5)
      const { proba } = yield* Pipeline.predictMany(result.fitted, photos)
      const dir = path.join(work, "bundle")
      const manifest = yield* Bundle.save(result.fitted, dir)
      expect(manifest.backbone.options).toEqual({ output: "block_16_project_BN", pooling: "none" })
      const { fitted } = yield* Bundle.load(dir)
      expect((yield* Pipeline.predictMany(fitted, photos)).proba.data).toEqual(proba.data)

      const again = yield* AutoML.fit(dataset, forced)
      expect(again.outOfFold.proba.data).toEqual(result.outOfFold.proba.data)
      expect((yield* Pipeline.predictMany(again.fitted, photos)).proba.data).toEqual(proba.data)
    }).pipe(Effect.scoped, Effect.provide(environment)), 400_000)
})
