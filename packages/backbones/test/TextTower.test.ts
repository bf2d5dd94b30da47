import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Embedder, LoupeConfig, Matrix, Preprocess, Registry, TextTower } from "@loupe/core"
import type { Backbone } from "@loupe/core"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import { BackboneError, TransformersBackbone } from "../src/index.js"
import { serveFiles } from "./fixtures/server.js"
import { writeColourFolder } from "./fixtures/colourImages.js"
import { colours, hubModelFiles, imageEmbedding, writeHubModel } from "./fixtures/hubModels.js"
import type { HubModelKind } from "./fixtures/hubModels.js"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-text-tower-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))
const config = LoupeConfig.LoupeConfig.layer({ cacheDir: path.join(tmp, "cache") })
const kinds: ReadonlyArray<HubModelKind> = ["clip", "siglip", "dinov2"]
const models = Object.fromEntries(kinds.map((k) => [k, writeHubModel(path.join(tmp, k), k)])) as Record<HubModelKind, string>

const withPlugin = (plugin: Backbone.BackbonePlugin, loupe = config) =>
  Effect.provide(Layer.mergeAll(Registry.Registry.layer({ backbones: [plugin] }), loupe))
const load = (plugin: Backbone.BackbonePlugin) => Registry.loadBackbone(plugin.info.id).pipe(withPlugin(plugin))
const makePlugin = (kind: HubModelKind) =>
  TransformersBackbone.make({ id: `transformers:fixture-${kind}`, model: models[kind] }).pipe(Effect.provide(config))

const unit = (v: ArrayLike<number>) => {
  const norm = Math.hypot(...Array.from(v))
  return Array.from(v, (x) => x / norm)
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0)

describe("the fixture hub models", () => {
  it.scoped.each(kinds)("%s: the image embedding is the projected mean colour of real photos", (kind) =>
    Effect.gen(function*() {
      const plugin = yield* makePlugin(kind)
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

describe("the text tower of transformers.js models", () => {
  it.scoped.each(["clip", "siglip"] as const)("%s: embeds a colour's prompt where a plain image of that colour lies", (kind) =>
    Effect.gen(function*() {
      const plugin = yield* makePlugin(kind)
      expect(plugin.textTower).toBeDefined()
      expect(plugin.info.tags).toEqual(["transformers"])
      const encoder = yield* TextTower.load(plugin.info.id).pipe(withPlugin(plugin))
      expect(encoder.embeddingSize).toBe(plugin.info.embeddingSize)
      expect(encoder.logitScale).toBe(TransformersBackbone.defaultLogitScale)
      const texts = ["a photo of a red.", "A close-up photo of the GREEN thing", "blue", "a photo of a cat."]
      const embedded = yield* encoder.embedTexts(texts)
      expect([embedded.rows, embedded.cols]).toEqual([4, plugin.info.embeddingSize])
      for (const [i, name] of (["red", "green", "blue"] as const).entries()) {
        const got = unit(Matrix.row(embedded, i))
        const want = unit(imageEmbedding(kind, colours[name]!))
        got.forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 5))
      }
      // No colour word: every token is zero.
      expect(Array.from(Matrix.row(embedded, 3)).every((v) => v === 0)).toBe(true)
      // Batches split at maxBatchSize point the same way (CLIP pads to the longest prompt of a batch, a scale here).
      const small = yield* TextTower.load(plugin.info.id, { maxBatchSize: 1 }).pipe(withPlugin(plugin))
      const alone = yield* small.embedTexts(texts)
      for (let i = 0; i < 3; i++) {
        unit(Matrix.row(alone, i)).forEach((v, j) => expect(v).toBeCloseTo(unit(Matrix.row(embedded, i))[j]!, 5))
      }
    }))

  it.scoped("an image-only model has no text tower, and loading one is a typed Unsupported error", () =>
    Effect.gen(function*() {
      const plugin = yield* makePlugin("dinov2")
      expect(plugin.textTower).toBeUndefined()
      const error = yield* Effect.flip(TextTower.load(plugin.info.id).pipe(withPlugin(plugin)))
      expect(error).toMatchObject({ _tag: "CoreError", reason: "Unsupported", field: "transformers:fixture-dinov2" })
      // A CLIP model read through another pooling is not in the text's space: no text tower either.
      const cls = yield* TransformersBackbone.make({ id: "transformers:clip-cls", model: models.clip, pooling: "cls" }).pipe(Effect.provide(config))
      expect(cls.textTower).toBeUndefined()
    }))

  it.scoped("a text model whose width differs from the image embedding's is refused at load", () =>
    Effect.gen(function*() {
      const wide = writeHubModel(path.join(tmp, "wide-text"), "clip")
      fs.copyFileSync(path.join(writeHubModel(path.join(tmp, "wider"), "clip", 10), "onnx/text_model.onnx"), path.join(wide, "onnx/text_model.onnx"))
      const plugin = yield* TransformersBackbone.make({ id: "transformers:wide", model: wide }).pipe(Effect.provide(config))
      const error = yield* Effect.flip(TextTower.load(plugin.info.id).pipe(withPlugin(plugin)))
      expect(error.cause).toBeInstanceOf(BackboneError.BackboneError)
      expect(error.message).toContain("the text model gives 10 values per text; the image embeddings have 8")
    }))

  it.scopedLive("fetches the tokenizer and text model from the hub only when the text tower loads", () =>
    Effect.gen(function*() {
      const repo = "loupe-test/tiny-clip"
      const files = new Map([...hubModelFiles("clip")].map(([f, bytes]) => [`/${repo}/resolve/main/${f}`, bytes]))
      const hub = yield* serveFiles(files)
      const loupe = LoupeConfig.LoupeConfig.layer({ cacheDir: path.join(tmp, "hub-cache") })
      const plugin = yield* TransformersBackbone.make({ id: "transformers:hub-clip", model: repo }, { hubUrl: hub.url }).pipe(Effect.provide(loupe))
      expect(hub.requests.map((r) => r.split("/main/")[1])).toEqual(["config.json", "preprocessor_config.json", "onnx/vision_model.onnx"])
      const encoder = yield* TextTower.load(plugin.info.id, { hubUrl: hub.url }).pipe(withPlugin(plugin, loupe))
      expect(hub.requests.slice(3).map((r) => r.split("/main/")[1]).sort()).toEqual(["onnx/text_model.onnx", "tokenizer.json", "tokenizer_config.json"])
      const red = yield* encoder.embedTexts(["red"])
      unit(Matrix.row(red, 0)).forEach((v, j) => expect(v).toBeCloseTo(unit(imageEmbedding("clip", colours.red!))[j]!, 5))
    }))
})
