// The built CLI: `loupe keys`, `loupe serve` killed with SIGKILL while samples stream in (every acknowledged sample
// survives the restart), `loupe export` of the trained function in every format, and SIGTERM stopping cleanly.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { loupe, modelsDir, serve as serveCli, type Serving, sharedDir } from "./fixtures/cli.js"

const dataset = path.join(sharedDir, "datasets", "cats-vs-dogs")
const photos = (label: "cats" | "dogs", count: number) =>
  fs.readdirSync(path.join(dataset, "train", label)).sort().slice(0, count).map((f) => path.join(dataset, "train", label, f))

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-serve-cli-"))
const store = path.join(work, "store")
const env = { LOUPE_CACHE_DIR: path.join(work, "cache"), LOUPE_MODELS_DIR: modelsDir }

/** Start `loupe serve` on the store, on a free port. */
const serve = () => serveCli(["--store", store, "--port", "0", "--capture-random", "0"], env)

let token = ""
let server: Serving | undefined
let fn = ""

const call = async (method: string, route: string, body?: unknown) => {
  const response = await fetch(`${server!.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  return { status: response.status, body: await response.json().catch(() => undefined) as any }
}

beforeAll(() => {
  const created = loupe(["keys", "create", "--store", store, "--name", "ci", "--json"], env)
  expect(created.status).toBe(0)
  token = JSON.parse(created.stdout).token
})

afterAll(() => {
  server?.child.kill("SIGKILL")
})

describe("loupe keys", () => {
  it("lists keys without their secrets and revokes by id", () => {
    const extra = JSON.parse(loupe(["keys", "create", "--store", store, "--name", "temp", "--json"], env).stdout)
    const listed = loupe(["keys", "list", "--store", store], env)
    expect(listed.stdout).toMatch(/\tci\t/)
    expect(listed.stdout).not.toContain(token)
    expect(loupe(["keys", "revoke", extra.id, "--store", store], env).stdout).toMatch(`Revoked ${extra.id} (temp)`)
    const unknown = loupe(["keys", "revoke", "00000000", "--store", store], env)
    expect(unknown.status).toBe(1)
    expect(unknown.stderr).toMatch(/No API key with id "00000000"/)
  })
})

describe("loupe serve", () => {
  it("keeps every acknowledged sample when killed with SIGKILL during ingestion", async () => {
    server = await serve()
    fn = (await call("POST", "/v1/functions", { name: "IsCatOrDog", preset: "fast", overrides: { folds: 3 } })).body.id
    const files = [...photos("cats", 12).map((f) => [f, "cats"]), ...photos("dogs", 12).map((f) => [f, "dogs"])] as const
    const acknowledged: Array<string> = []
    let next = 0
    let killed = false
    const uploader = async () => {
      while (next < files.length) {
        const [file, label] = files[next++]!
        try {
          const r = await call("POST", `/v1/functions/${fn}/samples`, {
            data: `data:image/jpeg;base64,${fs.readFileSync(file).toString("base64")}`,
            annotation: { labelName: label }
          })
          if (r.status === 201) acknowledged.push(r.body.id)
          if (acknowledged.length >= 10 && !killed) {
            killed = true
            server!.child.kill("SIGKILL")
          }
        } catch {
          return // the server is gone: this request was never acknowledged
        }
      }
    }
    await Promise.all([uploader(), uploader(), uploader()])
    expect(await server.exited).toBe(-1)
    expect(acknowledged.length).toBeGreaterThanOrEqual(10)
    expect(acknowledged.length).toBeLessThan(files.length)

    server = await serve()
    const stored = (await call("GET", `/v1/functions/${fn}/samples`)).body.map((s: any) => s.id)
    expect(stored).toEqual(expect.arrayContaining(acknowledged))
    for (const id of acknowledged) expect((await call("GET", `/v1/functions/${fn}/samples/${id}`)).status).toBe(200)

    // The rest goes in after the restart, and the function trains on all of it.
    for (const [file, label] of files) {
      const r = await call("POST", `/v1/functions/${fn}/samples`, {
        data: `data:image/jpeg;base64,${fs.readFileSync(file).toString("base64")}`,
        annotation: { labelName: label }
      })
      expect(r.status).toBe(201)
    }
    expect((await call("GET", `/v1/functions/${fn}/samples`)).body).toHaveLength(files.length)
    const deadline = Date.now() + 120_000
    let detail = (await call("GET", `/v1/functions/${fn}`)).body
    while ((detail.model === null || !detail.model.upToDate || detail.training.phase !== "idle") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200))
      detail = (await call("GET", `/v1/functions/${fn}`)).body
    }
    expect(detail.model).toMatchObject({ upToDate: true })

    // On stderr: each request, and each background training with its samples, outcome and duration.
    const logs = server.stderr()
    expect(logs).toMatch(new RegExp(`POST /v1/functions/${fn}/samples 201 \\d+ ms`))
    expect(logs).toMatch(new RegExp(`GET /v1/functions/${fn} 200 \\d+ ms`))
    expect(logs).toMatch(new RegExp(`Training function ${fn} started: ${files.length} samples`))
    expect(logs).toMatch(new RegExp(`Training function ${fn} finished in [\\d.]+ s: model model_\\w+ on ${files.length} samples, promoted`))
  })

  it("stops on SIGTERM with exit code 0", async () => {
    server!.child.kill("SIGTERM")
    expect(await server!.exited).toBe(0)
    server = undefined
  })
})

describe("loupe export", () => {
  it("never replaces a folder holding anything else: unrelated files, a file, the current folder", () => {
    const mine = path.join(work, "my-files")
    fs.mkdirSync(path.join(mine, "sub"), { recursive: true })
    fs.writeFileSync(path.join(mine, "notes.txt"), "keep me")
    fs.writeFileSync(path.join(mine, "sub", "photo.jpg"), "keep me too")
    const file = path.join(work, "a-file")
    fs.writeFileSync(file, "a regular file")
    const refused = (args: ReadonlyArray<string>, cwd?: string) => {
      const run = loupe(["export", fn, "--store", store, ...args, "--json"], env, cwd)
      expect(run.status).toBe(1)
      return JSON.parse(run.stdout).error
    }
    const notFree = { _tag: "CoreError", reason: "OutputNotFree", field: "out", file: mine }
    expect(refused(["--format", "bundle", "--out", mine])).toMatchObject(notFree)
    for (const format of ["bundle", "onnx", "docker"]) expect(refused(["--format", format, "--out", mine, "--overwrite"])).toMatchObject(notFree)
    // A regular file is refused by the option's own check (it must be a folder), naming it.
    expect(refused(["--format", "docker", "--out", file, "--overwrite"]).message).toContain(file)
    expect(refused(["--format", "onnx", "--out", ".", "--overwrite"], mine).message).toContain(`${mine} is the current folder`)
    expect(fs.readFileSync(path.join(mine, "notes.txt"), "utf8")).toBe("keep me")
    expect(fs.readFileSync(path.join(mine, "sub", "photo.jpg"), "utf8")).toBe("keep me too")
    expect(fs.readFileSync(file, "utf8")).toBe("a regular file")
    expect(fs.readdirSync(work).filter((e) => /\.(tmp|old)-/.test(e))).toEqual([])
  })


  it("exports the function's model as ONNX (verified on its own photos), a bundle and a Docker context", () => {
    const onnx = loupe(["export", fn, "--store", store, "--format", "onnx", "--out", path.join(work, "onnx"), "--json"], env)
    expect(onnx.stderr).toBe("")
    const exported = JSON.parse(onnx.stdout)
    expect(exported).toMatchObject({ format: "onnx", labels: ["cats", "dogs"], verification: { inputs: 8 } })
    expect(exported.verification.maxAbsDiff).toBeLessThanOrEqual(1e-4)
    expect(fs.statSync(path.join(work, "onnx", "model.onnx")).size).toBeGreaterThan(3_000_000)
    // An ONNX export is not replaced by a bundle, even with --overwrite.
    const otherKind = loupe(["export", fn, "--store", store, "--out", path.join(work, "onnx"), "--overwrite"], env)
    expect(otherKind.status).toBe(1)
    expect(otherKind.stderr).toContain("holds a loupe-onnx output, not a loupe-bundle one")
    expect(fs.readdirSync(path.join(work, "onnx")).sort()).toEqual([".loupe-output.json", "model.json", "model.onnx"])

    const bundle = loupe(["export", fn, "--store", store, "--out", path.join(work, "bundle")], env)
    expect(bundle.status).toBe(0)
    const manifest = JSON.parse(fs.readFileSync(path.join(work, "bundle", "manifest.json"), "utf8"))
    expect(manifest.metadata.functionId).toBe(fn)
    const again = loupe(["export", fn, "--store", store, "--out", path.join(work, "bundle")], env)
    expect(again.status).toBe(1)
    expect(again.stderr).toContain(`${path.join(work, "bundle")} holds an earlier loupe-bundle output: replace it with --overwrite`)
    expect(loupe(["export", fn, "--store", store, "--out", path.join(work, "bundle"), "--overwrite"], env).status).toBe(0)
    expect(fs.readdirSync(work).filter((e) => /^bundle\.(tmp|old)-/.test(e))).toEqual([])
    const predicted = loupe(["predict", path.join(work, "bundle"), photos("cats", 1)[0]!, "--json"], env)
    expect(JSON.parse(predicted.stdout).predictions[0].labelName).toBe("cats")

    const docker = loupe(["export", path.join(work, "bundle"), "--format", "docker", "--out", path.join(work, "docker"), "--json"], env)
    expect(docker.status).toBe(0)
    expect(JSON.parse(docker.stdout).files).toEqual(expect.arrayContaining(["Dockerfile", "server.mjs", "bundle/manifest.json", "package.json"]))
    expect(fs.readFileSync(path.join(work, "docker", "Dockerfile"), "utf8")).toContain(`LOUPE_FUNCTION_ID="${fn}"`)

    // Replacing an earlier context of the same kind is allowed; its files are the new export's.
    const redo = loupe(["export", path.join(work, "bundle"), "--format", "docker", "--out", path.join(work, "docker"), "--port", "9090", "--overwrite"], env)
    expect(redo.status).toBe(0)
    expect(fs.readFileSync(path.join(work, "docker", "Dockerfile"), "utf8")).toContain("EXPOSE 9090")

    const missing = loupe(["export", "function_nope", "--store", store, "--format", "onnx", "--out", path.join(work, "nope")], env)
    expect(missing.status).toBe(1)
    expect(missing.stderr).toMatch(/function_nope/)
  })
})
