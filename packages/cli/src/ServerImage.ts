/**
 * The Docker image's server, as `DockerContext.write` takes it: the built standalone entry (`serverEntry.ts`, built
 * into `dist/serverEntry.js` with `dist/serverEntry.json` listing the native packages it was built against) and the
 * built-in plugins it registers.
 *
 * @since 0.1.0
 */
import { DeployError } from "@loupe/deploy"
import type { DockerContext } from "@loupe/deploy"
import { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { builtins } from "./BuiltinPlugins.js"

/** The engines' worker modules, built beside the entry (packages/cli/tsup.config.ts). */
const runners = ["ortRunner.js", "tfjsRunner.js"]

/**
 * The built server entry, beside this module in `dist` (or in `dist` from `src`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const entry: Effect.Effect<DockerContext.ServerEntry, DeployError.DeployError, FileSystem.FileSystem> = Effect.gen(
  function*() {
    const fs = yield* FileSystem.FileSystem
    const here = path.dirname(fileURLToPath(import.meta.url))
    for (const dir of [here, path.join(here, "..", "dist")]) {
      const file = path.join(dir, "serverEntry.js")
      const manifest = path.join(dir, "serverEntry.json")
      const workers = runners.map((name) => path.join(dir, name))
      const present = yield* Effect.forEach([file, manifest, ...workers], (f) => fs.exists(f))
      if (present.every(Boolean)) {
        const text = yield* fs.readFileString(manifest)
        const { dependencies } = yield* Effect.try(() => JSON.parse(text) as { dependencies: Record<string, string> })
        return { file, dependencies, plugins: builtins, workers }
      }
    }
    return yield* Effect.fail(new Error(`no serverEntry.js, serverEntry.json, ${runners.join(", ")} near ${here}`))
  }
).pipe(
  Effect.mapError((cause) =>
    new DeployError.DeployError({
      reason: "ExportFailed",
      file: "dist/serverEntry.js",
      message: `The standalone server entry is not built (${cause.message}); build @loupe/cli first (pnpm build)`,
      cause
    })
  )
)
