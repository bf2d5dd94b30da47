// `loupe train DIR --tags` and `loupe predict` on a tags bundle, end to end on real photos (flowers tagged `flower` +
// species, pets tagged `animal` + cat/dog; the manifest is written at run time and points into the shared folder).
import { beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { tagsSamples } from "../../functions/test/fixtures/tagsPhotos.js"
import { loupe, modelsDir } from "./fixtures/cli.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-tags-cli-"))
const cacheEnv = { LOUPE_CACHE_DIR: path.join(work, "cache") }
const dir = path.join(work, "tagged")
const bundle = path.join(work, "bundle")
const train = tagsSamples("train", { daisy: 4, rose: 4, cats: 4, dogs: 4 })
const test = tagsSamples("test", { daisy: 2, rose: 2, cats: 2, dogs: 2 })

describe("loupe train --tags", () => {
  let result: any

  beforeAll(() => {
    fs.mkdirSync(dir)
    // Paths relative to the manifest's folder; one line with a blank around its tags.
    const lines = train.map((s) => `${path.relative(dir, s.source as string)},${s.tags!.join("; ")}`)
    fs.writeFileSync(path.join(dir, "tags.csv"), ["path,tags", ...lines].join("\n") + "\n")
    const run = loupe(["train", dir, "--tags", "--models-dir", modelsDir, "--out", bundle, "--json"], cacheEnv)
    expect(run.stderr).not.toMatch(/Error:/)
    expect(run.status).toBe(0)
    result = JSON.parse(run.stdout)
  }, 300_000)

  it("prints the cross-validated multi-label metrics and per-tag thresholds", () => {
    expect(result.task).toBe("tags")
    expect(result.cv.tags).toEqual(["animal", "cat", "daisy", "dog", "flower", "rose"])
    expect(result.cv.perTag.map((t: any) => t.support)).toEqual([8, 4, 4, 4, 8, 4])
    for (const key of ["micro", "macro"]) for (const m of ["precision", "recall", "f1"]) expect(result.cv[key][m]).toBeGreaterThan(0.5)
    expect(result.cv.meanAveragePrecision).toBeGreaterThan(0.8)
    expect(result.thresholds.map((t: any) => t.tag)).toEqual(result.cv.tags)
    expect(result.bundle).toBe(bundle)
  })

  it("predict answers every tag of a held-out photo with its probability, in JSON and in text", () => {
    const files = test.map((s) => s.source as string)
    const run = loupe(["predict", bundle, ...files, "--json", "--models-dir", modelsDir], cacheEnv)
    expect(run.status).toBe(0)
    const predictions = JSON.parse(run.stdout).predictions
    expect(predictions.map((p: any) => p.file)).toEqual(files)
    let right = 0
    predictions.forEach((p: any, i: number) => {
      expect(p.tags.map((t: any) => t.tag)).toEqual(result.cv.tags)
      for (const t of p.tags) expect(t.passes).toBe(t.probability >= t.threshold)
      const passing = p.tags.filter((t: any) => t.passes).map((t: any) => t.tag).sort()
      if (JSON.stringify(passing) === JSON.stringify([...test[i]!.tags!].sort())) right++
    })
    // Held-out photos get exactly their tag set most of the time (a constant answer gets none of them).
    expect(right).toBeGreaterThanOrEqual(5)

    const text = loupe(["predict", bundle, files[0]!, "--models-dir", modelsDir], cacheEnv)
    expect(text.status).toBe(0)
    expect(text.stdout).toMatch(/daisy.*\tanimal=0\.\d{4} cat=0\.\d{4} daisy=/)
  })

  it("refuses a folder without a manifest, naming what it looks for, and --zero-shot", () => {
    const empty = path.join(work, "empty")
    fs.mkdirSync(empty)
    const run = loupe(["train", empty, "--tags", "--models-dir", modelsDir, "--out", path.join(work, "nothing")], cacheEnv)
    expect(run.status).not.toBe(0)
    expect(run.stderr).toContain("tags.csv or tags.jsonl")
    const zeroShot = loupe(["train", dir, "--tags", "--zero-shot", "--models-dir", modelsDir, "--out", path.join(work, "nothing")], cacheEnv)
    expect(zeroShot.status).not.toBe(0)
    expect(zeroShot.stderr).toContain("--tags does not take --zero-shot")
  })
})
