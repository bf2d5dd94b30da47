import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { LoupeConfig, Registry } from "@loupe/core"
import { Catalog, Conformance, OnnxBackbone } from "@loupe/backbones"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { plugin as customBackbone } from "../../../examples/custom-backbone/src/index.js"
import { modelsDir, sharedDir } from "../../../test/fixtures/shared.mjs"

const testDir = path.join(sharedDir, "datasets/cats-vs-dogs/test")
const firstTwo = (label: string) =>
  fs.readdirSync(path.join(testDir, label)).sort().slice(0, 2).map((f) => path.join(testDir, label, f))
const images = [...firstTwo("cats"), ...firstTwo("dogs")]

// Every built-in (whatever runtime added it) plus the user-written example.
const plugins = [...Catalog.builtins, customBackbone]
const config = { modelsDir, offline: true, cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), "loupe-conformance-")) }
const layer = Layer.mergeAll(Registry.Registry.layer({ backbones: plugins }), LoupeConfig.LoupeConfig.layer(config))
afterAll(() => fs.rmSync(config.cacheDir, { recursive: true, force: true }))

describe("backbone conformance", () => {
  for (const plugin of plugins) {
    const { id, weights } = plugin.info
    it(id, async (ctx) => {
      const report = await Effect.runPromise(Conformance.check(id, { images }).pipe(Effect.provide(layer)))
      // Weights that come from the network may be absent here (skipped, saying why); weights from the models
      // directory must be present.
      const remote = weights._tag === "Url" || weights._tag === "Hub"
      if (report.status === "unavailable" && remote) {
        const reason = `${id}: weights not here (${report.checks.find((c) => c.check === "load")?.detail})`
        console.log(`conformance skipped: ${reason}`)
        ctx.skip(reason)
      }
      expect(report.status, Conformance.format([report])).toBe("passed")
      expect(report.checks.map((c) => c.check)).toEqual(["info", "load", "shape", "determinism", "batch-invariance", "bad-input"])
    })
  }

  it.effect("catches a backbone that breaks the contract, check by check", () =>
    Effect.gen(function*() {
      const good = Catalog.builtins[0]!
      // Ignores its input (same vector for every image), differs from call to call, and answers a short batch.
      let calls = 0
      const broken: typeof good = {
        info: { ...good.info, id: "broken:constant", runtime: "broken", tags: [] },
        load: () =>
          Effect.succeed({
            info: { ...good.info, id: "broken:constant", runtime: "broken", tags: [] },
            weightsHash: "none",
            maxBatchSize: 8,
            embedBatch: (_batch: Float32Array, count: number) =>
              Effect.succeed(new Float32Array(count * good.info.embeddingSize).fill(++calls))
          })
      }
      const [report] = yield* Conformance.run([broken], config, { images })
      const failed = report!.checks.filter((c) => !c.ok).map((c) => c.check)
      expect(report!.status).toBe("failed")
      expect(failed).toEqual(["info", "shape", "determinism", "batch-invariance", "bad-input"])
      expect(Conformance.format([report!])).toMatch(/FAIL info +no tags/)
    }))

  it.effect("reports missing downloadable weights as unavailable, not failed", () =>
    Effect.gen(function*() {
      const remote = OnnxBackbone.plugin({
        ...Catalog.mobilenetV2Int8,
        id: "onnx:not-downloaded",
        weights: { _tag: "Url", url: "https://example.invalid/model.onnx", sha256: "0".repeat(64), file: "not-downloaded.onnx" }
      })
      const [report] = yield* Conformance.run([remote], config, { images })
      expect(report!.status).toBe("unavailable")
      expect(report!.checks.find((c) => c.check === "load")!.detail).toMatch(/loupe models pull onnx:not-downloaded/)
    }))

  it.effect("needs at least three images", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Conformance.run(Catalog.builtins, config, { images: images.slice(0, 2) }))
      expect(error).toMatchObject({ reason: "InvalidConfig", field: "images" })
    }))
})

