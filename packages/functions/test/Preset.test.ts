import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Logger, Schema } from "effect"
import { LoupeConfig, Registry } from "@loupe/core"
import type { Backbone, Head } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { Preset } from "@loupe/functions"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { hubModelFiles, writeHubModel } from "../../backbones/test/fixtures/hubModels.js"
import { commitOf, serveHub } from "../../backbones/test/fixtures/hubServer.js"

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

// Offline, with an empty cache: no hub model is available, so presets fall back to the offline set.
const offline = LoupeConfig.LoupeConfig.layer({ cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), "loupe-preset-")), offline: true })
const withRegistry = (backbones: ReadonlyArray<Backbone.BackbonePlugin>) =>
  Effect.provide(Layer.merge(Registry.Registry.layer({ backbones, heads }), offline))

const failure = <A>(exit: Exit.Exit<A, { readonly reason: string; readonly field?: string; readonly message: string }>) => {
  if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error(`expected a failure, got ${String(exit)}`)
  return exit.cause.error
}

describe("Preset", () => {
  it.effect("refuses, for a training run, the settings that only steer a function's retrains, naming the key", () =>
    Effect.gen(function*() {
      for (const overrides of [{ promote: "if-not-worse" }, { keepVersions: 3 }]) {
        const [key] = Object.keys(overrides)
        const resolved = yield* Preset.resolve("fast", overrides)
        const refused = yield* Effect.flip(Preset.forTraining(resolved))
        expect(refused).toMatchObject({ _tag: "FunctionsError", reason: "InvalidOptions", field: key })
        expect(refused.message).toMatch(new RegExp(`^Preset override "${key}" applies to functions .*\\bloupe function create --overrides\\b`))
        expect(refused.message).not.toContain("\n")
      }
      const plain = yield* Preset.resolve("fast", { folds: 3 })
      expect(yield* Preset.forTraining(plain)).toBe(plain)
    }))

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

  it.effect("fineTune: on in best (v6), off elsewhere; an override turns it off, on, or changes one field", () =>
    Effect.gen(function*() {
      const best = yield* Preset.resolve("best")
      expect(best.preset.version).toBe(6)
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

  it.effect("an override error is one line: the key, and the keys accepted there, never the whole schema", () =>
    Effect.gen(function*() {
      const top = failure(yield* Effect.exit(Preset.resolve("fast", { foldz: 3 })))
      expect(top.message).toBe(`Unknown preset override "foldz"; accepted keys: ${Object.keys(Preset.Overrides.fields).join(", ")}`)
      expect(top.message).toContain("backbones, heads, folds, strategy")
      const nested = failure(yield* Effect.exit(Preset.resolve("fast", { backbones: { tagz: ["clip"] } })))
      expect(nested.message).toMatch(/^Unknown preset override "backbones.tagz"; accepted keys of "backbones": tags, max, (\w+, )*ids$/)
      const inUnion = failure(yield* Effect.exit(Preset.resolve("best", { fineTune: { epochz: 1 } })))
      expect(inUnion.message).toBe(`Unknown preset override "fineTune.epochz"; accepted keys of "fineTune": trainableLayers, epochs`)
      const badType = failure(yield* Effect.exit(Preset.resolve("fast", { folds: 1 })))
      expect(badType.message).toBe(`Invalid preset override "folds": Expected a number greater than or equal to 2, actual 1`)
      const notObject = failure(yield* Effect.exit(Preset.resolve("fast", [1])))
      expect(notObject).toMatchObject({ field: "overrides" })
      for (const e of [top, nested, inUnion, badType, notObject]) {
        expect(e.message).not.toContain("\n")
        expect(e.message).not.toContain("readonly")
      }
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
      const offlineIds = Catalog.builtins.filter((b) => b.info.tags.includes("offline")).map((b) => b.info.id)
      expect(balanced.backbones).toEqual([...offlineIds, "user:my-net"])
      // "all": the search's own space.
      expect(balanced.heads).toBeUndefined()
      // A preset's head list keeps the registered kinds; a user's list must be registered.
      const fastHeads = yield* Preset.fitOptions(fast).pipe(
        Effect.provide(Layer.merge(Registry.Registry.layer({ backbones: Catalog.builtins, heads: [head("logistic-regression")] }), offline))
      )
      expect(fastHeads.heads).toEqual(["logistic-regression"])
      expect(balanced.searchBudget).toBe(Preset.defaults.searchBudget)
      expect(balanced.strategy).toBe("successive-halving")
      // Nothing carries the tags: an error naming the field.
      const none = failure(
        yield* Effect.exit(
          Preset.fitOptions(yield* Preset.resolve("fast", { backbones: { tags: ["no-such-tag"] } })).pipe(withRegistry(Catalog.builtins))
        )
      )
      expect(none).toMatchObject({ reason: "NoBackbone", field: "backbones.tags" })
      const unknownHead = failure(
        yield* Effect.exit(Preset.fitOptions(yield* Preset.resolve("fast", { heads: ["forest"] })).pipe(withRegistry(Catalog.builtins)))
      )
      expect(unknownHead).toMatchObject({ reason: "InvalidOptions", field: "heads" })
    }))
})

describe("Preset backbone choice", () => {
  const hubRepos = {
    "Xenova/dinov2-small": { commits: { [commitOf("dino")]: hubModelFiles("dinov2", 384) }, refs: { main: commitOf("dino") } }
  }
  const configWith = (options: Partial<LoupeConfig.LoupeConfigShape>) =>
    LoupeConfig.LoupeConfig.layer({ cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), "loupe-preset-choice-")), ...options })
  const choose = (preset: string, config: Layer.Layer<LoupeConfig.LoupeConfig>, overrides: unknown = {}) =>
    Effect.flatMap(Preset.resolve(preset, overrides), Preset.fitOptions).pipe(
      Effect.provide(Layer.merge(Registry.Registry.layer({ backbones: Catalog.builtins, heads, resolveBackbone: Catalog.resolveBackbone }), config))
    )
  const offlineIds = Catalog.builtins.filter((b) => b.info.tags.includes("offline")).map((b) => b.info.id)
  /** Runs `effect` with $HF_ENDPOINT set to `url`. */
  const withHub = <A, E, R>(url: string, effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const before = process.env["HF_ENDPOINT"]
        process.env["HF_ENDPOINT"] = url
        return before
      }),
      () => effect,
      (before) => Effect.sync(() => (before === undefined ? delete process.env["HF_ENDPOINT"] : (process.env["HF_ENDPOINT"] = before)))
    )

  it.scopedLive("balanced leads with a strong backbone whose weights are here, and says why", () =>
    Effect.gen(function*() {
      const modelsDir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-preset-models-"))
      writeHubModel(path.join(modelsDir, "Xenova", "dinov2-small"), "dinov2", 384)
      const chosen = yield* choose("balanced", configWith({ modelsDir, offline: true }))
      expect(chosen.backbones).toEqual(["hf:Xenova/dinov2-small", ...offlineIds])
      expect(chosen.backboneChoice.reason).toContain(`hf:Xenova/dinov2-small is the first backbone tagged [strong] available: its weights are here (${path.join(modelsDir, "Xenova", "dinov2-small")})`)
      // `fast` never takes it.
      expect((yield* choose("fast", configWith({ modelsDir }))).backbones).toEqual([Catalog.mobilenetV2Int8.id])
    }))

  it.scopedLive("with a reachable hub it is pulled on load; offline or with no hub, the offline set and one log line", () =>
    Effect.gen(function*() {
      const hub = yield* serveHub(hubRepos)
      const online = yield* withHub(hub.url, choose("best", configWith({})))
      expect(online.backbones).toEqual(["hf:Xenova/dinov2-small", ...offlineIds])
      expect(online.backboneChoice.reason).toContain(`its weights are pulled from ${hub.url} when it loads`)
      expect(hub.requests).toEqual(["HEAD /Xenova/dinov2-small/resolve/main/config.json"])

      const logs: Array<string> = []
      const logger = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logs.push(String(message))))
      const offline = yield* withHub(hub.url, choose("balanced", configWith({ offline: true }))).pipe(Effect.provide(logger))
      expect(offline.backbones).toEqual(offlineIds)
      expect(offline.backboneChoice.reason).toMatch(/^no backbone tagged \[strong\] is available \(hf:Xenova\/dinov2-small: its weights are not here and offline mode is on\), so the offline set/)
      expect(logs.filter((l) => l.includes("no backbone tagged [strong] is available"))).toHaveLength(1)
      expect(hub.requests).toHaveLength(1)

      const closed = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
      const started = Date.now()
      const unreachable = yield* withHub(closed, choose("balanced", configWith({})))
      expect(Date.now() - started).toBeLessThan(3000)
      expect(unreachable.backbones).toEqual(offlineIds)
      expect(unreachable.backboneChoice.reason).toContain(`hf:Xenova/dinov2-small: the hub ${closed} cannot be reached`)
    }))

  it.effect("overrides name backbones as a list: catalog ids, any hub repository, a folder; else an error naming backbones.ids", () =>
    Effect.gen(function*() {
      const config = configWith({ offline: true })
      const listed = yield* choose("balanced", config, { backbones: ["hf:Xenova/clip-vit-base-patch32", "hf:org/any-model@v2", "./my-model"] })
      expect(listed.backbones).toEqual(["hf:Xenova/clip-vit-base-patch32", "hf:org/any-model@v2", "./my-model"])
      expect(listed.backboneChoice.reason).toBe("named by the user (backbones.ids / --backbone)")
      const bad = failure(yield* Effect.exit(choose("balanced", config, { backbones: ["nope:model"] })))
      expect(bad).toMatchObject({ reason: "InvalidOptions", field: "backbones.ids" })
    }))
})

/** A loopback port nothing listens on (free a moment ago). */
const freePort = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
