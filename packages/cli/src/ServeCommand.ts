/**
 * `loupe serve`: the function API over HTTP on a store folder (`--store`), or one bundle read-only (`--bundle`).
 * Listens on 127.0.0.1 unless `--host` says otherwise; every `/v1` route needs an API key (`loupe keys create`);
 * SIGINT or SIGTERM drains requests in flight, then exits.
 *
 * ```sh
 * loupe keys create --name app          # prints the key once
 * loupe serve --store ./store --port 8080
 * curl -H "Authorization: Bearer $KEY" -H "Content-Type: image/jpeg" --data-binary @cat.jpg \
 *   http://127.0.0.1:8080/v1/functions/$FUNCTION/invoke
 * ```
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import type { FileSystem, HttpServer } from "@effect/platform"
import type { EmbeddingCache, LoupeConfig, Registry } from "@loupe/core"
import { ApiKeys, ServeBundle, Server as DeployServer } from "@loupe/deploy"
import type { DeployError } from "@loupe/deploy"
import { Console, Effect, Layer, Option } from "effect"
import * as path from "node:path"
import { FunctionsError } from "@loupe/functions"
import { store } from "./FunctionCommand.js"
import { environment, modelsDir, plugins } from "./internal/cliOptions.js"
import { Server } from "@loupe/functions"

const optionalNumber = (name: string, description: string) =>
  Options.float(name).pipe(Options.withDescription(description), Options.optional)

const flags = {
  store,
  bundle: Options.directory("bundle", { exists: "yes" }).pipe(
    Options.withDescription("Serve this model bundle read-only instead of the store's functions"),
    Options.optional
  ),
  port: Options.integer("port").pipe(Options.withDescription("Port to listen on (0 picks a free one)"), Options.withDefault(8080)),
  host: Options.text("host").pipe(
    Options.withDescription("Address to listen on; 0.0.0.0 serves other machines too"),
    Options.withDefault("127.0.0.1")
  ),
  rateLimit: Options.integer("rate-limit").pipe(
    Options.withDescription("Requests per second per API key (bursts of twice that); over it answers 429"),
    Options.withDefault(50)
  ),
  maxImageBytes: Options.integer("max-image-bytes").pipe(Options.withDescription("Largest image, in bytes"), Options.optional),
  maxPixels: Options.integer("max-pixels").pipe(Options.withDescription("Largest image, in pixels (width x height)"), Options.optional),
  allowUrlFetch: Options.boolean("allow-url-fetch").pipe(
    Options.withDescription("Fetch http(s) image URLs sent as data, from public addresses only (off: a server fetching URLs it is handed makes requests for its callers)")
  ),
  allowPrivateUrls: Options.boolean("allow-private-urls").pipe(
    Options.withDescription("With --allow-url-fetch: fetch from private addresses too (loopback, 10/8, 192.168/16, link-local, fc00::/7, ...); for an intranet image host")
  ),
  captureLowConfidence: optionalNumber("capture-low-confidence", "Capture invocations below this confidence (default 0.6; 0: off)"),
  captureRareShare: optionalNumber("capture-rare-share", "Capture predictions of labels under this share of the samples (default 0.1; 0: off)"),
  captureRandom: optionalNumber("capture-random", "Capture this fraction of invocations at random (default 0.01; 0: off)"),
  capturePerMinute: optionalNumber("capture-per-minute", "Most captures per function per minute (default 60)"),
  modelsDir,
  plugins
}

const some = <A, K extends string>(key: K, option: Option.Option<A>): { readonly [P in K]?: A } =>
  Option.match(option, { onNone: () => ({}), onSome: (value) => ({ [key]: value }) as { readonly [P in K]: A } })

export const command = Command.make("serve", flags, (f) =>
  Effect.gen(function*() {
    if (f.allowPrivateUrls && !f.allowUrlFetch) {
      return yield* new FunctionsError.FunctionsError({
        reason: "InvalidOptions",
        field: "allow-private-urls",
        message: "--allow-private-urls only applies to URL fetching: add --allow-url-fetch, or drop --allow-private-urls"
      })
    }
    const options: DeployServer.ServerOptions = {
      port: f.port,
      host: f.host,
      rateLimit: { perSecond: f.rateLimit, burst: 2 * f.rateLimit },
      allowUrlFetch: f.allowUrlFetch,
      allowPrivateUrls: f.allowPrivateUrls,
      image: { ...some("maxBytes", f.maxImageBytes), ...some("maxPixels", f.maxPixels) },
      capture: {
        ...some("lowConfidence", f.captureLowConfidence),
        ...some("rareClassShare", f.captureRareShare),
        ...some("randomFraction", f.captureRandom),
        ...some("perMinute", f.capturePerMinute)
      }
    }
    const storeDir = path.resolve(f.store)
    const serving: Layer.Layer<
      HttpServer.HttpServer,
      DeployError.DeployError | FunctionsError.FunctionsError,
      Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem
    > = Option.match(f.bundle, {
      onNone: () => Server.layer({ ...options, store: storeDir }),
      onSome: (bundle) => ServeBundle.layer({ ...options, bundle: path.resolve(bundle), keysFile: ApiKeys.fileIn(storeDir) })
    })
    const running = yield* Layer.build(serving)
    const url = yield* Effect.provide(DeployServer.url, running)
    const keys = yield* Effect.flatMap(ApiKeys.make(ApiKeys.fileIn(storeDir)), (k) => k.list)
    if (!keys.some((k) => k.revokedAt === undefined)) {
      yield* Effect.logWarning(`No API key in ${ApiKeys.fileIn(storeDir)} yet: create one with \`loupe keys create --store ${storeDir}\``)
    }
    yield* Console.log(`Serving ${Option.getOrElse(f.bundle, () => storeDir)} on ${url} (OpenAPI: ${url}/openapi.json)`)
    return yield* Effect.never
  }).pipe(Effect.scoped, Effect.provide(environment(f)))).pipe(
    Command.withDescription("Serve functions (or one bundle) over HTTP: invoke, samples, labels, capture for review")
  )
