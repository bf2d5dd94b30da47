// `loupe train --zero-shot` on a folder of real coloured photos (JPEG and PNG) with the fixture CLIP model, whose text
// tower points each colour name where plain images of that colour lie: no training, the test split scored, the
// zero-shot model saved as a bundle that `loupe predict` uses.
import { beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { writeColourFolder } from "../../backbones/test/fixtures/colourImages.js"
import { colours, writeHubModel } from "../../backbones/test/fixtures/hubModels.js"
import { loupe, repoRoot } from "./fixtures/cli.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-zero-shot-cli-"))
const plugin = path.join(repoRoot, "packages/cli/test/fixtures/fixtureClipPlugin.mjs")
const env = { LOUPE_CACHE_DIR: path.join(work, "cache"), LOUPE_TEST_CLIP_MODEL: writeHubModel(path.join(work, "clip"), "clip") }
const photos = path.join(work, "photos")
const clip = "transformers:fixture-clip"

describe("loupe train --zero-shot", () => {
  const bundle = path.join(work, "bundle")
  let test: Record<string, Array<string>> = {}
  let result: any

  beforeAll(async () => {
    await writeColourFolder(path.join(photos, "train"), colours, 2, 1)
    test = await writeColourFolder(path.join(photos, "test"), colours, 3, 2)
    const run = loupe(["train", photos, "--zero-shot", "--plugin", plugin, "--backbone", clip, "--out", bundle, "--json"], env)
    expect(run.stderr).not.toMatch(/Error:/)
    expect(run.status).toBe(0)
    result = JSON.parse(run.stdout)
  })

  it("trains nothing and scores the zero-shot classifier on the test split: every photo right", () => {
    expect(result).toMatchObject({ mode: "zero-shot", backbone: clip, labels: ["blue", "green", "red", "yellow"], evaluatedOn: "test" })
    expect(result.templates[0]).toBe("a photo of a {}.")
    expect(result.test).toMatchObject({ accuracy: 1, correct: 12, total: 12 })
    expect(result.test.predictions.every((p: any) => p.labelName === p.trueLabel)).toBe(true)
    expect(result.bundle).toBe(bundle)
  })

  it("saves the zero-shot model as a bundle that loupe predict answers with", () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(bundle, "manifest.json"), "utf8"))
    expect(manifest.head.kind).toBe("zero-shot")
    expect(manifest.backbone.id).toBe(clip)
    const files = [test["red"]![0]!, test["yellow"]![1]!]
    const run = loupe(["predict", bundle, ...files, "--plugin", plugin, "--json"], env)
    expect(run.status).toBe(0)
    expect(JSON.parse(run.stdout).predictions.map((p: any) => p.labelName)).toEqual(["red", "yellow"])
  })

  it("prints a summary, and refuses a backbone without a text tower, naming the flag", () => {
    const text = loupe(["train", path.join(photos, "test"), "--zero-shot", "--plugin", plugin, "--backbone", clip, "--out", path.join(work, "b2")], env)
    expect(text.status).toBe(0)
    expect(text.stdout).toContain(`zero-shot  ${clip}: 8 prompt templates per label, no training`)
    expect(text.stdout).toContain("evaluated  on every image (the folder has no test split)")
    expect(text.stdout).toMatch(/test +accuracy 1 +\(12\/12\)/)
    const refused = loupe(["train", photos, "--zero-shot", "--backbone", "onnx:mobilenetv2-int8", "--out", path.join(work, "b3")], env)
    expect(refused.status).toBe(1)
    expect(refused.stderr).toContain("--zero-shot needs a backbone with a text tower (CLIP, SigLIP); none of [onnx:mobilenetv2-int8] has one")
  })
})
