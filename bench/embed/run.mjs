// Embedding throughput benchmark: files -> embeddings with MobileNetV2-int8 on cats-vs-dogs-large/train.
// Run after `pnpm build` (it uses the built packages): node bench/embed/run.mjs [--flag value ...]
// See bench/embed/README.md for what it measures and the flags.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { sharedDir } from "../../test/fixtures/shared.mjs"

const root = path.resolve(import.meta.dirname, "../..")
const { values: flags } = parseArgs({
  options: {
    images: { type: "string", default: path.join(sharedDir, "datasets/cats-vs-dogs-large/train") },
    backbone: { type: "string", default: "onnx:mobilenetv2-int8" },
    batch: { type: "string", default: "16" },
    decode: { type: "string", default: "4" },
    threads: { type: "string", default: "2" },
    engine: { type: "string" },
    "sharp-concurrency": { type: "string" },
    repeat: { type: "string", default: "3" },
    limit: { type: "string" }
  }
})
const num = (name) => Number(flags[name])

// The built packages, and the one `effect` instance they share.
const { Effect, Layer } = await import(new URL("packages/core/node_modules/effect/dist/esm/index.js", `file://${root}/`).href)
const { DiskEmbeddingCache, Embedder, LoupeConfig, Preprocess, Registry } = await import(`${root}/packages/core/dist/index.js`)
const { Catalog } = await import(`${root}/packages/backbones/dist/index.js`)
const sharp = (await import(new URL("packages/core/node_modules/sharp/dist/index.mjs", `file://${root}/`).href)).default
if (flags["sharp-concurrency"] !== undefined) sharp.concurrency(num("sharp-concurrency"))

const files = fs.readdirSync(flags.images, { recursive: true, encoding: "utf8" })
  .filter((f) => /\.(jpe?g|png|webp)$/i.test(f))
  .sort()
  .map((f) => path.join(flags.images, f))
  .slice(0, flags.limit === undefined ? undefined : num("limit"))
const samples = files.map((source, i) => ({ id: String(i), source }))
const n = samples.length
const embedOptions = { batchSize: num("batch"), decodeConcurrency: num("decode") }

/** Wall and CPU seconds (user + system, every thread of the process: main, worker, thread pool) of `run`. */
const seconds = async (run) => {
  const cpu = process.cpuUsage()
  const start = performance.now()
  await run()
  const used = process.cpuUsage(cpu)
  return { wall: (performance.now() - start) / 1000, cpu: (used.user + used.system) / 1e6 }
}
const median = (xs) => [...xs].sort((a, b) => a.wall - b.wall)[Math.floor(xs.length / 2)]
const rate = (t) => n / t.wall
const fmt = (x, d = 1) => x.toFixed(d)

const layer = Layer.mergeAll(
  Registry.Registry.layer({ backbones: Catalog.builtins }),
  LoupeConfig.LoupeConfig.layer({ modelsDir: path.join(sharedDir, "models") })
)

const program = Effect.gen(function*() {
  const engine = flags.engine === undefined ? {} : { engine: flags.engine }
  const backbone = yield* Registry.loadBackbone(flags.backbone, { intraOpNumThreads: num("threads"), maxBatchSize: Math.max(num("batch"), 1), ...engine })
  const spec = backbone.info.preprocess
  const runP = (effect) => Effect.runPromise(effect)

  // Page cache and JIT warm-up: every file read once, one small embedding run.
  for (const f of files) fs.readFileSync(f)
  yield* Embedder.embedSamples(backbone, samples.slice(0, 64), embedOptions)

  const repeats = num("repeat")
  const times = { e2e: [], decode: [], model: [] }
  let peakRss = 0
  for (let r = 0; r < repeats; r++) {
    times.e2e.push(yield* Effect.promise(() => seconds(() => runP(Embedder.embedSamples(backbone, samples, embedOptions)))))
    peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024)
  }

  // Decode only: read + decode + resize, as many at once as the embedder runs; pixels are dropped.
  for (let r = 0; r < repeats; r++) {
    times.decode.push(yield* Effect.promise(() =>
      seconds(() => runP(Effect.forEach(files, (f) => Preprocess.loadRgb(f, spec), { concurrency: embedOptions.decodeConcurrency, discard: true })))
    ))
  }

  // Model only: the same batches of ready tensors, n images in all.
  const batch = Math.min(embedOptions.batchSize, backbone.maxBatchSize)
  const rgb = yield* Effect.forEach(files.slice(0, batch), (f) => Preprocess.loadRgb(f, spec))
  const tensor = Preprocess.toTensor(rgb, spec)
  for (let r = 0; r < repeats; r++) {
    times.model.push(yield* Effect.promise(() =>
      seconds(async () => {
        for (let done = 0; done < n; done += batch) {
          const count = Math.min(batch, n - done)
          await runP(backbone.embedBatch(count === batch ? tensor : tensor.subarray(0, count * spec.size * spec.size * 3), count))
        }
      })
    ))
  }

  // Cache: a cold run writing a fresh disk cache, then a rerun (a new cache instance reading it back).
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-bench-cache-"))
  const withCache = () => runP(Embedder.embedSamples(backbone, samples, embedOptions).pipe(Effect.provide(DiskEmbeddingCache.layer(cacheDir))))
  const cold = yield* Effect.promise(() => seconds(withCache))
  const warm = []
  let hits = 0
  for (let r = 0; r < repeats; r++) {
    warm.push(yield* Effect.promise(() => seconds(async () => (hits = (await withCache()).cacheHits))))
  }
  fs.rmSync(cacheDir, { recursive: true, force: true })
  return { times, peakRss, cold, warm, hits }
})

const load0 = os.loadavg()
const { times, peakRss, cold, warm, hits } = await Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(layer)))
const load1 = os.loadavg()

const e2e = median(times.e2e)
const decode = median(times.decode)
const model = median(times.model)
const range = (ts) => `${fmt(Math.min(...ts.map(rate)))}-${fmt(Math.max(...ts.map(rate)))}`
const cpu = (t) => `${fmt((t.cpu / n) * 1000, 2)} ms CPU/image, ${fmt(t.cpu / t.wall, 2)} cores busy`
const slower = Math.min(rate(decode), rate(model))
console.log(`images: ${n} from ${flags.images}`)
console.log(`backbone: ${flags.backbone}${flags.engine === undefined ? "" : ` (engine ${flags.engine})`}; batch ${embedOptions.batchSize}, decode concurrency ${embedOptions.decodeConcurrency}, ` +
  `onnx threads ${flags.threads}, sharp concurrency ${sharp.concurrency()}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? "4 (default)"}, ` +
  `${os.availableParallelism()} CPUs, median of ${flags.repeat}`)
console.log(`end-to-end (files -> embeddings): ${fmt(rate(e2e)).padStart(6)} images/s [${range(times.e2e)}]  ${cpu(e2e)}`)
console.log(`model only:                       ${fmt(rate(model)).padStart(6)} images/s [${range(times.model)}]  ${cpu(model)}`)
console.log(`decode only:                      ${fmt(rate(decode)).padStart(6)} images/s [${range(times.decode)}]  ${cpu(decode)}`)
console.log(`end-to-end / slower stage:        ${fmt(rate(e2e) / slower, 2)}`)
console.log(`end-to-end / both stages sharing the CPUs, 1 / (1/decode + 1/model): ${fmt(rate(e2e) * (1 / rate(decode) + 1 / rate(model)), 2)}`)
console.log(`CPU per image, end-to-end / (decode + model): ${fmt(e2e.cpu / (decode.cpu + model.cpu), 2)}  ` +
  `(1.00 = Loupe adds no work of its own; at this cost ${os.availableParallelism()} cores can do at most ` +
  `${fmt(os.availableParallelism() / (e2e.cpu / n), 0)} images/s)`)
console.log(`peak RSS (end-to-end runs):       ${fmt(peakRss / 2 ** 20, 0)} MiB`)
console.log(`cache: cold ${fmt(cold.wall, 2)} s (${fmt(cold.cpu, 2)} s CPU), warm rerun ${fmt(median(warm).wall, 3)} s ` +
  `(${fmt(median(warm).cpu, 3)} s CPU), ${hits}/${n} hits -> ${fmt(cold.wall / median(warm).wall)}x faster ` +
  `(${fmt(cold.cpu / median(warm).cpu)}x less CPU)`)
console.log(`load average before/after: ${load0.map((x) => fmt(x, 2)).join(" ")} / ${load1.map((x) => fmt(x, 2)).join(" ")}`)
