// @ts-check
/**
 * bench/generalize: does the AutoML search generalise? Test accuracy of `fast`, `balanced`, the full grid (balanced
 * without successive halving) and a scikit-learn LogisticRegressionCV baseline on Loupe's own MobileNetV2-int8
 * embeddings, over seeded, stratified random train/test splits. See bench/generalize/README.md.
 *
 *   pnpm build && node bench/generalize/run.mjs [--datasets a,b] [--shots 5,10,20,50,all] [--splits n]
 *     [--variants fast,balanced,grid,baseline] [--all-splits n] [--all-variants list] [--test-per-label n]
 *     [--cache-dir dir] [--table file.md] [--fresh] [--full]
 *
 * Every (dataset, setting, split, variant) result is a JSON file under the cache dir, so an interrupted run resumes
 * where it stopped and a rerun only prints the table. Progress goes to stderr, the report to stdout.
 */
import { spawnSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
// The `effect` instance the built core package uses (as bench/search does).
import { Effect, Layer } from "../../packages/core/node_modules/effect/dist/esm/index.js"
import { Catalog } from "../../packages/backbones/dist/index.js"
import { DiskEmbeddingCache, Embedder, LoupeConfig, Registry } from "../../packages/core/dist/index.js"
import { sharedDir as shared } from "../../test/fixtures/shared.mjs"

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, "../..")
const modelsDir = process.env["LOUPE_MODELS_DIR"] ?? path.join(shared, "models")
const cli = path.join(repo, "packages/cli/dist/cli.js")

const DATASETS = ["cats-vs-dogs-large", "flowers-5", "dog-breeds-120"]
/** Datasets that are re-split; the others are used as they are (their own train/ and test/). */
const RESPLIT = new Set(["cats-vs-dogs-large", "flowers-5"])
const VARIANTS = ["fast", "balanced", "grid", "baseline"]
/** How each Loupe variant is run: preset and overrides. */
const LOUPE = {
  fast: { preset: "fast", overrides: undefined },
  balanced: { preset: "balanced", overrides: undefined },
  grid: { preset: "balanced", overrides: { strategy: "grid" } }
}

const { values: args } = parseArgs({
  options: {
    datasets: { type: "string", default: DATASETS.join(",") },
    shots: { type: "string", default: "5,10,20,50,all" },
    splits: { type: "string", default: "5" },
    variants: { type: "string", default: VARIANTS.join(",") },
    // The "all" setting is the expensive one (2,000 and 4,057 training images): by default it runs fewer splits, only
    // the cheap variants and only on cats-vs-dogs-large (LogisticRegressionCV alone takes minutes on flowers-5's
    // 4,057 images). --full runs it like the other settings.
    "all-splits": { type: "string", default: "3" },
    "all-variants": { type: "string", default: "fast,baseline" },
    "all-datasets": { type: "string", default: "cats-vs-dogs-large" },
    full: { type: "boolean", default: false },
    // The full grid is the costliest variant; this runs it on the first n splits of each setting only.
    "grid-splits": { type: "string" },
    "test-per-label": { type: "string", default: "50" },
    "cache-dir": { type: "string", default: process.env["LOUPE_BENCH_GENERALIZE_DIR"] ?? path.join(os.homedir(), ".cache", "loupe", "bench-generalize") },
    table: { type: "string" },
    fresh: { type: "boolean", default: false },
    "any-code": { type: "boolean", default: false },
    "dry-run": { type: "boolean", default: false }
  }
})
const list = (/** @type {string} */ s) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0)
const datasets = list(String(args.datasets))
const shots = list(String(args.shots))
const nSplits = Number(args.splits)
const variants = list(String(args.variants))
const allSplits = args.full ? nSplits : Math.min(nSplits, Number(args["all-splits"]))
const allVariants = args.full ? variants : variants.filter((v) => list(String(args["all-variants"])).includes(v))
const allDatasets = args.full ? datasets : list(String(args["all-datasets"]))
const testPerLabel = Number(args["test-per-label"])
const cacheDir = path.resolve(String(args["cache-dir"]))
const tableFile = path.resolve(String(args.table ?? path.join(cacheDir, "table.md")))
for (const d of datasets) if (!DATASETS.includes(d)) throw new Error(`unknown dataset ${d} (known: ${DATASETS.join(", ")})`)
for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v} (known: ${VARIANTS.join(", ")})`)
for (const k of shots) if (k !== "all" && !(Number.isInteger(Number(k)) && Number(k) > 0)) throw new Error(`bad --shots entry ${k}`)

const started = performance.now()
const elapsed = () => {
  const s = Math.round((performance.now() - started) / 1000)
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
}
const log = (/** @type {string} */ line) => process.stderr.write(`[generalize ${elapsed()}] ${line}\n`)

// ---------------------------------------------------------------------------------------------------------------
// Splits

/** Deterministic PRNG (mulberry32) seeded from a string. */
const rng = (/** @type {string} */ seed) => {
  let a = crypto.createHash("sha256").update(seed).digest().readUInt32LE(0)
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
/** @template T @param {T[]} xs @param {() => number} random */
const shuffle = (xs, random) => {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}
const dirs = (/** @type {string} */ dir) => fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isDirectory()).sort()
const files = (/** @type {string} */ dir) => fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort()

/** Each label's images (absolute paths, sorted) pooled over the dataset's train/ and test/. */
const pool = (/** @type {string} */ dataset) => {
  const root = path.join(shared, "datasets", dataset)
  /** @type {Map<string, string[]>} */
  const byLabel = new Map()
  for (const split of ["train", "test"]) {
    for (const label of dirs(path.join(root, split))) {
      const list = byLabel.get(label) ?? []
      for (const f of files(path.join(root, split, label))) list.push(path.join(root, split, label, f))
      byLabel.set(label, list)
    }
  }
  for (const list of byLabel.values()) list.sort()
  return new Map([...byLabel].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/**
 * Split `index` of a re-split dataset at `shots` training images per label: each label's pooled images are shuffled
 * with the seed `<dataset>/<index>`; the first `testPerLabel` are the test set (the same for every setting of the
 * split), and the training set is the next `shots` (or all the rest), so 5 ⊂ 10 ⊂ 20 ⊂ 50 ⊂ all within a split.
 * Returns `{ train, test }` as `[file, label][]`.
 */
const drawSplit = (/** @type {string} */ dataset, /** @type {number} */ index, /** @type {string} */ shot) => {
  /** @type {[string, string][]} */ const train = []
  /** @type {[string, string][]} */ const test = []
  for (const [label, images] of pool(dataset)) {
    const order = shuffle(images, rng(`${dataset}/${index}/${label}`))
    const rest = order.slice(testPerLabel)
    if (rest.length < 2) throw new Error(`${dataset}/${label}: ${images.length} images, too few for ${testPerLabel} test images per label`)
    if (shot !== "all" && rest.length < Number(shot)) throw new Error(`${dataset}/${label}: only ${rest.length} training images, fewer than ${shot}`)
    for (const f of order.slice(0, testPerLabel)) test.push([f, label])
    for (const f of shot === "all" ? rest : rest.slice(0, Number(shot))) train.push([f, label])
  }
  return { train, test }
}

/** A dataset used as it is: its own train/ and test/. */
const ownSplit = (/** @type {string} */ dataset) => {
  const root = path.join(shared, "datasets", dataset)
  /** @param {string} split @returns {[string, string][]} */
  const read = (split) => dirs(path.join(root, split)).flatMap((label) => files(path.join(root, split, label)).map((f) => /** @type {[string, string]} */ ([path.join(root, split, label, f), label])))
  const test = read("test")
  return { dir: root, train: read("train"), test, testKeys: test.map(([f, label]) => `${label}/${path.basename(f)}`) }
}

/**
 * The folder `loupe train` reads: `<dir>/{train,test}/<label>/<file>` as symlinks to the shared images (file names
 * are prefixed with their source split so that names never collide). Built once, atomically.
 */
const splitFolder = (/** @type {string} */ dataset, /** @type {number} */ index, /** @type {string} */ shot) => {
  const { test, train } = drawSplit(dataset, index, shot)
  const dir = path.join(cacheDir, "splits", `${dataset}-t${testPerLabel}`, `split-${index}`, `shots-${shot}`)
  const manifest = JSON.stringify({ train, test })
  const stamp = path.join(dir, "split.json")
  /** How `loupe train --json` names each test image: `<label>/<file name in the split folder>`. */
  const linkName = (/** @type {string} */ file) => `${path.basename(path.dirname(path.dirname(file)))}__${path.basename(file)}`
  const testKeys = test.map(([f, label]) => `${label}/${linkName(f)}`)
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === manifest) return { dir, train, test, testKeys }
  const tmp = `${dir}.tmp-${process.pid}`
  fs.rmSync(tmp, { recursive: true, force: true })
  for (const [name, rows] of /** @type {const} */ ([["train", train], ["test", test]])) {
    for (const [file, label] of rows) {
      const into = path.join(tmp, name, label)
      fs.mkdirSync(into, { recursive: true })
      fs.symlinkSync(file, path.join(into, linkName(file)))
    }
  }
  fs.writeFileSync(path.join(tmp, "split.json"), manifest)
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(path.dirname(dir), { recursive: true })
  fs.renameSync(tmp, dir)
  return { dir, train, test, testKeys }
}

// ---------------------------------------------------------------------------------------------------------------
// Variants

const UNAVAILABLE = "unavailable"

/** One Loupe preset run through the CLI on the split folder; test accuracy from `--json`. */
const runLoupe = (/** @type {keyof typeof LOUPE} */ variant, /** @type {string} */ dir, /** @type {number} */ seed) => {
  const { overrides, preset } = LOUPE[variant]
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `loupe-generalize-${variant}-`))
  try {
    const argv = [cli, "train", dir, "--preset", preset, "--json", "--models-dir", modelsDir, "--out", path.join(out, "bundle"), "--seed", String(seed)]
    if (overrides !== undefined) argv.push("--overrides", JSON.stringify(overrides))
    const t0 = performance.now()
    const r = spawnSync(process.execPath, argv, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024, env: process.env })
    const wallMs = performance.now() - t0
    if (r.status !== 0) {
      // The error line (`loupe: ... [AutomlError: ...]`), not the progress bars before it.
      const errLines = (r.stderr ?? "").trim().split("\n").filter((l) => /^loupe:|Error|is unexpected/.test(l))
      const tail = (errLines.length > 0 ? errLines : (r.stderr ?? "").trim().split("\n")).slice(-3).join("\n") || `exit ${r.status ?? r.signal}`
      // An override the preset settings do not know yet: the variant is not in this build.
      if (overrides !== undefined && /InvalidOptions|Invalid preset override|is unexpected/.test(tail) && /strategy/.test(tail)) {
        return { status: UNAVAILABLE, reason: (tail.split("\n")[0] ?? "").slice(0, 80) }
      }
      return { status: "failed", wallMs, reason: tail }
    }
    const json = JSON.parse(r.stdout.trim().split("\n").pop() ?? "")
    if (json.test === null) return { status: "failed", wallMs, reason: "no test result" }
    return {
      status: "ok",
      accuracy: json.test.accuracy,
      correct: json.test.correct,
      total: json.test.total,
      cvAccuracy: json.cv?.accuracy,
      selected: json.selected,
      strategy: json.strategy ?? json.search?.strategy,
      timings: json.timings,
      wallMs,
      // 1 or 0 per test image, by `<label>/<file>`, for the within-split standard error of a single-split setting.
      perImage: Object.fromEntries(json.test.predictions.map((/** @type {any} */ p) => [p.file, p.labelName === p.trueLabel ? 1 : 0]))
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true })
  }
}

/** The default backbone's embeddings of `rows` through Loupe's Embedder and its on-disk cache. */
const embed = (/** @type {[string, string][]} */ rows) =>
  Effect.gen(function*() {
    const backbone = yield* Registry.loadBackbone(Catalog.mobilenetV2Int8.id)
    const embedded = yield* Embedder.embedSamples(backbone, rows.map(([source], i) => ({ id: String(i), source })))
    if (embedded.skipped.length > 0) throw new Error(`could not embed ${embedded.skipped.map((s) => s.sample.source).join(", ")}`)
    return { data: embedded.vectors.data, dim: embedded.vectors.cols }
  }).pipe(
    Effect.scoped,
    Effect.provide(Layer.mergeAll(
      Registry.Registry.layer({ backbones: [...Catalog.builtins], heads: [] }),
      DiskEmbeddingCache.layer()
    )),
    Effect.provide(LoupeConfig.LoupeConfig.layer({ modelsDir, ...(process.env["LOUPE_CACHE_DIR"] ? { cacheDir: process.env["LOUPE_CACHE_DIR"] } : {}) })),
    Effect.runPromise
  )

/** scikit-learn's LogisticRegressionCV on the split's MobileNetV2-int8 embeddings (bench/generalize/baseline.py). */
const runBaseline = async (/** @type {{ train: [string, string][], test: [string, string][], testKeys: string[] }} */ split) => {
  const t0 = performance.now()
  const labels = [...new Set(split.train.map(([, l]) => l))].sort()
  const index = new Map(labels.map((l, i) => [l, i]))
  const train = await embed(split.train)
  const test = await embed(split.test)
  const embedMs = performance.now() - t0
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-generalize-baseline-"))
  try {
    const write = (/** @type {string} */ name, /** @type {ArrayBufferView} */ a) => fs.writeFileSync(path.join(work, name), new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    write("x_train.f32", train.data)
    write("x_test.f32", test.data)
    // A test label absent from training (dog-breeds-120 has none) gets -1: always a miss.
    write("y_train.i32", Int32Array.from(split.train, ([, l]) => index.get(l) ?? -1))
    write("y_test.i32", Int32Array.from(split.test, ([, l]) => index.get(l) ?? -1))
    fs.writeFileSync(path.join(work, "meta.json"), JSON.stringify({ dim: train.dim, nTrain: split.train.length, nTest: split.test.length }))
    const r = spawnSync(process.env["LOUPE_BENCH_PYTHON"] ?? "/usr/bin/python3", [path.join(here, "baseline.py"), work], { encoding: "utf8" })
    if (r.status !== 0) return { status: "failed", reason: (r.stderr ?? "").trim().split("\n").slice(-3).join("\n") }
    const { hits, ...json } = JSON.parse(r.stdout.trim().split("\n").pop() ?? "")
    const perImage = Object.fromEntries(split.testKeys.map((k, i) => [k, hits[i]]))
    return { status: "ok", ...json, embedMs, wallMs: performance.now() - t0, perImage }
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The plan

/** @typedef {{ dataset: string, setting: string, split: number, variants: string[] }} Job */
/** @type {Job[]} */
const plan = []
for (const dataset of datasets) {
  if (!RESPLIT.has(dataset)) {
    plan.push({ dataset, setting: "own split", split: 0, variants })
    continue
  }
  // Split-major order, so that a partial run already has every setting on its first splits.
  for (let split = 0; split < nSplits; split++) {
    for (const shot of shots) {
      const vs = (shot === "all" ? allVariants : variants).filter((v) => v !== "grid" || args["grid-splits"] === undefined || split < Number(args["grid-splits"]))
      if (shot === "all" && (split >= allSplits || !allDatasets.includes(dataset))) continue
      if (vs.length > 0) plan.push({ dataset, setting: shot, split, variants: vs })
    }
  }
}

const resultFile = (/** @type {Job} */ job, /** @type {string} */ variant) =>
  path.join(cacheDir, "results", job.dataset, RESPLIT.has(job.dataset) ? `t${testPerLabel}-shots-${job.setting}` : "own-split", `split-${job.split}`, `${variant}.json`)

/**
 * The code a result was measured with: the git tree of the packages it depends on (all of packages/ for Loupe's
 * variants; core and backbones, which make the embeddings, for the baseline), "+dirty" when they hold uncommitted
 * changes. A cached result measured with other code is stale: it is rerun, and left out of the table
 * (unless --any-code).
 */
const git = (/** @type {string[]} */ argv) => {
  const r = spawnSync("git", ["-C", repo, ...argv], { encoding: "utf8" })
  return r.status === 0 ? r.stdout.trim() : "unknown"
}
const codeOf = (/** @type {string[]} */ dirs) => {
  const trees = dirs.map((d) => git(["rev-parse", `HEAD:${d}`]).slice(0, 12)).join(",")
  return `${trees}${git(["status", "--porcelain", "--", ...dirs]).length > 0 ? "+dirty" : ""}`
}
const CODE = { loupe: codeOf(["packages"]), baseline: codeOf(["packages/core", "packages/backbones", "bench/generalize/baseline.py"]) }
const codeFor = (/** @type {string} */ variant) => (variant === "baseline" ? CODE.baseline : CODE.loupe)
/** The cached result of a variant, or undefined when there is none or (unless --any-code) it is stale. */
const cached = (/** @type {string} */ file, /** @type {string} */ variant) => {
  if (!fs.existsSync(file)) return undefined
  const r = JSON.parse(fs.readFileSync(file, "utf8"))
  return args["any-code"] || r.code === codeFor(variant) ? r : undefined
}

const cpu = fs.readFileSync("/proc/cpuinfo", "utf8")
const cpuFlag = /\bavx512_vnni\b/.test(cpu) ? "avx512_vnni" : /\bavx2\b/.test(cpu) ? "avx2" : "neither avx2 nor avx512_vnni"
const cpuModel = (cpu.match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? "unknown CPU"

const runs = plan.reduce((n, j) => n + j.variants.length, 0)
log(`${plan.length} (dataset, setting, split) jobs, ${runs} variant runs; cache ${cacheDir}${args.fresh ? " (--fresh: ignoring cached results)" : ""}`)

/**
 * Estimated seconds of a run: the mean wall time of the cached results (any code, any split) of the same dataset,
 * setting and variant; undefined when there are none. First passes over a dataset also embed, so later runs are
 * usually faster than the first.
 */
const estimates = new Map()
const estimate = (/** @type {Job} */ job, /** @type {string} */ variant) => {
  const key = `${job.dataset}/${job.setting}/${variant}`
  if (!estimates.has(key)) {
    const dir = path.dirname(path.dirname(resultFile({ ...job, split: 0 }, variant)))
    const walls = fs.existsSync(dir)
      ? fs.readdirSync(dir).map((d) => path.join(dir, d, `${variant}.json`)).filter((f) => fs.existsSync(f)).map((f) => JSON.parse(fs.readFileSync(f, "utf8")).wallMs)
      : []
    estimates.set(key, walls.length > 0 ? walls.reduce((a, b) => a + b, 0) / walls.length / 1000 : undefined)
  }
  return estimates.get(key)
}
const pending = plan.flatMap((job) => job.variants.filter((v) => args.fresh || cached(resultFile(job, v), v) === undefined).map((v) => ({ job, v })))
const known = pending.map(({ job, v }) => estimate(job, v)).filter((x) => x !== undefined)
log(`${pending.length} runs to do; estimated ${(known.reduce((a, b) => a + b, 0) / 60).toFixed(1)} min from earlier runs of the same ` +
  `dataset, setting and variant${known.length < pending.length ? `, plus ${pending.length - known.length} runs never measured` : ""}`)
if (args["dry-run"]) {
  for (const j of plan) {
    log(`plan: ${j.dataset} ${j.setting} split ${j.split}: ${j.variants.map((v) => {
      const e = estimate(j, v)
      return `${v}${cached(resultFile(j, v), v) !== undefined && !args.fresh ? " (cached)" : e === undefined ? " (?)" : ` (~${e.toFixed(0)} s)`}`
    }).join(", ")}`)
  }
  process.exit(0)
}

/** @type {Set<string>} */
const unavailable = new Set()
let done = 0
for (const job of plan) {
  const split = RESPLIT.has(job.dataset) ? splitFolder(job.dataset, job.split, job.setting) : ownSplit(job.dataset)
  // The same seed for every variant of a split; different splits get different seeds.
  const seed = job.split
  for (const variant of job.variants) {
    done++
    const file = resultFile(job, variant)
    const where = `${job.dataset} ${job.setting === "own split" ? "own split" : `${job.setting}/label`} split ${job.split} ${variant} (${done}/${runs})`
    if (!args.fresh && cached(file, variant) !== undefined) {
      log(`${where}: cached`)
      continue
    }
    if (unavailable.has(variant)) continue
    log(`${where}: ${split.train.length} train, ${split.test.length} test ...`)
    const t0 = performance.now()
    const result = variant === "baseline" ? await runBaseline(split) : runLoupe(/** @type {keyof typeof LOUPE} */ (variant), split.dir, seed)
    const secs = ((performance.now() - t0) / 1000).toFixed(1)
    if (result.status === UNAVAILABLE) {
      unavailable.add(variant)
      log(`${where}: variant unavailable in this build (${result.reason}); skipping it`)
      continue
    }
    if (result.status !== "ok") {
      // Failures are not cached: the next run tries again.
      log(`${where}: FAILED after ${secs} s: ${result.reason}`)
      continue
    }
    log(`${where}: ${(100 * result.accuracy).toFixed(1)} % (${result.correct}/${result.total}) in ${secs} s`)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    const record = {
      dataset: job.dataset, setting: job.setting, split: job.split, seed, variant, testPerLabel,
      nTrain: split.train.length, nTest: split.test.length, cpu: cpuFlag, date: new Date().toISOString(), code: codeFor(variant),
      ...result
    }
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2))
    fs.renameSync(`${file}.tmp`, file)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

const mean = (/** @type {number[]} */ xs) => xs.reduce((a, b) => a + b, 0) / xs.length
const se = (/** @type {number[]} */ xs) => {
  if (xs.length < 2) return NaN
  const m = mean(xs)
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1) / xs.length)
}
const pp = (/** @type {number} */ x) => (100 * x).toFixed(1)
const fmt = (/** @type {number[]} */ xs) => xs.length === 0 ? "—" : Number.isNaN(se(xs)) ? `${pp(mean(xs))}` : `${pp(mean(xs))} ± ${pp(se(xs))}`
const secsOf = (/** @type {any[]} */ rs) => rs.length === 0 ? "—" : `${(mean(rs.map((r) => r.wallMs)) / 1000).toFixed(1)}`

/** @type {Map<string, { dataset: string, setting: string, bySplit: Map<number, Record<string, any>> }>} */
const settings = new Map()
for (const job of plan) {
  const key = `${job.dataset}\u0000${job.setting}`
  const entry = settings.get(key) ?? { dataset: job.dataset, setting: job.setting, bySplit: new Map() }
  settings.set(key, entry)
  /** @type {Record<string, any>} */
  const row = {}
  for (const variant of VARIANTS) {
    const r = cached(resultFile(job, variant), variant)
    if (r !== undefined) row[variant] = r
  }
  entry.bySplit.set(job.split, row)
}

/**
 * The paired difference a − b in accuracy: its mean and standard error over the splits that have both; with a single
 * split, the standard error of the mean per-image difference over that split's test images (within-split).
 */
const paired = (/** @type {Record<string, any>[]} */ rows, /** @type {string} */ a, /** @type {string} */ b) => {
  const both = rows.filter((r) => r[a] && r[b])
  const diffs = both.map((r) => r[a].accuracy - r[b].accuracy)
  if (both.length !== 1) return { n: both.length, mean: diffs.length > 0 ? mean(diffs) : NaN, se: se(diffs), within: false }
  const [ra, rb] = [both[0][a], both[0][b]]
  const keys = ra.perImage && rb.perImage ? Object.keys(rb.perImage).filter((k) => k in ra.perImage) : []
  const d = keys.map((k) => ra.perImage[k] - rb.perImage[k])
  return { n: 1, mean: diffs[0], se: d.length === ra.total ? se(d) : NaN, within: true }
}
const fmtPaired = (/** @type {{ n: number, mean: number, se: number, within: boolean }} */ p) =>
  p.n === 0 ? "—" : `${p.mean >= 0 ? "+" : ""}${pp(p.mean)}${Number.isNaN(p.se) ? "" : ` ± ${pp(p.se)}${p.within ? "*" : ""}`}`

const lines = []
const date = new Date().toISOString().slice(0, 16).replace("T", " ")
lines.push(`bench/generalize, ${date} UTC, ${cpuModel} (${cpuFlag}), ${os.cpus().length} CPUs, Node ${process.version}, ` +
  `test set ${testPerLabel} images per label (re-split datasets)`)
lines.push("")
lines.push("Test accuracy in %, mean ± standard error over splits; differences are paired (same split), in points " +
  "(* a single split: the standard error over its test images instead).")
lines.push("")
lines.push("| dataset | train / label | splits | fast | balanced | grid | baseline (LogisticRegressionCV) | balanced − baseline | balanced − grid | ≥ −1 SE | wall s: fast / balanced / grid / baseline |")
lines.push("|---|---|---|---|---|---|---|---|---|---|---|")
const settingDiffs = []
let perSettingOk = true
let gridOk = true
let gridSettings = 0
for (const { bySplit, dataset, setting } of settings.values()) {
  const rows = [...bySplit.values()]
  const of = (/** @type {string} */ v) => rows.filter((r) => r[v]).map((r) => r[v])
  const acc = (/** @type {string} */ v) => of(v).map((r) => r.accuracy)
  const n = Math.max(...VARIANTS.map((v) => of(v).length))
  const vsBase = paired(rows, "balanced", "baseline")
  const vsGrid = paired(rows, "balanced", "grid")
  let verdict = "—"
  if (vsBase.n > 0) {
    settingDiffs.push(vsBase.mean)
    const ok = vsBase.mean >= -(Number.isNaN(vsBase.se) ? 0 : vsBase.se)
    if (!ok) perSettingOk = false
    verdict = ok ? "yes" : "**no**"
  }
  if (vsGrid.n > 0) {
    gridSettings++
    if (Math.abs(vsGrid.mean) > (Number.isNaN(vsGrid.se) ? 0 : vsGrid.se)) gridOk = false
  }
  const label = RESPLIT.has(dataset) ? setting : `${setting} (2-17)`
  lines.push(`| ${dataset} | ${label} | ${n} | ${fmt(acc("fast"))} | ${fmt(acc("balanced"))} | ${fmt(acc("grid"))} | ${fmt(acc("baseline"))} | ` +
    `${fmtPaired(vsBase)} | ${fmtPaired(vsGrid)} | ${verdict} | ${VARIANTS.map((v) => secsOf(of(v))).join(" / ")} |`)
}
lines.push("")
const overall = settingDiffs.length > 0 ? mean(settingDiffs) : NaN
lines.push(`Overall: mean over ${settingDiffs.length} settings of the paired balanced − baseline difference: ` +
  `${Number.isNaN(overall) ? "—" : `${overall >= 0 ? "+" : ""}${pp(overall)} points`}.`)
lines.push(`Targets: per setting mean(balanced − baseline) ≥ −1 SE: ${settingDiffs.length === 0 ? "not measured" : perSettingOk ? "holds" : "**misses**"}; ` +
  `overall mean > 0: ${Number.isNaN(overall) ? "not measured" : overall > 0 ? "holds" : "**misses**"}; ` +
  `|balanced − grid| ≤ 1 SE in every setting: ${gridSettings === 0 ? "not measured (grid variant unavailable or not run)" : gridOk ? "holds" : "**misses**"}.`)
if (unavailable.size > 0) lines.push(`Unavailable in this build: ${[...unavailable].join(", ")} (the preset settings reject the override).`)
const failures = plan.flatMap((job) => job.variants.filter((v) => !unavailable.has(v) && cached(resultFile(job, v), v) === undefined).map((v) => `${job.dataset}/${job.setting}/split ${job.split}/${v}`))
if (failures.length > 0) lines.push(`Missing (failed or not yet run): ${failures.length}: ${failures.slice(0, 12).join(", ")}${failures.length > 12 ? ", ..." : ""}`)
lines.push(`Code: packages tree ${CODE.loupe} (baseline: ${CODE.baseline})${args["any-code"] ? "; --any-code: results measured with other code included" : ""}.`)
lines.push(`Command: node bench/generalize/run.mjs ${process.argv.slice(2).join(" ")}`.trim())

const text = lines.join("\n")
console.log(text)
fs.mkdirSync(path.dirname(tableFile), { recursive: true })
fs.writeFileSync(tableFile, `${text}\n`)
log(`table written to ${tableFile}; total ${elapsed()}`)
