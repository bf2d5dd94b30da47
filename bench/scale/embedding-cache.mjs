// @ts-check
/**
 * bench/scale/embedding-cache: the Postgres embedding cache (`SharedState`'s), one statement per vector against
 * batched statements (`EmbeddingCache.getMany` / `setMany`).
 *
 *   pnpm build && node bench/scale/embedding-cache.mjs [--vectors 2000] [--dim 1280] [--rounds 3]
 *
 * On a throwaway Postgres (test/fixtures/postgres.mjs, or LOUPE_PG_URL), each round and way in a fresh namespace:
 * look up `--vectors` keys (all misses), store their vectors, look them up again (all hits). The ways:
 * - per vector: one `get` / `set` each, as the Embedder called the cache before batching;
 * - batches of 16: `getMany` / `setMany` per 16 keys, as the Embedder now calls it (its default batch size);
 * - all at once: one `getMany` / `setMany` call (the cache splits it into statements of 400 keys).
 * Vectors are `--dim` float32s (1280: mobilenetv2's embedding size). Prints the median of `--rounds` per step.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { NodeFileSystem } from "@effect/platform-node"
import { EmbeddingCache, LoupeConfig } from "@loupe/core"
import { SharedState } from "@loupe/functions"
import { Effect, Layer, ManagedRuntime } from "effect"
import { startPostgres } from "../../test/fixtures/postgres.mjs"

const { values: args } = parseArgs({
  options: { vectors: { type: "string", default: "2000" }, dim: { type: "string", default: "1280" }, rounds: { type: "string", default: "3" } }
})
const count = Number(args.vectors)
const dim = Number(args.dim)
const rounds = Number(args.rounds)

const postgres = await startPostgres()
if (!("url" in postgres)) throw new Error(`no Postgres: ${postgres.skipped}`)
const config = LoupeConfig.LoupeConfig.layer({ cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), "loupe-bench-cache-")) })
const runtime = ManagedRuntime.make(
  SharedState.layerPostgres(postgres.url).pipe(Layer.provide(Layer.mergeAll(NodeFileSystem.layer, config)))
)

const keys = Array.from({ length: count }, (_, i) => crypto.hash("sha256", `image ${i}`))
const entries = keys.map((contentHash) => ({ contentHash, vector: Float32Array.from({ length: dim }, () => Math.random()) }))
/** `items` in slices of `size`. */
const slices = (/** @type {ReadonlyArray<any>} */ items, /** @type {number} */ size) =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

/** @type {Record<string, (cache: EmbeddingCache.EmbeddingCacheShape, ns: string) => { get: Effect.Effect<unknown>, set: Effect.Effect<void> }>} */
const ways = {
  "per vector": (cache, ns) => ({
    get: Effect.forEach(keys, (key) => cache.get(ns, key)),
    set: Effect.forEach(entries, (e) => cache.set(ns, e.contentHash, e.vector), { discard: true })
  }),
  "batches of 16": (cache, ns) => ({
    get: Effect.forEach(slices(keys, 16), (batch) => EmbeddingCache.getMany(cache, ns, batch)),
    set: Effect.forEach(slices(entries, 16), (batch) => EmbeddingCache.setMany(cache, ns, batch), { discard: true })
  }),
  "all at once": (cache, ns) => ({ get: EmbeddingCache.getMany(cache, ns, keys), set: EmbeddingCache.setMany(cache, ns, entries) })
}

const timed = async (/** @type {Effect.Effect<unknown>} */ effect) => {
  const start = performance.now()
  const result = await runtime.runPromise(effect)
  return { ms: performance.now() - start, result }
}
const median = (/** @type {Array<number>} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

try {
  const cache = await runtime.runPromise(EmbeddingCache.EmbeddingCache)
  console.log(`${count} vectors of ${dim} float32s, median of ${rounds} rounds (ms)`)
  console.log("| way | look up (misses) | store | look up (hits) | total |\n|---|---|---|---|---|")
  for (const [name, way] of Object.entries(ways)) {
    const times = { miss: [], set: [], hit: [] }
    for (let round = 0; round < rounds; round++) {
      const { get, set } = way(cache, `bench-${name}-${round}`)
      times.miss.push((await timed(get)).ms)
      times.set.push((await timed(set)).ms)
      const hit = await timed(get)
      // A lookup after the store finds every vector: the timing is of real hits.
      const found = /** @type {ReadonlyArray<ReadonlyArray<Float32Array | undefined> | Float32Array | undefined>} */ (hit.result).flat()
      if (found.length !== count || found.some((v) => v?.length !== dim)) throw new Error(`${name}: a stored vector was not found`)
      times.hit.push(hit.ms)
    }
    const [miss, set, hit] = [times.miss, times.set, times.hit].map(median)
    console.log(`| ${name} | ${miss.toFixed(0)} | ${set.toFixed(0)} | ${hit.toFixed(0)} | ${(miss + set + hit).toFixed(0)} |`)
  }
} finally {
  await runtime.dispose()
  await postgres.stop()
}
