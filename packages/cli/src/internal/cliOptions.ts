import { Effect, Layer, Option, pipe } from "effect"
import { DiskEmbeddingCache, LoupeConfig } from "@loupe/core"
import type { EmbeddingCache, Progress, Registry } from "@loupe/core"
import { FunctionsError, Preset } from "@loupe/functions"
import * as path from "node:path"
import * as Plugins from "../Plugins.js"
import * as ProgressBar from "../ProgressBar.js"
import * as Flag from "./Flag.js"

export const modelsDir = pipe(
  Flag.directory("models-dir", "Folder of offline model folders (one per backbone, as `loupe models pull` writes them)"),
  Flag.optional("$LOUPE_MODELS_DIR")
)

export const plugins = pipe(
  Flag.text("plugin", "<module>", "A module exporting backbone or head plugins to use beside the built-in ones"),
  Flag.repeated
)

export const json = Flag.boolean("json", "Print one JSON object on stdout instead of text")

/** `--offline`: never reach the network (as `LOUPE_OFFLINE=1`). */
export const offline = Flag.boolean("offline", "Never reach the network: no hub probe, no download (as LOUPE_OFFLINE=1)")

/** `--overwrite`, for the commands that write an `--out` folder (see `OutputFolder`). */
export const overwrite = Flag.boolean(
  "overwrite",
  "Replace an earlier Loupe output of the same kind at --out (a folder holding anything else is never replaced)"
)

/** `--preset <name>`, defaulting to `fallback`. */
export const preset = (fallback: string) =>
  pipe(
    Flag.text("preset", "<name>", `The AutoML preset: ${Preset.presets.map((p) => p.name).join(", ")} (see above)`),
    Flag.withDefault(fallback)
  )

/** A help paragraph on what each preset does, for the commands that take `--preset`. */
export const presetsHelp = `Presets. ${Preset.presets.map((p) => `${p.name}: ${p.description}.`).join(" ")}`

export const overrides = pipe(
  Flag.text(
    "overrides",
    "<json>",
    `Preset settings to change, as a JSON object, e.g. '{"folds": 3}' or '{"backbones": ["hf:Xenova/clip-vit-base-patch32"]}'`
  ),
  Flag.optional()
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
  readonly offline?: boolean
}): Layer.Layer<
  LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | Registry.Registry | Progress.Progress,
  FunctionsError.FunctionsError
> => {
  const config = LoupeConfig.LoupeConfig.layerConfig({
    ...Option.match(flags.modelsDir, { onNone: () => ({}), onSome: (dir) => ({ modelsDir: path.resolve(dir) }) }),
    ...(flags.offline === true ? { offline: true } : {})
  }).pipe(Layer.mapError(FunctionsError.fromConfigError))
  return Layer.mergeAll(
    config,
    DiskEmbeddingCache.layer().pipe(Layer.provide(config)),
    Plugins.registryLayer(flags.plugins),
    ProgressBar.layer()
  )
}
