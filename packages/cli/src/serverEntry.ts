#!/usr/bin/env node
/**
 * The standalone server of an exported Docker context: serves `./bundle` (beside this file) with the built-in
 * plugins, configured by the environment (see `ServeBundle.fromEnvironment`). Built into `dist/serverEntry.js` with
 * every pure-JavaScript dependency inlined; only native packages (sharp, onnxruntime-node, tfjs) are installed beside
 * it. `ServerImage.entry` hands it to `DockerContext.write`.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { LoupeConfig, Registry } from "@loupe/core"
import { Effect, Layer } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { ApiKeys, ServeBundle, Server } from "@loupe/deploy"
import { builtins } from "./BuiltinPlugins.js"

const here = path.dirname(fileURLToPath(import.meta.url))

const main = Effect.gen(function*() {
  const options = yield* ServeBundle.fromEnvironment(here)
  const keys = yield* Effect.flatMap(ApiKeys.make(options.keysFile), (k) => k.list)
  if (keys.every((k) => k.revokedAt !== undefined)) {
    yield* Effect.logWarning(`No API key in ${options.keysFile}: every /v1 request will be refused. Create one with: loupe keys create --file keys.json`)
  }
  const environment = Layer.mergeAll(
    Registry.Registry.layer(builtins),
    LoupeConfig.LoupeConfig.layerConfig({ modelsDir: process.env["LOUPE_MODELS_DIR"] ?? path.join(here, "models"), offline: true })
  )
  // A container logs each request, as `loupe serve` does.
  const serving = yield* Layer.build(ServeBundle.layer({ ...options, logRequests: true }).pipe(Layer.provide(environment)))
  const url = yield* Effect.provide(Server.url, serving)
  yield* Effect.log(`Serving ${options.bundle} on ${url}`)
  return yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(NodeContext.layer))

NodeRuntime.runMain(main)
