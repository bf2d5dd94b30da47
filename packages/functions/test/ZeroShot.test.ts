// Zero-shot before the first label, over HTTP (`loupe serve` in process): a function whose backbone has a text tower
// (the fixture CLIP model, whose text tower points each colour name where plain images of that colour lie) answers
// invoke from its label names with `mode: "zero-shot"`; one whose backbone has none says it is not trained; and once
// samples arrive, the zero-shot and Tip-Adapter heads compete in the search like every head.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { DiskEmbeddingCache, LoupeConfig, Registry } from "@loupe/core"
import { TransformersBackbone } from "@loupe/backbones"
import { Plugins } from "@loupe/cli"
import { ApiKeys, Server as DeployServer } from "@loupe/deploy"
import { Server, Store } from "@loupe/functions"
import type { AutoML, Retrainer } from "@loupe/functions"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { writeColourFolder } from "../../backbones/test/fixtures/colourImages.js"
import { colours, writeHubModel } from "../../backbones/test/fixtures/hubModels.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-zero-shot-serve-"))
const store = path.join(work, "store")
const clip = "transformers:fixture-clip"
const dinov2 = "transformers:fixture-dinov2"
const labels = ["red", "green", "blue", "yellow"]

let scope: Scope.CloseableScope
let base = ""
let token = ""
let photos: Record<string, Array<string>> = {}

beforeAll(async () => {
  const config = LoupeConfig.LoupeConfig.layer({ cacheDir: path.join(work, "cache"), offline: true })
  const backbones = await Effect.runPromise(
    Effect.all([
      TransformersBackbone.make({ id: clip, model: writeHubModel(path.join(work, "clip"), "clip") }),
      TransformersBackbone.make({ id: dinov2, model: writeHubModel(path.join(work, "dinov2"), "dinov2") })
    ]).pipe(Effect.provide(config))
  )
  const environment = Layer.mergeAll(
    config,
    DiskEmbeddingCache.layer().pipe(Layer.provide(config)),
    Registry.Registry.layer({ backbones: [...Plugins.builtins.backbones!, ...backbones], heads: Plugins.builtins.heads! }),
    NodeFileSystem.layer
  )
  photos = await writeColourFolder(path.join(work, "photos"), colours, 4)
  token = (await Effect.runPromise(Effect.flatMap(ApiKeys.make(ApiKeys.fileIn(store)), (k) => k.create("tests")).pipe(Effect.provide(NodeFileSystem.layer)))).token
  scope = Effect.runSync(Scope.make())
  const serving = Server.layer({ store, port: 0, debounce: "100 millis", capture: { lowConfidence: 0, rareClassShare: 0, randomFraction: 0, perMinute: 60 } })
    .pipe(Layer.provide(environment))
  const context = await Effect.runPromise(Layer.buildWithScope(serving, scope))
  base = Effect.runSync(Effect.provide(DeployServer.url, Context.pick(HttpServer.HttpServer)(context)))
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  fs.rmSync(work, { recursive: true, force: true })
})

const api = async (method: string, route: string, body?: unknown) => {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await response.text()
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) }
}
const dataUri = (file: string) => `data:image/${file.endsWith(".png") ? "png" : "jpeg"};base64,${fs.readFileSync(file).toString("base64")}`

const createFunction = async (name: string, backbone: string) => {
  const created = await api("POST", "/v1/functions", { name, preset: "balanced", overrides: { backbones: { ids: [backbone] }, folds: 3 } })
  expect(created.status).toBe(201)
  for (const name of labels) expect((await api("POST", `/v1/functions/${created.body.id}/labels`, { name })).status).toBe(201)
  return created.body.id as string
}

describe("zero-shot invoke", () => {
  let fn = ""

  it("a function with labels and no samples answers from its label names, and says so", async () => {
    fn = await createFunction("Colours", clip)
    const labelIds = new Map<string, string>((await api("GET", `/v1/functions/${fn}/labels`)).body.map((l: { name: string; id: string }) => [l.name, l.id]))
    for (const label of labels) {
      for (const photo of photos[label]!.slice(0, 2)) {
        const result = await api("POST", `/v1/functions/${fn}/invoke`, { data: dataUri(photo) })
        expect(result.status).toBe(200)
        expect(result.body).toMatchObject({ labelName: label, labelId: labelIds.get(label), mode: "zero-shot", modelId: `zero-shot:${clip}` })
        expect(result.body.labelConfidences).toHaveLength(4)
        expect(result.body.labelConfidences.reduce((s: number, c: { confidence: number }) => s + c.confidence, 0)).toBeCloseTo(1, 5)
      }
    }
    // A new label is answered at once.
    await api("POST", `/v1/functions/${fn}/labels`, { name: "purple" })
    const five = await api("POST", `/v1/functions/${fn}/invoke?labelCount=2`, { data: dataUri(photos["blue"]![0]!) })
    expect(five.body).toMatchObject({ labelName: "blue", mode: "zero-shot" })
    expect(five.body.labelConfidences).toHaveLength(2)
    await api("DELETE", `/v1/functions/${fn}`)
  })

  it("without a text tower, the function is not trained yet (409)", async () => {
    const imageOnly = await createFunction("ImageOnly", dinov2)
    const result = await api("POST", `/v1/functions/${imageOnly}/invoke`, { data: dataUri(photos["red"]![0]!) })
    expect(result.status).toBe(409)
    expect(result.body.message).toContain("is not trained yet")
  })

  it("once samples arrive, the search cross-validates the zero-shot and Tip-Adapter candidates, and the model answers", async () => {
    fn = await createFunction("ColoursTrained", clip)
    for (const label of labels) {
      for (const photo of photos[label]!.slice(0, 3)) {
        expect((await api("POST", `/v1/functions/${fn}/samples`, { data: dataUri(photo), annotation: { labelName: label } })).status).toBe(201)
      }
    }
    const deadline = Date.now() + 120_000
    let detail = (await api("GET", `/v1/functions/${fn}`)).body
    while (detail.model === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200))
      detail = (await api("GET", `/v1/functions/${fn}`)).body
    }
    expect(detail.model).not.toBeNull()
    // The leaderboard is kept with the model version in the store.
    const [version] = await Effect.runPromise(
      Effect.flatMap(Store.Store, (s) => s.listModelVersions(fn)).pipe(Effect.provide(Store.layerSqlite(store)), Effect.provide(NodeFileSystem.layer))
    )
    const leaderboard = (version!.metrics as Retrainer.ModelMetrics).leaderboard as ReadonlyArray<AutoML.LeaderboardRow>
    const kinds = leaderboard.map((row) => row.candidate.head.kind)
    expect(kinds).toContain("zero-shot")
    expect(kinds).toContain("tip-adapter")
    const zeroShot = leaderboard.find((row) => row.candidate.head.kind === "zero-shot")
    expect(zeroShot).toMatchObject({ accuracy: 1, candidate: { backbone: clip } })
    const result = await api("POST", `/v1/functions/${fn}/invoke`, { data: dataUri(photos["green"]![3]!) })
    expect(result.body).toMatchObject({ labelName: "green", modelId: detail.model.id })
    expect(result.body.mode).toBeUndefined()
  })
})
