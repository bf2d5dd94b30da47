import * as FileSystem from "@effect/platform/FileSystem"
import { Effect } from "effect"
import type { Backbone, LoupeConfig } from "@loupe/core"
import { createHash } from "node:crypto"
import * as path from "node:path"
import { BackboneError } from "../BackboneError.js"

/** The local path of weights given by path or relative to the models directory. */
export const resolveLocalPath = (
  id: string,
  source: Backbone.WeightsSource,
  config: LoupeConfig.LoupeConfigShape
): Effect.Effect<string, BackboneError, FileSystem.FileSystem> => {
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
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.access(file, { readable: true })).pipe(
    Effect.as(file),
    Effect.mapError(() =>
      new BackboneError({ reason: "WeightsNotFound", field: id, file, message: `Weights for ${id} not found at ${file}` })
    )
  )

/** sha256 (hex) of one or more files, in order. */
export const hashFiles = (files: ReadonlyArray<string>): Effect.Effect<string, BackboneError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const hash = createHash("sha256")
    for (const file of files) hash.update(yield* fs.readFile(file))
    return hash.digest("hex")
  }).pipe(
    Effect.mapError((cause) =>
      new BackboneError({ reason: "LoadFailed", file: files.join(", "), message: `Cannot hash ${files.join(", ")}`, cause })
    )
  )
