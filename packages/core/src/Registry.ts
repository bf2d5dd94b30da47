/**
 * The registry of plugins. Registration is explicit: pass the list (`[...builtins, myPlugin]`); a duplicate id is an
 * error. Nothing registers itself on import.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import type { BackbonePlugin, LoadedBackbone } from "./Backbone.js"
import { CoreError } from "./CoreError.js"
import type { HeadPlugin } from "./Head.js"
import * as LoadContext from "./internal/LoadContext.js"
import type { LoupeConfig } from "./LoupeConfig.js"

/**
 * The plugins to register: backbones and heads, each list optional (default empty).
 *
 * @since 0.1.0
 * @category models
 */
export interface Plugins {
  readonly backbones?: ReadonlyArray<BackbonePlugin>
  readonly heads?: ReadonlyArray<HeadPlugin>
}

/**
 * The registered plugins and their look-ups. `backbone` and `head` fail with `CoreError` `UnknownPlugin` naming the
 * id (the message lists the registered ones).
 *
 * @since 0.1.0
 * @category models
 */
export interface RegistryShape {
  readonly backbones: ReadonlyArray<BackbonePlugin>
  readonly heads: ReadonlyArray<HeadPlugin>
  readonly backbone: (id: string) => Effect.Effect<BackbonePlugin, CoreError>
  readonly head: (kind: string) => Effect.Effect<HeadPlugin, CoreError>
  /** Backbones carrying every one of `tags`, in registration order. */
  readonly backbonesWithTags: (tags: ReadonlyArray<string>) => ReadonlyArray<BackbonePlugin>
}

const indexBy = <A>(items: ReadonlyArray<A>, key: (a: A) => string, what: string) =>
  Effect.gen(function*() {
    const map = new Map<string, A>()
    for (const item of items) {
      const k = key(item)
      if (map.has(k)) {
        return yield* new CoreError({ reason: "DuplicatePlugin", field: k, message: `Two ${what} plugins use the id "${k}"` })
      }
      map.set(k, item)
    }
    return map
  })

const unknown = (what: string, id: string, known: Iterable<string>) =>
  new CoreError({
    reason: "UnknownPlugin",
    field: id,
    message: `Unknown ${what} "${id}". Registered: ${[...known].join(", ") || "(none)"}`
  })

/**
 * A registry of `plugins`. Fails with `CoreError` `DuplicatePlugin` when two backbones or two heads share an id, and
 * `InvalidConfig` when a backbone id contains `+` (which joins the ids of concatenated backbones).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (plugins: Plugins): Effect.Effect<RegistryShape, CoreError> =>
  Effect.gen(function*() {
    const backbones = plugins.backbones ?? []
    const heads = plugins.heads ?? []
    const byId = yield* indexBy(backbones, (p) => p.info.id, "backbone")
    // "+" joins backbone ids in the name of a concatenation (AutoML's search), so no single id may hold one.
    const joined = backbones.find((p) => p.info.id.includes("+"))
    if (joined) {
      return yield* new CoreError({
        reason: "InvalidConfig",
        field: joined.info.id,
        message: `Backbone id "${joined.info.id}" contains "+", which joins the ids of concatenated backbones; rename it`
      })
    }
    const byKind = yield* indexBy(heads, (h) => h.kind, "head")
    return {
      backbones,
      heads,
      backbone: (id) => {
        const p = byId.get(id)
        return p ? Effect.succeed(p) : Effect.fail(unknown("backbone", id, byId.keys()))
      },
      head: (kind) => {
        const h = byKind.get(kind)
        return h ? Effect.succeed(h) : Effect.fail(unknown("head", kind, byKind.keys()))
      },
      backbonesWithTags: (tags) => backbones.filter((p) => tags.every((t) => p.info.tags.includes(t)))
    }
  })

/**
 * The registry in use, as a service. `Registry.layer(plugins)` provides it (failing as `make` does); `Registry.make`
 * is `make`.
 *
 * @since 0.1.0
 * @category services
 */
export class Registry extends Context.Tag("@loupe/core/Registry")<Registry, RegistryShape>() {
  static readonly make = make
  static readonly layer = (plugins: Plugins): Layer.Layer<Registry, CoreError> => Layer.effect(Registry, make(plugins))
}

/**
 * Load a registered backbone within the current scope, validating `options` with the plugin's schema.
 *
 * Fails with `CoreError`: `UnknownPlugin` when the id is not registered, `InvalidConfig` when the options do not
 * decode (unknown keys included), `BackboneFailed` naming the id when the plugin fails to load.
 *
 * @since 0.1.0
 * @category constructors
 */
export const loadBackbone = (
  id: string,
  options: unknown = {}
): Effect.Effect<LoadedBackbone, CoreError, Registry | LoupeConfig | Scope.Scope> =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const plugin = yield* registry.backbone(id)
    return yield* plugin.load(yield* LoadContext.make(plugin, options)).pipe(
      Effect.mapError((e) =>
        new CoreError({ reason: "BackboneFailed", field: id, message: `Could not load backbone ${id}: ${e.message}`, cause: e })
      )
    )
  })
