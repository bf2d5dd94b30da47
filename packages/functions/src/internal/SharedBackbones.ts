/**
 * A registry whose backbones load once and stay loaded for the life of a scope. Training runs, bundle loads and
 * invocations of every function share the same sessions, so a promoted model never holds a session that another
 * model's release could close under it, and a retrain never pays for loading a backbone again.
 *
 * @internal
 */
import { Effect, Scope, SynchronizedRef } from "effect"
import { Registry } from "@loupe/core"
import type { Backbone, CoreError } from "@loupe/core"

/** Wrap `registry` so each (backbone id, options) loads once, into `scope`. */
export const make = (
  registry: Registry.RegistryShape,
  scope: Scope.Scope
): Effect.Effect<Registry.RegistryShape, CoreError.CoreError> =>
  Effect.gen(function*() {
    const loaded = yield* SynchronizedRef.make(new Map<string, Backbone.LoadedBackbone>())
    const share = (plugin: Backbone.BackbonePlugin): Backbone.BackbonePlugin => ({
      ...plugin,
      load: (context) => {
        const key = `${plugin.info.id}\u0000${JSON.stringify(context.options ?? null)}`
        return Effect.flatMap(SynchronizedRef.get(loaded), (map) => {
          const hit = map.get(key)
          if (hit) return Effect.succeed(hit)
          // Load under the lock (loads are rare), checking again in case another fiber loaded it meanwhile.
          return SynchronizedRef.modifyEffect(loaded, (current) => {
            const again = current.get(key)
            if (again) return Effect.succeed([again, current] as const)
            return Effect.map(
              Scope.extend(plugin.load(context), scope),
              (backbone) => [backbone, new Map(current).set(key, backbone)] as const
            )
          })
        })
      }
    })
    const resolve = registry.resolveBackbone
    return yield* Registry.make({
      backbones: registry.backbones.map(share),
      heads: registry.heads,
      ...(resolve === undefined ? {} : { resolveBackbone: (id: string) => {
        const plugin = resolve(id)
        return plugin && share(plugin)
      } })
    })
  })
