// `loupe function ...` end to end with the built CLI, including two processes writing to one store at once.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { labelFolders, loupe, loupeAsync, modelsDir, sharedDir } from "./fixtures/cli.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-function-cli-"))
const env = { LOUPE_CACHE_DIR: path.join(work, "cache"), LOUPE_STORE_DIR: path.join(work, "store"), LOUPE_MODELS_DIR: modelsDir }

const folder = (name: string, from: number, count: number) => labelFolders(path.join(work, name), from, count)

describe("loupe function", () => {
  it("create, two concurrent add processes, add with a bad file (trains), invoke, metrics", async () => {
    const created = loupe(["function", "create", "IsCatOrDog", "--preset", "fast", "--overrides", "{\"folds\": 3}", "--json"], env)
    expect(created.status).toBe(0)
    const fn = JSON.parse(created.stdout)
    expect(fn).toMatchObject({ name: "IsCatOrDog", preset: "fast" })

    // Two writers at once on one SQLite store (WAL, busy timeout): every sample lands.
    const [a, b] = await Promise.all([
      loupeAsync(["function", "add", fn.id, folder("a", 0, 12), "--no-wait", "--json"], env),
      loupeAsync(["function", "add", fn.id, folder("b", 12, 12), "--no-wait", "--json"], env)
    ])
    expect(a.stderr + b.stderr).not.toMatch(/Error/)
    expect([a.status, b.status]).toEqual([0, 0])
    expect(JSON.parse(a.stdout).sampleIds.length + JSON.parse(b.stdout).sampleIds.length).toBe(48)

    // A third add, with one unreadable file among its images, picks up the pending retrain and waits for it.
    const c = folder("c", 24, 2)
    fs.writeFileSync(path.join(c, "dogs", "broken.jpg"), "not a JPEG")
    // An SVG named .jpg: the server refuses SVG, and so does the command line.
    fs.writeFileSync(path.join(c, "cats", "drawing.jpg"), '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
    const added = loupe(["function", "add", fn.id, c, "--json"], env)
    expect(added.status).toBe(0)
    const result = JSON.parse(added.stdout)
    expect(result.sampleIds.length).toBe(4)
    expect(result.skipped.map((s: { file: string }) => path.basename(s.file)).sort()).toEqual(["broken.jpg", "drawing.jpg"])
    expect(result.skipped.find((s: { file: string }) => s.file.endsWith("drawing.jpg")).reason).toMatch(/an SVG image; send a JPEG, PNG, GIF or WebP image/)
    expect(added.stderr).toContain("broken.jpg")
    expect(result.status.labels.map((l: { name: string; sampleCount: number }) => [l.name, l.sampleCount])).toEqual([
      ["cats", 26],
      ["dogs", 26]
    ])
    expect(result.status.model).toMatchObject({ upToDate: true })

    const test = path.join(sharedDir, "datasets/cats-vs-dogs/test")
    const invoked = loupe(["function", "invoke", fn.id, path.join(test, "cats/cat.4002.jpg"), path.join(test, "dogs/dog.4002.jpg"), "--json"], env)
    expect(invoked.status).toBe(0)
    const predictions = JSON.parse(invoked.stdout).predictions
    expect(predictions.map((p: { labelName: string }) => p.labelName)).toEqual(["cats", "dogs"])
    expect(predictions[0].modelId).toBe(result.status.model.id)

    const metrics = loupe(["function", "metrics", fn.id], env)
    expect(metrics.status).toBe(0)
    expect(metrics.stdout).toContain("cross-validation (3 folds, 52 samples)")
    expect(metrics.stdout).toContain("confusion matrix")

    // A label with one sample is left out, not blocking; `labels rm` deletes it and keeps its sample, unlabelled.
    const bird = path.join(test, "cats/cat.4003.jpg")
    expect(loupe(["function", "add", fn.id, bird, "--label", "birds", "--no-wait"], env).status).toBe(0)
    const listed = loupe(["function", "labels", "list", fn.id, "--json"], env)
    expect(listed.status, listed.stderr).toBe(0)
    expect(JSON.parse(listed.stdout).labels.map((l: { name: string; leftOut: string | null }) => [l.name, l.leftOut !== null])).toEqual([
      ["birds", true],
      ["cats", false],
      ["dogs", false]
    ])
    const removed = loupe(["function", "labels", "rm", fn.id, "birds", "--json"], env)
    expect(removed.status, removed.stderr).toBe(0)
    const deleted = JSON.parse(removed.stdout)
    expect(deleted).toMatchObject({ label: { name: "birds" }, unannotatedSamples: 1, status: { leftOutLabels: [], trainError: null } })
    expect(deleted.status.labels.map((l: { name: string }) => l.name)).toEqual(["cats", "dogs"])
    const missing = loupe(["function", "labels", "rm", fn.id, "birds"], env)
    expect(missing.status).not.toBe(0)
    expect(missing.stderr).toContain("birds")
  })

  it("models lists the versions; rollback serves the previous one (or --model), and invoke follows at once", async () => {
    const fn = JSON.parse(loupe(["function", "create", "Versions", "--preset", "fast", "--overrides", "{\"folds\": 3}", "--json"], env).stdout)
    expect(loupe(["function", "add", fn.id, folder("v1", 40, 4)], env).status).toBe(0)
    expect(loupe(["function", "add", fn.id, folder("v2", 44, 2)], env).status).toBe(0)
    const listed = loupe(["function", "models", fn.id, "--json"], env)
    expect(listed.status).toBe(0)
    const [v2, v1] = JSON.parse(listed.stdout).models
    expect([v2.promoted, v1.promoted]).toEqual([true, false])
    expect([v2.sampleCount, v1.sampleCount]).toEqual([12, 8])

    const cat = path.join(sharedDir, "datasets/cats-vs-dogs/test/cats/cat.4003.jpg")
    const invoked = () => JSON.parse(loupe(["function", "invoke", fn.id, cat, "--json"], env).stdout).predictions[0].modelId
    const rolledBack = loupe(["function", "rollback", fn.id], env)
    expect(rolledBack.status).toBe(0)
    expect(rolledBack.stdout).toContain(`serving ${v1.id}`)
    expect(invoked()).toBe(v1.id)
    // Nothing is older than v1: the error says so and names --model.
    const none = loupe(["function", "rollback", fn.id], env)
    expect(none.status).not.toBe(0)
    expect(none.stderr).toContain("--model")
    const forward = loupe(["function", "rollback", fn.id, "--model", v2.id, "--json"], env)
    expect(JSON.parse(forward.stdout)).toMatchObject({ id: v2.id, promoted: true })
  })
})
