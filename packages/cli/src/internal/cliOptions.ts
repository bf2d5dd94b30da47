import { Options } from "@effect/cli"
import { Effect, Layer, Option } from "effect"
import { DiskEmbeddingCache, LoupeConfig } from "@loupe/core"
import type { EmbeddingCache, Progress, Registry } from "@loupe/core"
import { FunctionsError } from "@loupe/functions"
import * as path from "node:path"
import * as Plugins from "../Plugins.js"
import * as ProgressBar from "../ProgressBar.js"

export const modelsDir = Options.directory("models-dir").pipe(
  Options.withDescription("Folder with offline model folders (default: $LOUPE_MODELS_DIR)"),
  Options.optional
)

export const plugins = Options.text("plugin").pipe(
  Options.withDescription("A module exporting backbone/head plugins to register next to the built-ins (repeatable)"),
  Options.repeated
)

export const json = Options.boolean("json").pipe(Options.withDescription("Print one JSON object on stdout"))

/** `--preset <name>`, defaulting to `fallback`. */
export const preset = (fallback: string) =>
  Options.text("preset").pipe(Options.withDescription("fast | balanced | best"), Options.withDefault(fallback))

export const overrides = Options.text("overrides").pipe(
  Options.withDescription("Preset overrides as JSON, e.g. '{\"folds\": 3}'"),
  Options.optional
)

/** The parsed `--overrides` JSON (undefined when absent). */
export const parseOverrides = (text: Option.Option<string>): Effect.Effect<unknown, FunctionsError.FunctionsError> =>
  Option.match(text, {
    onNone: () => Effect.succeed(undefined),
    onSome: (json) =>
      Effect.try({
        try: () => JSON.parse(json) as unknown,
        catch: () => new FunctionsError.FunctionsError({ reason: "InvalidOptions", field: "overrides", message: `--overrides is not valid JSON: ${json}` })
      })
  })

/**
 * Services every command needs: config (flags over environment), plugins, the on-disk embedding cache under the
 * cache directory, and progress on stderr.
 */
export const environment = (flags: {
  readonly modelsDir: Option.Option<string>
  readonly plugins: ReadonlyArray<string>
}): Layer.Layer<
  LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | Registry.Registry | Progress.Progress,
  FunctionsError.FunctionsError
> => {
  const config = LoupeConfig.LoupeConfig.layerConfig(
    Option.match(flags.modelsDir, { onNone: () => ({}), onSome: (dir) => ({ modelsDir: path.resolve(dir) }) })
  ).pipe(Layer.mapError(FunctionsError.fromConfigError))
  return Layer.mergeAll(
    config,
    DiskEmbeddingCache.layer().pipe(Layer.provide(config)),
    Plugins.registryLayer(flags.plugins),
    ProgressBar.layer()
  )
}
