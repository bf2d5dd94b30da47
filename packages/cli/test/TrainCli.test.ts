// End-to-end runs of `loupe train` and `loupe predict` on the real cats-vs-dogs photos and MobileNetV2-int8.
import { beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { chromium } from "playwright-core"
import { loupe, modelsDir, sharedDir } from "./fixtures/cli.js"

const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

const dataset = path.join(sharedDir, "datasets/cats-vs-dogs")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-train-cli-"))
const cacheEnv = { LOUPE_CACHE_DIR: path.join(work, "cache") }

describe("loupe train on cats-vs-dogs", () => {
  const bundle = path.join(work, "bundle")
  const report = path.join(work, "report.html")
  let result: any

  beforeAll(() => {
    const run = loupe(["train", dataset, "--models-dir", modelsDir, "--out", bundle, "--json", "--report", report], cacheEnv)
    expect(run.stderr).not.toMatch(/Error:/)
    expect(run.status).toBe(0)
    result = JSON.parse(run.stdout)
  })

  it("prints exactly one JSON object with the documented fields", () => {
    expect(Object.keys(result)).toEqual(expect.arrayContaining(["cv", "test", "selected", "timings"]))
    expect(result.test.labels).toEqual(["cats", "dogs"])
    expect(result.test.total).toBe(40)
    expect(result.test.confusionMatrix.flat().reduce((a: number, b: number) => a + b, 0)).toBe(40)
    for (const key of ["embedMs", "trainMs", "totalMs"]) expect(result.timings[key]).toBeGreaterThan(0)
  })

  it("reaches at least 38/40 on test and 96 % CV accuracy with the default preset, fast", () => {
    expect(result.test.correct).toBeGreaterThanOrEqual(38)
    expect(result.cv.accuracy).toBeGreaterThanOrEqual(0.96)
  })

  it("writes a bundle whose predictions match the evaluation inside train", () => {
    const files: Array<string> = result.test.predictions.map((p: any) => p.file)
    const run = loupe(["predict", bundle, ...files.map((f) => path.join(dataset, "test", f)), "--json", "--models-dir", modelsDir], cacheEnv)
    expect(run.status).toBe(0)
    const predicted = JSON.parse(run.stdout).predictions
    expect(predicted.map((p: any) => p.labelName)).toEqual(result.test.predictions.map((p: any) => p.labelName))
    predicted.forEach((p: any, i: number) => expect(p.confidence).toBeCloseTo(result.test.predictions[i].confidence, 5))
  })

  it("names the bundle and report it wrote, as absolute paths", () => {
    expect(result.bundle).toBe(bundle)
    expect(result.report).toBe(report)
  })

  it("evaluate --report says where it wrote the report", () => {
    const file = path.join(fs.realpathSync(work), "evaluation.json")
    const run = loupe(["evaluate", bundle, path.join(dataset, "test"), "--report", "evaluation.json", "--models-dir", modelsDir], cacheEnv, work)
    expect(run.status).toBe(0)
    expect(run.stderr).toContain(`Report saved to ${file}`)
    expect(JSON.parse(fs.readFileSync(file, "utf8")).evaluations[0].evaluation.total).toBe(40)
  })

  it("evaluate on the test folder reproduces train's test metrics", () => {
    const run = loupe(["evaluate", bundle, path.join(dataset, "test"), "--json", "--models-dir", modelsDir], cacheEnv)
    expect(run.status).toBe(0)
    const evaluation = JSON.parse(run.stdout).evaluations[0].evaluation
    expect(evaluation.correct).toBe(result.test.correct)
    expect(evaluation.confusionMatrix).toEqual(result.test.confusionMatrix)
  })

  it("writes an HTML report that renders in Chromium: confusion matrices, mistake thumbnails, no console errors", async () => {
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs })
    try {
      const page = await browser.newPage()
      const errors: Array<string> = []
      page.on("console", (m) => m.type() === "error" && errors.push(m.text()))
      page.on("pageerror", (e) => errors.push(e.message))
      await page.goto(pathToFileURL(report).href, { waitUntil: "load" })
      // Test set first, then cross-validation; each has a visible confusion matrix.
      const matrices = page.locator("svg.confusion-matrix")
      await expect(matrices.count()).resolves.toBe(2)
      const box = await matrices.first().boundingBox()
      expect(box!.width).toBeGreaterThan(100)
      const mistakes = 40 - result.test.correct + (result.cv.total - result.cv.correct)
      const thumbs = await page.locator("img.thumb").evaluateAll((imgs) =>
        (imgs as unknown as Array<{ complete: boolean; naturalWidth: number }>).map((i) => i.complete && i.naturalWidth > 0)
      )
      expect(thumbs).toHaveLength(mistakes)
      expect(thumbs.every(Boolean)).toBe(true)
      expect(errors).toEqual([])
    } finally {
      await browser.close()
    }
  })
})

describe("loupe train without --out", () => {
  it("saves ./loupe-model, says so, and replaces it only with --overwrite", () => {
    const cwd = fs.realpathSync(fs.mkdtempSync(path.join(work, "cwd-")))
    const bundle = path.join(cwd, "loupe-model")
    const first = loupe(["train", dataset, "--models-dir", modelsDir], cacheEnv, cwd)
    expect(first.status).toBe(0)
    expect(first.stdout).toContain(`bundle     saved to ${bundle}\n`)
    const written = fs.readFileSync(path.join(bundle, "manifest.json"), "utf8")

    const again = loupe(["train", dataset, "--models-dir", modelsDir], cacheEnv, cwd)
    expect(again.status).toBe(1)
    expect(again.stderr).toContain(`${bundle} holds an earlier loupe-bundle output: replace it with --overwrite`)
    expect(again.stderr).not.toMatch(/embed/)
    expect(fs.readFileSync(path.join(bundle, "manifest.json"), "utf8")).toBe(written)

    const replaced = loupe(["train", dataset, "--models-dir", modelsDir, "--overwrite", "--json"], cacheEnv, cwd)
    expect(replaced.status).toBe(0)
    expect(JSON.parse(replaced.stdout).bundle).toBe(bundle)
    expect(fs.readFileSync(path.join(bundle, "manifest.json"), "utf8")).not.toBe(written)
  })
})

describe("loupe train --out never deletes what it did not write", () => {
  it("refuses, before any work and with or without --overwrite, a folder of unrelated files, a file, and the current folder", () => {
    const cwd = fs.realpathSync(fs.mkdtempSync(path.join(work, "user-")))
    fs.mkdirSync(path.join(cwd, "photos"))
    fs.writeFileSync(path.join(cwd, "photos", "holiday.jpg"), "not mine to delete")
    fs.writeFileSync(path.join(cwd, "report.txt"), "a regular file")
    // [--out, the folder named, with --overwrite]
    const cases: Array<[string, string, boolean]> = [
      ["photos", path.join(cwd, "photos"), false],
      ["photos", path.join(cwd, "photos"), true],
      [".", cwd, true],
      [cwd + "/photos/..", cwd, true],
      ["/", "/", true]
    ]
    for (const [out, named, overwrite] of cases) {
      const run = loupe(["train", dataset, "--models-dir", modelsDir, "--out", out, ...(overwrite ? ["--overwrite"] : []), "--json"], cacheEnv, cwd)
      expect(run.status).toBe(1)
      expect(JSON.parse(run.stdout).error).toMatchObject({ _tag: "CoreError", reason: "OutputNotFree", field: "out", file: named })
      expect(run.stderr).not.toMatch(/embed/)
    }
    // A regular file is refused by the option's own check (it must be a folder), naming it.
    const file = loupe(["train", dataset, "--models-dir", modelsDir, "--out", "report.txt", "--overwrite", "--json"], cacheEnv, cwd)
    expect(file.status).toBe(1)
    expect(JSON.parse(file.stdout).error.message).toContain("report.txt")
    expect(fs.readFileSync(path.join(cwd, "photos", "holiday.jpg"), "utf8")).toBe("not mine to delete")
    expect(fs.readFileSync(path.join(cwd, "report.txt"), "utf8")).toBe("a regular file")
    expect(fs.readdirSync(cwd).sort()).toEqual(["photos", "report.txt"])
  })
})

describe("loupe train --backbone with each catalog backbone", () => {
  // The model READMEs measure 37-38/40 (TM MobileNetV2 0.35) and 38-39/40 (Darknet-tiny) for a linear probe.
  it.each(["tfjs:mobilenetv2-0.35", "tfjs:darknet-tiny"])("%s trains and predicts cats-vs-dogs", (id) => {
    const out = path.join(work, id.replace(":", "-"))
    const run = loupe(["train", dataset, "--backbone", id, "--models-dir", modelsDir, "--out", out, "--json"], cacheEnv)
    expect(run.status).toBe(0)
    const result = JSON.parse(run.stdout)
    expect(result.selected.backbone).toBe(id)
    expect(result.test.correct).toBeGreaterThanOrEqual(36)
    expect(result.cv.accuracy).toBeGreaterThanOrEqual(0.9)
  })
})

describe("loupe train --preset best: augmented probe, probability ensemble and partial fine-tuning", () => {
  it("all join the leaderboard, and the selected model predicts from its bundle as in training", () => {
    const out = path.join(work, "best")
    // Two backbones (the run above cached their embeddings of the originals), 2 views per image, no mirror images,
    // one fine-tuning epoch per fold: the refinements of `best` at a cost CI can pay.
    const overrides = {
      backbones: { ids: ["onnx:mobilenetv2-int8", "tfjs:mobilenetv2-0.35"] },
      augmentedViews: 2,
      mirror: false,
      folds: 5,
      fineTune: { epochs: 1 }
    }
    const run = loupe(["train", dataset, "--preset", "best", "--overrides", JSON.stringify(overrides), "--models-dir", modelsDir, "--out", out, "--json"], cacheEnv)
    expect(run.stderr).not.toMatch(/Error:/)
    expect(run.status).toBe(0)
    const result = JSON.parse(run.stdout)
    const ensemble = result.leaderboard.find((row: any) => row.candidate.head.kind === "ensemble")
    expect(ensemble.candidate.backbone).toBe("onnx:mobilenetv2-int8+tfjs:mobilenetv2-0.35")
    expect(ensemble.candidate.head.params.members.map((m: any) => m.backbone)).toEqual(["onnx:mobilenetv2-int8", "tfjs:mobilenetv2-0.35"])
    const augmented = result.leaderboard.filter((row: any) => row.candidate.augmentedViews === 2)
    expect(augmented.length).toBe(1)
    const fineTuned = result.leaderboard.filter((row: any) => row.candidate.head.kind === "finetune")
    expect(fineTuned.map((row: any) => row.candidate.backbone)).toEqual(["tfjs:mobilenetv2-0.35@block_16_project_BN"])
    expect(result.test.correct).toBeGreaterThanOrEqual(38)
    expect(result.cv.accuracy).toBeGreaterThanOrEqual(0.96)
    const files: Array<string> = result.test.predictions.map((p: any) => p.file)
    const predicted = loupe(["predict", out, ...files.map((f) => path.join(dataset, "test", f)), "--json", "--models-dir", modelsDir], cacheEnv)
    expect(predicted.status).toBe(0)
    JSON.parse(predicted.stdout).predictions.forEach((p: any, i: number) => {
      expect(p.labelName).toBe(result.test.predictions[i].labelName)
      expect(p.confidence).toBeCloseTo(result.test.predictions[i].confidence, 5)
    })
    console.log(`best (2 backbones, 2 views, 1 fine-tuning epoch): selected ${JSON.stringify(result.selected)}, test ${result.test.correct}/40, CV ${result.cv.accuracy}, ${result.timings.totalMs} ms`)
  })
})

describe("loupe train with bad input", () => {
  const copyImages = (to: string, label: string, count: number) => {
    fs.mkdirSync(path.join(to, label), { recursive: true })
    const from = path.join(dataset, "train", label)
    for (const f of fs.readdirSync(from).sort().slice(0, count)) fs.copyFileSync(path.join(from, f), path.join(to, label, f))
  }

  it("skips a corrupt JPEG, an empty file, text or an SVG named .jpg and a non-image file, naming each with its reason", () => {
    const dir = path.join(work, "bad-files")
    copyImages(dir, "cats", 8)
    copyImages(dir, "dogs", 8)
    const good = fs.readFileSync(path.join(dataset, "train/cats/cat.1.jpg"))
    fs.writeFileSync(path.join(dir, "cats/corrupt.jpg"), good.subarray(0, Math.floor(good.length / 3)))
    fs.writeFileSync(path.join(dir, "cats/empty.jpg"), new Uint8Array(0))
    fs.writeFileSync(path.join(dir, "dogs/not-really.jpg"), "this is a text file, not a JPEG\n")
    fs.writeFileSync(path.join(dir, "dogs/notes.txt"), "labelling notes\n")
    // The server refuses SVG (librsvg would decode it): training refuses it as well, whatever its name.
    fs.writeFileSync(path.join(dir, "dogs/drawing.jpg"), '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>')
    const run = loupe(["train", dir, "--models-dir", modelsDir, "--out", path.join(work, "bad-bundle"), "--json", "--folds", "3"], cacheEnv)
    expect(run.status).toBe(0)
    const out = JSON.parse(run.stdout)
    const skipped = new Map<string, string>(out.skipped.map((s: any) => [path.basename(s.file), s.reason]))
    expect([...skipped.keys()].sort()).toEqual(["corrupt.jpg", "drawing.jpg", "empty.jpg", "not-really.jpg", "notes.txt"])
    expect(skipped.get("empty.jpg")).toMatch(/empty/)
    expect(skipped.get("drawing.jpg")).toBe(`Cannot decode ${path.join(dir, "dogs/drawing.jpg")}: an SVG image; Loupe reads JPEG, PNG, GIF and WebP images`)
    expect(skipped.get("notes.txt")).toMatch(/not an image/i)
    expect(out.cv.total).toBe(16)
  })

  it("rejects a label with fewer than 2 images before any embedding, naming the label", () => {
    const dir = path.join(work, "tiny-label")
    copyImages(dir, "cats", 5)
    copyImages(dir, "dogs", 1)
    const run = loupe(["train", dir, "--models-dir", modelsDir, "--out", path.join(work, "x")], cacheEnv)
    expect(run.status).not.toBe(0)
    expect(run.stderr).toMatch(/"dogs" \(1 image\)/)
    expect(run.stderr).not.toMatch(/embed/)
  })

  it("rejects an unknown preset and an unknown override key, naming them, before any embedding", () => {
    const preset = loupe(["train", dataset, "--models-dir", modelsDir, "--out", path.join(work, "p"), "--preset", "quick"], cacheEnv)
    expect(preset.status).not.toBe(0)
    expect(preset.stderr).toMatch(/Unknown preset "quick". Known presets: fast, balanced, best/)
    const key = loupe(["train", dataset, "--models-dir", modelsDir, "--out", path.join(work, "k"), "--overrides", '{"mirorr": false}'], cacheEnv)
    expect(key.status).not.toBe(0)
    // One line naming the key and the keys accepted, not the whole schema.
    expect(key.stderr).toMatch(/^loupe: Unknown preset override "mirorr"; accepted keys: backbones, heads, folds, [a-zA-Z, ]+ \[FunctionsError: InvalidOptions\]\n$/)
    // A function-only setting is refused, not taken and ignored.
    const promote = loupe(["train", dataset, "--models-dir", modelsDir, "--out", path.join(work, "f"), "--overrides", '{"promote": "if-not-worse"}'], cacheEnv)
    expect(promote.status).not.toBe(0)
    expect(promote.stderr).toMatch(/^loupe: Preset override "promote" applies to functions [^\n]*\[FunctionsError: InvalidOptions\]\n$/)
    expect(fs.existsSync(path.join(work, "p")) || fs.existsSync(path.join(work, "k")) || fs.existsSync(path.join(work, "f"))).toBe(false)
  })

  it("rejects a dataset with a single label, naming it", () => {
    const dir = path.join(work, "one-label")
    copyImages(dir, "cats", 5)
    const run = loupe(["train", dir, "--models-dir", modelsDir, "--out", path.join(work, "y")], cacheEnv)
    expect(run.status).not.toBe(0)
    expect(run.stderr).toMatch(/single label, "cats"/)
  })
})
