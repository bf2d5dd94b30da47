// `loupe models`, `loupe train --backbone hf:...` and `loupe function create --overrides '{"backbones":["hf:..."]}'`
// end to end with the built CLI, against a loopback hub publishing test models under the catalog's ids.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { writeColourFolder } from "../../backbones/test/fixtures/colourImages.js"
import { colours, hubModelFiles } from "../../backbones/test/fixtures/hubModels.js"
import { commitOf, serveHub } from "../../backbones/test/fixtures/hubServer.js"
import type { LoopbackHub } from "../../backbones/test/fixtures/hubServer.js"
import { loupeAsync, modelsDir } from "./fixtures/cli.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-hub-cli-"))
const scope = Effect.runSync(Scope.make())
let hub: LoopbackHub
let env: Record<string, string>

const repos = {
  "Xenova/dinov2-small": { commits: { [commitOf("dino")]: hubModelFiles("dinov2", 384) }, refs: { main: commitOf("dino") } },
  "Xenova/clip-vit-base-patch32": { commits: { [commitOf("clip")]: hubModelFiles("clip", 512) }, refs: { main: commitOf("clip") } }
}
const { red, green, blue } = colours
const labels = { red: red!, green: green!, blue: blue! }

/** The built CLI as a child process (asynchronous, so the loopback hub in this process keeps answering). */
const loupe = (args: ReadonlyArray<string>, extra: Record<string, string> = {}) => loupeAsync(args, { ...env, ...extra })

beforeAll(async () => {
  hub = await Effect.runPromise(Scope.extend(serveHub(repos), scope))
  env = { HF_ENDPOINT: hub.url, LOUPE_CACHE_DIR: path.join(work, "cache"), LOUPE_STORE_DIR: path.join(work, "store") }
  await writeColourFolder(path.join(work, "photos", "train"), labels, 4, 1)
  await writeColourFolder(path.join(work, "photos", "test"), labels, 2, 100)
})
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  fs.rmSync(work, { recursive: true, force: true })
})

describe("hub models through the CLI", () => {
  it("models list shows them remote, pull verifies and caches, list then shows them cached", async () => {
    const listed = await loupe(["models", "list", "--json"])
    expect(listed.status).toBe(0)
    const status = (out: string, id: string) => JSON.parse(out).models.find((m: { id: string }) => m.id === id)?.status
    expect(status(listed.stdout, "hf:Xenova/dinov2-small")).toBe("remote")
    expect(status(listed.stdout, "hf:Xenova/siglip-base-patch16-224")).toBe("remote")

    const pulled = await loupe(["models", "pull", "hf:Xenova/dinov2-small", "--json"])
    expect(pulled.stderr).not.toMatch(/Error/)
    expect(pulled.status).toBe(0)
    const result = JSON.parse(pulled.stdout)
    expect(result).toMatchObject({ id: "hf:Xenova/dinov2-small", downloaded: true, hub: { commit: commitOf("dino") } })
    expect(result.hub.files.map((f: { file: string }) => f.file).sort()).toEqual(["config.json", "onnx/model.onnx", "preprocessor_config.json"])
    // Progress goes to stderr, in bytes.
    expect(pulled.stderr).toMatch(/download/)

    const again = await loupe(["models", "list"])
    expect(again.stdout).toMatch(/hf:Xenova\/dinov2-small\s+384-d\s+cached/)

    const offline = await loupe(["models", "pull", "hf:Xenova/clip-vit-base-patch32", "--offline"])
    expect(offline.status).toBe(1)
    expect(offline.stderr).toContain("offline mode is on")
  })

  it("train --backbone hf:Xenova/dinov2-small trains, says why, and the bundle predicts offline", async () => {
    const bundle = path.join(work, "bundle-dino")
    const report = path.join(work, "report.json")
    const run = await loupe([
      "train", path.join(work, "photos"), "--backbone", "hf:Xenova/dinov2-small", "--folds", "2", "--out", bundle, "--report", report, "--json"
    ])
    expect(run.stderr).not.toMatch(/Error/)
    expect(run.status).toBe(0)
    const result = JSON.parse(run.stdout)
    expect(result.selected.backbone).toBe("hf:Xenova/dinov2-small")
    expect(result.backboneChoice).toEqual({ backbones: ["hf:Xenova/dinov2-small"], reason: "named by the user (backbones.ids / --backbone)" })
    expect(result.test.correct).toBe(6)
    expect(fs.readFileSync(report, "utf8")).toContain("named by the user")

    const files = result.test.predictions.map((p: { file: string }) => path.join(work, "photos", "test", p.file))
    const predicted = await loupe(["predict", bundle, ...files, "--json"], { HF_ENDPOINT: "http://127.0.0.1:9", LOUPE_OFFLINE: "1" })
    expect(predicted.status).toBe(0)
    expect(JSON.parse(predicted.stdout).predictions.map((p: { labelName: string }) => p.labelName))
      .toEqual(result.test.predictions.map((p: { trueLabel: string }) => p.trueLabel))
  })

  it("train with the balanced preset leads with the cached strong backbone; offline without it, falls back in one line", async () => {
    // The preset's preference, over a cheaper offline set and search than balanced's own.
    const cheaper = ["--overrides", '{"backbones":{"tags":["fast","offline"]},"heads":["logistic-regression"],"mirror":false}']
    const run = await loupe(["train", path.join(work, "photos"), "--preset", "balanced", ...cheaper, "--folds", "2", "--out", path.join(work, "bundle-balanced"), "--json"], {
      LOUPE_MODELS_DIR: modelsDir
    })
    expect(run.stderr).not.toMatch(/Error/)
    expect(run.status).toBe(0)
    const result = JSON.parse(run.stdout)
    expect(result.backboneChoice.backbones[0]).toBe("hf:Xenova/dinov2-small")
    expect(result.backboneChoice.reason).toContain("its weights are here")

    const empty = await loupe(["train", path.join(work, "photos"), "--preset", "balanced", ...cheaper, "--folds", "2", "--out", path.join(work, "bundle-offline"), "--offline", "--json"], {
      LOUPE_CACHE_DIR: path.join(work, "empty-cache"),
      LOUPE_MODELS_DIR: modelsDir
    })
    expect(empty.status).toBe(0)
    const fallback = JSON.parse(empty.stdout)
    expect(fallback.backboneChoice.backbones).not.toContain("hf:Xenova/dinov2-small")
    expect(fallback.backboneChoice.reason).toContain("offline mode is on")
    expect(empty.stderr.split("\n").filter((l) => l.includes("no backbone tagged [strong] is available"))).toHaveLength(1)
  })

  it("function create --overrides '{\"backbones\":[\"hf:Xenova/clip-vit-base-patch32\"]}' pulls, trains and invokes", async () => {
    const created = await loupe(["function", "create", "Colours", "--preset", "fast", "--overrides", '{"backbones":["hf:Xenova/clip-vit-base-patch32"],"folds":2}', "--json"])
    expect(created.status).toBe(0)
    const fn = JSON.parse(created.stdout)
    const added = await loupe(["function", "add", fn.id, path.join(work, "photos", "train"), "--json"])
    expect(added.stderr).not.toMatch(/Error/)
    expect(added.status).toBe(0)
    const metrics = JSON.parse((await loupe(["function", "metrics", fn.id, "--json"])).stdout)
    expect(metrics.selected.backbone).toBe("hf:Xenova/clip-vit-base-patch32")
    expect(hub.requests).toContain("HEAD /Xenova/clip-vit-base-patch32/resolve/main/onnx/vision_model.onnx")
    const test = path.join(work, "photos", "test")
    const images = Object.keys(labels).map((label) => path.join(test, label, fs.readdirSync(path.join(test, label)).sort()[0]!))
    const invoked = await loupe(["function", "invoke", fn.id, ...images, "--json"])
    expect(invoked.status).toBe(0)
    expect(JSON.parse(invoked.stdout).predictions.map((r: { labelName: string }) => r.labelName)).toEqual(Object.keys(labels))
  })

  it("a corrupted download is refused and nothing is kept", async () => {
    hub.corrupt("Xenova/clip-vit-base-patch32/onnx/vision_model.onnx")
    const cache = path.join(work, "corrupt-cache")
    const run = await loupe(["models", "pull", "hf:Xenova/clip-vit-base-patch32"], { LOUPE_CACHE_DIR: cache })
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(/has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}; nothing was kept/)
    expect(fs.existsSync(path.join(cache, "transformers/Xenova/clip-vit-base-patch32/main/onnx/vision_model.onnx"))).toBe(false)
  })
})
