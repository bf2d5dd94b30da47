/**
 * Serve one model bundle over HTTP, read-only: the function API's routes with the bundle as its only function
 * (`BundleBackend`), API keys from a key file, the server's limits and graceful shutdown. `loupe serve --bundle`
 * and the Docker image's entry both run this.
 *
 * @since 0.1.0
 */
import { Config, Effect, Layer, Option } from "effect"
import type { FileSystem, HttpServer } from "@effect/platform"
import type { LoupeConfig, Registry } from "@loupe/core"
import * as path from "node:path"
import * as ApiKeys from "./ApiKeys.js"
import * as BundleBackend from "./BundleBackend.js"
import { DeployError } from "./DeployError.js"
import * as Server from "./Server.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ServeBundleOptions extends Server.ServerOptions, BundleBackend.BundleBackendOptions {
  /** The bundle directory. */
  readonly bundle: string
  /** The API key file (see `ApiKeys`). */
  readonly keysFile: string
}

/**
 * The server for a bundle; needs the registry the bundle's backbone and head are in, and the config that finds
 * its weights.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: ServeBundleOptions
): Layer.Layer<HttpServer.HttpServer, DeployError, Registry.Registry | LoupeConfig.LoupeConfig | FileSystem.FileSystem> =>
  Server.layer(options).pipe(
    Layer.provide(BundleBackend.layer(options.bundle, options)),
    Layer.provide(ApiKeys.layer(options.keysFile))
  )

const positive = (name: string) =>
  Config.option(Config.integer(name)).pipe(
    Config.validate({ message: `${name} must be a positive integer`, validation: (o) => Option.getOrElse(Option.map(o, (n) => n > 0), () => true) })
  )

/**
 * Options from the environment, for the container: `LOUPE_BUNDLE` (default `<dir>/bundle`), `PORT` (8080; 0 picks a free port),
 * `HOST` (127.0.0.1; the image sets 0.0.0.0), `LOUPE_KEYS_FILE` (`<dir>/keys.json`), `LOUPE_FUNCTION_ID`,
 * `LOUPE_RATE_LIMIT` (requests per second per key), `LOUPE_MAX_IMAGE_BYTES`, `LOUPE_MAX_PIXELS`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEnvironment = (dir: string): Effect.Effect<ServeBundleOptions, DeployError> =>
  Effect.gen(function*() {
    const bundle = yield* Config.withDefault(Config.string("LOUPE_BUNDLE"), path.join(dir, "bundle"))
    const keysFile = yield* Config.withDefault(Config.string("LOUPE_KEYS_FILE"), path.join(dir, "keys.json"))
    const port = yield* Config.withDefault(
      Config.integer("PORT").pipe(Config.validate({ message: "PORT must be 0 to 65535 (0 picks a free port)", validation: (n) => n >= 0 && n <= 65535 })),
      8080
    )
    const host = yield* Config.withDefault(Config.string("HOST"), "127.0.0.1")
    const functionId = yield* Config.option(Config.string("LOUPE_FUNCTION_ID"))
    const rate = yield* positive("LOUPE_RATE_LIMIT")
    const maxBytes = yield* positive("LOUPE_MAX_IMAGE_BYTES")
    const maxPixels = yield* positive("LOUPE_MAX_PIXELS")
    return {
      bundle: path.resolve(bundle),
      keysFile: path.resolve(keysFile),
      port,
      host,
      ...Option.match(functionId, { onNone: () => ({}), onSome: (id) => ({ functionId: id }) }),
      ...Option.match(rate, { onNone: () => ({}), onSome: (n) => ({ rateLimit: { perSecond: n, burst: 2 * n } }) }),
      image: {
        ...Option.match(maxBytes, { onNone: () => ({}), onSome: (n) => ({ maxBytes: n }) }),
        ...Option.match(maxPixels, { onNone: () => ({}), onSome: (n) => ({ maxPixels: n }) })
      }
    } satisfies ServeBundleOptions
  }).pipe(
    Effect.mapError((e) => new DeployError({ reason: "InvalidRequest", field: "environment", message: `Bad environment: ${String(e)}` }))
  )
