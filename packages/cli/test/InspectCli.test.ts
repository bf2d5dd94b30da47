// End to end: `loupe inspect` on real cats-vs-dogs photos with deliberately corrupted labels, an exact copy under the
// other label, a copy with edited metadata in test/ (a train/test leak) and a flower among the dogs.
import { beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { loupe, modelsDir, sharedDir } from "./fixtures/cli.js"
import { withComment } from "../../../test/fixtures/jpeg.mjs"

const source = path.join(sharedDir, "datasets/cats-vs-dogs")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-inspect-cli-"))
const dir = path.join(work, "photos")
const cacheEnv = { LOUPE_CACHE_DIR: path.join(work, "cache") }

const pick = (split: string, label: string, from: number, count: number) =>
  fs.readdirSync(path.join(source, split, label)).sort().slice(from, from + count).map((f) => path.join(source, split, label, f))
const put = (file: string, split: string, label: string, name = path.basename(file)) => {
  fs.mkdirSync(path.join(dir, split, label), { recursive: true })
  fs.copyFileSync(file, path.join(dir, split, label, name))
  return `${split}/${label}/${name}`
}

const cats = pick("train", "cats", 0, 14)
const dogs = pick("train", "dogs", 0, 14)
// Labels corrupted on purpose: two dogs filed as cats, one cat filed as a dog.
const flipped = [put(dogs[12]!, "train", "cats"), put(dogs[13]!, "train", "cats"), put(cats[13]!, "train", "dogs")]
cats.slice(0, 12).forEach((f) => put(f, "train", "cats"))
dogs.slice(0, 12).forEach((f) => put(f, "train", "dogs"))
const exactCopy = put(cats[0]!, "train", "dogs", "copy-of-a-cat.jpg")
fs.mkdirSync(path.join(dir, "test", "cats"), { recursive: true })
fs.writeFileSync(path.join(dir, "test", "cats", "edited.jpg"), withComment(cats[1]!))
pick("test", "dogs", 0, 3).forEach((f) => put(f, "test", "dogs"))
const flowerFile = fs.readdirSync(path.join(sharedDir, "datasets/flowers-5/train/sunflower")).sort()[0]!
const flower = put(path.join(sharedDir, "datasets/flowers-5/train/sunflower", flowerFile), "train", "dogs", "sunflower.jpg")

describe("loupe inspect on photos with corrupted labels", () => {
  const report = path.join(work, "insights.html")
  let result: any

  beforeAll(() => {
    const run = loupe(["inspect", dir, "--models-dir", modelsDir, "--json", "--report", report], cacheEnv)
    expect(run.stderr).not.toMatch(/Error:/)
    expect(run.status).toBe(0)
    result = JSON.parse(run.stdout)
  }, 300_000)

  it("finds every corrupted label among the top suspects, with the right suggestion", () => {
    const top = result.suspects.slice(0, flipped.length + 3)
    for (const id of flipped) {
      const suspect = top.find((s: any) => s.id === id)
      expect(suspect, id).toBeDefined()
      expect(suspect.suggested).toBe(id.startsWith("train/cats/") ? "dogs" : "cats")
    }
  })

  it("calls out the exact copy with a conflicting label, and the edited copy leaking into test", () => {
    const exact = result.duplicates.find((p: any) => p.kind === "exact")
    expect([exact.a, exact.b].sort()).toEqual([`train/cats/${path.basename(cats[0]!)}`, exactCopy].sort())
    expect(exact.conflict).toBe(true)
    const leak = result.duplicates.find((p: any) => p.leak === "split")
    expect([leak.a, leak.b].sort()).toEqual([`train/cats/${path.basename(cats[1]!)}`, "test/cats/edited.jpg"].sort())
    expect(leak.kind).toBe("near")
    expect(leak.similarity).toBeGreaterThan(0.99)
  })

  it("reports class health, and the flower filed among the dogs as the one outlier", () => {
    expect(result.outliers.map((o: any) => o.id)).toEqual([flower])
    expect(result.health.perLabel.map((l: any) => [l.label, l.count])).toEqual([["cats", 15], ["dogs", 18]])
    for (const l of result.health.perLabel) expect(l.recall).toBeGreaterThan(0.5)
  })

  it("writes a self-contained HTML report with thumbnails and escaped names", () => {
    const html = fs.readFileSync(report, "utf8")
    expect(html).toContain("Label-noise suspects")
    expect(html).toContain("train/test leak")
    expect(html).toMatch(/src="data:image\/jpeg;base64,/)
    expect(html).not.toMatch(/<script/i)
  })

  it("prints a terminal summary without --json", () => {
    const run = loupe(["inspect", dir, "--models-dir", modelsDir], cacheEnv)
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(/Label-noise suspects · \d+/)
    expect(run.stdout).toContain(flipped[0])
  }, 300_000)
})

describe("loupe inspect on a function of a store", () => {
  const store = path.join(work, "store")
  const env = { ...cacheEnv, LOUPE_STORE_DIR: store, LOUPE_MODELS_DIR: modelsDir }
  const add = (fn: string, files: ReadonlyArray<string>, label: string): Array<string> => {
    const run = loupe(["function", "add", fn, ...files, "--label", label, "--no-wait", "--json"], env)
    expect(run.status).toBe(0)
    return JSON.parse(run.stdout).sampleIds
  }

  it("inspects the function's samples, named by sample id, as a folder's photos are (--json, --report)", () => {
    const created = loupe(["function", "create", "IsCatOrDog", "--preset", "fast", "--json"], env)
    expect(created.status).toBe(0)
    const fn = JSON.parse(created.stdout).id
    // Two dogs filed as cats, one cat filed as a dog, as in the folder above.
    const catIds = add(fn, [...cats.slice(0, 12), dogs[12]!, dogs[13]!], "cats")
    const dogIds = add(fn, [...dogs.slice(0, 12), cats[13]!], "dogs")
    const flippedIds = [catIds[12]!, catIds[13]!, dogIds[12]!]

    const report = path.join(work, "function-insights.html")
    const run = loupe(["inspect", fn, "--json", "--report", report], env)
    expect(run.stderr).not.toMatch(/Error:/)
    expect(run.status).toBe(0)
    const result = JSON.parse(run.stdout)
    // Not trained (--no-wait): the preset's backbone, no model.
    expect(result).toMatchObject({ store, functionId: fn, modelId: null, backbone: "onnx:mobilenetv2-int8", images: 27 })
    expect(result.health.perLabel.map((l: any) => [l.label, l.count])).toEqual([["cats", 14], ["dogs", 13]])
    // Every suspect is a flipped sample. On 27 photos confident learning finds two of the three (the dog filed as a
    // cat last keeps a cat probability above the cats' threshold with these folds); the folder above finds all three.
    const suspects = result.suspects.map((s: any) => s.id)
    for (const id of suspects) expect(flippedIds).toContain(id)
    expect(suspects.length).toBeGreaterThanOrEqual(2)
    expect(fs.readFileSync(report, "utf8")).toMatch(/src="data:image\/jpeg;base64,/)
  }, 300_000)

  it("says which function is unknown", () => {
    const unknown = loupe(["inspect", "function_0123456789abcdef", "--json"], env)
    expect(unknown.status).not.toBe(0)
    expect(unknown.stdout + unknown.stderr).toContain("function_0123456789abcdef")
  }, 180_000)
})

