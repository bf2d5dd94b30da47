// A Tags (multi-label) function over HTTP, in process, on a real multi-label set built from the shared photos
// (`fixtures/tagsPhotos`: daisies tagged `flower` and `daisy`, cats and dogs tagged `animal` and `cat` or `dog`), the
// `fast` preset: Loupe's /v1 routes with an API key, Nyckel's /v0.9 routes with an access token.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { serveStore } from "./fixtures/environment.js"
import { tagsSamples } from "./fixtures/tagsPhotos.js"

const dataUri = (file: string) => `data:image/jpeg;base64,${fs.readFileSync(file).toString("base64")}`
const names = (tags: ReadonlyArray<{ readonly labelName: string }>) => tags.map((t) => t.labelName).sort()

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-serve-tags-"))
let served: Awaited<ReturnType<typeof serveStore>>
let access = ""

beforeAll(async () => {
  served = await serveStore(path.join(work, "store"), path.join(work, "cache"), {
    debounce: "100 millis",
    rateLimit: { perSecond: 10_000, burst: 10_000 },
    // Every invocation is judged low-confidence (its least sure tag is below 1), so one asking for capture is captured.
    capture: { lowConfidence: 1, rareClassShare: 0, randomFraction: 0 }
  })
  const form = new URLSearchParams({ grant_type: "client_credentials", client_id: served.token.split("_")[1]!, client_secret: served.token })
  const issued = await fetch(`${served.base}/connect/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form })
  access = ((await issued.json()) as { readonly access_token: string }).access_token
})

afterAll(async () => {
  await served.close()
})

/** A request with the API key (`key`) or the access token (`nyckel`), answered with its status and JSON body. */
const call = (credential: () => string) => async (method: string, route: string, body?: unknown) => {
  const headers: Record<string, string> = { authorization: `Bearer ${credential()}` }
  if (body !== undefined) headers["content-type"] = "application/json"
  const response = await fetch(`${served.base}${route}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  const text = await response.text()
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) }
}
const key = call(() => served.token)
const nyckel = call(() => access)

describe("a Tags function over HTTP", () => {
  it("trains on tagged samples, answers every tag with its probability, shows and changes a sample's tags", async () => {
    const created = await key("POST", "/v1/functions", { name: "WhatIsInIt", preset: "fast", overrides: { folds: 3 }, output: "Tags" })
    expect(created).toMatchObject({ status: 201, body: { output: "Tags" } })
    const fn: string = created.body.id
    const probe = dataUri(tagsSamples("test", { daisy: 1 })[0]!.source as string)
    expect(await key("POST", `/v1/functions/${fn}/invoke`, { data: probe })).toMatchObject({ status: 409, body: { reason: "NotTrained" } })

    // Posted as Nyckel's clients post them: every tag of the photo, present.
    const train = tagsSamples("train", { daisy: 3, cats: 3, dogs: 3 })
    const posted = await Promise.all(train.map((s) =>
      nyckel("POST", `/v0.9/functions/${fn}/samples`, {
        data: dataUri(s.source as string),
        annotation: s.tags!.map((labelName) => ({ labelName, present: true })),
        externalId: s.id
      })
    ))
    expect(posted.map((p) => p.status)).toEqual(Array(train.length).fill(200))

    const deadline = Date.now() + 50_000
    let detail = await key("GET", `/v1/functions/${fn}`)
    while ((detail.body.model === null || detail.body.training.phase !== "idle" || detail.body.training.pending) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200))
      detail = await key("GET", `/v1/functions/${fn}`)
    }
    expect(detail.body.trainError).toBeNull()
    expect(detail.body.model).toMatchObject({ upToDate: true })
    const allTags = ["animal", "cat", "daisy", "dog", "flower"]

    // Loupe's answer: every tag with its probability, threshold and presence, most likely first (not captured here).
    for (const [kind, yes, no] of [["daisy", "flower", "animal"], ["cats", "animal", "flower"]] as const) {
      const image = dataUri(tagsSamples("test", { [kind]: 1 })[0]!.source as string)
      const answer = await key("POST", `/v1/functions/${fn}/invoke?capture=false`, { data: image, externalId: "probe" })
      expect(answer.status).toBe(200)
      expect(answer.body).toMatchObject({ modelId: detail.body.model.id, sampleId: null, externalId: "probe" })
      expect(names(answer.body.tags)).toEqual(allTags)
      for (const t of answer.body.tags) {
        expect(t.confidence).toBeGreaterThanOrEqual(0)
        expect(t.confidence).toBeLessThanOrEqual(1)
        expect(t.present).toBe(t.confidence >= t.threshold)
      }
      const confidences = answer.body.tags.map((t: { readonly confidence: number }) => t.confidence)
      expect(confidences).toEqual([...confidences].sort((a, b) => b - a))
      const present = new Map(answer.body.tags.map((t: { readonly labelName: string; readonly present: boolean }) => [t.labelName, t.present]))
      expect([kind, yes, present.get(yes)]).toEqual([kind, yes, true])
      expect([kind, no, present.get(no)]).toEqual([kind, no, false])

      // Nyckel's answer for the same image and model: the same probabilities, as a list.
      const listed = await nyckel("POST", `/v0.9/functions/${fn}/invoke`, { data: image })
      expect(listed.status).toBe(200)
      expect(listed.body).toEqual(answer.body.tags.map((t: any) => ({ labelName: t.labelName, labelId: t.labelId, confidence: t.confidence })))
    }

    const metrics = await key("GET", `/v1/functions/${fn}/metrics`)
    expect(metrics).toMatchObject({ status: 200, body: { functionId: fn, modelId: detail.body.model.id, output: "Tags", upToDate: true } })
    expect(metrics.body.cv.tags).toEqual(allTags)
    expect(metrics.body.cv.perTag.map((t: { readonly labelName: string }) => t.labelName)).toEqual(allTags)
    expect(metrics.body.cv.exactMatch).toBeGreaterThanOrEqual(0)
    expect(metrics.body.cv.exactMatch).toBeLessThanOrEqual(1)

    // A sample read back with its tags, in both shapes.
    const daisy = posted[0]!.body.id as string
    expect(names((await key("GET", `/v1/functions/${fn}/samples/${daisy}`)).body.tags)).toEqual(["daisy", "flower"])
    const read = await nyckel("GET", `/v0.9/functions/${fn}/samples/${daisy}`)
    expect(names(read.body.annotation)).toEqual(["daisy", "flower"])
    expect(read.body.annotation.map((t: { readonly present: boolean }) => t.present)).toEqual([true, true])
    expect(read.body.data).toMatch(/^data:image\//)
    const counts = (await nyckel("GET", `/v0.9/functions/${fn}/metrics`)).body.positiveAnnotatedLabelCounts
    expect(Object.values(counts).sort()).toEqual([3, 3, 3, 3, 6])
    const page = await nyckel("GET", `/v0.9/functions/${fn}/samples?batchSize=4&sortBy=creation&sortOrder=descending`)
    expect(page.body).toHaveLength(4)
    expect(page.body.every((s: { readonly annotation: ReadonlyArray<unknown> }) => s.annotation.length === 2)).toBe(true)

    // Retagging: a list sets the tag set, by name or id (Nyckel's `present: false` left out); DELETE removes it.
    const flowerId = read.body.annotation.find((t: { readonly labelName: string }) => t.labelName === "flower").labelId
    const retagged = await key("PUT", `/v1/functions/${fn}/samples/${daisy}/annotation`, [{ labelId: flowerId }, { labelName: "white" }])
    expect(retagged.status).toBe(200)
    expect(names(retagged.body.tags)).toEqual(["flower", "white"])
    const viaNyckel = await nyckel("PUT", `/v0.9/functions/${fn}/samples/${daisy}/annotation`, [
      { labelName: "daisy", present: true },
      { labelName: "flower", present: true },
      { labelName: "white", present: false }
    ])
    expect(names(viaNyckel.body.annotation)).toEqual(["daisy", "flower"])
    const label = await key("PUT", `/v1/functions/${fn}/samples/${daisy}/annotation`, { labelName: "daisy" })
    expect(label).toMatchObject({ status: 400, body: { field: "annotation" } })
    const untagged = await key("DELETE", `/v1/functions/${fn}/samples/${daisy}/annotation`)
    expect(untagged.status).toBe(200)
    expect(untagged.body.tags).toBeUndefined()
    expect((await nyckel("GET", `/v0.9/functions/${fn}/samples/${daisy}`)).body.annotation).toBeUndefined()

    // Capture: an invocation kept for review is an untagged sample in the review queue until it is given a tag set.
    const captured = await key("POST", `/v1/functions/${fn}/invoke`, { data: probe })
    expect(captured.status).toBe(200)
    expect(captured.body.sampleId).toEqual(expect.stringMatching(/^sample_/))
    const queued = await key("GET", `/v1/functions/${fn}/captures`)
    expect(queued.body.map((c: { readonly sampleId: string }) => c.sampleId)).toContain(captured.body.sampleId)
    const reviewed = await key("PUT", `/v1/functions/${fn}/samples/${captured.body.sampleId}/annotation`, [{ labelName: "flower" }, { labelName: "daisy" }])
    expect(names(reviewed.body.tags)).toEqual(["daisy", "flower"])
    const after = await key("GET", `/v1/functions/${fn}/captures`)
    expect(after.body.map((c: { readonly sampleId: string }) => c.sampleId)).not.toContain(captured.body.sampleId)
  }, 180_000)

  it("documents the tags answers in /openapi.json", async () => {
    const spec = await (await fetch(`${served.base}/openapi.json`)).json() as any
    const invoke = spec.paths["/v1/functions/{functionId}/invoke"].post.responses["200"].content["application/json"].schema
    expect(JSON.stringify(invoke)).toContain("#/components/schemas/TagsInvokeResult")
    const metrics = spec.paths["/v1/functions/{functionId}/metrics"].get.responses["200"].content["application/json"].schema
    expect(JSON.stringify(metrics)).toContain("#/components/schemas/TagsMetrics")
    expect(spec.components.schemas.TagConfidence.required).toEqual(expect.arrayContaining(["threshold", "present"]))
  })
})
