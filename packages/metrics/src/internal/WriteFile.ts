/**
 * Writes a report file, creating its folder, failing with a `MetricsError` that names the file.
 *
 * A report never replaces a file Loupe did not write: an existing file is replaced only when it is itself a Loupe
 * report (an HTML page with Loupe's generator tag, or a JSON document of a `loupe/` schema). The new text goes to a
 * temporary file beside it first and is renamed into place, so a crash leaves the old report or the new one.
 */
import { FileSystem } from "@effect/platform"
import { Effect, Option } from "effect"
import { dirname } from "node:path"
import { MetricsError } from "../MetricsError.js"

/** What every Loupe HTML page carries in its head, and how the JSON report names its schema. */
export const htmlGeneratorTag = `<meta name="generator" content="Loupe">`
const jsonSchemaMark = /^\s*\{\s*"schema"\s*:\s*"loupe\//

/** Whether `text` (the start of an existing file) is a report Loupe wrote. */
const isLoupeReport = (text: string): boolean => text.includes(htmlGeneratorTag) || jsonSchemaMark.test(text)

const io = (file: string) => (cause: { readonly message: string }) =>
  new MetricsError({ reason: "Io", file, message: `could not write ${file}: ${cause.message}`, cause })

export const writeText = (file: string, text: string): Effect.Effect<void, MetricsError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const existing = yield* fs.stat(file).pipe(Effect.option)
    if (Option.isSome(existing)) {
      const head = existing.value.type === "File"
        ? yield* fs.readFileString(file).pipe(Effect.map((s) => s.slice(0, 4096)), Effect.mapError(io(file)))
        : ""
      if (!isLoupeReport(head)) {
        return yield* new MetricsError({
          reason: "Io",
          field: "file",
          file,
          message: `${file} already exists and is not a Loupe report; Loupe replaces only reports it wrote. ` +
            "Choose another file name or move that file away."
        })
      }
    }
    yield* fs.makeDirectory(dirname(file), { recursive: true }).pipe(Effect.mapError(io(file)))
    const temporary = `${file}.tmp-${process.pid}-${Date.now().toString(36)}`
    yield* fs.writeFileString(temporary, text).pipe(
      Effect.zipRight(fs.rename(temporary, file)),
      Effect.tapError(() => fs.remove(temporary).pipe(Effect.ignore)),
      Effect.mapError(io(file))
    )
  })
