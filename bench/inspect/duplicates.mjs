// bench/inspect duplicates: the near-duplicate search (`Duplicates.find`) on 10,000 embeddings, the 2,100 real
// MobileNetV2-int8 embeddings of cats-vs-dogs-large (train + test) plus jittered copies of them, timed, with the
// process's peak memory, and its result checked against an exhaustive scan of every pair's cosine among the first
// `check` rows (default 3,000; the pruned search is exact, so both must agree).
//   npx turbo run build --filter=@loupe/metrics && node bench/inspect/duplicates.mjs [count] [check]
import { Matrix, Prng } from "@loupe/core"
import { Duplicates } from "@loupe/metrics"
import { loadEmbeddings } from "../lib/embeddings.mjs"

const count = Number(process.argv[2] ?? 10000)
const CHECK = Number(process.argv[3] ?? 3000)
const JITTER = Number(process.env.JITTER ?? 0.05)
const real = [await loadEmbeddings("cats-vs-dogs-large", "train"), await loadEmbeddings("cats-vs-dogs-large", "test")]
const realRows = real.reduce((n, e) => n + e.x.rows, 0)
const dim = real[0].x.cols
const data = new Float32Array(count * dim)
let offset = 0
for (const e of real) {
  data.set(e.x.data.subarray(0, Math.min(e.x.data.length, data.length - offset)), offset)
  offset += e.x.data.length
}
// A jittered copy: a real row (cycling through them) plus Gaussian noise of JITTER x that row's RMS per value, clipped
// at 0 as the backbone's features are: a copy of a real photo's embedding, as an edited copy would be (cosine to its
// source about 0.999), so the 10,000 keep the real photos' structure and hold many duplicate groups.
const rng = Prng.make(7)
for (let i = realRows; i < count; i++) {
  const src = (i % realRows) * dim
  let sq = 0
  for (let t = 0; t < dim; t++) sq += data[src + t] ** 2
  const sigma = JITTER * Math.sqrt(sq / dim)
  for (let t = 0; t < dim; t++) data[i * dim + t] = Math.max(0, data[src + t] + sigma * rng.normal())
}
const embeddings = Matrix.make(count, dim, data)
const y = Int32Array.from({ length: count }, (_, i) => (i % realRows) < 800 || ((i % realRows) >= 1600 && (i % realRows) < 1850) ? 0 : 1)

global.gc?.()
const rssBefore = process.memoryUsage().rss
const cpu0 = process.cpuUsage()
const t0 = performance.now()
const pairs = Duplicates.find({ embeddings, y }, process.env.DIMS ? { dims: Number(process.env.DIMS) } : {})
const seconds = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
const peak = process.resourceUsage().maxRSS / 1024
console.log(`${count} x ${dim} embeddings (${realRows} real): ${pairs.length} near-duplicate pairs at cosine >= ${Duplicates.defaultThreshold}`)
console.log(`time ${seconds.toFixed(2)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU; RSS before ${(rssBefore / 2 ** 20).toFixed(0)} MB, peak ${peak.toFixed(0)} MB (input ${(data.byteLength / 2 ** 20).toFixed(0)} MB)`)

// Pairs among the real photos (train rows first, then test): copies inside the shared set itself.
const realFiles = real.flatMap((e) => e.files)
for (const p of pairs.filter((p) => p.b < realRows)) console.log(`real pair: ${realFiles[p.a]} ~ ${realFiles[p.b]} (cosine ${p.similarity.toFixed(3)})`)

// Recall of the pruned scan: every pair above the threshold among the first CHECK rows, found by exact cosines.
const sub = Matrix.make(CHECK, dim, data.subarray(0, CHECK * dim))
const norms = Array.from({ length: CHECK }, (_, i) => Math.sqrt(Matrix.row(sub, i).reduce((s, v) => s + v * v, 0)))
let exhaustive = 0
for (let i = 0; i < CHECK; i++) {
  const a = Matrix.row(sub, i)
  for (let j = i + 1; j < CHECK; j++) {
    const b = Matrix.row(sub, j)
    let s = 0
    for (let t = 0; t < dim; t++) s += a[t] * b[t]
    if (s / (norms[i] * norms[j]) >= Duplicates.defaultThreshold) exhaustive++
  }
}
const found = pairs.filter((p) => p.b < CHECK).length
console.log(`recall on the first ${CHECK} rows: ${found} of ${exhaustive} pairs found by the exhaustive scan`)
