import { describe, expect, it } from "@effect/vitest"
import { Bundle, Dataset, LoupeConfig, Pipeline, Registry } from "@loupe/core"
import type { Sample } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { FineTune, ManualTraining } from "@loupe/trainers"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { sharedDir } from "../../../test/fixtures/shared.mjs"

const services = Layer.mergeAll(
  NodeFileSystem.layer,
  Registry.Registry.layer({ backbones: Catalog.builtins, heads: ManualTraining.heads }),
  LoupeConfig.LoupeConfig.layer({ modelsDir: path.join(sharedDir, "models"), cacheDir: path.join(os.tmpdir(), "loupe-finetune-test") })
)
const catsVsDogs = path.join(sharedDir, "datasets/cats-vs-dogs")
const backbone = "tfjs:mobilenetv2-0.35"

describe("FineTune.prepare", () => {
  it.effect("cuts MobileNetV2 where one tensor feeds the rest, never inside a residual block", () =>
    Effect.gen(function*() {
      const last = yield* FineTune.prepare({ backbone, trainableLayers: 1 })
      expect(last.cut.name).toBe("block_16_project_BN")
      expect(last.cut.trainable).toEqual(["Conv_1"])
      expect(last.inputShape).toEqual([7, 7, 112])
      expect(last.trunk.info.embeddingSize).toBe(7 * 7 * 112)
      expect(last.trunkOptions).toEqual({ output: "block_16_project_BN", pooling: "none" })

      const block = yield* FineTune.prepare({ backbone, trainableLayers: 4 })
      expect(block.cut.name).toBe("block_15_add")
      expect(block.cut.trainable).toEqual(["block_16_expand", "block_16_depthwise", "block_16_project", "Conv_1"])
      // block_15_project reads block_14_add through the residual add: the cut moves back to block_14_add
      const residual = yield* FineTune.prepare({ backbone, trainableLayers: 5 })
      expect(residual.cut.name).toBe("block_14_add")
      expect(residual.cut.trainable).toHaveLength(7)

      const tooMany = yield* Effect.flip(FineTune.prepare({ backbone, trainableLayers: 500 }))
      expect(tooMany._tag === "TrainerError" && tooMany.field).toBe("trainableLayers")
      const onnx = yield* Effect.flip(FineTune.prepare({ backbone: "onnx:mobilenetv2-int8", trainableLayers: 1 }))
      expect(onnx._tag === "TrainerError" && onnx.field).toBe("backbone")
    }).pipe(Effect.scoped, Effect.provide(services)))
})

describe("partial fine-tuning in manual mode", () => {
  it.effect("trains the last block + head on 20 + 20 photos, loss falls, and the bundle predicts identically", () =>
    Effect.gen(function*() {
      const { train, test } = yield* Dataset.fromSplitFolders(catsVsDogs)
      const pick = (samples: ReadonlyArray<Sample.Sample>, perClass: number) =>
        train.labels.flatMap((label) => samples.filter((s) => s.label === label).slice(0, perClass))
      const small = { labels: train.labels, samples: pick(train.samples, 20) }
      const validation = pick(test!.samples, 5)
      const epochs: Array<ManualTraining.Epoch> = []
      const result = yield* ManualTraining.runWith(
        ManualTraining.train({
          backbone,
          trainableLayers: 4,
          optimizer: { kind: "adam" },
          lr: 0.0005,
          schedule: { kind: "constant" },
          epochs: 3,
          batchSize: 8,
          augment: { scale: [0.3, 1] }
        }, { train: small, validation }),
        (e) => Effect.sync(() => epochs.push(e))
      )
      console.log(
        `fine-tune (tfjs:mobilenetv2-0.35, last 4 layers, 40 images x 3 views): prepare ${result.timings.prepare.toFixed(1)} s, ` +
          `train ${result.timings.train.toFixed(1)} s\n` +
          epochs.map((e) =>
            `  epoch ${e.epoch}: train ${e.trainLoss.toFixed(3)}/${(100 * e.trainAccuracy).toFixed(0)}% ` +
            `val ${e.valLoss!.toFixed(3)}/${(100 * e.valAccuracy!).toFixed(0)}% (${e.seconds.toFixed(1)} s)`
          ).join("\n")
      )
      expect(epochs).toHaveLength(3)
      expect(epochs[2]!.trainLoss).toBeLessThan(epochs[0]!.trainLoss)
      expect(result.fitted.head.kind).toBe("finetune")
      expect(result.fitted.backboneOptions).toEqual({ output: "block_15_add", pooling: "none" })

      const { proba, predictions } = yield* Pipeline.predictMany(result.fitted, validation)
      const correct = predictions.filter((p) => p.prediction.labelName === p.sample.label).length
      expect(correct / validation.length).toBeCloseTo(epochs[result.bestEpoch - 1]!.valAccuracy!, 12)

      const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "loupe-finetune-")), "bundle")
      const manifest = yield* Bundle.save(result.fitted, dir)
      expect(manifest.backbone.options).toEqual({ output: "block_15_add", pooling: "none" })
      expect(manifest.backbone.embeddingSize).toBe(7 * 7 * 56)
      const { fitted } = yield* Bundle.load(dir)
      expect(fitted.head.kind).toBe("finetune")
      const reloaded = yield* Pipeline.predictMany(fitted, validation)
      expect(reloaded.proba.data).toEqual(proba.data)
    }).pipe(Effect.scoped, Effect.provide(services)), 180_000)
})
