import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Embedder, LoupeConfig, Preprocess, Registry } from "@loupe/core"
import type { Backbone } from "@loupe/core"
import { BackboneError, Conformance, TransformersBackbone } from "@loupe/backbones"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { preprocessFromConfig } from "../src/internal/HfPreprocess.js"
import { closedPortUrl, serveFiles, serveNothing } from "./fixtures/server.js"
import { sharedDir } from "../../../test/fixtures/shared.mjs"
import { hidden, image, tokens, tokenStates, writeTinyVit } from "./fixtures/tinyVit.js"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-transformers-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))
const folder = writeTinyVit(path.join(tmp, "tiny-vit"))
const tinySpec: TransformersBackbone.TransformersModelSpec = { id: "transformers:tiny-vit", model: folder }

const config = (overrides: Partial<LoupeConfig.LoupeConfigShape> = {}) =>
  LoupeConfig.LoupeConfig.layer({ cacheDir: path.join(tmp, "cache"), ...overrides })

const load = (plugin: Backbone.BackbonePlugin, options: unknown = {}, loupe = config()) =>
  Registry.loadBackbone(plugin.info.id, options).pipe(
    Effect.provide(Layer.mergeAll(Registry.Registry.layer({ backbones: [plugin] }), loupe))
  )

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0)

/** A deterministic NCHW batch in the model's normalised range. */
const batchOf = (count: number) => Float32Array.from({ length: count * 3 * image * image }, (_, i) => ((i * 4099) % 211) / 105 - 1)

/** Hand-computed embeddings from the token states. */
const expected = (batch: Float32Array, count: number) => {
  const states = tokenStates(batch, count)
  const cls = new Float32Array(count * hidden)
  const mean = new Float32Array(count * hidden)
  for (let n = 0; n < count; n++) {
    for (let d = 0; d < hidden; d++) {
      cls[n * hidden + d] = states[n * tokens * hidden + d]!
      for (let t = 0; t < tokens; t++) mean[n * hidden + d]! += states[(n * tokens + t) * hidden + d]! / tokens
    }
  }
  return { cls, mean }
}

describe("preprocessFromConfig", () => {
  const spec = (json: Record<string, unknown>) => preprocessFromConfig(json, "preprocessor_config.json")
  const clipMean = [0.48145466, 0.4578275, 0.40821073]
  const clipStd = [0.26862954, 0.26130258, 0.27577711]

  it.effect("reads the common processor layouts (CLIP, DINOv2, SigLIP, ViT)", () =>
    Effect.gen(function*() {
      expect(yield* spec({ size: { shortest_edge: 224 }, do_center_crop: true, crop_size: { height: 224, width: 224 }, rescale_factor: 1 / 255, image_mean: clipMean, image_std: clipStd }))
        .toEqual({ size: 224, resize: "shorter-side-center-crop", resizeShorter: 224, layout: "NCHW", scale: 255, mean: clipMean, std: clipStd })
      expect(yield* spec({ size: { shortest_edge: 256 }, do_center_crop: true, crop_size: { height: 224, width: 224 }, image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225] }))
        .toMatchObject({ size: 224, resize: "shorter-side-center-crop", resizeShorter: 256, scale: 255 })
      expect(yield* spec({ do_resize: true, size: { height: 384, width: 384 }, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] }))
        .toEqual({ size: 384, resize: "squash", layout: "NCHW", scale: 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] })
      // Older configs: a bare number is a square without a crop, and the shortest edge before one.
      expect(yield* spec({ size: 224, do_normalize: true, image_mean: 0.5, image_std: 0.5 })).toMatchObject({ size: 224, resize: "squash", mean: [0.5, 0.5, 0.5] })
      expect(yield* spec({ size: 256, crop_size: 224, do_center_crop: true })).toMatchObject({ size: 224, resizeShorter: 256 })
      expect(yield* spec({ size: { height: 64, width: 64 }, do_rescale: false, do_normalize: false }))
        .toEqual({ size: 64, resize: "squash", layout: "NCHW", scale: 1, mean: [0, 0, 0], std: [1, 1, 1] })
    }))

  it.effect("rejects non-square inputs and bad values, naming the file and field", () =>
    Effect.gen(function*() {
      const nonSquare = yield* Effect.flip(spec({ size: { height: 224, width: 320 } }))
      expect(nonSquare).toBeInstanceOf(BackboneError.BackboneError)
      expect(nonSquare.message).toBe("preprocessor_config.json: size is 224x320; only square inputs are supported")
      expect((yield* Effect.flip(spec({ size: 224, image_mean: [1, 2] }))).message).toContain("image_mean must be a number or three numbers")
      expect((yield* Effect.flip(spec({ do_resize: false }))).message).toContain("gives neither size nor crop_size")
    }))
})

describe("transformers:tiny-vit from a local folder", () => {
  it.scoped("make derives the preprocessing from preprocessor_config.json and the size from the model", () =>
    Effect.gen(function*() {
      const plugin = yield* TransformersBackbone.make(tinySpec).pipe(Effect.provide(config()))
      expect(plugin.info).toMatchObject({ id: "transformers:tiny-vit", runtime: "transformers", embeddingSize: hidden, weights: { _tag: "Path", path: folder } })
      expect(plugin.info.preprocess).toEqual({
        size: 32,
        resize: "shorter-side-center-crop",
        resizeShorter: 36,
        layout: "NCHW",
        scale: 255,
        mean: [0.5, 0.5, 0.5],
        std: [0.5, 0.5, 0.5]
      })
    }))

  it.scoped("embeds like the hand-computed model: pooler_output (auto), CLS token and token mean", () =>
    Effect.gen(function*() {
      const base = yield* TransformersBackbone.make(tinySpec).pipe(Effect.provide(config()))
      const batch = batchOf(3)
      const want = expected(batch, 3)
      const auto = yield* load(base)
      const cls = yield* load(TransformersBackbone.plugin({ ...tinySpec, ...base.info, id: "transformers:tiny-cls", pooling: "cls" }))
      const mean = yield* load(TransformersBackbone.plugin({ ...tinySpec, ...base.info, id: "transformers:tiny-mean", pooling: "mean" }))
      expect(maxAbsDiff(yield* auto.embedBatch(batch, 3), want.mean)).toBeLessThan(1e-5)
      expect(maxAbsDiff(yield* cls.embedBatch(batch, 3), want.cls)).toBeLessThan(1e-5)
      expect(maxAbsDiff(yield* mean.embedBatch(batch, 3), want.mean)).toBeLessThan(1e-5)
      expect(maxAbsDiff(want.cls, want.mean)).toBeGreaterThan(0.01)
      expect(cls.weightsHash).not.toBe(auto.weightsHash)
    }))

  it.scoped("pools a convolutional [N, C, H, W] last_hidden_state over H, W", () =>
    Effect.gen(function*() {
      const convnet = writeTinyVit(path.join(tmp, "tiny-convnet"), "feature-map")
      const backbone = yield* load(yield* TransformersBackbone.make({ id: "transformers:tiny-convnet", model: convnet }).pipe(Effect.provide(config())))
      expect(backbone.info.embeddingSize).toBe(hidden)
      const batch = batchOf(2)
      expect(maxAbsDiff(yield* backbone.embedBatch(batch, 2), expected(batch, 2).mean)).toBeLessThan(1e-5)
    }))

  it.scoped("is deterministic and batch-invariant, and a wrong-length batch is a typed InvalidInput error", () =>
    Effect.gen(function*() {
      const backbone = yield* load(yield* TransformersBackbone.make(tinySpec).pipe(Effect.provide(config())))
      const batch = batchOf(4)
      const all = yield* backbone.embedBatch(batch, 4)
      expect(yield* backbone.embedBatch(batch, 4)).toEqual(all)
      const per = 3 * image * image
      for (let i = 0; i < 4; i++) {
        const alone = yield* backbone.embedBatch(batch.slice(i * per, (i + 1) * per), 1)
        expect(maxAbsDiff(alone, all.slice(i * hidden, (i + 1) * hidden))).toBeLessThan(1e-4)
      }
      const error = yield* Effect.flip(backbone.embedBatch(batch.subarray(1), 4))
      expect(error).toBeInstanceOf(BackboneError.BackboneError)
      expect(error).toMatchObject({ reason: "InvalidInput", field: "transformers:tiny-vit" })
    }))

  it.scoped("embeds real photos through the Embedder with the derived preprocessing", () =>
    Effect.gen(function*() {
      const backbone = yield* load(yield* TransformersBackbone.make(tinySpec).pipe(Effect.provide(config())))
      const dir = path.join(sharedDir, "datasets/cats-vs-dogs/test/dogs")
      const files = fs.readdirSync(dir).sort().slice(0, 2).map((f) => path.join(dir, f))
      const result = yield* Embedder.embedSamples(backbone, files.map((f, i) => ({ id: String(i), source: f })))
      expect(result.vectors.rows).toBe(2)
      expect(result.vectors.cols).toBe(hidden)
      const rgb = yield* Preprocess.loadRgb(files[0]!, backbone.info.preprocess)
      const byHand = expected(Preprocess.toTensor([rgb], backbone.info.preprocess), 1).mean
      expect(maxAbsDiff(result.vectors.data.subarray(0, hidden), byHand)).toBeLessThan(1e-5)
    }))

  it.scoped("passes the conformance suite", () =>
    Effect.gen(function*() {
      const plugin = yield* TransformersBackbone.make(tinySpec).pipe(Effect.provide(config()))
      const test = path.join(sharedDir, "datasets/cats-vs-dogs/test")
      const images = ["cats", "dogs"].flatMap((label) =>
        fs.readdirSync(path.join(test, label)).sort().slice(0, 2).map((f) => path.join(test, label, f))
      )
      const [report] = yield* Conformance.run([plugin], { cacheDir: path.join(tmp, "cache"), offline: true }, { images })
      expect(report!.status, Conformance.format([report!])).toBe("passed")
    }))

  it.scoped("names a missing output, a wrong embedding size and a folder that is not a model", () =>
    Effect.gen(function*() {
      const base = yield* TransformersBackbone.make(tinySpec).pipe(Effect.provide(config()))
      const noOutput = yield* Effect.flip(load(TransformersBackbone.plugin({ ...tinySpec, ...base.info, pooling: "image_embeds" })))
      expect(noOutput.message).toContain("the model has no output image_embeds (outputs: last_hidden_state, pooler_output)")
      const wrongSize = yield* Effect.flip(load(TransformersBackbone.plugin({ ...tinySpec, ...base.info, embeddingSize: 16 })))
      expect(wrongSize.message).toContain("gives 8 values per image (pooling auto); the config says 16")
      const notModel = yield* Effect.flip(TransformersBackbone.make({ id: "transformers:nothing", model: tmp }).pipe(Effect.provide(config())))
      expect(notModel).toMatchObject({ reason: "WeightsNotFound", file: tmp })
      expect(notModel.message).toContain("has no config.json")
    }))
})

describe("transformers.js models from a hub", () => {
  const repo = "loupe-test/tiny-vit"
  const hubFiles = new Map(
    ["config.json", "preprocessor_config.json", "onnx/model.onnx"].map((f) => [`/${repo}/resolve/main/${f}`, fs.readFileSync(path.join(folder, f))])
  )

  it.scopedLive("downloads the folder into the cache once, atomically, then loads it offline", () =>
    Effect.gen(function*() {
      const hub = yield* serveFiles(hubFiles)
      const cacheDir = path.join(tmp, "hub-cache")
      const plugin = yield* TransformersBackbone.make({ id: "transformers:hub-tiny", model: repo }, { hubUrl: hub.url }).pipe(
        Effect.provide(config({ cacheDir }))
      )
      expect(plugin.info.weights).toEqual({ _tag: "Hub", repo })
      // A HEAD for each file's checksum, then its GET.
      expect(hub.requests).toEqual([...hubFiles.keys()].flatMap((f) => [f, f]))
      const cached = path.join(cacheDir, "transformers", "loupe-test", "tiny-vit", "main")
      expect(fs.readdirSync(cached).sort()).toEqual([".loupe-pull.json", "config.json", "onnx", "preprocessor_config.json"])
      expect(fs.readdirSync(path.join(cached, "onnx"))).toEqual(["model.onnx"])
      // Offline, with the hub gone: everything comes from the cache.
      const backbone = yield* load(plugin, { hubUrl: yield* closedPortUrl }, config({ cacheDir, offline: true }))
      const local = yield* load(yield* TransformersBackbone.make(tinySpec).pipe(Effect.provide(config())))
      expect(backbone.weightsHash).toBe(local.weightsHash)
      const batch = batchOf(2)
      expect(yield* backbone.embedBatch(batch, 2)).toEqual(yield* local.embedBatch(batch, 2))
      expect(hub.requests.length).toBe(6)
    }))

  it.scopedLive("uses <modelsDir>/<org>/<name> before any network", () =>
    Effect.gen(function*() {
      const modelsDir = path.join(tmp, "models")
      fs.mkdirSync(path.join(modelsDir, "loupe-test"), { recursive: true })
      fs.cpSync(folder, path.join(modelsDir, repo), { recursive: true })
      const plugin = yield* TransformersBackbone.make({ id: "transformers:by-hand", model: repo }, { hubUrl: yield* closedPortUrl }).pipe(
        Effect.provide(config({ modelsDir, cacheDir: path.join(tmp, "unused-cache") }))
      )
      expect(plugin.info.embeddingSize).toBe(hidden)
      expect(fs.existsSync(path.join(tmp, "unused-cache"))).toBe(false)
    }))

  it.scopedLive("fails in under a second, naming the model and how to provide it, when the hub is unreachable", () =>
    Effect.gen(function*() {
      const cacheDir = path.join(tmp, "unreachable-cache")
      const attempt = (hubUrl: string, offline = false) =>
        Effect.gen(function*() {
          const started = Date.now()
          const error = yield* Effect.flip(
            TransformersBackbone.make({ id: "transformers:absent", model: "loupe-test/absent-model" }, { hubUrl }).pipe(
              Effect.provide(config({ cacheDir, offline }))
            )
          )
          return { error, ms: Date.now() - started }
        })
      const refused = yield* attempt(yield* closedPortUrl)
      expect(refused.ms).toBeLessThan(1000)
      expect(refused.error).toBeInstanceOf(BackboneError.BackboneError)
      expect(refused.error.message).toMatch(/transformers:absent: cannot fetch loupe-test\/absent-model from the hub: Cannot download http:\/\/127\.0\.0\.1:\d+\/loupe-test\/absent-model\/resolve\/main\/config\.json .*ECONNREFUSED/)
      expect(refused.error.message).toContain("$LOUPE_MODELS_DIR/loupe-test/absent-model")
      expect(refused.error.message).toContain("--offline")

      const hanging = yield* serveNothing
      const silent = yield* attempt(hanging.url)
      expect(silent.ms).toBeLessThan(1000)
      expect(silent.error.message).toContain("no response within 600 ms")
      expect(silent.error.message).toContain("may need a larger hubTimeoutMs (now 600 ms)")
      expect(hanging.requests).toEqual(["/loupe-test/absent-model/resolve/main/config.json"])

      const offline = yield* attempt("http://127.0.0.1:9", true)
      expect(offline.error).toMatchObject({ reason: "Offline" })
      expect(offline.error.message).toContain("loupe-test/absent-model is not available locally (missing config.json) and offline mode is on")
      expect(fs.existsSync(path.join(cacheDir, "transformers", "loupe-test", "absent-model"))).toBe(false)
    }))

  it.scopedLive("reports a hub 404 with the model named", () =>
    Effect.gen(function*() {
      const hub = yield* serveFiles(hubFiles)
      const error = yield* Effect.flip(
        TransformersBackbone.make({ id: "transformers:missing", model: "loupe-test/missing" }, { hubUrl: hub.url }).pipe(
          Effect.provide(config({ cacheDir: path.join(tmp, "missing-cache") }))
        )
      )
      expect(error).toMatchObject({ reason: "DownloadFailed" })
      expect(error.message).toContain("cannot fetch loupe-test/missing")
      expect(error.message).toContain("HTTP 404")
    }))
})
