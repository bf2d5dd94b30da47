/**
 * The plugins the CLI and presets use: the built-in backbones and heads, plus user plugin modules named on the
 * command line (`--plugin ./my-backbone.js`). A plugin module exports `plugins: { backbones?, heads? }` or a single
 * backbone plugin as its default export. Registration stays explicit: nothing registers itself on import.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { Registry } from "@loupe/core"
import type { Backbone, Head } from "@loupe/core"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { FunctionsError } from "@loupe/functions"

import { builtins } from "./BuiltinPlugins.js"

export { builtins }

const isBackbonePlugin = (value: unknown): value is Backbone.BackbonePlugin =>
  typeof value === "object" && value !== null && "info" in value && "load" in value

/** Import a user plugin module and return the plugins it declares. */
const importModule = (specifier: string): Effect.Effect<Registry.Plugins, FunctionsError.FunctionsError> =>
  Effect.tryPromise({
    try: () => {
      const url = specifier.startsWith(".") || path.isAbsolute(specifier)
        ? pathToFileURL(path.resolve(specifier)).href
        : specifier
      return import(url) as Promise<Record<string, unknown>>
    },
    catch: (cause) =>
      new FunctionsError.FunctionsError({ reason: "InvalidPlugin", file: specifier, message: `Cannot import plugin module ${specifier}: ${String(cause)}`, cause })
  }).pipe(
    Effect.flatMap((mod) => {
      const declared = mod["plugins"] as Registry.Plugins | undefined
      if (declared && (declared.backbones || declared.heads)) return Effect.succeed(declared)
      if (isBackbonePlugin(mod["default"])) return Effect.succeed({ backbones: [mod["default"]] })
      return Effect.fail(
        new FunctionsError.FunctionsError({
          reason: "InvalidPlugin",
          file: specifier,
          message: `${specifier} exports neither \`plugins\` ({ backbones, heads }) nor a default backbone plugin`
        })
      )
    })
  )

/**
 * The registry of the built-in plugins followed by each user plugin module's, imported in order: a relative
 * or absolute path is resolved against the working directory, anything else is a package name. Fails with
 * `FunctionsError` `InvalidPlugin` naming the module when it cannot be imported or exports no plugins, or naming the
 * field when two plugins share an id.
 *
 * @since 0.1.0
 * @category layers
 */
export const registryLayer = (modules: ReadonlyArray<string> = []): Layer.Layer<Registry.Registry, FunctionsError.FunctionsError> =>
  Layer.effect(
    Registry.Registry,
    Effect.gen(function*() {
      const user = yield* Effect.forEach(modules, importModule)
      const all = [builtins, ...user]
      const backbones: Array<Backbone.BackbonePlugin> = all.flatMap((p) => p.backbones ?? [])
      const heads: Array<Head.HeadPlugin> = all.flatMap((p) => p.heads ?? [])
      return yield* Registry.make({ backbones, heads, ...(builtins.resolveBackbone ? { resolveBackbone: builtins.resolveBackbone } : {}) }).pipe(
        Effect.mapError((e) => new FunctionsError.FunctionsError({ reason: "InvalidPlugin", field: e.field ?? "plugin", message: e.message, cause: e }))
      )
    })
  )
