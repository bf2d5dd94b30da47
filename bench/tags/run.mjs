// @ts-check
/**
 * bench/tags: image tags (multi-label) on real photos, over seeds and shot counts.
 *
 *   pnpm build && node bench/tags/run.mjs [--seeds 0,1,2] [--shots 3,10] [--test 10]
 *
 * The tag set mixes flowers-5 (tagged `flower` + species: daisy, dandelion, rose, sunflower, tulip) and cats-vs-dogs
 * (tagged `animal` + cat / dog): 9 tags, two per image. For each seed and shot count, `shots` training photos of each
 * of the 7 kinds are drawn with the seed from the train splits, `TagsAutoML.fit` runs with `onnx:mobilenetv2-int8`
 * (its default L2 grid, ranked by mAP), and the fitted model is scored on the first `test` photos of each kind of the
 * test splits: micro-F1, macro-F1 and mAP, against the best constant answer (every tag, or each tag on at least half
 * the training photos). CV micro-F1 and mAP (out-of-fold, thresholds chosen on them) are printed beside them.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { Effect, Layer } from "effect"
import { Dataset, DiskEmbeddingCache, LoupeConfig, Matrix, Prng } from "@loupe/core"
import { Plugins } from "@loupe/cli"
import { TagsAutoML } from "@loupe/functions"
import { MultiLabel } from "@loupe/metrics"
import { datasetDir, modelsDir } from "../../test/fixtures/shared.mjs"

const { values: args } = parseArgs({
  options: { seeds: { type: "string", default: "0,1,2" }, shots: { type: "string", default: "3,10" }, test: { type: "string", default: "10" } }
})
const seeds = String(args.seeds).split(",").map(Number)
const shots = String(args.shots).split(",").map(Number)
const testPerKind = Number(args.test)

/** Each kind's folder in a split, and the tags of its photos. */
const kinds = [
  ...["daisy", "dandelion", "rose", "sunflower", "tulip"].map((species) => ({ dataset: "flowers-5", folder: species, tags: ["flower", species] })),
  { dataset: "cats-vs-dogs", folder: "cats", tags: ["animal", "cat"] },
  { dataset: "cats-vs-dogs", folder: "dogs", tags: ["animal", "dog"] }
]
const photos = (/** @type {string} */ split, /** @type {typeof kinds[number]} */ kind) => {
  const dir = path.join(datasetDir(kind.dataset), split, kind.folder)
  return fs.readdirSync(dir).sort().map((file) => ({ id: `${kind.folder}/${file}`, source: path.join(dir, file), tags: kind.tags }))
}

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-bench-tags-"))
const config = LoupeConfig.LoupeConfig.layer({ modelsDir, cacheDir, offline: true })
const environment = Layer.mergeAll(config, DiskEmbeddingCache.layer().pipe(Layer.provide(config)), Plugins.registryLayer())

const test = kinds.flatMap((kind) => photos("test", kind).slice(0, testPerKind))
const f1 = (/** @type {Matrix.Matrix} */ truth, /** @type {Matrix.Matrix} */ predicted, /** @type {ReadonlyArray<string>} */ tags) =>
  MultiLabel.averages(MultiLabel.perTag(truth, predicted, tags))

console.log(`bench/tags: ${kinds.length} kinds, 9 tags, ${test.length} test photos, onnx:mobilenetv2-int8, seeds ${seeds.join(",")}`)
console.log("shots  seed  test micro-F1  macro-F1    mAP  baseline micro-F1 | CV micro-F1    mAP | l2    fit s")
const rows = []
for (const shot of shots) {
  for (const seed of seeds) {
    const train = kinds.flatMap((kind) => Prng.make(seed * 1000 + shot).shuffle(photos("train", kind)).slice(0, shot))
    const started = performance.now()
    const { evaluation, baseline, result } = await Effect.runPromise(Effect.gen(function*() {
      const result = yield* TagsAutoML.fit(Dataset.make(train), { backbones: ["onnx:mobilenetv2-int8"], seed })
      const fitMs = performance.now() - started
      const tags = result.fitted.labels
      const predicted = yield* TagsAutoML.predictMany(result.fitted, test)
      const truth = TagsAutoML.truthOf(test, tags)
      const proba = Matrix.make(test.length, tags.length, Float32Array.from(predicted.predictions.flatMap((p) => p.tags.map((t) => t.probability))))
      const evaluation = yield* MultiLabel.evaluate(truth, proba, result.thresholds.map((t) => t.threshold), tags)
      const trainTruth = TagsAutoML.truthOf(train, tags)
      const share = tags.map((_, t) => Array.from({ length: train.length }, (_, i) => trainTruth.data[i * tags.length + t]).reduce((a, b) => a + b, 0) / train.length)
      const constant = (/** @type {(t: number) => boolean} */ yes) =>
        Matrix.make(test.length, tags.length, Float32Array.from({ length: test.length * tags.length }, (_, j) => (yes(j % tags.length) ? 1 : 0)))
      const baseline = Math.max(f1(truth, constant(() => true), tags).micro.f1, f1(truth, constant((t) => share[t] >= 0.5), tags).micro.f1)
      return { evaluation, baseline, result: { ...result, fitMs } }
    }).pipe(Effect.scoped, Effect.provide(environment)))
    const row = {
      shot,
      seed,
      microF1: evaluation.micro.f1,
      macroF1: evaluation.macro.f1,
      mAP: evaluation.meanAveragePrecision ?? 0,
      baseline,
      cvMicroF1: result.cv.micro.f1,
      cvMAP: result.cv.meanAveragePrecision ?? 0,
      l2: result.selected.l2,
      fitS: result.fitMs / 1000
    }
    rows.push(row)
    const p = (/** @type {number} */ x) => x.toFixed(3)
    console.log(
      `${String(shot).padStart(5)}  ${String(seed).padStart(4)}  ${p(row.microF1).padStart(13)}  ${p(row.macroF1).padStart(8)}  ${p(row.mAP)}  ${p(row.baseline).padStart(17)} | ${p(row.cvMicroF1).padStart(11)}  ${p(row.cvMAP)} | ${String(row.l2).padEnd(4)}  ${row.fitS.toFixed(1).padStart(5)}`
    )
  }
}
for (const shot of shots) {
  const these = rows.filter((r) => r.shot === shot)
  const mean = (/** @type {(r: typeof rows[number]) => number} */ pick) => (these.reduce((a, r) => a + pick(r), 0) / these.length).toFixed(3)
  console.log(`mean over ${these.length} seeds, ${shot} shots: test micro-F1 ${mean((r) => r.microF1)}, macro-F1 ${mean((r) => r.macroF1)}, mAP ${mean((r) => r.mAP)}; baseline micro-F1 ${mean((r) => r.baseline)}`)
}
fs.rmSync(cacheDir, { recursive: true, force: true })
