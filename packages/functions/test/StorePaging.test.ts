// `Store.listSamples` with a label filter and `Store.countSamples`, which page the console's grid: the label's
// samples or the unlabelled ones, in the order they were added, a page at a time, with the totals the pager shows.
import { describe, expect, it } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Store } from "@loupe/functions"

const hash = (i: number) => i.toString(16).padStart(64, "0")

describe("Store paging", () => {
  it.effect("lists and counts a label's samples, the unlabelled ones, or all, a page at a time", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "loupe-store-paging-")))
      yield* Effect.gen(function*() {
        const store = yield* Store.Store
        const fn = yield* store.createFunction({ name: "Paging", preset: "fast", overrides: {} })
        // 0..29: every third is a cat, every third (offset 1) a dog, the rest unlabelled.
        yield* store.addSamples(fn.id, Array.from({ length: 30 }, (_, i) => ({
          contentHash: hash(i),
          ...(i % 3 === 0 ? { labelName: "cats" } : i % 3 === 1 ? { labelName: "dogs" } : {})
        })))
        const [cats] = (yield* store.listLabels(fn.id)).filter((l) => l.name === "cats")
        const all = yield* store.listSamples(fn.id)
        const index = (s: Store.SampleRecord) => all.findIndex((a) => a.id === s.id)

        expect(yield* store.countSamples(fn.id)).toBe(30)
        expect(yield* store.countSamples(fn.id, { labelId: cats!.id })).toBe(10)
        expect(yield* store.countSamples(fn.id, { labelId: null })).toBe(10)

        const catPage = yield* store.listSamples(fn.id, { labelId: cats!.id, limit: 4, offset: 4 })
        expect(catPage.map(index)).toEqual([12, 15, 18, 21])
        expect(catPage.every((s) => s.annotation?.labelName === "cats")).toBe(true)
        const lastUnlabelled = yield* store.listSamples(fn.id, { labelId: null, limit: 4, offset: 8 })
        expect(lastUnlabelled.map(index)).toEqual([26, 29])
        expect(lastUnlabelled.every((s) => s.annotation === null)).toBe(true)
        expect((yield* store.listSamples(fn.id, { limit: 5, offset: 28 })).map(index)).toEqual([28, 29])

        // A label of another function, or none, matches nothing; an unknown function is NotFound.
        expect(yield* store.countSamples(fn.id, { labelId: "label_nope" })).toBe(0)
        const missing = yield* Effect.flip(store.countSamples("function_nope"))
        expect(missing.reason).toBe("NotFound")
      }).pipe(Effect.provide(Store.layerSqlite(dir).pipe(Layer.provide(NodeFileSystem.layer))))
    }))
})
