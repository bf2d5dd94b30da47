import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { LoupeConfig, Preprocess, Registry } from "@loupe/core"
import { BackboneError, Catalog, Download, OnnxBackbone } from "@loupe/backbones"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { serve, serveFiles, serveNothing } from "./fixtures/server.js"
import { modelsDir, sharedDir } from "../../../test/fixtures/shared.mjs"

const weights = fs.readFileSync(path.join(modelsDir, "mobilenetv2-12-int8-onnx/mobilenetv2-12-int8-embedding.onnx"))
const sha256 = createHash("sha256").update(weights).digest("hex")
const file = "mobilenetv2-int8-embedding.onnx"
const id = "onnx:mobilenetv2-int8-url"
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-download-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

const urlPlugin = (url: string, sha = sha256, name = file) =>
  OnnxBackbone.plugin({ ...Catalog.mobilenetV2Int8, id, weights: { _tag: "Url", url, sha256: sha, file: name } })

const setup = (url: string, options: { sha?: string; name?: string; offline?: boolean } = {}) => {
  const cacheDir = fs.mkdtempSync(path.join(tmp, "cache-"))
  const layer = Layer.mergeAll(
    Registry.Registry.layer({ backbones: [...Catalog.builtins, urlPlugin(url, options.sha, options.name)] }),
    LoupeConfig.LoupeConfig.layer({ modelsDir, cacheDir, offline: options.offline ?? false })
  )
  return { cacheDir, folder: path.join(cacheDir, "models"), layer }
}

/** Files left in a folder (none when it was never created). */
const leftIn = (folder: string) => (fs.existsSync(folder) ? fs.readdirSync(folder) : [])

describe("Download.pull", () => {
  it.scopedLive("downloads, verifies and places the file; a second pull downloads nothing; the backbone then loads", () =>
    Effect.gen(function*() {
      const server = yield* serveFiles(new Map([["/weights/model.onnx", weights]]))
      const { folder, layer } = setup(`${server.url}/weights/model.onnx`)
      const first = yield* Download.pull(id).pipe(Effect.provide(layer))
      expect(first).toEqual({ id, path: path.join(folder, file), sha256, bytes: weights.byteLength, downloaded: true })
      expect(leftIn(folder)).toEqual([file])
      const again = yield* Download.pull(id).pipe(Effect.provide(layer))
      expect(again.downloaded).toBe(false)
      expect(server.requests).toEqual(["/weights/model.onnx"])

      const listed = (yield* Download.list.pipe(Effect.provide(layer))).find((m) => m.id === id)
      expect(listed).toMatchObject({ present: true, pullable: true, source: `url: ${server.url}/weights/model.onnx`, localPath: first.path })

      const vector = yield* Effect.gen(function*() {
        const backbone = yield* Registry.loadBackbone(id)
        const photo = path.join(sharedDir, "datasets/cats-vs-dogs/test/cats", fs.readdirSync(path.join(sharedDir, "datasets/cats-vs-dogs/test/cats")).sort()[0]!)
        const rgb = yield* Preprocess.loadRgb(photo, backbone.info.preprocess)
        return yield* backbone.embedBatch(Preprocess.toTensor([rgb], backbone.info.preprocess), 1)
      }).pipe(Effect.provide(layer))
      expect(vector.length).toBe(1280)
      expect(vector.every(Number.isFinite)).toBe(true)
    }))

  it.scopedLive("a wrong checksum is an error and leaves no file behind", () =>
    Effect.gen(function*() {
      const server = yield* serveFiles(new Map([["/m.onnx", weights]]))
      const { folder, layer } = setup(`${server.url}/m.onnx`, { sha: "0".repeat(64) })
      const error = yield* Effect.flip(Download.pull(id).pipe(Effect.provide(layer)))
      expect(error).toBeInstanceOf(BackboneError.BackboneError)
      expect(error).toMatchObject({ reason: "ChecksumMismatch", field: id })
      expect(error.message).toContain(`has sha256 ${sha256}, expected ${"0".repeat(64)}; nothing was kept`)
      expect(leftIn(folder)).toEqual([])
    }))

  it.scopedLive("a server 404, a body cut short and a server that never answers are clear errors that leave nothing", () =>
    Effect.gen(function*() {
      const notFound = yield* serveFiles(new Map())
      const missing = setup(`${notFound.url}/gone.onnx`)
      const error404 = yield* Effect.flip(Download.pull(id).pipe(Effect.provide(missing.layer)))
      expect(error404).toMatchObject({ reason: "DownloadFailed", field: id })
      expect(error404.message).toBe(`Cannot download ${notFound.url}/gone.onnx for ${id}: HTTP 404 Not Found`)
      expect(leftIn(missing.folder)).toEqual([])

      const cut = yield* serve((_, res) => {
        res.writeHead(200, { "content-length": weights.byteLength })
        res.write(weights.subarray(0, 100_000), () => res.destroy())
      })
      const short = setup(`${cut.url}/m.onnx`)
      const errorCut = yield* Effect.flip(Download.pull(id).pipe(Effect.provide(short.layer)))
      expect(errorCut.message).toContain(`Download of ${cut.url}/m.onnx for ${id} broke off`)
      expect(leftIn(short.folder)).toEqual([])

      const hanging = yield* serveNothing
      const silent = setup(`${hanging.url}/m.onnx`)
      const started = Date.now()
      const errorSilent = yield* Effect.flip(Download.pull(id, { responseTimeoutMs: 300 }).pipe(Effect.provide(silent.layer)))
      expect(Date.now() - started).toBeLessThan(1000)
      expect(errorSilent.message).toBe(`Cannot download ${hanging.url}/m.onnx for ${id}: no response within 300 ms`)
      expect(leftIn(silent.folder)).toEqual([])
    }))

  it.scopedLive("offline mode is a clear error and makes no request; a corrupt copy is replaced", () =>
    Effect.gen(function*() {
      const server = yield* serveFiles(new Map([["/m.onnx", weights]]))
      const offline = setup(`${server.url}/m.onnx`, { offline: true })
      const error = yield* Effect.flip(Download.pull(id).pipe(Effect.provide(offline.layer)))
      expect(error).toMatchObject({ reason: "Offline" })
      expect(error.message).toContain(`Put the file at ${path.join(offline.folder, file)} (sha256 ${sha256})`)
      expect(server.requests).toEqual([])

      const corrupt = setup(`${server.url}/m.onnx`)
      fs.mkdirSync(corrupt.folder, { recursive: true })
      fs.writeFileSync(path.join(corrupt.folder, file), "not the model")
      const pulled = yield* Download.pull(id).pipe(Effect.provide(corrupt.layer))
      expect(pulled).toMatchObject({ downloaded: true, sha256 })
      expect(fs.readFileSync(pulled.path).equals(weights)).toBe(true)
    }))

  it.scopedLive("refuses unknown ids, sources that are not URLs, and file names that leave the cache folder", () =>
    Effect.gen(function*() {
      const { layer } = setup("http://127.0.0.1:9/m.onnx", { name: "../escape.onnx" })
      const unknown = yield* Effect.flip(Download.pull("onnx:nope").pipe(Effect.provide(layer)))
      expect(unknown).toMatchObject({ _tag: "CoreError", reason: "UnknownPlugin" })
      const local = yield* Effect.flip(Download.pull("tfjs:darknet-tiny").pipe(Effect.provide(layer)))
      expect(local.message).toBe("tfjs:darknet-tiny has nothing to pull: its weights come from models dir: darknet-tiny-tfjs")
      const escape = yield* Effect.flip(Download.pull(id).pipe(Effect.provide(layer)))
      expect(escape.message).toContain(`the weights file name "../escape.onnx" must stay inside the cache folder`)
    }))
})

describe("Download.listModels", () => {
  it.effect("lists every backbone with its source and whether its weights are here", () =>
    Effect.gen(function*() {
      const cacheDir = fs.mkdtempSync(path.join(tmp, "list-"))
      const plugins = [...Catalog.builtins, urlPlugin("https://example.org/m.onnx")]
      const rows = yield* Download.listModels(plugins, { modelsDir, cacheDir, offline: false })
      expect(rows.map((r) => r.id)).toEqual(plugins.map((p) => p.info.id))
      expect(rows.find((r) => r.id === "tfjs:darknet-tiny")).toEqual({
        id: "tfjs:darknet-tiny",
        runtime: "tfjs",
        description: Catalog.darknetTiny.description,
        embeddingSize: 128,
        tags: ["tfjs", "offline", "imagenet"],
        license: "MIT",
        weights: { _tag: "ModelsDir", path: "darknet-tiny-tfjs" },
        source: "models dir: darknet-tiny-tfjs",
        localPath: path.join(modelsDir, "darknet-tiny-tfjs"),
        present: true,
        status: "present",
        pullable: false
      })
      expect(rows.find((r) => r.id === id)).toMatchObject({ present: false, status: "remote", pullable: true, localPath: path.join(cacheDir, "models", file) })
      expect(rows.find((r) => r.id === "hf:Xenova/dinov2-small")).toMatchObject({
        status: "remote",
        pullable: true,
        embeddingSize: 384,
        license: "Apache-2.0",
        source: "hub: Xenova/dinov2-small@main",
        catalog: { source: Catalog.dinov2Small.source, estimatedMsPerImage: 140 },
        localPath: path.join(cacheDir, "transformers", "Xenova", "dinov2-small", "main")
      })
      const noModelsDir = yield* Download.listModels(plugins, { modelsDir: undefined, cacheDir, offline: false })
      expect(noModelsDir.find((r) => r.id === "tfjs:darknet-tiny")).toMatchObject({ localPath: undefined, present: false, status: "missing" })
  }))
})
