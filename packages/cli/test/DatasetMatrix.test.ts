// The dataset matrix (issue 14): label counts from 2 to 120, imbalance, a 2-image label, tiny greyscale PNGs, special
// encodings, nested folders and a manifest, each built at test time from the shared photos (see
// fixtures/datasetMatrix.ts). Here `fast` trains each case with the built CLI, writes a bundle, predicts and
// evaluates; `best` (small budget), EXIF orientation and the function flow run on a subset.
// DatasetMatrixBalanced.test.ts runs `balanced` on the same cases (fixtures/matrixRun.ts holds what both share).
//
// Cases run one after another: on 2 cores every run already keeps both busy (embedding, the search), so running
// them side by side only interleaves the same work.
import { beforeAll, describe, expect, it } from "vitest"
import * as path from "node:path"
import { bundleOf, env, filesUnder, get, jsonOf, loupe, manifestCase, Matrix, modelsDir, presetCases, setUp, specs, timeout, work } from "./fixtures/matrixRun.js"

beforeAll(setUp, timeout)

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

presetCases("fast")

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

manifestCase("fast")
