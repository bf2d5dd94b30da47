// A function's data insights end to end, on a store built from shared cats-vs-dogs photos (12 + 12, two of them
// filed under the wrong label, a copy of one with other bytes, and two unlabelled samples, as captured invocations
// are, one of them a flower): through `Functions.insights`, then through `GET /v1/functions/:id/insights` of
// `loupe serve` on the same store.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Layer } from "effect"
import { Functions } from "@loupe/functions"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { sharedDir } from "../../../test/fixtures/shared.mjs"
import { catsVsDogsPhotos, functionsEnvironment, serveStore } from "./fixtures/environment.js"
import { withComment } from "../../../test/fixtures/jpeg.mjs"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-insights-"))
const store = path.join(work, "store")
const environment = functionsEnvironment(path.join(work, "cache"))

const cats = catsVsDogsPhotos("train", "cats", 0, 12)
const dogs = catsVsDogsPhotos("train", "dogs", 0, 12)
const flowers = path.join(sharedDir, "datasets/flowers-5/train/daisy")
const flower = path.join(flowers, fs.readdirSync(flowers).sort()[3]!)
const unlabelledCat = catsVsDogsPhotos("test", "cats", 0, 1)[0]!

/** Sample ids by what they are, filled in as the store is built. */
const ids = { wrong: [] as Array<string>, original: "", copy: "", flower: "", unlabelledCat: "" }
let functionId = ""
let tooFewId = ""
let found: Functions.FunctionInsights

const functionsIn = Functions.layerDirectory(store, { debounce: "100 millis" }).pipe(Layer.provide(environment))

beforeAll(async () => {
  await Effect.gen(function*() {
    const functions = yield* Functions.Functions
    const fn = yield* functions.create("IsCatOrDog", { preset: "fast", overrides: { folds: 3 } })
    functionId = fn.id
    // Two labels corrupted on purpose: the last cat filed as a dog, the last dog as a cat.
    const added = yield* functions.createSamples(fn.id, [
      ...cats.slice(0, 11).map((data) => ({ data, label: "cats" })),
      ...dogs.slice(0, 11).map((data) => ({ data, label: "dogs" })),
      { data: cats[11]!, label: "dogs" },
      { data: dogs[11]!, label: "cats" },
      { data: withComment(cats[0]!), label: "cats" },
      // The same bytes again: the function keeps one sample of them.
      { data: cats[1]!, label: "cats" },
      { data: flower },
      { data: unlabelledCat }
    ])
    expect(added[25]!.sample.id).toBe(added[1]!.sample.id)
    ids.wrong = [added[22]!.sample.id, added[23]!.sample.id]
    ids.original = added[0]!.sample.id
    ids.copy = added[24]!.sample.id
    ids.flower = added[26]!.sample.id
    ids.unlabelledCat = added[27]!.sample.id
    yield* functions.awaitTrained(fn.id)
    found = yield* functions.insights(fn.id)

    const tooFew = yield* functions.create("TooFew", { preset: "fast" })
    tooFewId = tooFew.id
    yield* functions.createSamples(tooFew.id, [{ data: cats[0]!, label: "cats" }, { data: cats[1]!, label: "cats" }, { data: dogs[0]!, label: "dogs" }])
  }).pipe(Effect.provide(functionsIn), Effect.runPromise)
}, 300_000)

describe("Functions.insights", () => {
  it("embeds with the serving model's backbone and counts every sample, annotated or not", () => {
    expect(found.functionId).toBe(functionId)
    expect(found.modelId).toMatch(/^model_/)
    expect(found.backbone).toBe("onnx:mobilenetv2-int8")
    expect(found.images).toBe(27)
    expect(found.health.unlabelled).toBe(2)
    expect(found.health.perLabel.map((l) => [l.label, l.count])).toEqual([["cats", 13], ["dogs", 12]])
    expect(found.skipped).toEqual([])
  })

  it("names both wrongly labelled samples among the top suspects, with their true label", () => {
    const top = found.suspects!.slice(0, 4)
    expect(top.find((s) => s.id === ids.wrong[0])).toMatchObject({ given: "dogs", suggested: "cats" })
    expect(top.find((s) => s.id === ids.wrong[1])).toMatchObject({ given: "cats", suggested: "dogs" })
  })

  it("finds the copy with other bytes as a near-duplicate of its original, by sample id", () => {
    const pair = found.duplicates.find((d) => [d.a, d.b].includes(ids.copy))!
    expect([pair.a, pair.b].sort()).toEqual([ids.original, ids.copy].sort())
    expect(pair).toMatchObject({ kind: "near", labelA: "cats", labelB: "cats", conflict: false })
    expect(pair.similarity).toBeGreaterThan(0.99)
    // Only identical bytes share a fold: this copy was held out in another fold than its original, a leak.
    expect(pair.leak).toBe("fold")
  })

  it("flags the unlabelled flower as an outlier, and not the unlabelled cat", () => {
    const outliers = found.outliers.map((o) => o.id)
    expect(outliers).toContain(ids.flower)
    expect(outliers).not.toContain(ids.unlabelledCat)
  })

  it("refuses a function with too few annotated samples, naming the reason", async () => {
    const error = await Effect.runPromise(
      Effect.flip(Effect.flatMap(Functions.Functions, (f) => f.insights(tooFewId))).pipe(Effect.provide(functionsIn))
    )
    expect(error).toMatchObject({ reason: "TooFewSamples", field: "functionId" })
    expect(error.message).toContain(`"dogs" (1 annotated sample)`)
  }, 180_000)
})

describe("GET /v1/functions/:id/insights", () => {
  let served: Awaited<ReturnType<typeof serveStore>>
  let base = ""
  let token = ""

  beforeAll(async () => {
    served = await serveStore(store, path.join(work, "cache"))
    base = served.base
    token = served.token
  }, 180_000)

  afterAll(async () => {
    await served.close()
  })

  const get = async (route: string, key = token) => {
    const response = await fetch(`${base}${route}`, { headers: { authorization: `Bearer ${key}` } })
    return { status: response.status, body: (await response.json()) as any }
  }

  it("answers what Functions.insights found, each sample by id", async () => {
    const { body, status } = await get(`/v1/functions/${functionId}/insights`)
    expect(status).toBe(200)
    expect(body).toMatchObject({ functionId, backbone: found.backbone, modelId: found.modelId, images: 27, labels: ["cats", "dogs"] })
    expect(body.suspects.map((s: any) => [s.sampleId, s.suggested])).toEqual(found.suspects!.map((s) => [s.id, s.suggested]))
    expect(body.duplicates.map((d: any) => [d.sampleIdA, d.sampleIdB, d.kind])).toEqual(found.duplicates.map((d) => [d.a, d.b, d.kind]))
    expect(body.outliers.map((o: any) => o.sampleId)).toEqual(found.outliers.map((o) => o.id))
    expect(body.health).toEqual(found.health)
  }, 300_000)

  it("needs an API key, answers 404 for an unknown function and 409 TooFewSamples for too few samples", async () => {
    expect((await get(`/v1/functions/${functionId}/insights`, "nope")).status).toBe(401)
    const unknown = await get("/v1/functions/function_0123456789abcdef/insights")
    expect(unknown.status).toBe(404)
    const tooFew = await get(`/v1/functions/${tooFewId}/insights`)
    expect(tooFew.status).toBe(409)
    expect(tooFew.body).toMatchObject({ reason: "TooFewSamples", field: "functionId" })
    expect(tooFew.body.message).toContain("at least 2 labels with at least 2 annotated samples")
  }, 180_000)

  it("is in the OpenAPI document", async () => {
    const response = await fetch(`${base}/openapi.json`)
    const spec: any = await response.json()
    expect(spec.paths["/v1/functions/{functionId}/insights"].get.responses["409"]).toBeDefined()
    expect(spec.components.schemas.Insights).toBeDefined()
  })
})
