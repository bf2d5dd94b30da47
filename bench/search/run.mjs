// bench/search: the full default search against a plain default logistic regression, in the same run, on cached
// MobileNetV2-int8 embeddings of cats-vs-dogs and flowers-5. Needs a build first:
//   npx turbo run build --filter=@loupe/trainers && node bench/search/run.mjs
// Optional: `node bench/search/run.mjs cats-vs-dogs` runs one part; parts: cats-vs-dogs, flowers-5, heads-2000 (every
// built-in head fitted on 2,000 x 1,280 cats-vs-dogs-large embeddings, against the plain logistic regression),
// multi:<dataset> (the default search over the three offline catalog backbones alone and concatenated, with mirror
// images, as the `balanced` preset searches; multi:cats-vs-dogs is in the default run, multi:flowers-5 is not: its
// first run embeds 4,307 photos with two more backbones), mlp (the MLP head, seeds 0-2, at the sizes the search meets;
// not in the default run; `MLP_PARAMS='{"hidden": 32}'` overrides its default params).
import * as os from "node:os"
// The `effect` instance the built trainers package uses.
import { Effect } from "effect"
import { Catalog } from "@loupe/backbones"
import { Matrix, Pipeline } from "@loupe/core"
import { Heads, LogisticRegression, Mlp, Search, SearchSpace } from "@loupe/trainers"
import { loadEmbeddings } from "../lib/embeddings.mjs"

const BACKBONE = "onnx:mobilenetv2-int8"
const parts = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["cats-vs-dogs", "flowers-5", "heads-2000", "multi:cats-vs-dogs"]

const argmax = (proba, i) => {
  let best = 0
  for (let c = 1; c < proba.cols; c++) if (proba.data[i * proba.cols + c] > proba.data[i * proba.cols + best]) best = c
  return best
}
const correct = (proba, y) => y.reduce((ok, label, i) => ok + (argmax(proba, i) === label ? 1 : 0), 0)

/** Wall and CPU (user + system) milliseconds of `effect`. */
const timed = async (effect) => {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const value = await Effect.runPromise(effect)
  const wall = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  return { value, wall, cpu: (cpu.user + cpu.system) / 1000 }
}

const s = (ms) => `${(ms / 1000).toFixed(2)} s`
const pct = (ok, n) => `${ok}/${n} (${((100 * ok) / n).toFixed(1)} %)`

console.log(`bench/search on ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`)
const searchBench = async (dataset) => {
  const train = await loadEmbeddings(dataset, "train")
  const test = await loadEmbeddings(dataset, "test")
  const set = { x: train.x, y: train.y, numClasses: train.labels.length }
  console.log(`\n## ${dataset}: ${train.x.rows} x ${train.x.cols} train, ${test.x.rows} test, ${train.labels.length} classes`)

  const baseline = await timed(LogisticRegression.fit(set))
  const baselineOk = correct(baseline.value.predictProba(test.x), test.y)

  const search = await timed(Search.run({ embeddings: new Map([[BACKBONE, train.x]]), y: train.y, numClasses: set.numClasses }))
  const result = search.value
  const searchOk = correct(result.fitted.predictProba(test.x), test.y)

  // The same search with mirror images, as AutoML's presets run it: train on both, predict the mean of both.
  const trainMirror = await loadEmbeddings(dataset, "train", Infinity, { mirror: true })
  const testMirror = await loadEmbeddings(dataset, "test", Infinity, { mirror: true })
  const mirrorSearch = await timed(Search.run({
    embeddings: new Map([[BACKBONE, train.x]]),
    mirrored: new Map([[BACKBONE, trainMirror.x]]),
    y: train.y,
    numClasses: set.numClasses
  }))
  const mirrorResult = mirrorSearch.value
  const mirrorOk = correct(Pipeline.predictProba(mirrorResult.fitted, { vectors: test.x, mirrored: testMirror.x }), test.y)

  console.log(`| run | test | wall | CPU |`)
  console.log(`|---|---|---|---|`)
  console.log(`| default logistic regression (l2 = 1, C = 1) | ${pct(baselineOk, test.y.length)} | ${s(baseline.wall)} | ${s(baseline.cpu)} |`)
  console.log(`| default search (${result.strategy}) -> ${SearchSpace.key(result.best.candidate)} | ${pct(searchOk, test.y.length)} | ${s(search.wall)} | ${s(search.cpu)} |`)
  console.log(`| default search with mirror images -> ${SearchSpace.key(mirrorResult.best.candidate)} | ${pct(mirrorOk, test.y.length)} | ${s(mirrorSearch.wall)} | ${s(mirrorSearch.cpu)} |`)
  console.log(`search / baseline time: ${(search.wall / baseline.wall).toFixed(1)}x wall, ${(search.cpu / baseline.cpu).toFixed(1)}x CPU; ` +
    `test accuracy ${searchOk - baselineOk >= 0 ? "+" : ""}${searchOk - baselineOk} images`)
  console.log(`mirror search / baseline time: ${(mirrorSearch.wall / baseline.wall).toFixed(1)}x wall, ${(mirrorSearch.cpu / baseline.cpu).toFixed(1)}x CPU; ` +
    `test accuracy ${mirrorOk - baselineOk >= 0 ? "+" : ""}${mirrorOk - baselineOk} images; out-of-fold accuracy ${(result.best.metrics.accuracy * 100).toFixed(1)} % -> ${(mirrorResult.best.metrics.accuracy * 100).toFixed(1)} % with mirror images`)
  console.log(`\nleaderboard (out-of-fold, ${result.leaderboard.length} evaluations${result.budgetExhausted ? ", time budget hit" : ""}):`)
  console.log(`| candidate | rows | macro-F1 | log loss | accuracy | fit/fold | CV |`)
  console.log(`|---|---|---|---|---|---|---|`)
  for (const e of result.leaderboard) {
    const params = Object.entries(e.candidate).filter(([k]) => k !== "backbone.id").map(([k, v]) => `${k.slice(5)}=${v}`).join(" ")
    console.log(`| ${params} | ${e.rows} | ${e.metrics.macroF1.toFixed(4)} | ${e.metrics.logLoss.toFixed(4)} | ${e.metrics.accuracy.toFixed(4)} | ${e.fitMs.toFixed(0)} ms | ${s(e.cvMs)} |`)
  }
}

/**
 * The default search over every offline catalog backbone alone and their concatenation, with mirror images (the
 * `balanced` preset's search, without its sample dedup and content-hash groups: the shared datasets hold no
 * duplicates), against the plain logistic regression on MobileNetV2-int8.
 */
const multiBench = async (dataset) => {
  const ids = Catalog.builtins.filter((b) => b.info.tags.includes("offline")).map((b) => b.info.id)
  /** Each backbone's embeddings of a split and their concatenation, by feature-set id, and the split's labels. */
  const features = async (split, mirror) => {
    const loaded = []
    for (const backbone of ids) loaded.push(await loadEmbeddings(dataset, split, Infinity, { mirror, backbone }))
    const parts = loaded.map((l) => l.x)
    return { y: loaded[0].y, labels: loaded[0].labels, sets: new Map([...ids.map((id, i) => [id, parts[i]]), [ids.join("+"), Matrix.concatColumns(parts)]]) }
  }
  const train = await features("train", false)
  const test = await features("test", false)
  const [trainX, testX] = [train.sets, test.sets]
  const [trainMirror, testMirror] = [(await features("train", true)).sets, (await features("test", true)).sets]
  const numClasses = train.labels.length
  console.log(`\n## multi:${dataset}: ${train.y.length} train, ${test.y.length} test; feature sets ${[...trainX].map(([id, x]) => `${id} (${x.cols})`).join(", ")}`)

  const baseline = await timed(LogisticRegression.fit({ x: trainX.get(ids[0]), y: train.y, numClasses }))
  const baselineOk = correct(baseline.value.predictProba(testX.get(ids[0])), test.y)
  const search = await timed(Search.run({ embeddings: trainX, mirrored: trainMirror, y: train.y, numClasses }))
  const result = search.value
  const chosen = result.best.backboneId
  const searchOk = correct(Pipeline.predictProba(result.fitted, { vectors: testX.get(chosen), mirrored: testMirror.get(chosen) }), test.y)
  console.log(`| run | test | wall | CPU |`)
  console.log(`|---|---|---|---|`)
  console.log(`| default logistic regression on ${ids[0]} | ${pct(baselineOk, test.y.length)} | ${s(baseline.wall)} | ${s(baseline.cpu)} |`)
  console.log(`| default search over ${trainX.size} feature sets with mirror images -> ${SearchSpace.key(result.best.candidate)} (CV ${(result.best.metrics.accuracy * 100).toFixed(1)} %) | ${pct(searchOk, test.y.length)} | ${s(search.wall)} | ${s(search.cpu)} |`)
  console.log(`search / baseline time: ${(search.wall / baseline.wall).toFixed(1)}x wall, ${(search.cpu / baseline.cpu).toFixed(1)}x CPU; ` +
    `test accuracy ${searchOk - baselineOk >= 0 ? "+" : ""}${searchOk - baselineOk} images; ${result.leaderboard.length} evaluations${result.budgetExhausted ? ", time budget hit" : ""}`)
}

/** 2,000 x 1,280 training rows (cats-vs-dogs-large: 1,600 train + the first 400 test rows) and the other 100 test rows. */
const heads2000 = async () => {
  const train = await loadEmbeddings("cats-vs-dogs-large", "train")
  const test = await loadEmbeddings("cats-vs-dogs-large", "test")
  const extra = 400
  const cols = train.x.cols
  const data = new Float32Array((train.x.rows + extra) * cols)
  data.set(train.x.data)
  data.set(test.x.data.subarray(0, extra * cols), train.x.data.length)
  const set = { x: { rows: train.x.rows + extra, cols, data }, y: Int32Array.from([...train.y, ...test.y.subarray(0, extra)]), numClasses: 2 }
  const held = { x: { rows: test.x.rows - extra, cols, data: test.x.data.subarray(extra * cols) }, y: test.y.subarray(extra) }
  return { set, held }
}

/** Each built-in head with default params on 2,000 x 1,280. */
const headsBench = async () => {
  const { held, set } = await heads2000()
  console.log(`\n## heads-2000: fit time of each head on ${set.x.rows} x ${set.x.cols} (accuracy on the other ${held.y.length} test rows)`)
  console.log(`| head (default params) | fit wall | fit CPU | x logistic regression (CPU) | held-out |`)
  console.log(`|---|---|---|---|---|`)
  let baselineCpu = 0
  for (const head of Heads.heads) {
    const params = await Effect.runPromise(Heads.decodeParams(head, {}))
    const fit = await timed(head.fit(set, params, 0))
    if (head.kind === LogisticRegression.kind) baselineCpu = fit.cpu
    const ok = correct(fit.value.predictProba(held.x), held.y)
    console.log(`| ${head.kind} | ${s(fit.wall)} | ${s(fit.cpu)} | ${(fit.cpu / baselineCpu).toFixed(2)} | ${pct(ok, held.y.length)} |`)
  }
}

/** `{ set, held }` of a dataset's train and test splits. */
const splits = async (dataset) => {
  const train = await loadEmbeddings(dataset, "train")
  const test = await loadEmbeddings(dataset, "test")
  return { set: { x: train.x, y: train.y, numClasses: train.labels.length }, held: { x: test.x, y: test.y } }
}

/**
 * 160 cats-vs-dogs training rows (80 per class) 2,688 wide, the width of the `balanced` preset's three-backbone
 * concatenation: each row is its embedding, its mirror image's embedding and the embedding's first 128 features.
 */
const wide = async () => {
  const widen = async (split, rows) => {
    const original = await loadEmbeddings("cats-vs-dogs", split)
    const mirror = await loadEmbeddings("cats-vs-dogs", split, Infinity, { mirror: true })
    const dim = original.x.cols
    const cols = 2 * dim + 128
    const data = new Float32Array(rows.length * cols)
    rows.forEach((r, i) => {
      data.set(original.x.data.subarray(r * dim, (r + 1) * dim), i * cols)
      data.set(mirror.x.data.subarray(r * dim, (r + 1) * dim), i * cols + dim)
      data.set(original.x.data.subarray(r * dim, r * dim + 128), i * cols + 2 * dim)
    })
    return { x: { rows: rows.length, cols, data }, y: Int32Array.from(rows, (r) => original.y[r]) }
  }
  const perClass = (n, total) => [...Array.from({ length: n }, (_, i) => i), ...Array.from({ length: n }, (_, i) => total + i)]
  const set = await widen("train", perClass(80, 100))
  return { set: { ...set, numClasses: 2 }, held: await widen("test", perClass(20, 20)) }
}

/** The MLP head (default params, or MLP_PARAMS) at the sizes the search meets, three seeds each. */
const mlpBench = async () => {
  const params = await Effect.runPromise(Heads.decodeParams(Mlp.plugin, JSON.parse(process.env.MLP_PARAMS ?? "{}")))
  console.log(`\n## mlp: ${JSON.stringify(params)}`)
  console.log(`| data | rows x cols | seed | fit wall | fit CPU | epochs (best) | test |`)
  console.log(`|---|---|---|---|---|---|---|`)
  const sizes = [["heads-2000", heads2000], ["cats-vs-dogs", () => splits("cats-vs-dogs")], ["wide", wide], ["flowers-5", () => splits("flowers-5")]]
  for (const [name, load] of sizes) {
    const { held, set } = await load()
    for (const seed of [0, 1, 2]) {
      const fit = await timed(Mlp.plugin.fit(set, params, seed))
      const { bestEpoch, epochs } = fit.value.state
      const ok = correct(fit.value.predictProba(held.x), held.y)
      console.log(`| ${name} | ${set.x.rows} x ${set.x.cols} | ${seed} | ${s(fit.wall)} | ${s(fit.cpu)} | ${epochs} (${bestEpoch}) | ${pct(ok, held.y.length)} |`)
    }
  }
}

const benches = { "heads-2000": headsBench, mlp: mlpBench }
for (const part of parts) {
  await (benches[part] ?? (part.startsWith("multi:") ? () => multiBench(part.slice("multi:".length)) : () => searchBench(part)))()
}
console.log(`\nload average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`)
