// @ts-check
/**
 * bench/serve: `loupe serve` under load on 127.0.0.1.
 *
 *   pnpm build && node bench/serve/run.mjs [--requests 1000,3000,10000] [--concurrency 1,8,32] [--mirror]
 *
 * Starts the built `loupe serve` on a fresh store (its own process, default capture policy, a rate limit high enough
 * not to interfere), trains a function on 20 cats-vs-dogs photos (`fast` preset), then invokes it with one 500x375
 * JPEG (cats-vs-dogs-large train/cats/cat.402.jpg, sent as a raw image/jpeg body) at each concurrency, a bounded
 * number of requests each, after a warm-up. It reports p50/p99 latency, requests/s, errors, the server's CPU time
 * per request and its resident memory (after warm-up, peak, end). The same-run baseline is the model without HTTP:
 * `Predictor.predict` in this process on the promoted bundle and the same image, one call at a time and 32 at once;
 * the ratios say what serving adds. (Neither path has an embedding cache: each call decodes and runs the model.)
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
// The packages by name, resolved through bench/package.json (a workspace package), as a user's project would.
import { LoupeConfig, Registry } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { Heads, ManualTraining } from "@loupe/trainers"
import { Predictor } from "@loupe/deploy"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Exit, Layer, Scope } from "effect"
import { sharedDir as shared } from "../../test/fixtures/shared.mjs"
import { invokeLoad, percentile, processStats, startServe, trainedFunction } from "../lib/serve.mjs"

const models = path.join(shared, "models")
const image = fs.readFileSync(path.join(shared, "datasets/cats-vs-dogs-large/train/cats/cat.402.jpg"))

const { values: args } = parseArgs({
  options: {
    requests: { type: "string", default: "1000,3000,10000" },
    concurrency: { type: "string", default: "1,8,32" },
    // `--mirror` serves a model trained with mirror images (`balanced`'s setting): two backbone passes per request.
    mirror: { type: "boolean", default: false }
  }
})
const levels = String(args.concurrency).split(",").map(Number)
const counts = String(args.requests).split(",").map(Number)

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-bench-serve-"))
const store = path.join(work, "store")
const env = { ...process.env, LOUPE_MODELS_DIR: models, LOUPE_CACHE_DIR: path.join(work, "cache") }
const server = await startServe({ store, env })
const { call, pid, token, url } = server

try {
  // A function trained on 10 + 10 photos.
  const { detail, fn } = await trainedFunction(call, args.mirror ? { mirror: true } : undefined)

  /** `total` invocations by `concurrency` workers, sampling the server's memory every 1000 requests. */
  /** @type {Array<number>} */
  let rssTrace = []
  const phase = (/** @type {number} */ concurrency, /** @type {number} */ total) =>
    invokeLoad({
      url,
      token,
      fn,
      image,
      concurrency,
      total,
      onRequest: (n) => {
        if (n % 1000 === 0) rssTrace.push(Math.round(processStats(pid).rss))
      }
    })

  // Warm-up at the highest concurrency: loads the model, warms the JIT and opens the client's connections (a cold
  // connection opened under load waits behind the busy ones; that start-up tail is not the steady state measured).
  await phase(Math.max(...levels), 400)
  const afterWarmup = processStats(pid)
  rssTrace = []
  const rows = []
  let peak = afterWarmup.rss
  const sampler = setInterval(() => (peak = Math.max(peak, processStats(pid).rss)), 250)
  for (const [i, concurrency] of levels.entries()) {
    const total = counts[i] ?? counts.at(-1)
    const before = processStats(pid)
    const load = os.loadavg()[0]
    const { errors, latencies, seconds } = await phase(concurrency, total)
    const after = processStats(pid)
    rows.push({
      concurrency,
      requests: total,
      errors,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      rps: latencies.length / seconds,
      serverCpuMsPerRequest: (after.cpuMs - before.cpuMs) / total,
      rssEnd: after.rss,
      load
    })
  }
  clearInterval(sampler)
  const end = processStats(pid)

  // Baseline: the model alone, in this process, on the promoted bundle (the same Predictor the server uses).
  const bundle = path.join(store, "blobs", "bundles", fn, detail.model.id)
  const environment = Layer.mergeAll(
    NodeFileSystem.layer,
    Registry.Registry.layer({ backbones: Catalog.builtins, heads: [...Heads.heads, ...ManualTraining.heads] }),
    LoupeConfig.LoupeConfig.layer({ modelsDir: models, cacheDir: path.join(work, "cache") })
  )
  const scope = Effect.runSync(Scope.make())
  const predictor = await Effect.runPromise(Predictor.load(bundle).pipe(Effect.provide(environment), Scope.extend(scope)))
  const bytes = new Uint8Array(image)
  const direct = []
  for (let i = 0; i < 320; i++) {
    const t = performance.now()
    await Effect.runPromise(predictor.predict(bytes))
    if (i >= 20) direct.push(performance.now() - t)
  }
  direct.sort((a, b) => a - b)
  const baseline = percentile(direct, 50)
  const burstStarted = performance.now()
  const burst = 1000
  let issued = 0
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (issued++ < burst) await Effect.runPromise(predictor.predict(bytes))
  }))
  const baselineRps = burst / ((performance.now() - burstStarted) / 1000)
  await Effect.runPromise(Scope.close(scope, Exit.void))

  const f1 = (/** @type {number} */ x) => x.toFixed(1)
  console.log(`\nloupe serve, 500x375 JPEG (${image.length} bytes), ${os.cpus().length} CPUs, Node ${process.version}`)
  console.log("concurrency  requests  errors   p50 ms   p99 ms    req/s  server CPU ms/req  RSS end MiB  load avg")
  for (const r of rows) {
    console.log(
      `${String(r.concurrency).padStart(11)}  ${String(r.requests).padStart(8)}  ${String(r.errors).padStart(6)}  ${f1(r.p50).padStart(7)}  ` +
        `${f1(r.p99).padStart(7)}  ${f1(r.rps).padStart(7)}  ${f1(r.serverCpuMsPerRequest).padStart(17)}  ${f1(r.rssEnd).padStart(11)}  ${r.load.toFixed(1).padStart(8)}`
    )
  }
  console.log(`server RSS: ${f1(afterWarmup.rss)} MiB after warm-up, ${f1(peak)} MiB peak, ${f1(end.rss)} MiB at the end`)
  console.log(`server RSS every 1000 requests (MiB): ${rssTrace.join(" ")}`)
  const top = rows[rows.length - 1]
  console.log(
    `baseline (Predictor.predict in process, no HTTP): p50 ${f1(baseline)} ms one at a time, ${f1(baselineRps)} calls/s 32 at once; ` +
      `serving / baseline: p50 at c=1 ${(rows[0].p50 / baseline).toFixed(2)}, req/s at c=${top.concurrency} ${(top.rps / baselineRps).toFixed(2)}`
  )
  console.log(JSON.stringify({ rows, rss: { afterWarmup: afterWarmup.rss, peak, end: end.rss, trace: rssTrace }, baseline: { p50: baseline, rps: baselineRps } }))
} finally {
  await server.stop()
}
