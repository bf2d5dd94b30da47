// @ts-check
/**
 * The reference experiment, AutoML half: the Nyckel flow on your machine. Create a function, post the 100 + 100
 * training photos with their labels (training starts by itself), then classify the 20 + 20 test photos and print
 * test accuracy and the confusion matrix.
 *
 *   pnpm build && node examples/cats-vs-dogs/automl.mjs [--preset fast|balanced|best] [--store <dir>]
 *
 * Plain Node 20, no TypeScript step: it loads the built `@loupe/functions` and `@loupe/cli` from the workspace.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Plugins } from "@loupe/cli"
import { Functions } from "@loupe/functions"

const here = path.dirname(fileURLToPath(import.meta.url))
const shared = process.env["LOUPE_SHARED_DIR"] ?? path.resolve(here, "../../../shared")
const dataset = path.join(shared, "datasets", "cats-vs-dogs")

const { values: args } = parseArgs({
  options: {
    preset: { type: "string", default: "balanced" },
    store: { type: "string", default: fs.mkdtempSync(path.join(os.tmpdir(), "loupe-cats-vs-dogs-")) }
  }
})

/** `[file, label]` for every image of a split, labels from the folder names. */
const split = (/** @type {"train" | "test"} */ name) =>
  fs.readdirSync(path.join(dataset, name)).sort().flatMap((label) =>
    fs.readdirSync(path.join(dataset, name, label)).sort().map((file) => [path.join(dataset, name, label, file), label])
  )

const percent = (/** @type {number} */ x) => `${(100 * x).toFixed(1)} %`

const loupe = await Functions.open({ store: String(args.store), modelsDir: path.join(shared, "models"), plugins: Plugins.builtins })
try {
  const started = performance.now()
  const fn = await loupe.create("IsCatOrDog", { preset: String(args.preset) })
  const train = split("train")
  await loupe.createSamples(fn.id, train.map(([data, label]) => ({ data, label })))
  const status = await loupe.awaitTrained(fn.id)
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  if (status.model === null) throw new Error(`training failed: ${status.trainError}`)
  const metrics = await loupe.metrics(fn.id)

  console.log(`Loupe AutoML, preset ${metrics.preset.name}: ${train.length} training photos, trained in ${seconds} s`)
  console.log(`selected: ${JSON.stringify(metrics.selected)}`)
  console.log(
    `cross-validation (${metrics.cv.folds} folds): accuracy ${percent(metrics.cv.accuracy)} ` +
      `(${metrics.cv.correct}/${metrics.cv.total}), macro-F1 ${metrics.cv.macroF1.toFixed(3)}`
  )

  const test = split("test")
  const labels = metrics.cv.labels
  const confusion = labels.map(() => labels.map(() => 0))
  const mistakes = []
  for (const [file, label] of test) {
    const answer = await loupe.invoke(fn.id, file)
    confusion[labels.indexOf(label)][labels.indexOf(answer.labelName)]++
    if (answer.labelName !== label) {
      mistakes.push(`  ${path.basename(file)}: ${label} predicted as ${answer.labelName} (${answer.confidence.toFixed(3)})`)
    }
  }
  const correct = labels.reduce((sum, _, i) => sum + confusion[i][i], 0)
  console.log(`test: ${correct}/${test.length} correct (${percent(correct / test.length)})`)
  console.log("confusion matrix (rows: true label, columns: predicted)")
  const width = Math.max(...labels.map((l) => l.length)) + 2
  console.log(" ".repeat(width) + labels.map((l) => l.padStart(width)).join(""))
  labels.forEach((l, i) => console.log(l.padEnd(width) + confusion[i].map((n) => String(n).padStart(width)).join("")))
  console.log(mistakes.length === 0 ? "mistakes: none" : `mistakes:\n${mistakes.join("\n")}`)
} finally {
  await loupe.close()
}
