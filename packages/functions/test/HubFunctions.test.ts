// The function API with hub backbones, against a loopback hub publishing test models under the catalog's ids: a
// function whose overrides name `hf:Xenova/clip-vit-base-patch32`, and `balanced` pulling its strong backbone.
import { describe, expect, it } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Plugins } from "@loupe/cli"
import { DiskEmbeddingCache, LoupeConfig } from "@loupe/core"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Functions } from "@loupe/functions"
import { writeColourFolder } from "../../backbones/test/fixtures/colourImages.js"
import { colours, hubModelFiles } from "../../backbones/test/fixtures/hubModels.js"
import { commitOf, serveHub } from "../../backbones/test/fixtures/hubServer.js"
import { modelsDir } from "../../../test/fixtures/shared.mjs"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-hub-functions-"))
const repos = {
  "Xenova/dinov2-small": { commits: { [commitOf("dino")]: hubModelFiles("dinov2", 384) }, refs: { main: commitOf("dino") } },
  "Xenova/clip-vit-base-patch32": { commits: { [commitOf("clip")]: hubModelFiles("clip", 512) }, refs: { main: commitOf("clip") } }
}
const { blue, green, red } = colours
const labels = { red: red!, green: green!, blue: blue! }

/** The function API on a fresh store and cache, online, with $HF_ENDPOINT at `hubUrl` while it runs. */
const withFunctions = <A, E>(hubUrl: string, name: string, body: Effect.Effect<A, E, Functions.Functions>) => {
  const config = LoupeConfig.LoupeConfig.layer({ modelsDir, cacheDir: path.join(work, `cache-${name}`), offline: false })
  const environment = Layer.mergeAll(config, DiskEmbeddingCache.layer().pipe(Layer.provide(config)), Plugins.registryLayer(), NodeFileSystem.layer)
  return Effect.acquireUseRelease(
    Effect.sync(() => {
      const before = process.env["HF_ENDPOINT"]
      process.env["HF_ENDPOINT"] = hubUrl
      return before
    }),
    () => body.pipe(Effect.provide(Functions.layerDirectory(path.join(work, `store-${name}`), { debounce: "50 millis" }).pipe(Layer.provide(environment)))),
    (before) => Effect.sync(() => (before === undefined ? delete process.env["HF_ENDPOINT"] : (process.env["HF_ENDPOINT"] = before)))
  )
}

const photos = Effect.promise(async () => ({
  train: await writeColourFolder(path.join(work, "train"), labels, 4, 1),
  test: await writeColourFolder(path.join(work, "test"), labels, 1, 100)
}))

describe("functions with hub backbones", () => {
  it.live("overrides naming hf:Xenova/clip-vit-base-patch32: pulled, trained, invoked, and the metrics say why", () =>
    Effect.scoped(Effect.gen(function*() {
      const hub = yield* serveHub(repos)
      const { test, train } = yield* photos
      yield* withFunctions(hub.url, "clip", Effect.gen(function*() {
        const functions = yield* Functions.Functions
        const fn = yield* functions.create("Colours", { preset: "fast", overrides: { backbones: ["hf:Xenova/clip-vit-base-patch32"], folds: 2 } })
        yield* functions.createSamples(fn.id, Object.entries(train).flatMap(([label, files]) => files.map((data) => ({ data, label }))))
        expect((yield* functions.awaitTrained(fn.id)).model).not.toBeNull()
        const metrics = yield* functions.metrics(fn.id)
        expect(metrics.selected).toMatchObject({ backbone: "hf:Xenova/clip-vit-base-patch32" })
        expect(metrics.backboneChoice).toEqual({ backbones: ["hf:Xenova/clip-vit-base-patch32"], reason: "named by the user (backbones.ids / --backbone)" })
        for (const [label, [file]] of Object.entries(test)) expect((yield* functions.invoke(fn.id, file!)).labelName).toBe(label)
      }))
      expect(hub.requests.some((r) => r.startsWith("GET /cdn/"))).toBe(true)
    })))

  it.live("a function with labels and no samples answers zero-shot through the catalog's CLIP, pulled from the hub", () =>
    Effect.scoped(Effect.gen(function*() {
      const hub = yield* serveHub(repos)
      const { test } = yield* photos
      yield* withFunctions(hub.url, "zero-shot", Effect.gen(function*() {
        const functions = yield* Functions.Functions
        const fn = yield* functions.create("ZeroShot", { preset: "fast", overrides: { backbones: ["hf:Xenova/clip-vit-base-patch32"] } })
        yield* functions.createLabels(fn.id, Object.keys(labels))
        for (const [label, [file]] of Object.entries(test)) {
          expect(yield* functions.invoke(fn.id, file!)).toMatchObject({ labelName: label, mode: "zero-shot" })
        }
      }))
      expect(hub.requests).toContain("HEAD /Xenova/clip-vit-base-patch32/resolve/main/onnx/text_model.onnx")
    })))

  it.live("balanced with a reachable hub pulls its strong backbone on the first retrain and leads with it", () =>
    Effect.scoped(Effect.gen(function*() {
      const hub = yield* serveHub(repos)
      const { train } = yield* photos
      yield* withFunctions(hub.url, "balanced", Effect.gen(function*() {
        const functions = yield* Functions.Functions
        // balanced's preference over a cheaper offline set and search than its own.
        const overrides = { backbones: { tags: ["fast", "offline"] }, heads: ["logistic-regression"], mirror: false, folds: 2 }
        const fn = yield* functions.create("Balanced", { preset: "balanced", overrides })
        yield* functions.createSamples(fn.id, Object.entries(train).flatMap(([label, files]) => files.map((data) => ({ data, label }))))
        yield* functions.awaitTrained(fn.id)
        const metrics = yield* functions.metrics(fn.id)
        expect(metrics.backboneChoice!.backbones).toEqual(["hf:Xenova/dinov2-small", "onnx:mobilenetv2-int8"])
        expect(metrics.backboneChoice!.reason).toContain(`its weights are pulled from ${hub.url} when it loads`)
      }))
      expect(hub.requests).toContain("HEAD /Xenova/dinov2-small/resolve/main/onnx/model.onnx")
      const pulled = path.join(work, "cache-balanced", "transformers", "Xenova", "dinov2-small", "main", "onnx", "model.onnx")
      expect(fs.existsSync(pulled)).toBe(true)
    })))
})
