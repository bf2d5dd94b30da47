// Hub models of the catalog pulled from a loopback hub that answers like huggingface.co: pull, verify, cache,
// revisions, redirects, 404s, a broken-off download resumed, a corrupted one refused, a tampered cache refused.
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { LoupeConfig, Registry } from "@loupe/core"
import { Catalog, Conformance, Download } from "@loupe/backbones"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { preprocessFromConfig } from "../src/internal/HfPreprocess.js"
import { hubModelFiles, preprocessorConfig } from "./fixtures/hubModels.js"
import { commitOf, serveHub } from "./fixtures/hubServer.js"
import { sharedDir } from "../../../test/fixtures/shared.mjs"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-hub-pull-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

const dino = "Xenova/dinov2-small"
const clip = "Xenova/clip-vit-base-patch32"
const v1 = commitOf("dinov2 v1")
const v2 = commitOf("dinov2 v2")
const dinoV1 = hubModelFiles("dinov2", 384)
// v2 changes config.json only.
const configV2 = { ...JSON.parse(new TextDecoder().decode(dinoV1.get("config.json"))), note: "v2" }
const dinoV2 = new Map(dinoV1).set("config.json", new TextEncoder().encode(JSON.stringify(configV2)))
const repos = {
  "Xenova/config-only": { commits: { [commitOf("config-only")]: new Map([["config.json", dinoV1.get("config.json")!]]) }, refs: { main: commitOf("config-only") } },
  [dino]: { commits: { [v1]: dinoV1, [v2]: dinoV2 }, refs: { main: v1, "v1.0": v1 } },
  [clip]: { commits: { [commitOf("clip")]: hubModelFiles("clip", 512) }, refs: { main: commitOf("clip") } }
}

let runs = 0
/** A registry of the built-ins (with `hf:` resolution) under a fresh cache folder. */
const setup = (options: { offline?: boolean; modelsDir?: string } = {}) => {
  const cacheDir = path.join(tmp, `cache-${++runs}`)
  const layer = Layer.mergeAll(
    Registry.Registry.layer({ backbones: Catalog.builtins, resolveBackbone: Catalog.resolveBackbone }),
    LoupeConfig.LoupeConfig.layer({ cacheDir, offline: options.offline ?? false, modelsDir: options.modelsDir })
  )
  return { cacheDir, layer }
}
const folderOf = (cacheDir: string, repo: string, revision = "main") => path.join(cacheDir, "transformers", ...repo.split("/"), revision)

const statusOf = (id: string) => Effect.map(Download.list, (rows) => rows.find((r) => r.id === id)!.status)

describe("hub models from a loopback hub", () => {
  it.scopedLive("pull downloads into the cache with each file verified and recorded; a load checks them offline", () =>
    Effect.gen(function*() {
      const hub = yield* serveHub(repos)
      const { cacheDir, layer } = setup()
      const id = "hf:Xenova/dinov2-small"
      expect(yield* statusOf(id).pipe(Effect.provide(layer))).toBe("remote")
      const pulled = yield* Download.pull(id, { backboneOptions: { hubUrl: hub.url } }).pipe(Effect.provide(layer))
      const folder = folderOf(cacheDir, dino)
      expect(pulled).toMatchObject({ id, path: folder, downloaded: true, hub: { commit: v1 } })
      expect(pulled.hub!.files.map((f) => f.file).sort()).toEqual(["config.json", "onnx/model.onnx", "preprocessor_config.json"])
      for (const f of pulled.hub!.files) {
        const bytes = fs.readFileSync(path.join(folder, f.file))
        expect(f.bytes).toBe(bytes.byteLength)
        expect(f.sha256).toBe(createHashHex(bytes))
      }
      // The LFS file came through the CDN redirect; the small files straight from resolve.
      expect(hub.requests).toContain(`HEAD /${dino}/resolve/main/onnx/model.onnx`)
      expect(hub.requests.some((r) => r.startsWith("GET /cdn/"))).toBe(true)
      expect(yield* statusOf(id).pipe(Effect.provide(layer))).toBe("cached")

      // Again: nothing fetched.
      const before = hub.requests.length
      const again = yield* Download.pull(id, { backboneOptions: { hubUrl: hub.url } }).pipe(Effect.provide(layer))
      expect(again.downloaded).toBe(false)
      expect(again.sha256).toBe(pulled.sha256)
      expect(hub.requests.length).toBe(before)

      // Offline: loads from the cache, with the preprocessing read from the model's own preprocessor_config.json.
      const offline = Layer.mergeAll(
        Registry.Registry.layer({ backbones: Catalog.builtins }),
        LoupeConfig.LoupeConfig.layer({ cacheDir, offline: true })
      )
      const loaded = yield* Registry.loadBackbone(id).pipe(Effect.provide(offline))
      expect(loaded.info.embeddingSize).toBe(384)
      expect(loaded.info.preprocess).toEqual(yield* preprocessFromConfig(preprocessorConfig("dinov2")))
      expect(loaded.weightsHash).toBe(pulled.sha256)

      // A cached file changed after the pull is refused at load, naming it.
      fs.appendFileSync(path.join(folder, "onnx/model.onnx"), "x")
      const tampered = yield* Effect.flip(Registry.loadBackbone(id).pipe(Effect.provide(offline)))
      expect(tampered.message).toContain(`${path.join(folder, "onnx/model.onnx")} is not the file pulled from ${dino}@main`)
      expect((tampered.cause as { reason?: string }).reason).toBe("ChecksumMismatch")
    }))

  it.scopedLive("a revision (tag or commit) has its own cache folder; unknown repos, revisions and files are named", () =>
    Effect.gen(function*() {
      const hub = yield* serveHub(repos)
      const { cacheDir, layer } = setup()
      const opts = { backboneOptions: { hubUrl: hub.url } }
      const tag = yield* Download.pull(`hf:${dino}@v1.0`, opts).pipe(Effect.provide(layer))
      expect(tag).toMatchObject({ path: folderOf(cacheDir, dino, "v1.0"), hub: { commit: v1 } })
      const pinned = yield* Download.pull(`hf:${dino}@${v2}`, opts).pipe(Effect.provide(layer))
      expect(pinned).toMatchObject({ path: folderOf(cacheDir, dino, v2), hub: { commit: v2 } })
      const configSha = (p: typeof pinned) => p.hub!.files.find((f) => f.file === "config.json")!.sha256
      expect(configSha(pinned)).not.toBe(configSha(tag))

      const failure = (id: string) => Effect.flip(Download.pull(id, opts).pipe(Effect.provide(layer)))
      expect((yield* failure(`hf:${dino}@nope`)).message).toMatch(/HTTP 404 Not Found \(RevisionNotFound\)/)
      expect((yield* failure("hf:Xenova/no-such-model")).message).toMatch(/HTTP 401 Unauthorized \(RepositoryNotFound\)/)
      expect((yield* failure("hf:Xenova/config-only")).message).toMatch(/HTTP 404 Not Found \(EntryNotFound\)/)
    }))

  it.scopedLive("follows a renamed repository's redirect", () =>
    Effect.gen(function*() {
      const hub = yield* serveHub(repos, { "facebook-old/dinov2-small": dino })
      const { layer } = setup()
      const pulled = yield* Download.pull("hf:facebook-old/dinov2-small", { backboneOptions: { hubUrl: hub.url } }).pipe(Effect.provide(layer))
      expect(pulled.hub!.commit).toBe(v1)
      expect(hub.requests).toContain(`HEAD /${dino}/resolve/main/config.json`)
    }))

  it.scopedLive("a broken-off download is resumed with a Range request; a corrupted one is refused and not kept", () =>
    Effect.gen(function*() {
      const hub = yield* serveHub(repos)
      const { cacheDir, layer } = setup()
      const id = `hf:${clip}`
      const opts = { backboneOptions: { hubUrl: hub.url } }
      const weights = path.join(folderOf(cacheDir, clip), "onnx/vision_model.onnx")
      hub.breakOnce(`${clip}/onnx/vision_model.onnx`)
      const broken = yield* Effect.flip(Download.pull(id, opts).pipe(Effect.provide(layer)))
      expect(broken.message).toContain("broke off")
      expect(fs.existsSync(weights)).toBe(false)
      const partial = fs.statSync(`${weights}.incomplete`).size
      expect(partial).toBeGreaterThan(0)

      const resumed = yield* Download.pull(id, opts).pipe(Effect.provide(layer))
      expect(resumed.downloaded).toBe(true)
      expect(fs.existsSync(`${weights}.incomplete`)).toBe(false)
      const full = hubModelFiles("clip", 512).get("onnx/vision_model.onnx")!
      expect(createHashHex(fs.readFileSync(weights))).toBe(createHashHex(full))
      expect(partial).toBeLessThan(full.byteLength)
      expect(hub.requests.filter((r) => r.endsWith(`bytes=${partial}-`))).toHaveLength(1)

      const other = setup()
      hub.corrupt(`${clip}/onnx/text_model.onnx`)
      hub.corrupt(`${clip}/onnx/vision_model.onnx`)
      const refused = yield* Effect.flip(Download.pull(id, opts).pipe(Effect.provide(other.layer)))
      expect((refused.cause as { reason?: string } | undefined)?.reason ?? (refused as { reason?: string }).reason).toBe("ChecksumMismatch")
      expect(refused.message).toMatch(/has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}; nothing was kept/)
      const folder = folderOf(other.cacheDir, clip)
      expect(fs.readdirSync(path.join(folder, "onnx"))).toEqual([])
      const record = JSON.parse(fs.readFileSync(path.join(folder, ".loupe-pull.json"), "utf8"))
      expect(Object.keys(record.files)).not.toContain("onnx/vision_model.onnx")
    }))

  it.scopedLive("two pulls of one model at once both succeed, and the files are the verified ones", () =>
    Effect.gen(function*() {
      const hub = yield* serveHub(repos)
      const { cacheDir, layer } = setup()
      const pull = Download.pull(`hf:${clip}`, { backboneOptions: { hubUrl: hub.url } }).pipe(Effect.provide(layer))
      const [a, b] = yield* Effect.all([pull, pull], { concurrency: 2 })
      expect(a.sha256).toBe(b.sha256)
      const folder = folderOf(cacheDir, clip)
      const published = hubModelFiles("clip", 512)
      expect(b.hub!.files.map((f) => f.file).sort()).toEqual(["config.json", "onnx/vision_model.onnx", "preprocessor_config.json"])
      for (const { file } of b.hub!.files) {
        expect(createHashHex(fs.readFileSync(path.join(folder, file)))).toBe(createHashHex(published.get(file)!))
      }
      // No temp file is left behind.
      expect(fs.readdirSync(path.join(folder, "onnx"))).toEqual(["vision_model.onnx"])
    }))

  it.scopedLive("the conformance suite runs on a catalog model once its weights are here", () =>
    Effect.gen(function*() {
      const hub = yield* serveHub(repos)
      const { cacheDir, layer } = setup()
      yield* Download.pull("hf:Xenova/dinov2-small", { backboneOptions: { hubUrl: hub.url } }).pipe(Effect.provide(layer))
      const test = path.join(sharedDir, "datasets/cats-vs-dogs/test")
      const images = ["cats", "dogs"].flatMap((label) =>
        fs.readdirSync(path.join(test, label)).sort().slice(0, 2).map((f) => path.join(test, label, f))
      )
      const plugin = Catalog.builtins.find((p) => p.info.id === "hf:Xenova/dinov2-small")!
      const [report] = yield* Conformance.run([plugin], { cacheDir, offline: true }, { images })
      expect(report!.status, Conformance.format([report!])).toBe("passed")
    }))
})

const createHashHex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
