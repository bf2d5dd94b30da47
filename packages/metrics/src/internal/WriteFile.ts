/** Writes a report file, creating its folder, failing with a `MetricsError` that names the file. */
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { dirname } from "node:path"
import { MetricsError } from "../MetricsError.js"

export const writeText = (file: string, text: string): Effect.Effect<void, MetricsError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    yield* fs.makeDirectory(dirname(file), { recursive: true })
    yield* fs.writeFileString(file, text)
  }).pipe(
    Effect.mapError((cause) =>
      new MetricsError({ reason: "Io", file, message: `could not write ${file}: ${cause.message}`, cause })
    )
  )
