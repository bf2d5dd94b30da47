// @ts-check
/**
 * bench/automl: the function flow on cats-vs-dogs, cold and warm.
 *
 *   pnpm build && node bench/automl/run.mjs [--presets balanced,fast]
 *
 * For each preset, in a fresh store with a fresh (cold) embedding cache and freshly loaded backbones:
 *   - create -> 200 training photos posted -> model promoted (wall time: "cold");
 *   - test accuracy on the 40 test photos through `invoke`, and the model's cross-validation accuracy;
 *   - 10 more photos posted (cats-vs-dogs-large train ids 101..105, disjoint from the test set) -> new model promoted
 *     (wall time: "retrain"; the embedding cache and the loaded backbones are warm).
 * The retrain debounce is 0 so the times are the work itself. Beside wall time it prints the process's CPU time
 * (user + system) for the same span: on a machine shared with other jobs, wall time stretches with the load while CPU
 * time stays close to what the work costs. The last preset listed is the same-run baseline the ratios are computed
 * against.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Plugins } from "../../packages/cli/dist/index.js"
import { Functions } from "../../packages/functions/dist/index.js"
import { sharedDir as shared } from "../../test/fixtures/shared.mjs"

const here = path.dirname(fileURLToPath(import.meta.url))
const small = path.join(shared, "datasets", "cats-vs-dogs")
const large = path.join(shared, "datasets", "cats-vs-dogs-large")

const { values: args } = parseArgs({ options: { presets: { type: "string", default: "balanced,fast" } } })
const presets = String(args.presets).split(",")

/** `[file, label]` for a split of cats-vs-dogs. */
const split = (/** @type {string} */ name) =>
  fs.readdirSync(path.join(small, name)).sort().flatMap((label) =>
    fs.readdirSync(path.join(small, name, label)).sort().map((file) => [path.join(small, name, label, file), label])
  )
const extra = [101, 102, 103, 104, 105].flatMap((id) => [
  [path.join(large, "train", "cats", `cat.${id}.jpg`), "cats"],
  [path.join(large, "train", "dogs", `dog.${id}.jpg`), "dogs"]
])

const seconds = (/** @type {number} */ ms) => (ms / 1000).toFixed(2)

/** Wall and CPU milliseconds since `start()`. */
const stopwatch = () => {
  const wall = performance.now()
  const cpu = process.cpuUsage()
  return () => {
    const used = process.cpuUsage(cpu)
    return { wallMs: performance.now() - wall, cpuMs: (used.user + used.system) / 1000 }
  }
}

/** @param {string} preset */
const runPreset = async (preset) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `loupe-bench-automl-${preset}-`))
  const loupe = await Functions.open({
    store: path.join(work, "store"),
    cacheDir: path.join(work, "cache"),
    modelsDir: path.join(shared, "models"),
    plugins: Plugins.builtins,
    debounce: 0
  })
  try {
    const coldWatch = stopwatch()
    const fn = await loupe.create(`bench-${preset}`, { preset })
    await loupe.createSamples(fn.id, split("train").map(([data, label]) => ({ data, label })))
    const postMs = coldWatch().wallMs
    const cold = await loupe.awaitTrained(fn.id)
    const { cpuMs: coldCpuMs, wallMs: coldMs } = coldWatch()
    if (cold.model === null) throw new Error(`${preset}: training failed: ${cold.trainError}`)
    const coldMetrics = await loupe.metrics(fn.id)

    const test = split("test")
    let correct = 0
    const t1 = performance.now()
    for (const [file, label] of test) if ((await loupe.invoke(fn.id, file)).labelName === label) correct++
    const invokeMs = (performance.now() - t1) / test.length

    const retrainWatch = stopwatch()
    await loupe.createSamples(fn.id, extra.map(([data, label]) => ({ data, label })))
    const warm = await loupe.awaitTrained(fn.id)
    const { cpuMs: retrainCpuMs, wallMs: retrainMs } = retrainWatch()
    if (warm.model === null || warm.model.id === cold.model.id) throw new Error(`${preset}: the retrain did not promote a model`)
    const warmMetrics = await loupe.metrics(fn.id)
    let correctAfter = 0
    for (const [file, label] of test) if ((await loupe.invoke(fn.id, file)).labelName === label) correctAfter++

    return {
      preset,
      coldMs,
      coldCpuMs,
      postMs,
      coldTimings: coldMetrics.timings,
      cvAccuracy: coldMetrics.cv.accuracy,
      cvCorrect: coldMetrics.cv.correct,
      cvTotal: coldMetrics.cv.total,
      selected: coldMetrics.selected,
      testCorrect: correct,
      testTotal: test.length,
      invokeMs,
      retrainMs,
      retrainCpuMs,
      retrainTimings: warmMetrics.timings,
      testCorrectAfterRetrain: correctAfter
    }
  } finally {
    await loupe.close()
    fs.rmSync(work, { recursive: true, force: true })
  }
}

const results = []
for (const preset of presets) results.push(await runPreset(preset))
const baseline = results[results.length - 1]

console.log(
  `bench/automl on cats-vs-dogs (${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}, ` +
    `Node ${process.version})`
)
for (const r of results) {
  console.log(`\n${r.preset}`)
  console.log(`  selected: ${JSON.stringify(r.selected)}`)
  console.log(`  test ${r.testCorrect}/${r.testTotal}, CV accuracy ${(100 * r.cvAccuracy).toFixed(1)} % (${r.cvCorrect}/${r.cvTotal})`)
  console.log(
    `  cold, create -> trained (200 photos): ${seconds(r.coldMs)} s, CPU ${seconds(r.coldCpuMs)} s ` +
      `(posting the samples ${seconds(r.postMs)} s, embed ${seconds(r.coldTimings.embedMs)} s, ` +
      `search + refit ${seconds(r.coldTimings.trainMs)} s)`
  )
  console.log(
    `  retrain after +10 photos: ${seconds(r.retrainMs)} s, CPU ${seconds(r.retrainCpuMs)} s ` +
      `(embed ${seconds(r.retrainTimings.embedMs)} s, search + refit ${seconds(r.retrainTimings.trainMs)} s); ` +
      `test after: ${r.testCorrectAfterRetrain}/${r.testTotal}`
  )
  console.log(`  invoke: ${r.invokeMs.toFixed(1)} ms/image (one at a time)`)
  console.log(`  retrain / cold: ${(r.retrainMs / r.coldMs).toFixed(3)}`)
  if (r !== baseline) {
    console.log(`  vs ${baseline.preset}: cold x${(r.coldMs / baseline.coldMs).toFixed(2)}, retrain x${(r.retrainMs / baseline.retrainMs).toFixed(2)}`)
  }
}
console.log(`\n${JSON.stringify({ bench: "automl", results })}`)
