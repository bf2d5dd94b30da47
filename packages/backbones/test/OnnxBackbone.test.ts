import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Embedder, LoupeConfig, Registry } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import * as fs from "node:fs"
import * as path from "node:path"
import { modelsDir, sharedDir } from "./fixtures/shared.js"

const layer = Layer.mergeAll(
  Registry.Registry.layer({ backbones: Catalog.builtins }),
  LoupeConfig.LoupeConfig.layer({ modelsDir })
)

describe("ONNX MobileNetV2-int8", () => {
  it.scoped("embeds real photos into 1280-d vectors and skips a bad file with its reason", () =>
    Effect.gen(function*() {
      const backbone = yield* Registry.loadBackbone("onnx:mobilenetv2-int8")
      const dir = path.join(sharedDir, "datasets/cats-vs-dogs/test/cats")
      const files = fs.readdirSync(dir).sort().slice(0, 5).map((f) => path.join(dir, f))
      const samples = [...files.map((f, i) => ({ id: String(i), source: f })), { id: "bad", source: new Uint8Array([1, 2, 3]) }]
      const result = yield* Embedder.embedSamples(backbone, samples, { batchSize: 4 })
      expect(result.vectors.rows).toBe(5)
      expect(result.vectors.cols).toBe(1280)
      expect(result.skipped.map((s) => s.sample.id)).toEqual(["bad"])
      expect(result.skipped[0]!.reason).toMatch(/Cannot decode/)
      expect(Array.from(result.vectors.data).every(Number.isFinite)).toBe(true)
    }).pipe(Effect.provide(layer)))

  it.scoped("names the missing models directory", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Registry.loadBackbone("onnx:mobilenetv2-int8"))
      expect(error.message).toContain("LOUPE_MODELS_DIR")
    }).pipe(Effect.provide(Layer.mergeAll(
      Registry.Registry.layer({ backbones: Catalog.builtins }),
      LoupeConfig.LoupeConfig.layer({})
    ))))
})
