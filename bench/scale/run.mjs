// @ts-check
/**
 * bench/scale: what spreading work over processes costs on one machine, and what a Postgres store costs an invoke.
 *
 *   pnpm build && node bench/scale/run.mjs [--images 2000] [--range 64] [--rounds 3] [--requests 1000] [--concurrency 8] [--overlap]
 *
 * Starts a throwaway Postgres (test/fixtures/postgres.mjs, or LOUPE_PG_URL) and puts `--images` real photos
 * (cats-vs-dogs-large, train then test, sorted) into a function of a Postgres store, blobs in a folder. Then:
 *
 * 1. **Embedding**, `onnx:mobilenetv2-int8` (the `fast` preset's backbone), each run with a fresh embedding cache:
 *    - in process: `Embedder.embedSamplesMany` on the images' blob files, as a retrain's embed step does;
 *    - 1 runner, then 2 runners: `bench/scale/runner.mjs` processes (`RetrainWorkflow.layerRunner`, what
 *      `loupe worker` runs) sharing the store, and this process as a cluster client sending the images as
 *      `Embedding` entity messages of `--range` images each (the retrain workflow's sharded embed step).
 *    The three modes take turns for `--rounds` rounds (every photo read once before, so none pays for a cold disk).
 *    It reports each mode's median images/s and CPU ms per image (the runners' and this process's CPU, from /proc)
 *    and the coordination overhead: wall time against the same round's in-process run, the median and each round. On a 2-core machine 2 runners cannot be faster than one: they share the
 *    cores, so what they show is the cost of coordination, not a speed-up.
 * 2. **Overlapping retrains** (`--overlap`): two servers that each saw a different revision submit two retrains whose
 *    images overlap (all but the last image, and all). With 1, then 2 fresh runners each time, it times the two sets of
 *    ranges sent at once, with the ranges' entities named per retrain (each retrain's own) and named by their images'
 *    content (as the retrain workflow names them), against one retrain alone. Named by content, the shared ranges go
 *    to the same entity, which takes one message at a time: the second finds the first's vectors in the cache.
 * 3. **Invoke** (first, while this process runs nothing else): `loupe serve` on a SQLite folder, then on the Postgres
 *    store with one `loupe worker` to train (bench/lib/serve.mjs): a function trained on 10 + 10 photos, invoked with
 *    one 500x375 JPEG one at a time (p50) and `--concurrency` at once (req/s). `--requests 0` leaves it out.
 */
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { NodeClusterSocket, NodeFileSystem } from "@effect/platform-node"
import { Plugins } from "@loupe/cli"
import { DiskEmbeddingCache, Embedder, LoupeConfig, Registry } from "@loupe/core"
import { BlobStore, Functions, RetrainWorkflow, Store } from "@loupe/functions"
import { Cause, Effect, Layer } from "effect"
import { startPostgres } from "../../test/fixtures/postgres.mjs"
import { datasetDir, modelsDir, sharedDir } from "../../test/fixtures/shared.mjs"
import { cli, invokeLoad, percentile, processStats, startServe, trainedFunction } from "../lib/serve.mjs"

const { values: args } = parseArgs({
  options: {
    images: { type: "string", default: "2000" },
    range: { type: "string", default: "64" },
    requests: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
    overlap: { type: "boolean", default: false }
  }
})
const imageCount = Number(args.images)
const rangeSize = Number(args.range)
const roundCount = Math.max(1, Number(args.rounds))
const backbone = "onnx:mobilenetv2-int8"

const here = path.dirname(fileURLToPath(import.meta.url))
const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-bench-scale-"))
const blobDir = path.join(work, "blobs")
const f1 = (/** @type {number} */ x) => x.toFixed(1)

/** Photos the warm-ups embed: not among the measured ones, so that the measured runs find none of them cached. */
const WARMUP = 48
/** The photos: cats-vs-dogs-large train then test, each split's files sorted; the first `imageCount`, then the warm-up's. */
const photos = ["train", "test"].flatMap((split) =>
  ["cats", "dogs"].flatMap((label) => {
    const dir = path.join(datasetDir("cats-vs-dogs-large"), split, label)
    return fs.readdirSync(dir).sort().map((f) => path.join(dir, f))
  })
).slice(0, imageCount + WARMUP)
if (photos.length < imageCount + WARMUP) {
  throw new Error(`--images ${imageCount}: cats-vs-dogs-large has ${photos.length} photos, ${WARMUP} of them kept for the warm-ups`)
}

/** CPU ms (user + system) of this process so far. */
const ownCpuMs = () => {
  const used = process.cpuUsage()
  return (used.user + used.system) / 1000
}

const environment = (/** @type {string} */ cacheDir) => {
  const config = LoupeConfig.LoupeConfig.layer({ modelsDir, cacheDir, offline: true })
  return Layer.mergeAll(config, DiskEmbeddingCache.layer().pipe(Layer.provide(config)), Plugins.registryLayer(), NodeFileSystem.layer)
}

const postgres = await startPostgres()
if ("skipped" in postgres) throw new Error(`bench/scale needs Postgres: ${postgres.skipped}`)
const stores = Layer.mergeAll(Store.layerPostgres(postgres.url), BlobStore.layerFileSystem(blobDir).pipe(Layer.provide(NodeFileSystem.layer)))

/** @type {Array<import("node:child_process").ChildProcess>} */
const children = []
/** SIGTERM, then SIGKILL if the runner has not left the cluster within 5 s. */
const stopRunner = (/** @type {import("node:child_process").ChildProcess} */ child) =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined)
    const kill = setTimeout(() => child.kill("SIGKILL"), 5000)
    child.on("exit", () => {
      clearTimeout(kill)
      resolve(undefined)
    })
    child.kill("SIGTERM")
  })
try {
  // Invoke first, while this process has nothing else running: one server on SQLite, then one on Postgres.
  const invokeRows = []
  const image = fs.readFileSync(path.join(sharedDir, "datasets/cats-vs-dogs-large/train/cats/cat.402.jpg"))
  const invokeStores = Number(args.requests) > 0 ? [["SQLite", path.join(work, "sqlite-store")], ["Postgres", postgres.url.replace("/loupe?", "/serve?")]] : []
  for (const [name, store] of invokeStores) {
    if (name === "Postgres") {
      const { execFileSync } = await import("node:child_process")
      execFileSync("psql", [postgres.url, "-qAtc", "CREATE DATABASE serve"])
    }
    const env = { ...process.env, LOUPE_MODELS_DIR: modelsDir, LOUPE_CACHE_DIR: path.join(work, `serve-cache-${name}`) }
    console.log(`Invoking one server on ${name}...`)
    // A server on Postgres submits its retrains to runners: one `loupe worker` trains the function.
    const worker = name === "Postgres"
      ? spawn(process.execPath, [cli, "worker", "--store", store, "--port", "34590"], { env, stdio: ["ignore", "ignore", "inherit"] })
      : undefined
    if (worker !== undefined) children.push(worker)
    const server = await startServe({ store, env })
    try {
      const { fn } = await trainedFunction(server.call)
      const load = (/** @type {number} */ concurrency, /** @type {number} */ total) =>
        invokeLoad({ url: server.url, token: server.token, fn, image, concurrency, total })
      await load(Number(args.concurrency), 200)
      const before = processStats(server.pid).cpuMs
      const single = await load(1, Number(args.requests))
      const burst = await load(Number(args.concurrency), Number(args.requests))
      invokeRows.push(/** @type {any} */ ({
        name,
        p50: percentile(single.latencies, 50),
        p99: percentile(single.latencies, 99),
        rps: burst.latencies.length / burst.seconds,
        errors: single.errors + burst.errors,
        serverCpuMsPerRequest: (processStats(server.pid).cpuMs - before) / (2 * Number(args.requests))
      }))
      console.log(JSON.stringify(invokeRows.at(-1)))
    } finally {
      await server.stop()
      if (worker !== undefined) await stopRunner(worker)
    }
  }


  // The function and its images: unlabelled samples, so no retrain starts.
  console.log(`Adding ${imageCount} photos to a function on Postgres...`)
  const { all, fnId } = await Effect.gen(function*() {
    const functions = yield* Functions.Functions
    const store = yield* Store.Store
    const fn = yield* functions.create("scale", { preset: "fast" })
    for (let i = 0; i < photos.length; i += 100) {
      yield* functions.createSamples(fn.id, photos.slice(i, i + 100).map((data) => ({ data })))
    }
    const samples = yield* store.listSamples(fn.id, { limit: photos.length })
    return { fnId: fn.id, all: samples.map((s) => ({ id: s.id, contentHash: s.contentHash })) }
  }).pipe(
    Effect.provide(Functions.layer({ resumeOnStart: false }).pipe(Layer.provideMerge(stores), Layer.provide(environment(path.join(work, "setup-cache"))))),
    Effect.runPromise
  )
  if (all.length !== photos.length) throw new Error(`the store holds ${all.length} of ${photos.length} photos (duplicates?)`)
  const images = all.slice(0, imageCount)
  const warmup = all.slice(imageCount)
  const blobFile = (/** @type {{ contentHash: string }} */ s) => path.join(blobDir, Store.imageKey(fnId, s.contentHash))

  // Every photo read once before timing, so that no mode pays for cold disk reads that a later one gets free.
  for (const s of all) fs.readFileSync(blobFile(s))

  /** One timed run of a mode: wall seconds and CPU ms (this process, and the runners for the cluster modes). */
  /** @typedef {{ wall: number; cpuMs: number }} Timed */

  /** In process: the retrain's embed step without the cluster, on a fresh cache. */
  const inProcessRun = (/** @type {number} */ round) =>
    Effect.gen(function*() {
      const loaded = yield* Registry.loadBackbone(backbone)
      // Warm-up: the model's first batches.
      yield* Embedder.embedSamplesMany([loaded], warmup.map((s) => ({ id: s.id, source: blobFile(s) })), { mirror: false })
      const cpu = ownCpuMs()
      const start = performance.now()
      const [embedded] = yield* Embedder.embedSamplesMany([loaded], images.map((s) => ({ id: s.id, source: blobFile(s) })), { mirror: false })
      if (embedded?.samples.length !== imageCount) throw new Error(`embedded ${embedded?.samples.length} of ${imageCount}`)
      return /** @type {Timed} */ ({ wall: (performance.now() - start) / 1000, cpuMs: ownCpuMs() - cpu })
    }).pipe(Effect.scoped, Effect.provide(environment(path.join(work, `inprocess-cache-${round}`))), Effect.runPromise)

  // The same images through 1, then 2 runners.
  const client = NodeClusterSocket.layer({ clientOnly: true, storage: "sql" }).pipe(Layer.provide(Store.layerPostgres(postgres.url)))
  let resent = 0
  /**
   * Send `batch` to the runners in ranges of `size`, range `i` to the entity `${prefix}/${i}`, or with `byContent`
   * to one named by the range's content hashes (as the retrain workflow names them).
   */
  const send = (/** @type {string} */ prefix, /** @type {typeof images} */ batch, /** @type {number} */ size, byContent = false) =>
    Effect.gen(function*() {
      const embedding = yield* RetrainWorkflow.Embedding.client
      const ranges = Array.from({ length: Math.ceil(batch.length / size) }, (_, i) => batch.slice(i * size, (i + 1) * size))
      // A range whose runner gave its shards to another while it ran answers an interruption: it is sent again, and
      // the other runner embeds what is not cached yet. The count of ranges sent again is reported.
      const embedRange = (/** @type {typeof batch} */ range, /** @type {string} */ id, /** @type {number} */ tries) =>
        embedding(id).EmbedRange({ functionId: fnId, backbones: [backbone], mirror: false, images: range }).pipe(
          Effect.exit,
          Effect.flatMap((exit) => {
            if (exit._tag === "Success") return Effect.succeed(exit.value)
            if (!Cause.isInterruptedOnly(exit.cause) || tries === 0) return Effect.failCause(exit.cause)
            resent++
            return embedRange(range, `${id}-again`, tries - 1)
          })
        )
      const idOf = (/** @type {typeof batch} */ range, /** @type {number} */ i) =>
        byContent ? `${prefix}/${createHash("sha256").update(range.map((s) => s.contentHash).join()).digest("hex").slice(0, 32)}` : `${prefix}/${i}`
      const counts = yield* Effect.forEach(ranges, (range, i) => embedRange(range, idOf(range, i), 3), { concurrency: "unbounded" })
      const total = counts.reduce((a, b) => a + b, 0)
      if (total !== batch.length) throw new Error(`the runners embedded ${total} of ${batch.length}`)
    }).pipe(
      Effect.provide(client),
      Effect.scoped,
      Effect.tapErrorCause((cause) => Effect.sync(() => console.error(Cause.pretty(cause)))),
      Effect.runPromise
    )

  /** `count` fresh runners (fresh caches), warmed up, then timed on `workload` (by default the images, once). */
  const runnersRun = async (
    /** @type {number} */ count,
    /** @type {number | string} */ round,
    workload = () => send(`run-${round}-${count}`, images, rangeSize)
  ) => {
    const runners = await Promise.all(Array.from({ length: count }, async (_, i) => {
      const cache = path.join(work, `runner-${round}-${count}-${i}-cache`)
      const child = spawn(process.execPath, [path.join(here, "runner.mjs"), postgres.url, blobDir, cache, String(34500 + 10 * count + i)], {
        stdio: ["ignore", "pipe", "inherit"]
      })
      children.push(child)
      await new Promise((resolve, reject) => {
        let out = ""
        child.stdout?.on("data", (c) => {
          out += c
          if (out.includes("runner ready")) resolve(undefined)
        })
        child.on("exit", (code) => reject(new Error(`runner exited with ${code}:\n${out.slice(-3000)}`)))
      })
      return /** @type {number} */ (child.pid)
    }))
    try {
      // The runners share out the shards once all have joined.
      await new Promise((r) => setTimeout(r, 5000))
      // Warm-up: small ranges, so that every runner loads the model and holds shards, cached apart from the measured images.
      await send(`warmup-${round}-${count}`, warmup, 4)
      const before = runners.map((pid) => processStats(pid).cpuMs)
      const cpu = ownCpuMs()
      const start = performance.now()
      resent = 0
      await workload()
      const wall = (performance.now() - start) / 1000
      if (resent > 0) console.log(`${count} runner(s): ${resent} range(s) sent again after an interruption`)
      const runnerCpu = runners.reduce((sum, pid, i) => sum + processStats(pid).cpuMs - before[i], 0)
      return /** @type {Timed} */ ({ wall, cpuMs: runnerCpu + ownCpuMs() - cpu })
    } finally {
      await Promise.all(children.splice(0).map(stopRunner))
    }
  }

  // The modes take turns, round after round, so that a load that comes and goes on the machine falls on all of them;
  // each mode's row is its median round, and each round's overhead is against that round's in-process run.
  const modes = [
    { name: "in process", run: inProcessRun },
    { name: "1 runner", run: (/** @type {number} */ round) => runnersRun(1, round) },
    { name: "2 runners", run: (/** @type {number} */ round) => runnersRun(2, round) }
  ]
  /** @type {Array<Array<Timed>>} */
  const rounds = []
  for (let round = 0; round < roundCount; round++) {
    /** @type {Array<Timed>} */
    const timed = []
    for (const mode of modes) {
      console.log(`Round ${round + 1}/${roundCount}: embedding ${mode.name}...`)
      timed.push(await mode.run(round))
      console.log(JSON.stringify({ round: round + 1, mode: mode.name, ...timed.at(-1) }))
    }
    rounds.push(timed)
  }
  const median = (/** @type {Array<number>} */ xs) => {
    const sorted = [...xs].sort((a, b) => a - b)
    const mid = Math.floor(sorted.length / 2)
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  }
  const embedRows = modes.map((mode, m) => ({
    name: mode.name,
    wall: median(rounds.map((r) => r[m].wall)),
    cpuMs: median(rounds.map((r) => r[m].cpuMs)),
    overheads: rounds.map((r) => r[m].wall / r[0].wall - 1)
  }))
  const inProcess = embedRows[0]
  console.log(`\nbench/scale: ${imageCount} photos, ${backbone}, ranges of ${rangeSize}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), Node ${process.version}`)
  console.log(`embedding (median of ${roundCount} rounds)  images/s   wall s   CPU ms/image   overhead vs in process: median (each round)`)
  for (const r of embedRows) {
    const overhead = r === inProcess
      ? ""
      : `${f1(median(r.overheads) * 100)} % (${r.overheads.map((o) => `${f1(o * 100)} %`).join(", ")})`
    console.log(`${r.name.padEnd(29)}  ${f1(imageCount / r.wall).padStart(8)}  ${f1(r.wall).padStart(7)}  ${f1(r.cpuMs / imageCount).padStart(13)}   ${overhead}`)
  }
  /** @type {Array<{ name: string; runners: number } & Timed>} */
  const overlapRows = []
  if (args.overlap) {
    // The first retrain saw every image but the last; the second, all of them.
    const earlier = images.slice(0, -1)
    const runs = [
      { name: "one retrain alone", workload: () => send("alone", images, rangeSize) },
      {
        name: "two, ranges named per retrain",
        workload: () => Promise.all([send("retrain-1", earlier, rangeSize), send("retrain-2", images, rangeSize)])
      },
      {
        name: "two, ranges named by content",
        workload: () => Promise.all([send("shared", earlier, rangeSize, true), send("shared", images, rangeSize, true)])
      }
    ]
    for (const runners of [1, 2]) {
      for (const run of runs) {
        const name = `${runners} runner${runners > 1 ? "s" : ""}: ${run.name}`
        console.log(`Overlapping retrains, ${name}...`)
        overlapRows.push({ name, runners, ...(await runnersRun(runners, `overlap-${overlapRows.length}`, run.workload)) })
        console.log(JSON.stringify(overlapRows.at(-1)))
      }
    }
  }
  console.log(`\ninvoke (500x375 JPEG)  p50 ms   p99 ms   req/s at c=${args.concurrency}   errors   server CPU ms/req`)
  for (const r of invokeRows) {
    console.log(`${r.name.padEnd(21)}  ${f1(r.p50).padStart(6)}  ${f1(r.p99).padStart(7)}  ${f1(r.rps).padStart(13)}  ${String(r.errors).padStart(7)}  ${f1(r.serverCpuMsPerRequest).padStart(18)}`)
  }
  if (overlapRows.length > 0) {
    console.log(`\noverlapping retrains                         wall s   CPU ms/image   CPU against one retrain alone`)
    for (const r of overlapRows) {
      const alone = overlapRows.find((o) => o.runners === r.runners)
      console.log(`${r.name.padEnd(43)}  ${f1(r.wall).padStart(6)}  ${f1(r.cpuMs / imageCount).padStart(13)}   ${(r.cpuMs / (alone?.cpuMs ?? r.cpuMs)).toFixed(2)}x`)
    }
  }
  console.log(`load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`)
  console.log(JSON.stringify({ images: imageCount, range: rangeSize, embedding: embedRows, invoke: invokeRows, overlap: overlapRows }))
} finally {
  await Promise.all(children.map(stopRunner))
  await postgres.stop()
  fs.rmSync(work, { recursive: true, force: true })
}
