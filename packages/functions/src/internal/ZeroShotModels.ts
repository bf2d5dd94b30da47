/**
 * Zero-shot models of functions that have no model yet: the first backbone the function's preset selects that has
 * a text tower, with the zero-shot head of the function's label names (`ZeroShot.fromEncoder`). Kept per function
 * while its labels stay the same; the backbone and text tower come from the shared registry, so they load once.
 *
 * @internal
 */
import { Context, Effect, Ref } from "effect"
import type { FileSystem } from "@effect/platform"
import { Registry, TextTower } from "@loupe/core"
import type { EmbeddingCache, LoupeConfig, Pipeline } from "@loupe/core"
import { ZeroShot } from "@loupe/trainers"
import { FunctionsError } from "../FunctionsError.js"
import * as Preset from "../Preset.js"
import type { LabelRecord, StoreShape } from "../Store.js"

/** A function's zero-shot model: its backbone id, the labels it answers with (in class order) and the pipeline. */
export interface ZeroShotModel {
  readonly backbone: string
  readonly labels: ReadonlyArray<LabelRecord>
  readonly fitted: Pipeline.FittedPipeline
}

type Services = Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem

const failed = (functionId: string, backbone: string) => (e: { readonly message: string }) =>
  new FunctionsError({
    reason: "TrainingFailed",
    field: "functionId",
    message: `The zero-shot model of function ${functionId} (backbone ${backbone}) cannot be built: ${e.message}`,
    cause: e
  })

export const make = (store: StoreShape, context: Context.Context<Services>) =>
  Effect.gen(function*() {
    const models = yield* Ref.make(new Map<string, { readonly key: string; readonly model: ZeroShotModel }>())

    /** The zero-shot model, or `undefined` with fewer than two labels or no backbone with a text tower. */
    const get = (functionId: string): Effect.Effect<ZeroShotModel | undefined, FunctionsError> =>
      Effect.gen(function*() {
        const fn = yield* store.getFunction(functionId)
        const labels = yield* store.listLabels(functionId)
        if (labels.length < 2) return undefined
        const registry = yield* Registry.Registry
        // A preset that selects nothing usable has no zero-shot model; its training run reports why.
        const { backbones = [] } = yield* Preset.resolve(fn.preset, fn.overrides).pipe(
          Effect.flatMap(Preset.fitOptions),
          Effect.orElseSucceed((): { readonly backbones?: ReadonlyArray<string> } => ({}))
        )
        const plugins = yield* Effect.forEach(backbones, (id) => registry.backbone(id).pipe(Effect.orDie))
        const backbone = plugins.find((p) => p.textTower !== undefined)?.info.id
        if (backbone === undefined) return undefined
        const key = JSON.stringify([backbone, labels.map((l) => l.name)])
        const hit = (yield* Ref.get(models)).get(functionId)
        if (hit?.key === key) return hit.model
        const names = labels.map((l) => l.name)
        const built = yield* Effect.scoped(
          Effect.gen(function*() {
            // The shared registry keeps both loaded beyond this scope.
            const loaded = yield* Registry.loadBackbone(backbone)
            const head = yield* ZeroShot.fromEncoder(yield* TextTower.load(backbone), names)
            return { labels: names, backbone: loaded, backboneOptions: {}, head, embed: {} } satisfies Pipeline.FittedPipeline
          })
        ).pipe(Effect.mapError(failed(functionId, backbone)))
        const model = { backbone, labels, fitted: built }
        yield* Ref.update(models, (map) => new Map(map).set(functionId, { key, model }))
        yield* Effect.logInfo(`Function ${functionId} answers zero-shot with ${backbone} until its first model: labels ${names.join(", ")}`)
        return model
      }).pipe(Effect.provide(context))

    const forget = (functionId: string) =>
      Ref.update(models, (map) => {
        const next = new Map(map)
        next.delete(functionId)
        return next
      })

    return { get, forget }
  })
