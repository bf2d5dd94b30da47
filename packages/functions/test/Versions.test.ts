// Model versions a user can steer, on real cats-vs-dogs photos (`fast` preset, MobileNetV2-int8): the `if-not-worse`
// promotion rule against a retrain made worse by mislabelled photos, rollback to any version, and retention.
// Workers sleep on the real clock, so these tests run with `it.live`.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Functions, Retrainer } from "@loupe/functions"
import type { StoreLocation } from "@loupe/functions"
import { dialects, dialectTest } from "./fixtures/dialects.js"
import { catsVsDogsPhotos, functionsEnvironment } from "./fixtures/environment.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-versions-"))
let folders = 0
const freshDir = () => path.join(work, `store-${folders++}`)
const environment = functionsEnvironment(path.join(work, "cache"))
const functionsIn = (dir: string) =>
  Functions.layerDirectory(dir, { debounce: "50 millis" }).pipe(Layer.provide(environment))
const functionsAt = (location: StoreLocation.StoreLocation) =>
  Functions.layerStore(location, { debounce: "50 millis" }).pipe(Layer.provide(environment))

/** `count` training photos of `photo`, annotated `label` (another label than the photo's is a mislabelled sample). */
const samples = (photo: "cats" | "dogs", from: number, count: number, label: string = photo) =>
  catsVsDogsPhotos("train", photo, from, count).map((data) => ({ data, label }))

const probe = catsVsDogsPhotos("test", "cats", 0, 1)[0]!

const cvOf = (version: { readonly metrics: unknown }) => (version.metrics as Retrainer.ModelMetrics).cv

describe.each(dialects())("model versions on $name", (dialect) => {
  dialectTest(dialect, "if-not-worse keeps a retrain on mislabelled photos unserved and says why; rollback serves it anyway", (location) =>
    Effect.gen(function*() {
      const functions = yield* Functions.Functions
      // keepVersions 1: the newest version and the serving one, which is older while retrains are held back.
      const guarded = yield* functions.create("guarded", { preset: "fast", overrides: { folds: 3, promote: "if-not-worse", keepVersions: 1 } })
      const plain = yield* functions.create("plain", { preset: "fast", overrides: { folds: 3 } })
      const clean = [...samples("cats", 0, 4), ...samples("dogs", 0, 4)]
      const mislabelled = [...samples("cats", 4, 4, "dogs"), ...samples("dogs", 4, 4, "cats")]
      const moreMislabelled = [...samples("cats", 8, 2, "dogs"), ...samples("dogs", 8, 2, "cats")]

      const train = (id: string, batch: ReadonlyArray<{ readonly data: string; readonly label: string }>) =>
        Effect.zipRight(functions.createSamples(id, batch), functions.awaitTrained(id))

      const v1 = (yield* train(guarded.id, clean)).model!.id
      const first = (yield* functions.models(guarded.id))[0]!
      // Per-fold scores come from the search; their standard error is recomputed here from them.
      const cv1 = cvOf(first)
      // One score per fold of each repeat.
      expect(cv1.foldMacroF1!.length % cv1.folds).toBe(0)
      expect(cv1.foldMacroF1!.length).toBeGreaterThan(0)
      const mean = cv1.foldMacroF1!.reduce((a, b) => a + b, 0) / cv1.foldMacroF1!.length
      const sd = Math.sqrt(cv1.foldMacroF1!.reduce((a, s) => a + (s - mean) ** 2, 0) / (cv1.foldMacroF1!.length - 1))
      expect(cv1.macroF1StandardError).toBeCloseTo(sd / Math.sqrt(cv1.folds), 10)

      const held = yield* train(guarded.id, mislabelled)
      // The retrain is kept, not served: invocations stay on v1, and the status and the history say why.
      expect(held.model!.id).toBe(v1)
      expect(held.trainError).toBeNull()
      expect(held.heldBack).not.toBeNull()
      expect(held.heldBack!.reason).toContain("if-not-worse")
      const v2 = held.heldBack!.id
      const history = yield* functions.models(guarded.id)
      expect(history.map((v) => [v.id, v.promoted])).toEqual([[v2, false], [v1, true]])
      expect(history[0]!.heldBack).toBe(held.heldBack!.reason)
      const cv2 = cvOf(history[0]!)
      expect(cv1.macroF1 - cv2.macroF1).toBeGreaterThan(Math.hypot(cv1.macroF1StandardError!, cv2.macroF1StandardError!))
      expect((yield* functions.invoke(guarded.id, probe)).modelId).toBe(v1)

      // The same data under the default rule ("always"): the worse retrain serves.
      yield* train(plain.id, clean)
      const always = yield* train(plain.id, mislabelled)
      expect(always.heldBack).toBeNull()
      expect((yield* functions.models(plain.id))[0]).toMatchObject({ id: always.model!.id, promoted: true, heldBack: null })

      // Another held-back retrain: keepVersions 1 prunes v2 but keeps v1, which serves.
      const again = yield* train(guarded.id, moreMislabelled)
      const v3 = again.heldBack!.id
      expect(again.model!.id).toBe(v1)
      expect((yield* functions.models(guarded.id)).map((v) => v.id)).toEqual([v3, v1])

      // Promoting a held-back version serves it from the next invocation on, and clears its reason.
      const promoted = yield* functions.rollback(guarded.id, v3)
      expect(promoted).toMatchObject({ id: v3, promoted: true, heldBack: null })
      expect((yield* functions.invoke(guarded.id, probe)).modelId).toBe(v3)
      expect((yield* functions.get(guarded.id)).heldBack).toBeNull()
    }).pipe(Effect.provide(functionsAt(location))))
})

describe("model versions", () => {
  it.live("retention keeps the newest keepVersions versions, removing only the bundles it wrote", () => {
    const dir = freshDir()
    return Effect.gen(function*() {
      const functions = yield* Functions.Functions
      const fn = yield* functions.create("retained", { preset: "fast", overrides: { folds: 3, keepVersions: 2 } })
      const bundles = path.join(dir, "blobs", "bundles", fn.id)
      const versions: Array<string> = []
      for (const [from, count] of [[0, 4], [4, 1], [5, 1]] as const) {
        yield* functions.createSamples(fn.id, [...samples("cats", from, count), ...samples("dogs", from, count)])
        versions.push((yield* functions.awaitTrained(fn.id)).model!.id)
        // Something Loupe did not write, beside its bundles.
        if (versions.length === 1) fs.writeFileSync(path.join(bundles, "notes.txt"), "mine")
      }
      const [v1, v2, v3] = versions
      expect(new Set(versions).size).toBe(3)
      expect((yield* functions.models(fn.id)).map((v) => [v.id, v.promoted])).toEqual([[v3, true], [v2, false]])
      expect(fs.readdirSync(bundles).sort()).toEqual([v2, v3, "notes.txt"].sort())
      expect(fs.readFileSync(path.join(bundles, "notes.txt"), "utf8")).toBe("mine")
      // The pruned version is gone from every route.
      expect(yield* Effect.flip(functions.rollback(fn.id, v1!))).toMatchObject({ reason: "NotFound" })
      expect(yield* Effect.flip(functions.invoke(fn.id, probe, { modelId: v1! }))).toMatchObject({ reason: "NotFound" })
      // Rolling back to v2 serves it at once.
      yield* functions.rollback(fn.id, v2!)
      expect((yield* functions.invoke(fn.id, probe)).modelId).toBe(v2)
    }).pipe(Effect.provide(functionsIn(dir)))
  })
})
