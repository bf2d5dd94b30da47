/**
 * A registry whose backbones (and their text towers) load once and stay loaded for the life of a scope. Training
 * runs, bundle loads, zero-shot models and invocations of every function share the same sessions, so a promoted
 * model never holds a session that another model's release could close under it, and a retrain never pays for
 * loading a backbone again.
 *
 * @internal
 */
import { Effect, Scope, SynchronizedRef } from "effect"
import { Registry } from "@loupe/core"
import type { Backbone, CoreError, TextTower } from "@loupe/core"

/** Wrap `registry` so each (backbone id, options) loads once, into `scope`; the same for each text tower. */
export const make = (
  registry: Registry.RegistryShape,
  scope: Scope.Scope
): Effect.Effect<Registry.RegistryShape, CoreError.CoreError> =>
  Effect.gen(function*() {
    /** `load` once per key, into `scope`. */
    const loadOnce = <A>() => {
      const loaded = SynchronizedRef.unsafeMake(new Map<string, A>())
      return <E>(key: string, load: Effect.Effect<A, E, Scope.Scope>): Effect.Effect<A, E> =>
        Effect.flatMap(SynchronizedRef.get(loaded), (map) => {
          const hit = map.get(key)
          if (hit) return Effect.succeed(hit)
          // Load under the lock (loads are rare), checking again in case another fiber loaded it meanwhile.
          return SynchronizedRef.modifyEffect(loaded, (current) => {
            const again = current.get(key)
            if (again) return Effect.succeed([again, current] as const)
            return Effect.map(Scope.extend(load, scope), (value) => [value, new Map(current).set(key, value)] as const)
          })
        })
    }
    const backbones = loadOnce<Backbone.LoadedBackbone>()
    const textTowers = loadOnce<TextTower.TextEncoder>()
    const keyOf = (plugin: Backbone.BackbonePlugin, context: Backbone.LoadContext) =>
      `${plugin.info.id}\u0000${JSON.stringify(context.options ?? null)}`
    const share = (plugin: Backbone.BackbonePlugin): Backbone.BackbonePlugin => ({
      ...plugin,
      load: (context) => backbones(keyOf(plugin, context), plugin.load(context)),
      ...(plugin.textTower === undefined ? {} : {
        textTower: { load: (context) => textTowers(keyOf(plugin, context), plugin.textTower!.load(context)) }
      })
    })
    return yield* Registry.make({ backbones: registry.backbones.map(share), heads: registry.heads })
  })
