import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Embedder, LoupeConfig, Preprocess, Registry } from "@loupe/core"
import type { Backbone } from "@loupe/core"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import { TransformersBackbone } from "../src/index.js"
import { writeColourFolder } from "./fixtures/colourImages.js"
import { colours, imageEmbedding, writeHubModel } from "./fixtures/hubModels.js"
import type { HubModelKind } from "./fixtures/hubModels.js"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-text-tower-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))
const config = LoupeConfig.LoupeConfig.layer({ cacheDir: path.join(tmp, "cache") })
const kinds: ReadonlyArray<HubModelKind> = ["clip", "siglip", "dinov2"]
const models = Object.fromEntries(kinds.map((k) => [k, writeHubModel(path.join(tmp, k), k)])) as Record<HubModelKind, string>

const load = (plugin: Backbone.BackbonePlugin) =>
  Registry.loadBackbone(plugin.info.id).pipe(
    Effect.provide(Layer.mergeAll(Registry.Registry.layer({ backbones: [plugin] }), config))
  )

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0)

describe("the fixture hub models", () => {
  it.scoped.each(kinds)("%s: the image embedding is the projected mean colour of real photos", (kind) =>
    Effect.gen(function*() {
      const plugin = yield* TransformersBackbone.make({ id: `transformers:fixture-${kind}`, model: models[kind] }).pipe(
        Effect.provide(config)
      )
      const backbone = yield* load(plugin)
      const files = yield* Effect.promise(() => writeColourFolder(path.join(tmp, `photos-${kind}`), { red: colours.red! }, 2))
      const embedded = yield* Embedder.embedSamples(backbone, files["red"]!.map((source, i) => ({ id: String(i), source })))
      for (const [i, file] of files["red"]!.entries()) {
        const rgb = yield* Preprocess.loadRgb(file, backbone.info.preprocess)
        const mean = [0, 1, 2].map((c) => {
          let sum = 0
          for (let p = c; p < rgb.length; p += 3) sum += rgb[p]!
          return sum / (rgb.length / 3) / 255
        })
        const row = embedded.vectors.data.subarray(i * plugin.info.embeddingSize, (i + 1) * plugin.info.embeddingSize)
        expect(maxAbsDiff(row, imageEmbedding(kind, mean))).toBeLessThan(1e-4)
      }
    }))
})
