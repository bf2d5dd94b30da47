// Partial fine-tuning as a search candidate: `FineTune.searchHead` fits by the ordinary head contract on the trunk's
// embeddings of real cats-vs-dogs photos (and their mirror images), so `Search` cross-validates it like any head.
import { describe, expect, it } from "@effect/vitest"
import { Dataset, Embedder, Head, LoupeConfig, Registry } from "@loupe/core"
import type { Sample } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { FineTune, Heads, ManualTraining, Search } from "@loupe/trainers"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { sharedDir } from "../../../test/fixtures/shared.mjs"

const services = Layer.mergeAll(
  NodeFileSystem.layer,
  Registry.Registry.layer({ backbones: Catalog.builtins, heads: [...Heads.heads, ...ManualTraining.heads] }),
  LoupeConfig.LoupeConfig.layer({ modelsDir: path.join(sharedDir, "models"), cacheDir: path.join(os.tmpdir(), "loupe-finetune-search-test") })
)
const backbone = "tfjs:mobilenetv2-0.35"

/** The first `perClass` training photos of each class, embedded by the trunk with their mirror images. */
const trunkEmbeddings = (prepared: FineTune.Prepared, perClass: number) =>
  Effect.gen(function*() {
    const { train } = yield* Dataset.fromSplitFolders(path.join(sharedDir, "datasets/cats-vs-dogs"))
    const samples: ReadonlyArray<Sample.Sample> = train.labels.flatMap((label) =>
      train.samples.filter((s) => s.label === label).slice(0, perClass)
    )
    const embedded = yield* Embedder.embedSamples(prepared.trunk, samples, { mirror: true })
    const y = Int32Array.from(embedded.samples, (s) => train.labels.indexOf(s.label!))
    return { x: embedded.vectors, mirrored: embedded.mirrored!, y, numClasses: train.labels.length }
  })

describe("FineTune.searchHead", () => {
  it.effect("fits on trunk embeddings + mirror rows, deterministically, from the pretrained tail every time; loads back exactly", () =>
    Effect.gen(function*() {
      const prepared = yield* FineTune.prepare({ backbone, trainableLayers: 1 })
      const data = yield* trunkEmbeddings(prepared, 8)
      const head = FineTune.searchHead(prepared)
      const params = Schema.decodeUnknownSync(head.paramsSchema)({ epochs: 2, batchSize: 8 })
      expect(params.optimizer.kind).toBe("adam")
      const set = Head.withMirrorRows(data, data.mirrored)

      const first = yield* head.fit(set, params, 7)
      const proba = first.predictProba(data.x)
      // A second fit with the same seed after another one trained the shared tail: the same head.
      yield* head.fit(set, params, 8)
      const again = yield* head.fit(set, params, 7)
      expect(again.predictProba(data.x).data).toEqual(proba.data)
      expect(first.kind).toBe(FineTune.headKind)
      const correct = Array.from(data.y).filter((label, i) => proba.data[2 * i + label]! > 0.5).length
      expect(correct).toBeGreaterThanOrEqual(14)

      // A bundle's head loads through its backbone's plugin, whose trainable tail restores the layers.
      const json = JSON.parse(JSON.stringify(first.toJSON()))
      const plugin = yield* Effect.flatMap(Registry.Registry, (r) => r.backbone(backbone))
      const loaded = yield* FineTune.headPlugin.load(json, { backbone: plugin })
      expect(loaded.predictProba(data.x).data).toEqual(proba.data)
      const alone = yield* Effect.flip(FineTune.headPlugin.load(json))
      expect(alone).toMatchObject({ reason: "InvalidState", field: "backbone" })

      const wrongWidth = yield* Effect.flip(head.fit({ ...set, x: { rows: 1, cols: 3, data: new Float32Array(3) } }, params, 0))
      expect(wrongWidth).toMatchObject({ reason: "ShapeMismatch", field: "data.x" })
    }).pipe(Effect.scoped, Effect.provide(services)), 120_000)

  it.effect("competes in Search on the same folds as a plain head, restricted to the trunk's features", () =>
    Effect.gen(function*() {
      const prepared = yield* FineTune.prepare({ backbone, trainableLayers: 1 })
      const data = yield* trunkEmbeddings(prepared, 6)
      const trunk = "trunk"
      const result = yield* Search.run({
        embeddings: new Map([[trunk, data.x]]),
        mirrored: new Map([[trunk, data.mirrored]]),
        y: data.y,
        numClasses: data.numClasses
      }, {
        space: [
          { "head.kind": ["nearest-prototype"] },
          { "backbone.id": [trunk], "head.kind": [FineTune.headKind], "head.epochs": [1] }
        ],
        heads: [...Heads.heads, FineTune.searchHead(prepared)],
        cv: { folds: 3 }
      })
      const fineTuned = result.leaderboard.find((e) => e.headKind === FineTune.headKind)!
      expect(fineTuned.rows).toBe(12)
      expect(fineTuned.params).toMatchObject({ epochs: 1, batchSize: 16 })
      expect(fineTuned.metrics["accuracy"]).toBeGreaterThan(0.5)
      expect(result.leaderboard).toHaveLength(2)
    }).pipe(Effect.scoped, Effect.provide(services)), 120_000)
})
