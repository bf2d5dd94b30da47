/** Writes a report file, creating its folder, failing with a `MetricsError` that names the file. */
import { Effect } from "effect"
import { mkdir, writeFile } from "node:fs/promises"
import { dirname } from "node:path"
import { MetricsError } from "../MetricsError.js"

export const writeText = (file: string, text: string): Effect.Effect<void, MetricsError> =>
  Effect.tryPromise({
    try: async () => {
      await mkdir(dirname(file), { recursive: true })
      await writeFile(file, text)
    },
    catch: (cause) => new MetricsError({ reason: "Io", file, message: `could not write ${file}: ${String(cause)}`, cause })
  })
