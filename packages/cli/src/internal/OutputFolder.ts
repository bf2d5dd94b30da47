/**
 * The folders commands write (`train --out`, `export --out`) are replaced only when asked: a command checks its
 * folder before any work, so a run of minutes does not end in a refusal, and nothing is replaced by accident.
 */
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { FunctionsError } from "@loupe/functions"

/** Fails unless `dir` is free to write: missing, empty, or `overwrite`. */
export const checkFree = (dir: string, overwrite: boolean): Effect.Effect<void, FunctionsError.FunctionsError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const entries = yield* fs.readDirectory(dir).pipe(
      Effect.catchTag("SystemError", (e) => (e.reason === "NotFound" ? Effect.succeed([]) : Effect.fail(e))),
      Effect.mapError((cause) =>
        new FunctionsError.FunctionsError({ reason: "InvalidOptions", field: "out", file: dir, message: `Cannot write to ${dir}: ${cause.message}`, cause })
      )
    )
    if (entries.length > 0 && !overwrite) {
      return yield* new FunctionsError.FunctionsError({
        reason: "InvalidOptions",
        field: "out",
        file: dir,
        message: `${dir} already exists and is not empty: choose another output folder, or allow replacing it (--overwrite)`
      })
    }
  })
