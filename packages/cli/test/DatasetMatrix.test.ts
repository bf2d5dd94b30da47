// The dataset matrix (issue 14): label counts from 2 to 120, imbalance, a 2-image label, tiny greyscale PNGs, special
// encodings, nested folders and a manifest, each built at test time from the shared photos (see
// fixtures/datasetMatrix.ts). For each case `fast` and `balanced` train with the built CLI, write a bundle, predict
// and evaluate; `best` (small budget) and the function flow run on a subset.
//
// Cases run one after another: on 2 cores every run already keeps both busy (embedding, the search), so running
// them side by side only interleaves the same work.
import { beforeAll, describe, expect, it } from "vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Bundle, Dataset, DiskEmbeddingCache, LoupeConfig } from "@loupe/core"
import { Evaluate, Plugins } from "@loupe/cli"
import { AutoML, Preset } from "@loupe/functions"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { loupe, modelsDir } from "./fixtures/cli.js"
import * as Matrix from "./fixtures/datasetMatrix.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-dataset-matrix-"))
const data = path.join(work, "data")
// One embedding cache for the whole matrix: `balanced` reuses the MobileNetV2-int8 embeddings `fast` computed.
const env = { LOUPE_CACHE_DIR: path.join(work, "cache"), LOUPE_MODELS_DIR: modelsDir }
// A hang guard, not a speed bar: 120 labels with `balanced` took 560 s on a busy 2-core machine.
const timeout = 1_200_000

/** Every file below `dir`, relative to it, with `/`. */
const filesUnder = (dir: string, prefix = ""): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`]
  )

/** Parse the one JSON object a `--json` command prints, failing with its stderr when it did not succeed. */
const jsonOf = (run: ReturnType<typeof loupe>, what: string) => {
  if (run.status !== 0) throw new Error(`${what} exited with ${run.status}:\n${run.stderr.slice(-2000)}`)
  return JSON.parse(run.stdout)
}

interface Expectation {
  /** The test-accuracy bar (see `specs`). */
  readonly minTestAccuracy: number
  /** A label with few training images that must still be predicted right at least once on test. */
  readonly minority?: string
}

const presetArgs = {
  fast: ["--preset", "fast"],
  balanced: ["--preset", "balanced"]
} as const

const trainAndCheck = (c: Matrix.MatrixCase, preset: "fast" | "balanced", expectation: Expectation) => {
  const bundle = path.join(work, "bundles", `${path.basename(c.dir)}-${preset}`)
  const result = jsonOf(
    loupe(["train", c.dir, ...presetArgs[preset], "--models-dir", modelsDir, "--out", bundle, "--json"], env),
    `loupe train ${c.name} --preset ${preset}`
  )
  console.log(
    `matrix ${c.name} / ${preset}: test ${result.test?.correct}/${result.test?.total} (${result.test?.accuracy}), ` +
      `CV ${result.cv.accuracy} (${result.cv.folds} folds), selected ${result.selected.backbone} + ${result.selected.head.kind}, ` +
      `embed ${result.timings.embedMs} ms, train ${result.timings.trainMs} ms, total ${result.timings.totalMs} ms`
  )
  // The documented fields, on every image: nothing skipped (special formats are embedded, not dropped).
  expect(Object.keys(result)).toEqual(expect.arrayContaining(["cv", "test", "selected", "timings"]))
  expect(result.skipped).toEqual([])
  expect(result.cv.total).toBe(c.trainCount)
  expect(result.test.total).toBe(c.testCount)
  expect(result.test.labels).toEqual(c.labels)
  expect(result.selected.backbone).toEqual(expect.any(String))
  expect(result.test.accuracy).toBeGreaterThanOrEqual(expectation.minTestAccuracy)
  if (expectation.minority !== undefined) {
    const i = c.labels.indexOf(expectation.minority)
    expect(result.test.confusionMatrix[i][i], `test images of "${expectation.minority}" predicted right`).toBeGreaterThan(0)
  }

  // The bundle reloads in a fresh process and predicts as training's own evaluation did.
  expect(fs.existsSync(path.join(bundle, "manifest.json"))).toBe(true)
  const files: Array<string> = result.test.predictions.map((p: any) => p.file)
  const predicted = jsonOf(
    loupe(["predict", bundle, ...files.map((f) => path.join(c.dir, "test", f)), "--json", "--models-dir", modelsDir], env),
    `loupe predict ${c.name}`
  ).predictions
  expect(predicted).toHaveLength(files.length)
  predicted.forEach((p: any, i: number) => {
    expect(c.labels).toContain(p.labelName)
    expect(p.labelName).toBe(result.test.predictions[i].labelName)
    expect(p.confidence).toBeCloseTo(result.test.predictions[i].confidence, 5)
  })

  const evaluation = jsonOf(
    loupe(["evaluate", bundle, path.join(c.dir, "test"), "--json", "--models-dir", modelsDir], env),
    `loupe evaluate ${c.name}`
  ).evaluations[0].evaluation
  expect(evaluation.total).toBe(c.testCount)
  expect(evaluation.correct).toBe(result.test.correct)
  expect(evaluation.confusionMatrix).toEqual(result.test.confusionMatrix)
  return { result, bundle }
}

// Test-accuracy bars. Each is the midpoint between chance and the lowest test accuracy measured for the case (fast
// and balanced, 2026-12-06, AVX-512 VNNI CPU, before and after the work-counted search budget, shown as "measured"),
// rounded down to 0.05: above chance by half the margin the models showed, which leaves room for a miss or two on
// another CPU. Chance is 1 / labels; the test splits are balanced, the imbalanced case's too.
const manifestMinTestAccuracy = 0.75 // measured 8/8 (fast, balanced)

/** The cases, by name, with their test-accuracy bars (see `Expectation`). */
const specs: ReadonlyArray<readonly [string, Expectation]> = [
  ["2 labels", { minTestAccuracy: 0.65 }], // measured 14/16 (fast, balanced)
  ["3 labels", { minTestAccuracy: 0.5 }], // measured 19/24 (fast), 18/24 (balanced)
  ["10 labels", { minTestAccuracy: 0.35 }], // measured 15/20 (fast), 12/20 (balanced)
  ["20 labels", { minTestAccuracy: 0.45 }], // measured 35/40 (fast), 34-36/40 (balanced)
  ["120 labels", { minTestAccuracy: 0.3 }], // measured 72/117 (fast), 70-76/117 (balanced)
  // Measured 10/16 with balanced (k-NN; 7/10 on a 5 + 5 split with the old 60 s budget). fast: 8/16, every image
  // called a cat (logistic regression, CV 0.952 = always "cats"), which is chance. Two dogs are enough to learn dogs
  // (see "2 labels"), so the bar stays; fast fails this case until the search stops picking the majority-only model.
  ["20:1 imbalance", { minTestAccuracy: 0.55, minority: "dogs" }],
  ["exactly 2 images in one label", { minTestAccuracy: 0.5 }], // measured 12/18 (fast), 14/18 (balanced)
  ["28x28 greyscale PNG", { minTestAccuracy: 0.45 }], // measured 14/24 (fast), 15/24 (balanced)
  ["formats", { minTestAccuracy: 0.7 }], // measured 12/12 (fast, best), 11-12/12 (balanced)
  ["nested folders", { minTestAccuracy: 0.65 }] // measured 15/16 (fast), 13-15/16 (balanced)
]

const built = new Map<string, Matrix.MatrixCase>()

beforeAll(async () => {
  const [two, three, ten, twenty] = Matrix.labelCases(data)
  const all = [two!, three!, ten!, twenty!, Matrix.breeds120(data), Matrix.imbalanced(data), Matrix.twoImages(data),
    await Matrix.grey28(data), await Matrix.formatsCase(data), Matrix.nested(data)]
  all.forEach((c, i) => built.set(specs[i]![0], c))
}, timeout)

const get = (name: string) => built.get(name)!
/** Bundles the matrix wrote, by `<case>/<preset>`. */
const bundles = new Map<string, string>()

/** The bundle `preset` trained on a case, training it here when the matrix test did not run (a `-t` filter). */
const bundleOf = (name: string, preset: "fast" | "balanced") =>
  bundles.get(`${name}/${preset}`) ?? trainAndCheck(get(name), preset, specs.find(([n]) => n === name)![1]).bundle

describe("dataset matrix: the cases", () => {
  it("are built as described", async () => {
    expect(specs.map(([name]) => get(name).labels.length)).toEqual([2, 3, 10, 20, 120, 2, 3, 3, 2, 2])
    const perLabel = (c: Matrix.MatrixCase) => c.labels.map((l) => filesUnder(path.join(c.dir, "train", l)).length)
    expect(Math.min(...perLabel(get("120 labels")))).toBe(2)
    expect(Math.max(...perLabel(get("120 labels")))).toBe(3)
    expect(perLabel(get("20:1 imbalance"))).toEqual([40, 2])
    expect(perLabel(get("exactly 2 images in one label"))).toEqual([5, 5, 2])
    const grey = get("28x28 greyscale PNG")
    for (const f of filesUnder(path.join(grey.dir, "train"))) {
      const m = await Matrix.metadata(path.join(grey.dir, "train", f))
      expect([m.format, m.width, m.height, m.channels]).toEqual(["png", 28, 28, 1])
    }
    expect(filesUnder(path.join(get("nested folders").dir, "train/cats")).some((f) => f.startsWith("sub/dir/deeper/still/"))).toBe(true)
    // The special formats are what they claim to be.
    const formats = path.join(get("formats").dir, "train/cats")
    const meta = Object.fromEntries(await Promise.all(filesUnder(formats).map(async (f) =>
      [f.split("-")[0], await Matrix.metadata(path.join(formats, f))] as const
    )))
    expect(meta["png16"]).toMatchObject({ format: "png", depth: "ushort" })
    expect(meta["cmyk"]).toMatchObject({ format: "jpeg", space: "cmyk" })
    expect(meta["webp"]).toMatchObject({ format: "webp" })
    expect(meta["gif"]).toMatchObject({ format: "gif" })
    expect(meta["huge"]).toMatchObject({ format: "jpeg", width: 6000, height: 4000 })
    expect(meta["exif"]).toMatchObject({ format: "jpeg", orientation: 6 })
  }, timeout)
})

for (const preset of ["fast", "balanced"] as const) {
  describe(`dataset matrix: ${preset} trains, writes a bundle, predicts and evaluates`, () => {
    for (const [name, expectation] of specs) {
      it(name, () => {
        bundles.set(`${name}/${preset}`, trainAndCheck(get(name), preset, expectation).bundle)
      }, timeout)
    }
  })
}

describe("dataset matrix: EXIF orientation", () => {
  it("a sideways photo tagged with EXIF orientation 6 predicts like the upright photo, not like the sideways pixels", async () => {
    const bundle = bundleOf("formats", "fast")
    const probe = path.join(work, "exif-probe")
    const photos = [...Matrix.files(path.join(Matrix.datasets, "cats-vs-dogs/test/cats")).slice(0, 2),
      ...Matrix.files(path.join(Matrix.datasets, "cats-vs-dogs/test/dogs")).slice(0, 2)]
    const triples = await Promise.all(photos.map(async (photo, i) => {
      const triple = { upright: path.join(probe, `${i}-upright.jpg`), exif: path.join(probe, `${i}-exif.jpg`), sideways: path.join(probe, `${i}-sideways.jpg`) }
      await Matrix.upright(photo, triple.upright)
      await Matrix.exifRotated(photo, triple.exif, 6)
      await Matrix.exifRotated(photo, triple.sideways, undefined)
      return triple
    }))
    // The fixture is right: turned by its tag, the EXIF file is the upright photo up to JPEG loss (measured 1.3-3.5
    // per 8-bit channel on these photos; the photo turned 180 degrees instead differs by 41-81).
    for (const t of triples) expect(await Matrix.meanAbsoluteDifference(t.exif, t.upright)).toBeLessThan(10)
    const all = triples.flatMap((t) => [t.upright, t.exif, t.sideways])
    const predictions = jsonOf(loupe(["predict", bundle, ...all, "--json", "--models-dir", modelsDir], env), "loupe predict (EXIF)").predictions
    const byFile = new Map<string, any>(predictions.map((p: any) => [p.file, p]))
    /** L1 distance between two predictions' probability vectors. */
    const distance = (a: string, b: string) => {
      const pa = byFile.get(a), pb = byFile.get(b)
      return pa.labelConfidences.reduce((sum: number, l: any) =>
        sum + Math.abs(l.confidence - pb.labelConfidences.find((m: any) => m.labelName === l.labelName).confidence), 0)
    }
    for (const t of triples) {
      console.log(`EXIF ${path.basename(t.upright)}: |exif - upright| ${distance(t.exif, t.upright).toFixed(4)}, |sideways - upright| ${distance(t.sideways, t.upright).toFixed(4)}`)
      expect(byFile.get(t.exif).labelName).toBe(byFile.get(t.upright).labelName)
      expect(distance(t.exif, t.upright)).toBeLessThan(distance(t.sideways, t.upright))
    }
  }, timeout)
})

describe("dataset matrix: best, with a small budget, on the formats case", () => {
  it("trains with the augmented probe, an ensemble and partial fine-tuning, and its bundle predicts as in training", () => {
    const c = get("formats")
    const out = path.join(work, "bundles", "formats-best")
    // Two backbones, 2 augmented views, one fine-tuning epoch, fast's search budget: `best`'s refinements, small.
    const overrides = {
      backbones: { ids: ["onnx:mobilenetv2-int8", "tfjs:mobilenetv2-0.35"] },
      augmentedViews: 2,
      mirror: false,
      fineTune: { epochs: 1 },
      searchBudget: 500_000
    }
    const result = jsonOf(
      loupe(["train", c.dir, "--preset", "best", "--overrides", JSON.stringify(overrides), "--models-dir", modelsDir, "--out", out, "--json"], env),
      "loupe train formats --preset best"
    )
    console.log(`matrix formats / best: test ${result.test.correct}/${result.test.total}, CV ${result.cv.accuracy}, selected ${JSON.stringify(result.selected)}, ${result.timings.totalMs} ms`)
    expect(result.skipped).toEqual([])
    expect(result.cv.total).toBe(c.trainCount)
    const kinds = new Set(result.leaderboard.map((row: any) => row.candidate.head.kind))
    expect(kinds.has("finetune")).toBe(true)
    expect(kinds.has("ensemble")).toBe(true)
    expect(result.leaderboard.some((row: any) => row.candidate.augmentedViews === 2)).toBe(true)
    expect(result.test.accuracy).toBeGreaterThanOrEqual(specs.find(([n]) => n === "formats")![1].minTestAccuracy)
    const files: Array<string> = result.test.predictions.map((p: any) => p.file)
    const predicted = jsonOf(loupe(["predict", out, ...files.map((f) => path.join(c.dir, "test", f)), "--json", "--models-dir", modelsDir], env), "loupe predict (best)").predictions
    predicted.forEach((p: any, i: number) => {
      expect(p.labelName).toBe(result.test.predictions[i].labelName)
      expect(p.confidence).toBeCloseTo(result.test.predictions[i].confidence, 5)
    })
  }, timeout)
})

describe("dataset matrix: the function flow (loupe function create, add, invoke, metrics)", () => {
  const store = { LOUPE_STORE_DIR: path.join(work, "store") }
  it.each(["formats", "exactly 2 images in one label"])("%s", (name) => {
    const c = get(name)
    const fn = jsonOf(loupe(["function", "create", name.replace(/[^a-z0-9]+/gi, "-"), "--preset", "fast", "--json"], { ...env, ...store }), "function create")
    const added = jsonOf(loupe(["function", "add", fn.id, path.join(c.dir, "train"), "--json"], { ...env, ...store }), "function add")
    // Every image is stored and trained on: none skipped, every label at its count.
    expect(added.skipped).toEqual([])
    expect(added.sampleIds.length).toBe(c.trainCount)
    expect(added.status.labels.map((l: any) => l.name).sort()).toEqual(c.labels)
    expect(added.status.model).toMatchObject({ upToDate: true })
    const test = filesUnder(path.join(c.dir, "test"))
    const invoked = jsonOf(loupe(["function", "invoke", fn.id, ...test.map((f) => path.join(c.dir, "test", f)), "--json"], { ...env, ...store }), "function invoke").predictions
    expect(invoked).toHaveLength(test.length)
    const correct = invoked.filter((p: any, i: number) => p.labelName === test[i]!.split("/")[0]).length
    for (const p of invoked) expect(c.labels).toContain(p.labelName)
    console.log(`matrix ${name} / function (fast): invoke ${correct}/${test.length}`)
    expect(correct / test.length).toBeGreaterThanOrEqual(specs.find(([n]) => n === name)![1].minTestAccuracy)
    const metrics = loupe(["function", "metrics", fn.id], { ...env, ...store })
    expect(metrics.status).toBe(0)
    expect(metrics.stdout).toContain(`${c.trainCount} samples`)
  }, timeout)
})

describe("dataset matrix: a path,label CSV manifest (AutoML API)", () => {
  const config = LoupeConfig.LoupeConfig.layer({ modelsDir, cacheDir: env.LOUPE_CACHE_DIR, offline: true })
  const environment = Layer.mergeAll(config, NodeFileSystem.layer, DiskEmbeddingCache.layer().pipe(Layer.provide(config)), Plugins.registryLayer())

  it.each(["fast", "balanced"] as const)("%s: fit from the manifest, save, reload in the CLI, evaluate on the test manifest", async (preset) => {
    const m = Matrix.manifestCase(path.join(work, `manifest-${preset}`))
    const out = path.join(work, "bundles", `manifest-${preset}`)
    const run = Effect.gen(function*() {
      const train = yield* Dataset.fromManifest(m.train)
      const test = yield* Dataset.fromManifest(m.test)
      expect(train.skipped).toEqual([])
      expect(train.samples.length).toBe(12)
      expect(train.samples.some((s) => s.id.includes(","))).toBe(true)
      const options = yield* Preset.fitOptions(yield* Preset.resolve(preset))
      const fit = yield* AutoML.fit(train, options)
      yield* Bundle.save(fit.fitted, out)
      const { fitted } = yield* Bundle.load(out)
      const evaluated = yield* Evaluate.evaluateDataset(fitted, test)
      return { fit, evaluated }
    }).pipe(Effect.scoped, Effect.provide(environment))
    const { fit, evaluated } = await Effect.runPromise(run)
    console.log(`matrix manifest / ${preset}: test ${evaluated.evaluation.correct}/${evaluated.evaluation.total}, CV ${fit.cv.accuracy}`)
    expect(fit.skipped).toEqual([])
    expect(fit.fitted.labels).toEqual(m.labels)
    expect(evaluated.skipped).toEqual([])
    expect(evaluated.evaluation.total).toBe(8)
    expect(evaluated.evaluation.accuracy).toBeGreaterThanOrEqual(manifestMinTestAccuracy)
    // The saved bundle predicts the same in a fresh CLI process.
    // Prediction files are the manifest's paths, relative to its folder.
    const files = evaluated.predictions.map((p) => path.join(m.dir, p.file))
    const predicted = jsonOf(loupe(["predict", out, ...files, "--json", "--models-dir", modelsDir], env), "loupe predict (manifest)").predictions
    predicted.forEach((p: any, i: number) => {
      expect(p.labelName).toBe(evaluated.predictions[i]!.labelName)
      expect(p.confidence).toBeCloseTo(evaluated.predictions[i]!.confidence, 5)
    })
  }, timeout)
})
