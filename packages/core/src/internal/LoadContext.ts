/**
 * What a backbone plugin's `load` (and its capabilities') receive: the Loupe configuration and the user's options,
 * decoded with the plugin's schema.
 *
 * @internal
 */
import { Effect, Schema } from "effect"
import type { BackbonePlugin, LoadContext } from "../Backbone.js"
import { CoreError } from "../CoreError.js"
import { LoupeConfig } from "../LoupeConfig.js"

/** Fails with `CoreError` `InvalidConfig` naming the backbone when the options do not decode (unknown keys included). */
export const make = (plugin: BackbonePlugin, options: unknown): Effect.Effect<LoadContext, CoreError, LoupeConfig> =>
  Effect.gen(function*() {
    const config = yield* LoupeConfig
    const id = plugin.info.id
    const decoded = plugin.optionsSchema
      ? yield* Schema.decodeUnknown(plugin.optionsSchema, { onExcessProperty: "error" })(options).pipe(
        Effect.mapError((e) =>
          new CoreError({ reason: "InvalidConfig", field: id, message: `Invalid options for backbone ${id}: ${e.message}` })
        )
      )
      : options
    return { config, options: decoded }
  })
