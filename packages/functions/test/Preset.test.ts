import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import { Registry } from "@loupe/core"
import type { Backbone, Head } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { Preset } from "@loupe/functions"

/** A user plugin: only its info matters to presets (it is never loaded here). */
const userBackbone = (id: string, tags: ReadonlyArray<string>): Backbone.BackbonePlugin => ({
  info: { ...Catalog.mobilenetV2Int8, id, runtime: "onnx", tags, weights: { _tag: "Path", path: "/nonexistent" } },
  load: () => Effect.dieMessage("not loaded in this test")
})

const head = (kind: string): Head.HeadPlugin => ({
  kind,
  paramsSchema: Schema.Struct({}),
  fit: () => Effect.dieMessage("not fitted in this test"),
  load: () => Effect.dieMessage("not loaded in this test")
})

const heads = ["logistic-regression", "linear-svm", "knn", "mlp"].map(head)

const withRegistry = (backbones: ReadonlyArray<Backbone.BackbonePlugin>) =>
  Effect.provide(Registry.Registry.layer({ backbones, heads }))

const failure = <A>(exit: Exit.Exit<A, { readonly reason: string; readonly field?: string; readonly message: string }>) => {
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error(`expected a failure, got ${String(exit)}`)
  return exit.cause.error
}

describe("Preset", () => {
  it.effect("precedence: defaults, then the preset, then the user's overrides (nested objects merge by key)", () =>
    Effect.gen(function*() {
      const plain = yield* Preset.resolve("fast")
      expect(plain.preset).toEqual({ name: "fast", version: Preset.fast.version })
      // From the preset: backbones, heads, budget. From the defaults: folds, mirror images (off) and seed.
      expect(plain.settings).toEqual({
        backbones: { tags: ["fast", "offline"], max: 1 },
        heads: Preset.fast.settings.heads,
        folds: Preset.defaults.folds,
        strategy: "successive-halving",
        searchBudget: Preset.fast.settings.searchBudget,
        mirror: false,
        augmentedViews: 0,
        ensembles: false,
        fineTune: false,
        seed: Preset.defaults.seed,
        promote: "always",
        keepVersions: 10
      })
      const overridden = yield* Preset.resolve("fast", { folds: 3, backbones: { max: 2 }, searchBudget: 1500, strategy: "grid", mirror: true })
      expect(overridden.settings.folds).toBe(3)
      expect(overridden.settings.mirror).toBe(true)
      expect((yield* Preset.fitOptions(overridden).pipe(withRegistry(Catalog.builtins))).mirror).toBe(true)
      expect(overridden.settings.searchBudget).toBe(1500)
      expect(overridden.settings.strategy).toBe("grid")
      // The old wall-clock budget is still accepted (stored functions carry it) and ignored.
      const old = yield* Preset.resolve("fast", { timeBudgetSeconds: 5 })
      expect(old.deprecated).toEqual(["timeBudgetSeconds"])
      expect(old.settings).toEqual(plain.settings)
      // `max` overridden, `tags` kept from the preset.
      expect(overridden.settings.backbones).toEqual({ tags: ["fast", "offline"], max: 2 })
      // best differs from balanced only by a wider search today.
      const balanced = yield* Preset.resolve("balanced")
      const best = yield* Preset.resolve("best")
      expect(balanced.settings.mirror).toBe(true)
      expect(best.settings.backbones).toEqual(balanced.settings.backbones)
      expect(best.settings.heads).toEqual(balanced.settings.heads)
      expect(best.settings.folds).toBeGreaterThan(balanced.settings.folds)
      expect(best.settings.searchBudget).toBeGreaterThan(balanced.settings.searchBudget)
    }))

  it.effect("fineTune: on in best (v5), off elsewhere; an override turns it off, on, or changes one field", () =>
    Effect.gen(function*() {
      const best = yield* Preset.resolve("best")
      expect(best.preset.version).toBe(5)
      expect(best.settings.fineTune).toEqual(Preset.fineTuneRecipe)
      expect((yield* Preset.fitOptions(best).pipe(withRegistry(Catalog.builtins))).fineTune).toEqual(Preset.fineTuneRecipe)
      expect((yield* Preset.resolve("balanced")).settings.fineTune).toBe(false)
      expect((yield* Preset.resolve("fast")).settings.fineTune).toBe(false)

      const off = yield* Preset.resolve("best", { fineTune: false })
      expect(off.settings.fineTune).toBe(false)
      expect((yield* Preset.fitOptions(off).pipe(withRegistry(Catalog.builtins))).fineTune).toBeUndefined()
      expect((yield* Preset.resolve("balanced", { fineTune: true })).settings.fineTune).toEqual(Preset.fineTuneRecipe)
      expect((yield* Preset.resolve("best", { fineTune: { epochs: 5 } })).settings.fineTune).toEqual({ ...Preset.fineTuneRecipe, epochs: 5 })

      const unknown = failure(yield* Effect.exit(Preset.resolve("best", { fineTune: { layers: 2 } })))
      expect(unknown).toMatchObject({ reason: "InvalidOptions", field: "fineTune.layers" })
      const zero = failure(yield* Effect.exit(Preset.resolve("best", { fineTune: { epochs: 0 } })))
      expect(zero).toMatchObject({ reason: "InvalidOptions", field: "fineTune.epochs" })
    }))

  it.effect("an unknown key is an error that names it, nested ones with their path", () =>
    Effect.gen(function*() {
      const top = failure(yield* Effect.exit(Preset.resolve("balanced", { folds: 5, foldz: 3 })))
      expect(top).toMatchObject({ _tag: "FunctionsError", reason: "InvalidOptions", field: "foldz" })
      expect(top.message).toContain("foldz")
      const nested = failure(yield* Effect.exit(Preset.resolve("fast", { backbones: { tag: ["clip"] } })))
      expect(nested).toMatchObject({ reason: "InvalidOptions", field: "backbones.tag" })
      const badType = failure(yield* Effect.exit(Preset.resolve("fast", { folds: 1 })))
      expect(badType).toMatchObject({ reason: "InvalidOptions", field: "folds" })
      expect(failure(yield* Effect.exit(Preset.resolve("fast", { promote: "sometimes" })))).toMatchObject({ field: "promote" })
      expect(failure(yield* Effect.exit(Preset.resolve("fast", { keepVersions: 0 })))).toMatchObject({ field: "keepVersions" })
      const unknownPreset = failure(yield* Effect.exit(Preset.resolve("fastest")))
      expect(unknownPreset).toMatchObject({ reason: "InvalidOptions", field: "preset" })
      expect(unknownPreset.message).toContain("fast, balanced, best")
    }))

  it.effect("backbones are chosen by tags: a user plugin tagged `fast` joins `fast`", () =>
    Effect.gen(function*() {
      const fast = yield* Preset.resolve("fast", { backbones: { max: 5 } })
      const builtinOnly = yield* Preset.fitOptions(fast).pipe(withRegistry(Catalog.builtins))
      expect(builtinOnly.backbones).toEqual(
        Catalog.builtins.filter((b) => b.info.tags.includes("fast") && b.info.tags.includes("offline")).map((b) => b.info.id)
      )
      const mine = userBackbone("user:my-net", ["fast", "offline"])
      const withMine = yield* Preset.fitOptions(fast).pipe(withRegistry([...Catalog.builtins, mine]))
      expect(withMine.backbones).toEqual([...builtinOnly.backbones!, "user:my-net"])
      // `balanced` takes every offline backbone; a plugin that is not offline stays out.
      const online = userBackbone("user:hub-net", ["clip"])
      const balanced = yield* Preset.fitOptions(yield* Preset.resolve("balanced")).pipe(
        withRegistry([...Catalog.builtins, mine, online])
      )
      expect(balanced.backbones).toEqual([...Catalog.builtins.map((b) => b.info.id), "user:my-net"])
      // "all": the search's own space.
      expect(balanced.heads).toBeUndefined()
      // A preset's head list keeps the registered kinds; a user's list must be registered.
      const fastHeads = yield* Preset.fitOptions(fast).pipe(
        Effect.provide(Registry.Registry.layer({ backbones: Catalog.builtins, heads: [head("logistic-regression")] }))
      )
      expect(fastHeads.heads).toEqual(["logistic-regression"])
      expect(balanced.searchBudget).toBe(Preset.defaults.searchBudget)
      expect(balanced.strategy).toBe("successive-halving")
      // Nothing carries the tags: an error naming the field.
      const none = failure(
        yield* Effect.exit(
          Preset.fitOptions(yield* Preset.resolve("fast", { backbones: { tags: ["clip"] } })).pipe(withRegistry(Catalog.builtins))
        )
      )
      expect(none).toMatchObject({ reason: "NoBackbone", field: "backbones.tags" })
      const unknownHead = failure(
        yield* Effect.exit(Preset.fitOptions(yield* Preset.resolve("fast", { heads: ["forest"] })).pipe(withRegistry(Catalog.builtins)))
      )
      expect(unknownHead).toMatchObject({ reason: "InvalidOptions", field: "heads" })
    }))
})
