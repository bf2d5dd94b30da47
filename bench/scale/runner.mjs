// @ts-check
/**
 * One cluster runner for bench/scale, in its own process: `RetrainWorkflow.layerRunner` (what `loupe worker` runs)
 * over the Postgres store, the blob folder and an embedding cache of its own, listening for other runners on
 * localhost:<port>. It prints `runner ready` once it has joined, and runs until SIGTERM.
 *
 *   node bench/scale/runner.mjs <postgres url> <blob folder> <cache folder> <port>
 */
import { NodeFileSystem, NodeRuntime } from "@effect/platform-node"
import { Plugins } from "@loupe/cli"
import { DiskEmbeddingCache, LoupeConfig } from "@loupe/core"
import { BlobStore, RetrainWorkflow, Store } from "@loupe/functions"
import { Effect, Layer } from "effect"
import { modelsDir } from "../../test/fixtures/shared.mjs"

const [url, blobs, cacheDir, port] = process.argv.slice(2)
const config = LoupeConfig.LoupeConfig.layer({ modelsDir, cacheDir, offline: true })
const environment = Layer.mergeAll(
  config,
  DiskEmbeddingCache.layer().pipe(Layer.provide(config)),
  Plugins.registryLayer(),
  NodeFileSystem.layer,
  BlobStore.layerFileSystem(blobs).pipe(Layer.provide(NodeFileSystem.layer)),
  Store.layerPostgres(url)
)
const runner = RetrainWorkflow.layerRunner({ port: Number(port) }).pipe(Layer.provide(environment))

NodeRuntime.runMain(
  Effect.zipRight(Effect.sync(() => console.log("runner ready")), Effect.never).pipe(Effect.provide(runner))
)
