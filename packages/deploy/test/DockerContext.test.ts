// The Docker build context: its contents, and its server entry run with node directly (node_modules stands in for
// the `npm install` the Dockerfile runs).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Exit, Scope } from "effect"
import { Bundle } from "@loupe/core"
import { ApiKeys, DockerContext, Predictor } from "@loupe/deploy"
import { MultiBackbone } from "@loupe/trainers"
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { builtinModules } from "node:module"
import * as fs from "node:fs"
import * as path from "node:path"
import { environment, fitBundle, photos, repoRoot, serverEntry, tempDir } from "./fixtures/shared.js"

const work = tempDir("docker")
const bundle = path.join(work, "bundle")
const context = path.join(work, "context")
const run = <A, E>(effect: Effect.Effect<A, E, any>) => Effect.runPromise(Effect.provide(effect, environment) as Effect.Effect<A, E>)

let info: DockerContext.DockerContextInfo
let child: ChildProcess | undefined

beforeAll(async () => {
  await Effect.runPromise(fitBundle(bundle, 8))
  info = await run(DockerContext.write(bundle, context, serverEntry(), { functionId: "cats-or-dogs" }))
})

afterAll(() => {
  child?.kill("SIGKILL")
})

describe("DockerContext", () => {
  it("holds the Dockerfile, the entry, the bundle, the exact weights and pinned native packages", () => {
    expect(info.files).toEqual([
      ".dockerignore",
      ".loupe-output.json",
      "Dockerfile",
      "README.md",
      "bundle/.loupe-output.json",
      "bundle/head.json",
      "bundle/manifest.json",
      "models/mobilenetv2-12-int8-onnx/mobilenetv2-12-int8-embedding.onnx",
      "ortRunner.js",
      "package.json",
      "server.mjs",
      "tfjsRunner.js"
    ])
    const manifest = JSON.parse(fs.readFileSync(path.join(context, "bundle/manifest.json"), "utf8"))
    const weights = fs.readFileSync(path.join(context, "models/mobilenetv2-12-int8-onnx/mobilenetv2-12-int8-embedding.onnx"))
    expect(createHash("sha256").update(weights).digest("hex")).toBe(manifest.backbone.weightsHash)

    const pkg = JSON.parse(fs.readFileSync(path.join(context, "package.json"), "utf8"))
    const backbones = JSON.parse(fs.readFileSync(path.join(repoRoot, "packages/backbones/package.json"), "utf8"))
    expect(pkg.dependencies).toEqual({
      sharp: backbones.dependencies.sharp,
      "onnxruntime-node": backbones.dependencies["onnxruntime-node"]
    })
    const dockerfile = fs.readFileSync(path.join(context, "Dockerfile"), "utf8")
    for (const line of [
      /^FROM node:20-bookworm-slim$/m,
      /^RUN npm install --omit=dev/m,
      /^COPY bundle \.\/bundle$/m,
      /^USER node$/m,
      /^EXPOSE 8080$/m,
      /^HEALTHCHECK .*\/readyz/m,
      /LOUPE_FUNCTION_ID="cats-or-dogs"/,
      /^COPY server\.mjs ortRunner\.js tfjsRunner\.js \.\/$/m,
      /^CMD \["node", "server.mjs"\]$/m
    ]) expect(dockerfile).toMatch(line)
    expect(fs.readFileSync(path.join(context, ".dockerignore"), "utf8")).toMatch(/^keys$/m)
    // The server entry and the engines' worker modules inline everything but native packages.
    const packagesOf = (file: string) => {
      const code = fs.readFileSync(path.join(context, file), "utf8")
      const imports = [...code.matchAll(/^import .* from ["']([^"'.][^"']*)["']/gm)]
        .map((m) => m[1]!)
        .filter((m) => !m.startsWith("node:") && !builtinModules.includes(m))
      return [...new Set(imports)].sort()
    }
    expect(packagesOf("server.mjs")).toEqual(["sharp"])
    expect(packagesOf("ortRunner.js")).toEqual(["onnxruntime-node"])
  })

  it("serves the bundle when its entry runs with node, answering like the predictor, and stops on SIGTERM", async () => {
    fs.symlinkSync(path.join(repoRoot, "node_modules/.pnpm/node_modules"), path.join(context, "node_modules"))
    const keysFile = path.join(context, "keys", "keys.json")
    const key = await run(Effect.flatMap(ApiKeys.make(keysFile), (k) => k.create("docker test")))
    child = spawn(process.execPath, ["server.mjs"], {
      cwd: context,
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOUPE_KEYS_FILE: keysFile, LOUPE_FUNCTION_ID: "cats-or-dogs" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "Serving" line in 60 s:\n${output}`)), 60_000)
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        const match = /Serving .* on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
        if (match) {
          clearTimeout(timer)
          resolve(match[1]!)
        }
      }
      child!.stdout!.on("data", onData)
      child!.stderr!.on("data", onData)
      child!.on("exit", (code) => reject(new Error(`entry exited with ${code}:\n${output}`)))
    })
    expect((await (await fetch(`${url}/readyz`)).json())).toEqual({ status: "ready" })
    const photo = photos("test", "dogs", 2)[1]!
    const bytes = new Uint8Array(fs.readFileSync(photo))
    const response = await fetch(`${url}/v1/functions/cats-or-dogs/invoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${key.token}`, "content-type": "image/jpeg" },
      body: bytes
    })
    expect(response.status).toBe(200)
    const answer = await response.json() as { labelName: string; confidence: number }
    const scope = Effect.runSync(Scope.make())
    const expected = await run(Effect.flatMap(Scope.extend(Predictor.load(bundle), scope), (p) => p.predict(bytes)))
    await Effect.runPromise(Scope.close(scope, Exit.void))
    expect(answer.labelName).toBe(expected.labelName)
    expect(answer.confidence).toBeCloseTo(expected.confidence, 5)
    expect((await fetch(`${url}/v1/functions/cats-or-dogs/invoke`, { method: "POST" })).status).toBe(401)

    const exited = new Promise<number | null>((resolve) => child!.on("exit", resolve))
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
    child = undefined
  })

  it("carries the weights of every backbone of a multi-backbone bundle, and their runtimes' packages", async () => {
    const multi = path.join(work, "multi-bundle")
    await run(Effect.scoped(Effect.gen(function*() {
      const labels = ["cats", "dogs"]
      const samples = labels.flatMap((label) => photos("train", label, 4).map((source) => ({ id: source, source, label })))
      const { fitted } = yield* MultiBackbone.fitConcat(
        { backbones: ["onnx:mobilenetv2-int8", "tfjs:darknet-tiny"], head: { kind: "logistic-regression" } },
        { labels, samples }
      )
      yield* Bundle.save(fitted, multi)
    })))
    const multiInfo = await run(DockerContext.write(multi, path.join(work, "multi-context"), serverEntry()))
    expect(multiInfo.backbones).toEqual(["onnx:mobilenetv2-int8", "tfjs:darknet-tiny"])
    expect(multiInfo.files).toContain("models/mobilenetv2-12-int8-onnx/mobilenetv2-12-int8-embedding.onnx")
    expect(multiInfo.files).toContain("models/darknet-tiny-tfjs/model.json")
    expect(Object.keys(multiInfo.dependencies).sort()).toEqual(
      ["@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm", "onnxruntime-node", "sharp"]
    )
  })

  it("writes only over an earlier context: a folder of unrelated files or a bundle is refused, untouched", async () => {
    const mine = path.join(work, "mine")
    fs.mkdirSync(mine)
    fs.writeFileSync(path.join(mine, "Dockerfile"), "FROM my-own-image\n")
    for (const target of [mine, bundle]) {
      const before = fs.readdirSync(target).sort().map((f) => [f, fs.readFileSync(path.join(target, f), "utf8")])
      const error = await run(Effect.flip(DockerContext.write(bundle, target, serverEntry())))
      expect(error).toMatchObject({ _tag: "DeployError", reason: "ExportFailed", file: target })
      expect(fs.readdirSync(target).sort().map((f) => [f, fs.readFileSync(path.join(target, f), "utf8")])).toEqual(before)
    }
    // The context the serving test ran in holds its keys/ folder now: that is the user's, so it is not replaced.
    expect(fs.existsSync(path.join(context, "keys"))).toBe(true)
    const keys = await run(Effect.flip(DockerContext.write(bundle, context, serverEntry())))
    expect(keys.message).toMatch(/holds keys, which Loupe did not write there/)
    expect(fs.existsSync(path.join(context, "keys"))).toBe(true)
    // An earlier context holding only what Loupe wrote is replaced, with nothing left beside it.
    const second = path.join(work, "second")
    await run(DockerContext.write(bundle, second, serverEntry(), { port: 8080 }))
    const again = await run(DockerContext.write(bundle, second, serverEntry(), { port: 9090 }))
    expect(again.files).toEqual(info.files)
    expect(fs.readFileSync(path.join(second, "Dockerfile"), "utf8")).toContain("EXPOSE 9090")
    expect(fs.readdirSync(work).filter((e) => e.startsWith("second."))).toEqual([])
  })

  it("refuses a bundle whose backbone the image cannot run, naming it", async () => {
    const foreign = path.join(work, "foreign")
    fs.cpSync(bundle, foreign, { recursive: true })
    const manifest = JSON.parse(fs.readFileSync(path.join(foreign, "manifest.json"), "utf8"))
    fs.writeFileSync(path.join(foreign, "manifest.json"), JSON.stringify({ ...manifest, backbone: { ...manifest.backbone, id: "user:my-backbone" } }))
    const error = await run(Effect.flip(DockerContext.write(foreign, path.join(work, "foreign-context"), serverEntry())))
    expect(error.reason).toBe("NotExportable")
    expect(error.field).toBe("backbone.id")
    expect(error.message).toMatch(/user:my-backbone/)
    expect(fs.existsSync(path.join(work, "foreign-context"))).toBe(false)
  })
})
