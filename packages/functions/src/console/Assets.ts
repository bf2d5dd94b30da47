/**
 * The console's static files: htmx (from the `htmx.org` package), the stylesheet, the script and the icon (hand-written, in
 * `assets/console/` of this package). Each is served at a path holding its content hash, so it can be cached for a
 * year (`immutable`): a changed file gets a new path.
 *
 * @internal
 */
import { FileSystem, HttpRouter, HttpServerResponse } from "@effect/platform"
import { Context, Effect } from "effect"
import { createHash } from "node:crypto"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { FunctionsError } from "../FunctionsError.js"

/** One static file. */
interface Asset {
  readonly path: string
  readonly contentType: string
  readonly bytes: Uint8Array
}

/** The static files' paths, for the layout's `<link>` and `<script>` tags. */
export interface AssetsShape {
  readonly htmx: string
  readonly stylesheet: string
  readonly script: string
  readonly icon: string
  readonly files: ReadonlyArray<Asset>
}

/** The console's static files, as a service of its routes. */
export class Assets extends Context.Tag("@loupe/functions/console/Assets")<Assets, AssetsShape>() {}

const here = path.dirname(fileURLToPath(import.meta.url))
/** `assets/console` of this package: from `src/console` (sources) or `dist` (the build). */
const assetDirs = [path.resolve(here, "../../assets/console"), path.resolve(here, "../assets/console")]

const hashed = (name: string, ext: string, bytes: Uint8Array) =>
  `/console/static/${name}-${createHash("sha256").update(bytes).digest("hex").slice(0, 12)}.${ext}`

/** Read the static files; `StoreFailed` naming the file when one is missing (a broken install). */
export const make: Effect.Effect<AssetsShape, FunctionsError, FileSystem.FileSystem> = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const read = (file: string) =>
    fs.readFile(file).pipe(
      Effect.mapError((cause) => new FunctionsError({ reason: "StoreFailed", file, message: `Console: cannot read ${file}: ${cause.message}`, cause }))
    )
  const dir = (yield* Effect.filter(assetDirs, (d) => fs.exists(path.join(d, "console.css")).pipe(Effect.orElseSucceed(() => false))))[0] ?? assetDirs[0]!
  const htmxFile = createRequire(import.meta.url).resolve("htmx.org/dist/htmx.min.js")
  const htmxVersion = (createRequire(import.meta.url)("htmx.org/package.json") as { readonly version: string }).version
  const htmx = yield* read(htmxFile)
  const css = yield* read(path.join(dir, "console.css"))
  const js = yield* read(path.join(dir, "console.js"))
  const icon = yield* read(path.join(dir, "favicon.svg"))
  const files: ReadonlyArray<Asset> = [
    { path: `/console/static/htmx-${htmxVersion}.min.js`, contentType: "text/javascript; charset=utf-8", bytes: htmx },
    { path: hashed("console", "css", css), contentType: "text/css; charset=utf-8", bytes: css },
    { path: hashed("console", "js", js), contentType: "text/javascript; charset=utf-8", bytes: js },
    { path: hashed("favicon", "svg", icon), contentType: "image/svg+xml", bytes: icon }
  ]
  return { htmx: files[0]!.path, stylesheet: files[1]!.path, script: files[2]!.path, icon: files[3]!.path, files }
})

/** Routes serving the static files, cached for a year. */
export const routes = (assets: AssetsShape): HttpRouter.HttpRouter =>
  assets.files.reduce(
    (router, asset) =>
      HttpRouter.get(
        router,
        asset.path as HttpRouter.PathInput,
        Effect.succeed(HttpServerResponse.uint8Array(asset.bytes, {
          contentType: asset.contentType,
          headers: { "cache-control": "public, max-age=31536000, immutable" }
        }))
      ),
    HttpRouter.empty as HttpRouter.HttpRouter
  )
