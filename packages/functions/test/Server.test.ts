// `loupe serve` in process: every route of the function API over HTTP on a real store (cats-vs-dogs photos,
// MobileNetV2-int8, the `fast` preset), invoke capture into the review queue, and a retrain under load.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Layer } from "effect"
import { NodeFileSystem } from "@effect/platform-node"
import { Store } from "@loupe/functions"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { catsVsDogsPhotos, serveStore } from "./fixtures/environment.js"

const photos = catsVsDogsPhotos
const dataUri = (file: string) => `data:image/jpeg;base64,${fs.readFileSync(file).toString("base64")}`

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-serve-"))
const store = path.join(work, "store")
let served: Awaited<ReturnType<typeof serveStore>>
let base = ""
let token = ""

beforeAll(async () => {
  served = await serveStore(store, path.join(work, "cache"), {
    debounce: "100 millis",
    rateLimit: { perSecond: 10_000, burst: 10_000 },
    // Capture every invocation (the policy's random fraction is 1), so the review queue is deterministic.
    capture: { lowConfidence: 0, rareClassShare: 0, randomFraction: 1, perMinute: 6000 }
  })
  base = served.base
  token = served.token
})

afterAll(async () => {
  await served.close()
})

const api = async (method: string, route: string, body?: unknown, headers: Record<string, string> = {}) => {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${token}`, ...headers } }
  if (body instanceof FormData) init.body = body
  else if (body !== undefined) {
    init.body = JSON.stringify(body)
    ;(init.headers as Record<string, string>)["content-type"] = "application/json"
  }
  const response = await fetch(`${base}${route}`, init)
  const text = await response.text()
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) }
}

const until = async <A>(probe: () => Promise<A>, done: (a: A) => boolean, timeoutMs = 120_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const value = await probe()
    if (done(value) || Date.now() > deadline) return value
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe("the function API over HTTP", () => {
  let fn = ""
  let modelId = ""
  let captured = ""

  it("creates functions and labels, refusing bad presets and overrides by name", async () => {
    const created = await api("POST", "/v1/functions", { name: "IsCatOrDog", preset: "fast", overrides: { folds: 3 } })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ name: "IsCatOrDog", preset: "fast" })
    fn = created.body.id
    expect((await api("GET", "/v1/functions")).body).toEqual([created.body])

    const badPreset = await api("POST", "/v1/functions", { name: "x", preset: "turbo" })
    expect(badPreset.status).toBe(400)
    const badOverride = await api("POST", "/v1/functions", { name: "x", overrides: { fold: 3 } })
    expect(badOverride.status).toBe(400)
    expect(badOverride.body.message).toMatch(/fold/)

    const cats = await api("POST", `/v1/functions/${fn}/labels`, { name: "cats" })
    expect(cats.status).toBe(201)
    const dogs = await api("POST", `/v1/functions/${fn}/labels`, { name: "dogs", description: "good boys", metadata: { kind: "animal" } })
    expect(dogs.body).toMatchObject({ name: "dogs", description: "good boys", metadata: { kind: "animal" } })
    expect((await api("GET", `/v1/functions/${fn}/labels`)).body.map((l: any) => l.name)).toEqual(["cats", "dogs"])
  })

  it("says 409 NotTrained before there is a model", async () => {
    const early = await api("POST", `/v1/functions/${fn}/invoke`, { data: dataUri(photos("test", "cats", 0, 1)[0]!) })
    expect(early.status).toBe(409)
    expect(early.body).toMatchObject({ _tag: "Conflict", reason: "NotTrained", field: "functionId" })
  })

  it("takes samples as JSON data URIs and as multipart files, deduplicated, and trains by itself", async () => {
    const uploads = await Promise.all([
      ...photos("train", "cats", 0, 5).map((f) => api("POST", `/v1/functions/${fn}/samples`, { data: dataUri(f), annotation: { labelName: "cats" }, externalId: path.basename(f) })),
      ...photos("train", "dogs", 0, 5).map((f) => {
        const form = new FormData()
        form.append("data", new Blob([fs.readFileSync(f)], { type: "image/jpeg" }), path.basename(f))
        form.append("labelName", "dogs")
        return api("POST", `/v1/functions/${fn}/samples`, form)
      })
    ])
    expect(uploads.map((u) => u.status)).toEqual(Array(10).fill(201))
    expect(uploads[0]!.body).toMatchObject({ externalId: "cat.1.jpg", annotation: { labelName: "cats" } })
    expect(uploads[9]!.body.annotation.labelName).toBe("dogs")
    expect(uploads.map((u) => u.body.updated)).toEqual(Array(10).fill([]))
    const again = await api("POST", `/v1/functions/${fn}/samples`, { data: dataUri(photos("train", "cats", 0, 1)[0]!) })
    expect(again.body).toMatchObject({ id: uploads[0]!.body.id, updated: [] })

    const listed = await api("GET", `/v1/functions/${fn}/samples?limit=4&offset=2`)
    expect(listed.body).toHaveLength(4)
    const { updated: _, ...posted } = uploads[3]!.body
    expect((await api("GET", `/v1/functions/${fn}/samples/${uploads[3]!.body.id}`)).body).toEqual(posted)

    const trained = await until(() => api("GET", `/v1/functions/${fn}`), (r) => r.body.model !== null && r.body.training.phase === "idle")
    expect(trained.body.labels).toEqual([
      expect.objectContaining({ name: "cats", sampleCount: 5 }),
      expect.objectContaining({ name: "dogs", sampleCount: 5 })
    ])
    expect(trained.body.model.upToDate).toBe(true)
    modelId = trained.body.model.id
    const metrics = await api("GET", `/v1/functions/${fn}/metrics`)
    expect(metrics.body).toMatchObject({ functionId: fn, modelId, sampleCount: 10 })
    expect(metrics.body.cv.labels).toEqual(["cats", "dogs"])
  })

  it("invokes, captures the invocation into the review queue, and takes it off once annotated", async () => {
    const photo = photos("test", "dogs", 0, 1)[0]!
    const result = await api("POST", `/v1/functions/${fn}/invoke?labelCount=1`, { data: dataUri(photo), externalId: "req-1" })
    expect(result.status).toBe(200)
    expect(result.body).toMatchObject({ modelId, externalId: "req-1" })
    expect(["cats", "dogs"]).toContain(result.body.labelName)
    expect(result.body.labelConfidences).toHaveLength(1)
    expect(typeof result.body.sampleId).toBe("string")
    captured = result.body.sampleId

    const uncaptured = await api("POST", `/v1/functions/${fn}/invoke?capture=false`, { data: dataUri(photos("test", "cats", 1, 1)[0]!) })
    expect(uncaptured.body.sampleId).toBeNull()

    const queue = await api("GET", `/v1/functions/${fn}/captures`)
    expect(queue.body).toEqual([expect.objectContaining({
      sampleId: captured,
      reason: "random",
      labelName: result.body.labelName,
      modelId,
      externalId: "req-1"
    })])
    const sample = await api("GET", `/v1/functions/${fn}/samples/${captured}`)
    expect(sample.body.annotation).toBeNull()

    const annotated = await api("PUT", `/v1/functions/${fn}/samples/${captured}/annotation`, { labelName: "dogs" })
    expect(annotated.body.annotation).toMatchObject({ labelName: "dogs" })
    expect((await api("GET", `/v1/functions/${fn}/captures`)).body).toEqual([])
    // The annotation changed the training data: a retrain follows and a new model is promoted.
    const retrained = await until(() => api("GET", `/v1/functions/${fn}`), (r) => r.body.model.id !== modelId && r.body.training.phase === "idle")
    expect(retrained.body.model.id).not.toBe(modelId)
    expect(retrained.body.labels.find((l: any) => l.name === "dogs").sampleCount).toBe(6)
    modelId = retrained.body.model.id

    const cleared = await api("DELETE", `/v1/functions/${fn}/samples/${captured}/annotation`)
    expect(cleared.body.annotation).toBeNull()
    expect((await api("DELETE", `/v1/functions/${fn}/samples/${captured}`)).status).toBe(204)
    expect((await api("GET", `/v1/functions/${fn}/samples/${captured}`)).body).toMatchObject({ reason: "NotFound", field: "sampleId" })
  })

  it("names the field of bad annotations", async () => {
    const sample = (await api("GET", `/v1/functions/${fn}/samples?limit=1`)).body[0]
    const unknownLabel = await api("PUT", `/v1/functions/${fn}/samples/${sample.id}/annotation`, { labelId: "label_nope" })
    expect(unknownLabel).toMatchObject({ status: 404, body: { reason: "NotFound", field: "annotation.labelId" } })
    const empty = await api("PUT", `/v1/functions/${fn}/samples/${sample.id}/annotation`, {})
    expect(empty.status).toBe(400)
    const noData = await api("POST", `/v1/functions/${fn}/samples`, { annotation: { labelName: "cats" } })
    expect(noData.body).toMatchObject({ reason: "InvalidRequest", field: "data" })
  })

  it("names `data` (not the batch's `samples[0].data`) for a truncated JPEG posted as a sample", async () => {
    const bytes = fs.readFileSync(photos("test", "cats", 0, 1)[0]!)
    const truncated = `data:image/jpeg;base64,${bytes.subarray(0, Math.floor(bytes.length / 2)).toString("base64")}`
    const r = await api("POST", `/v1/functions/${fn}/samples`, { data: truncated })
    expect(r).toMatchObject({ status: 400, body: { reason: "InvalidImage", field: "data" } })
    expect(r.body.message).toMatch(/^data: /)
    expect(r.body.message).not.toContain("samples[0]")
  })

  it("serves every invocation during a retrain and promotion: zero failures, old model then new", async () => {
    const probes = [...photos("test", "cats", 2, 4), ...photos("test", "dogs", 2, 4)].map(dataUri)
    /** Each answer with when its request started and ended. */
    const seen: Array<{ readonly modelId: string; readonly start: number; readonly end: number }> = []
    const failures: Array<unknown> = []
    let stop = false
    const worker = async (w: number) => {
      for (let i = 0; !stop && i < 2000; i++) {
        const start = performance.now()
        const r = await api("POST", `/v1/functions/${fn}/invoke?capture=false`, { data: probes[(w + i) % probes.length] })
        if (r.status !== 200) failures.push(r.body)
        else seen.push({ modelId: r.body.modelId, start, end: performance.now() })
      }
    }
    const load = Promise.all([0, 1, 2, 3].map(worker))
    await new Promise((r) => setTimeout(r, 300))
    const added = await Promise.all(
      [...photos("train", "cats", 10, 2), ...photos("train", "dogs", 10, 2)].map((f, i) =>
        api("POST", `/v1/functions/${fn}/samples`, { data: dataUri(f), annotation: { labelName: i < 2 ? "cats" : "dogs" } }))
    )
    expect(added.map((a) => a.status)).toEqual([201, 201, 201, 201])
    const promoted = await until(() => api("GET", `/v1/functions/${fn}`), (r) => r.body.model.id !== modelId && r.body.training.phase === "idle")
    await new Promise((r) => setTimeout(r, 300))
    stop = true
    await load
    expect(failures).toEqual([])
    const newModel = promoted.body.model.id
    expect(seen.length).toBeGreaterThan(20)
    expect(seen[0]!.modelId).toBe(modelId)
    expect(seen.at(-1)!.modelId).toBe(newModel)
    // Samples that arrive more than the debounce apart may retrain more than once; each promotion is atomic: once a
    // model has answered, a request that starts later never gets an older one.
    const firstAnswer = new Map<string, number>()
    for (const s of seen) firstAnswer.set(s.modelId, Math.min(firstAnswer.get(s.modelId) ?? Infinity, s.end))
    const order = [...firstAnswer].sort((a, b) => a[1] - b[1]).map(([id]) => id)
    expect(order[0]).toBe(modelId)
    expect(order.at(-1)).toBe(newModel)
    const stale = seen.filter((s) => order.some((id, rank) => rank > order.indexOf(s.modelId) && firstAnswer.get(id)! < s.start))
    expect(stale).toEqual([])
  })

  it("answers with any model of the history (modelId), more versions than it keeps predictors for", async () => {
    // Two more retrains: annotate two unlabelled samples, one after the other.
    for (const file of photos("test", "cats", 8, 2)) {
      const sample = (await api("POST", `/v1/functions/${fn}/samples`, { data: dataUri(file) })).body
      const before = (await api("GET", `/v1/functions/${fn}`)).body.model.id
      await api("PUT", `/v1/functions/${fn}/samples/${sample.id}/annotation`, { labelName: "cats" })
      await until(() => api("GET", `/v1/functions/${fn}`), (r) => r.body.model.id !== before && r.body.training.phase === "idle")
    }
    const versions = await Effect.runPromise(
      Effect.flatMap(Store.Store, (s) => s.listModelVersions(fn)).pipe(Effect.provide(Store.layerSqlite(store).pipe(Layer.provide(NodeFileSystem.layer))))
    )
    expect(versions.length).toBeGreaterThan(4)
    const probe = dataUri(photos("test", "dogs", 9, 1)[0]!)
    for (const version of [...versions, versions[0]!, versions.at(-1)!]) {
      const r = await api("POST", `/v1/functions/${fn}/invoke?capture=false&modelId=${version.id}`, { data: probe })
      expect(r.status).toBe(200)
      expect(r.body.modelId).toBe(version.id)
    }
    const unknown = await api("POST", `/v1/functions/${fn}/invoke?modelId=model_nope`, { data: probe })
    expect(unknown).toMatchObject({ status: 404, body: { reason: "NotFound" } })
  })

  it("lists the model versions and promotes one: invocations switch to it at once, and back", async () => {
    const listed = await api("GET", `/v1/functions/${fn}/models`)
    expect(listed.status).toBe(200)
    const versions: Array<any> = listed.body
    expect(versions.length).toBeGreaterThan(4)
    const serving = (await api("GET", `/v1/functions/${fn}`)).body.model.id
    expect(versions.filter((v) => v.serving).map((v) => v.id)).toEqual([serving])
    // Newest first, each with when it trained, on how many samples, and its cross-validated scores.
    expect(versions.map((v) => v.createdAt)).toEqual(versions.map((v) => v.createdAt).sort().reverse())
    for (const v of versions) {
      expect(v).toMatchObject({ labels: ["cats", "dogs"], preset: "fast", heldBack: null })
      expect(v.sampleCount).toBeGreaterThanOrEqual(4)
      expect(v.cv.macroF1).toBeGreaterThan(0)
      expect(v.cv.macroF1StandardError).toBeGreaterThanOrEqual(0)
    }
    // The first version saw the 10 concurrent uploads, or fewer when the debounced retrain started among them on a
    // busy machine (8, once).
    expect(versions.at(-1).sampleCount).toBeLessThanOrEqual(10)

    const probe = dataUri(photos("test", "dogs", 11, 1)[0]!)
    const invoke = (query = "") => api("POST", `/v1/functions/${fn}/invoke?capture=false${query}`, { data: probe })
    const oldest = versions.at(-1).id
    const oldAnswer = (await invoke(`&modelId=${oldest}`)).body
    const newAnswer = (await invoke()).body
    expect(newAnswer.modelId).toBe(serving)
    // The two versions answer differently (trained on different samples).
    expect(oldAnswer.confidence).not.toBe(newAnswer.confidence)

    const promoted = await api("POST", `/v1/functions/${fn}/models/${oldest}/promote`)
    expect(promoted).toMatchObject({ status: 200, body: { id: oldest, serving: true } })
    // The next invocation answers with the promoted version, exactly as that version does.
    const afterPromote = (await invoke()).body
    expect(afterPromote.modelId).toBe(oldest)
    expect(afterPromote.labelConfidences).toEqual(oldAnswer.labelConfidences)
    expect((await api("GET", `/v1/functions/${fn}`)).body.model.id).toBe(oldest)
    expect((await api("GET", `/v1/functions/${fn}/models`)).body.filter((v: any) => v.serving).map((v: any) => v.id)).toEqual([oldest])

    // And forward again.
    expect((await api("POST", `/v1/functions/${fn}/models/${serving}/promote`)).status).toBe(200)
    const back = (await invoke()).body
    expect(back.modelId).toBe(serving)
    expect(back.labelConfidences).toEqual(newAnswer.labelConfidences)

    expect(await api("POST", `/v1/functions/${fn}/models/model_nope/promote`)).toMatchObject({ status: 404, body: { reason: "NotFound" } })
    expect((await api("GET", `/v1/functions/function_nope/models`)).status).toBe(404)
    const openapi: any = await (await fetch(`${base}/openapi.json`)).json()
    expect(openapi.paths["/v1/functions/{functionId}/models"].get.description).toContain("newest first")
    expect(openapi.paths["/v1/functions/{functionId}/models/{modelId}/promote"].post.description).toContain("no restart")
  })

  it("re-posted bytes: the existing sample, with the post's annotation and externalId applied and named in `updated`", async () => {
    const [photo] = photos("train", "dogs", 30, 1)
    const first = await api("POST", `/v1/functions/${fn}/samples`, { data: dataUri(photo!), annotation: { labelName: "cats" } })
    expect(first).toMatchObject({ status: 201, body: { annotation: { labelName: "cats" }, externalId: null, updated: [] } })
    const relabelled = await api("POST", `/v1/functions/${fn}/samples`, { data: dataUri(photo!), annotation: { labelName: "dogs" }, externalId: "dog-30" })
    expect(relabelled.body).toMatchObject({ id: first.body.id, annotation: { labelName: "dogs" }, externalId: "dog-30", updated: ["annotation", "externalId"] })
    const form = new FormData()
    form.append("data", new Blob([fs.readFileSync(photo!)], { type: "image/jpeg" }), "dog.jpg")
    form.append("externalId", "dog-30b")
    const viaForm = await api("POST", `/v1/functions/${fn}/samples`, form)
    expect(viaForm.body).toMatchObject({ id: first.body.id, annotation: { labelName: "dogs" }, externalId: "dog-30b", updated: ["externalId"] })
    expect((await api("GET", `/v1/functions/${fn}/samples/${first.body.id}`)).body).toMatchObject({ externalId: "dog-30b", annotation: { labelName: "dogs" } })
    const spec = (await api("GET", "/openapi.json")).body
    expect(spec.paths["/v1/functions/{functionId}/samples"].post.description).toContain("`updated`")
  })

  it("leaves a label with fewer than 2 samples out and says so; deletes a label, keeping its samples unlabelled", async () => {
    const birds = (await api("POST", `/v1/functions/${fn}/labels`, { name: "birds" })).body
    const [bird] = photos("train", "cats", 31, 1)
    const sample = (await api("POST", `/v1/functions/${fn}/samples`, { data: dataUri(bird!), annotation: { labelName: "birds" } })).body
    const detail = await until(() => api("GET", `/v1/functions/${fn}`), (r) => r.body.training.phase === "idle" && r.body.model.upToDate)
    expect(detail.body.trainError).toBeNull()
    expect(detail.body.leftOutLabels).toEqual([{ id: birds.id, name: "birds", sampleCount: 1, reason: expect.stringContaining("at least 2") }])
    const metrics = (await api("GET", `/v1/functions/${fn}/metrics`)).body
    expect(metrics.cv.labels).toEqual(["cats", "dogs"])
    expect(metrics.leftOutLabels.map((l: any) => l.name)).toEqual(["birds"])

    const deleted = await api("DELETE", `/v1/functions/${fn}/labels/${birds.id}`)
    expect(deleted).toMatchObject({ status: 200, body: { id: birds.id, name: "birds", unannotatedSamples: 1 } })
    expect((await api("GET", `/v1/functions/${fn}/samples/${sample.id}`)).body.annotation).toBeNull()
    expect((await api("GET", `/v1/functions/${fn}/labels`)).body.map((l: any) => l.name)).toEqual(["cats", "dogs"])
    expect(await api("DELETE", `/v1/functions/${fn}/labels/${birds.id}`)).toMatchObject({ status: 404, body: { reason: "NotFound", field: "labelId" } })
    expect((await api("DELETE", `/v1/functions/function_nope/labels/${birds.id}`)).status).toBe(404)
    const spec = (await api("GET", "/openapi.json")).body
    expect(Object.keys(spec.paths["/v1/functions/{functionId}/labels/{labelId}"].delete.responses)).toEqual(expect.arrayContaining(["200", "404"]))
    await until(() => api("GET", `/v1/functions/${fn}`), (r) => r.body.training.phase === "idle")
  })

  it("deletes the function", async () => {
    expect((await api("DELETE", `/v1/functions/${fn}`)).status).toBe(204)
    expect((await api("GET", `/v1/functions/${fn}`)).status).toBe(404)
    expect((await api("GET", `/v1/functions/${fn}/captures`)).status).toBe(404)
  })
})

describe("Nyckel's clients: access tokens, Nyckel's shapes, ids without their prefix", () => {
  it("answers a client with an access token as Nyckel does, and an API key as before", async () => {
    const form = new URLSearchParams({ grant_type: "client_credentials", client_id: token.split("_")[1]!, client_secret: token })
    const issued = await fetch(`${base}/connect/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form })
    expect(issued.status).toBe(200)
    const { access_token: access, token_type } = await issued.json() as any
    expect(token_type).toBe("Bearer")
    const nyckel = (method: string, route: string, body?: unknown) => api(method, route, body, { authorization: `Bearer ${access}` })
    const bare = (id: string) => id.split("_")[1]!
    const [cat1, cat2] = photos("train", "cats", 0, 2) as [string, string]
    const [dog] = photos("train", "dogs", 0, 1) as [string]

    expect(await nyckel("POST", "/v1/functions", { input: "Text", output: "Classification", name: "x" })).toMatchObject({ status: 400, body: { field: "input" } })
    const created = await nyckel("POST", "/v1/functions", { input: "Image", output: "Classification", name: "Nyckel" })
    expect(created).toMatchObject({ status: 200, body: { input: "Image", output: "Classification" } })
    const fn = bare(created.body.id)
    const ids: Array<string> = []
    for (const [file, label] of [[cat1, "cats"], [dog, "dogs"], [cat2, null]] as const) {
      const posted = await nyckel("POST", `/v1/functions/${fn}/samples`, { data: dataUri(file), externalId: null, sampleSets: [], ...(label ? { annotation: { labelName: label } } : {}) })
      expect(posted.status).toBe(200)
      ids.push(posted.body.id)
    }
    expect((await nyckel("POST", `/v1/functions/${fn}/samples`, { data: dataUri(cat1) })).body.id).toBe(ids[0])

    // Newest first, two at a time, with a Link to the next page while a page is full.
    const first = await fetch(`${base}/v1/functions/${fn}/samples?batchSize=2&sortBy=creation&sortOrder=descending`, { headers: { authorization: `Bearer ${access}` } })
    expect(((await first.json()) as Array<any>).map((s) => s.id)).toEqual([ids[2], ids[1]])
    const next = /^<(\/v1\/functions\/[^>]+)>; rel="next"$/.exec(first.headers.get("link") ?? "")![1]!
    const second = await fetch(`${base}${next}`, { headers: { authorization: `Bearer ${access}` } })
    expect(((await second.json()) as Array<any>).map((s) => s.id)).toEqual([ids[0]])
    expect(second.headers.get("link")).toBeNull()

    // A Nyckel client reads the image back and no null annotation; an API key reads Loupe's shape.
    const unlabelled = await nyckel("GET", `/v1/functions/${fn}/samples/${bare(ids[2]!)}`)
    expect(unlabelled.body.data).toMatch(/^data:image\/jpeg;base64,/)
    expect(Buffer.from(unlabelled.body.data.split(",")[1], "base64")).toEqual(fs.readFileSync(cat2))
    expect("annotation" in unlabelled.body).toBe(false)
    expect((await api("GET", `/v1/functions/${fn}/samples/${ids[2]}`)).body).toMatchObject({ annotation: null })
    expect("data" in (await api("GET", `/v1/functions/${fn}/samples/${ids[2]}`)).body).toBe(false)

    expect((await nyckel("GET", `/v0.9/functions/${fn}`)).body).toMatchObject({ state: "Annotating", input: "Image" })
    expect((await nyckel("GET", `/v0.9/functions/${fn}/metrics`)).body).toMatchObject({ sampleCount: 3, predictionCount: 0 })
    expect((await nyckel("GET", "/v0.9/projects")).body).toHaveLength(1)

    expect((await nyckel("DELETE", `/v1/functions/${fn}/samples/${bare(ids[2]!)}`)).status).toBe(200)
    expect((await api("DELETE", `/v1/functions/${fn}/samples/${ids[1]}`)).status).toBe(204)
    expect((await nyckel("DELETE", `/v1/functions/${fn}`)).status).toBe(200)
  })
})
