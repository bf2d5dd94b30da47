import { Effect } from "effect"
import type { Backbone, LoupeConfig } from "@loupe/core"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { BackboneError } from "../BackboneError.js"

/** The local path of weights given by path or relative to the models directory. */
export const resolveLocalPath = (
  id: string,
  source: Backbone.WeightsSource,
  config: LoupeConfig.LoupeConfigShape
): Effect.Effect<string, BackboneError> => {
  switch (source._tag) {
    case "Path":
      return exists(id, path.resolve(source.path))
    case "ModelsDir":
      return config.modelsDir === undefined
        ? Effect.fail(
          new BackboneError({
            reason: "WeightsNotFound",
            field: id,
            file: source.path,
            message:
              `Backbone ${id} needs ${source.path} from a models directory: pass --models-dir <dir> or set LOUPE_MODELS_DIR`
          })
        )
        : exists(id, path.resolve(config.modelsDir, source.path))
    case "Url":
      return exists(id, urlWeightsPath(config, source.file)).pipe(
        Effect.mapError((e) =>
          new BackboneError({ ...e, message: `${e.message}. Download it with: loupe models pull ${id}` })
        )
      )
    case "Hub":
      return Effect.fail(
        new BackboneError({ reason: "LoadFailed", field: id, message: `Backbone ${id} loads from the hub, not a file` })
      )
  }
}

/** Where weights that come from a URL are kept: `<cacheDir>/models/<file>` (`loupe models pull` puts them there). */
export const urlWeightsPath = (config: LoupeConfig.LoupeConfigShape, file: string): string =>
  path.join(config.cacheDir, "models", file)

const exists = (id: string, file: string) =>
  Effect.try({
    try: () => {
      fs.accessSync(file, fs.constants.R_OK)
      return file
    },
    catch: () =>
      new BackboneError({ reason: "WeightsNotFound", field: id, file, message: `Weights for ${id} not found at ${file}` })
  })

/** sha256 (hex) of one or more files, in order. */
export const hashFiles = (files: ReadonlyArray<string>): Effect.Effect<string, BackboneError> =>
  Effect.tryPromise({
    try: async () => {
      const hash = createHash("sha256")
      for (const file of files) hash.update(await fs.promises.readFile(file))
      return hash.digest("hex")
    },
    catch: (cause) =>
      new BackboneError({ reason: "LoadFailed", file: files.join(", "), message: `Cannot hash ${files.join(", ")}`, cause })
  })
