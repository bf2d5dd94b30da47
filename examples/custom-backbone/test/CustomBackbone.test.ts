import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Embedder, LoupeConfig, Registry } from "@loupe/core"
import { Catalog, Conformance } from "@loupe/backbones"
import * as fs from "node:fs"
import * as path from "node:path"
import { catsVsDogs as dataDir, modelsDir } from "../../../test/fixtures/shared.mjs"
import plugin, { plugins } from "../src/index.js"

const photos = (split: string, label: string) =>
  fs.readdirSync(path.join(dataDir, split, label)).sort().map((f) => path.join(dataDir, split, label, f))
const cats = photos("test", "cats")
const dogs = photos("test", "dogs")

const layer = Layer.mergeAll(
  Registry.Registry.layer({ backbones: [...Catalog.builtins, plugin] }),
  LoupeConfig.LoupeConfig.layer({ modelsDir })
)

describe("the custom backbone example", () => {
  it.effect("registers next to the built-ins and is found by its tag", () =>
    Effect.gen(function*() {
      // What `loupe --plugin <module>` reads, and the default export, name the same plugin.
      expect(plugins.backbones).toEqual([plugin])
      const registry = yield* Registry.Registry
      expect(registry.backbones.map((p) => p.info.id)).toContain(plugin.info.id)
      expect(registry.backbonesWithTags(["custom"]).map((p) => p.info.id)).toEqual([plugin.info.id])
      expect(registry.backbonesWithTags(["offline"]).map((p) => p.info.id)).toContain(plugin.info.id)
    }).pipe(Effect.provide(layer)))

  it.effect("passes the conformance suite", () =>
    Effect.gen(function*() {
      const report = yield* Conformance.check(plugin.info.id, { images: [cats[0]!, cats[1]!, dogs[0]!, dogs[1]!] })
      expect(report.status, Conformance.format([report])).toBe("passed")
    }).pipe(Effect.provide(layer)))

  // All 240 photos (train and test), so that one photo is 0.4 %: int8 kernels round differently on AVX-512 VNNI and
  // AVX2-only CPUs, and on the 40 test photos alone that moved accuracy from >= 0.9 (AVX2) to 0.875 (VNNI, 35/40).
  // Measured on AVX-512 VNNI (2026-12): 221/240 = 0.921. The bar, 0.875 (210/240), leaves 11 photos for that shift.
  it.scoped("its 1000 logits tell cats from dogs: nearest class mean, leave one out", () =>
    Effect.gen(function*() {
      const backbone = yield* Registry.loadBackbone(plugin.info.id)
      const allCats = [...photos("train", "cats"), ...cats]
      const allDogs = [...photos("train", "dogs"), ...dogs]
      const samples = [...allCats, ...allDogs].map((source, i) => ({
        id: String(i),
        source,
        label: i < allCats.length ? "cat" : "dog"
      }))
      const { samples: embedded, vectors } = yield* Embedder.embedSamples(backbone, samples)
      expect(vectors.cols).toBe(1000)
      const row = (i: number) => vectors.data.subarray(i * 1000, (i + 1) * 1000)
      const sum = (label: string) => {
        const total = new Float64Array(1000)
        embedded.forEach((s, i) => s.label === label && row(i).forEach((v, j) => (total[j] += v)))
        return total
      }
      const sums = { cat: sum("cat"), dog: sum("dog") }
      const counts = { cat: allCats.length, dog: allDogs.length }
      let correct = 0
      embedded.forEach((s, i) => {
        const distance = (label: "cat" | "dog") => {
          const own = s.label === label ? 1 : 0
          let d = 0
          row(i).forEach((v, j) => (d += (v - (sums[label][j]! - own * v) / (counts[label] - own)) ** 2))
          return d
        }
        if ((distance("cat") < distance("dog") ? "cat" : "dog") === s.label) correct++
      })
      expect(embedded.length).toBe(240)
      expect(correct / embedded.length).toBeGreaterThanOrEqual(0.875)
    }).pipe(Effect.provide(layer)))
})
