/**
 * `loupe serve`: the function API over HTTP on a store (`--store`: a folder, or a `postgres://` URL that several
 * servers share), or one bundle read-only (`--bundle`).
 * Listens on 127.0.0.1 unless `--host` says otherwise; every `/v1` route needs an API key (`loupe keys create`);
 * SIGINT or SIGTERM drains requests in flight, then exits.
 *
 * ```sh
 * loupe keys create --name app          # prints the key once
 * loupe serve --store ./store --port 8080          # add --console for the pages under /console
 * curl -H "Authorization: Bearer $KEY" -H "Content-Type: image/jpeg" --data-binary @cat.jpg \
 *   http://127.0.0.1:8080/v1/functions/$FUNCTION/invoke
 * ```
 *
 * @since 0.1.0
 */
import type { FileSystem, HttpServer } from "@effect/platform"
import type { EmbeddingCache, LoupeConfig, Registry } from "@loupe/core"
import { ApiKeys, CapturePolicy, ServeBundle, Server as DeployServer } from "@loupe/deploy"
import type { DeployError } from "@loupe/deploy"
import { Console, Effect, Layer, Option, pipe } from "effect"
import * as path from "node:path"
import { Functions, FunctionsError, SharedState, StoreLocation } from "@loupe/functions"
import { store } from "./FunctionCommand.js"
import { environment, modelsDir, plugins } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"
import * as Flag from "./internal/Flag.js"
import { Server } from "@loupe/functions"

const optionalNumber = (name: string, value: string, description: string, shownDefault: string) =>
  pipe(Flag.float(name, value, description), Flag.optional(shownDefault))

const optionalInteger = (name: string, value: string, description: string, shownDefault: string) =>
  pipe(Flag.integer(name, value, description), Flag.optional(shownDefault))

const capture = CapturePolicy.defaults
const image = DeployServer.defaultImageLimits

const flags = {
  store,
  bundle: pipe(
    Flag.directory("bundle", "Serve this model bundle, read-only, instead of the store's functions", { exists: "yes" }),
    Flag.optional()
  ),
  port: pipe(Flag.integer("port", "<port>", "Port to listen on; 0 picks a free one"), Flag.withDefault(8080)),
  host: pipe(Flag.text("host", "<address>", "Address to listen on; 0.0.0.0 serves other machines too"), Flag.withDefault("127.0.0.1")),
  rateLimit: pipe(
    Flag.integer("rate-limit", "<n>", "Requests per second per API key, with bursts of twice that; past it the server answers 429"),
    Flag.withDefault(50)
  ),
  maxImageBytes: optionalInteger("max-image-bytes", "<bytes>", "Largest image accepted, in bytes", String(image.maxBytes)),
  maxPixels: optionalInteger("max-pixels", "<pixels>", "Largest image accepted, in pixels (width x height)", String(image.maxPixels)),
  allowUrlFetch: Flag.boolean(
    "allow-url-fetch",
    "Fetch http(s) image URLs sent as image data, from public addresses only. Off by default: a server that fetches " +
      "the URLs it is handed makes requests on its callers' behalf"
  ),
  allowPrivateUrls: Flag.boolean(
    "allow-private-urls",
    "With --allow-url-fetch, fetch from private addresses too (loopback, 10/8, 192.168/16, link-local, fc00::/7, ...), " +
      "e.g. for an intranet image host"
  ),
  captureLowConfidence: optionalNumber(
    "capture-low-confidence",
    "<p>",
    "Keep invocations below this confidence as samples to review (0: never)",
    String(capture.lowConfidence)
  ),
  captureRareShare: optionalNumber(
    "capture-rare-share",
    "<share>",
    "Keep invocations predicting a label with less than this share of the samples (0: never)",
    String(capture.rareClassShare)
  ),
  captureRandom: optionalNumber("capture-random", "<fraction>", "Keep this fraction of invocations at random (0: never)", String(capture.randomFraction)),
  capturePerMinute: optionalNumber("capture-per-minute", "<n>", "Most invocations kept per function per minute", String(capture.perMinute)),
  defaultPreset: pipe(
    Flag.text("default-preset", "<name>", "The preset of functions created without one, as Nyckel's clients create them"),
    Flag.optional("balanced")
  ),
  console: Flag.boolean(
    "console",
    "Serve the console too: pages under /console to upload, label and inspect data in a browser, signed in with an " +
      "API key. Off by default"
  ),
  modelsDir,
  plugins
}

const some = <A, K extends string>(key: K, option: Option.Option<A>): { readonly [P in K]?: A } =>
  Option.match(option, { onNone: () => ({}), onSome: (value) => ({ [key]: value }) as { readonly [P in K]: A } })

export const command = DocumentedCommand.make(
  "serve",
  {
    summary: "Serve the store's functions (or one bundle) over HTTP",
    details: [
      "Every /v1 route needs an API key (`loupe keys create`); OpenAPI at /openapi.json. Each request (method, path, " +
      "status, milliseconds) and each background training (function, samples, outcome, duration) is logged on stderr. " +
      "SIGINT or SIGTERM finishes the requests in flight, then exits."
    ],
    examples: ["loupe serve --store ./store --port 8080"]
  },
  flags,
  (f) =>
  Effect.gen(function*() {
    if (f.allowPrivateUrls && !f.allowUrlFetch) {
      return yield* new FunctionsError.FunctionsError({
        reason: "InvalidOptions",
        field: "allow-private-urls",
        message: "--allow-private-urls only applies to URL fetching: add --allow-url-fetch, or drop --allow-private-urls"
      })
    }
    if (f.console && Option.isSome(f.bundle)) {
      return yield* new FunctionsError.FunctionsError({
        reason: "InvalidOptions",
        field: "console",
        message: "--console shows a store's functions: drop --bundle, or drop --console"
      })
    }
    const options: DeployServer.ServerOptions = {
      port: f.port,
      host: f.host,
      rateLimit: { perSecond: f.rateLimit, burst: 2 * f.rateLimit },
      allowUrlFetch: f.allowUrlFetch,
      allowPrivateUrls: f.allowPrivateUrls,
      logRequests: true,
      image: { ...some("maxBytes", f.maxImageBytes), ...some("maxPixels", f.maxPixels) },
      capture: {
        ...some("lowConfidence", f.captureLowConfidence),
        ...some("rareClassShare", f.captureRareShare),
        ...some("randomFraction", f.captureRandom),
        ...some("perMinute", f.capturePerMinute)
      }
    }
    const keysFile = ApiKeys.fileIn(yield* Functions.localFolder(f.store))
    const shown = StoreLocation.describe(f.store)
    const serving: Layer.Layer<
      HttpServer.HttpServer,
      DeployError.DeployError | FunctionsError.FunctionsError,
      Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem
    > = Option.match(f.bundle, {
      onNone: () => Server.layer({ ...options, store: f.store, console: f.console, ...some("defaultPreset", f.defaultPreset) }),
      onSome: (bundle) => ServeBundle.layer({ ...options, bundle: path.resolve(bundle), keysFile })
    })
    const running = yield* Layer.build(serving)
    const url = yield* Effect.provide(DeployServer.url, running)
    const keys = Option.isSome(f.bundle) ? ApiKeys.layer(keysFile) : SharedState.apiKeysAt(f.store)
    const active = yield* Effect.provide(Effect.flatMap(ApiKeys.ApiKeys, (k) => k.list), keys)
    if (!active.some((k) => k.revokedAt === undefined)) {
      yield* Effect.logWarning(`No API key in ${Option.isSome(f.bundle) ? keysFile : shown} yet: create one with \`loupe keys create --store ${shown}\``)
    }
    yield* Console.log(`Serving ${Option.getOrElse(f.bundle, () => shown)} on ${url} (OpenAPI: ${url}/openapi.json)`)
    if (f.console && Option.isNone(f.bundle)) yield* Console.log(`Console: ${url}/console`)
    return yield* Effect.never
  }).pipe(Effect.scoped, Effect.provide(environment(f)))
)
