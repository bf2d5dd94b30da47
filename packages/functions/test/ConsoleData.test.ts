// The console's Functions and Data pages over HTTP on a real store with cats-vs-dogs photos: escaping of hostile
// label names (`<script>`, a right-to-left override), uploads one file at a time (a bad image refused alone),
// thumbnails behind the session and cached in the blob store, pagination and the label filters, bulk label and
// delete through the function API, and the function list's create/delete.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import sharp from "sharp"
import { catsVsDogsPhotos } from "./fixtures/environment.js"
import { ConsoleClient, startServer } from "./fixtures/console.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-console-data-"))

let server: Awaited<ReturnType<typeof startServer>>
let client: ConsoleClient
let fn = ""

const hostile = "<script>alert(1)</script>"
const rtl = "\u202Egnp.exe"

const createFunction = async (name: string) => {
  const made = await client.post("/console/functions", { name, preset: "fast" })
  expect(made.status).toBe(303)
  return made.headers.get("location")!.split("/")[3]!
}

const upload = (functionId: string, file: string, label?: string) =>
  client.request("POST", `/console/functions/${functionId}/samples${label === undefined ? "" : `?label=${encodeURIComponent(label)}`}`, {
    body: fs.readFileSync(file),
    headers: { "content-type": "image/jpeg", "x-csrf-token": client.csrf }
  })

const tileIds = (page: string) => [...page.matchAll(/data-sample="([^"]+)"/g)].map((m) => m[1]!)

beforeAll(async () => {
  server = await startServer(work)
  client = await ConsoleClient.signedIn(server.base, server.token)
  fn = await createFunction(hostile)
})

afterAll(() => server.close())

describe("the console's data page", () => {
  it("uploads images one request each, with an optional label, and refuses a bad one alone", async () => {
    const [cat] = catsVsDogsPhotos("train", "cats", 0, 1)
    const [dog] = catsVsDogsPhotos("train", "dogs", 0, 1)
    expect((await upload(fn, cat!, hostile)).status).toBe(201)
    expect((await upload(fn, dog!, rtl)).status).toBe(201)
    expect((await upload(fn, cat!, hostile)).text).toBe("Already held")
    const bad = await client.request("POST", `/console/functions/${fn}/samples`, {
      body: new TextEncoder().encode("not an image at all"),
      headers: { "content-type": "image/jpeg", "x-csrf-token": client.csrf }
    })
    expect(bad.status).toBe(400)
    expect(bad.text).toMatch(/data/)
    const noToken = await client.request("POST", `/console/functions/${fn}/samples`, { body: fs.readFileSync(cat!), headers: { "content-type": "image/jpeg" } })
    expect(noToken.status).toBe(403)
  })

  it("escapes hostile label and function names everywhere, and isolates their direction", async () => {
    for (const route of ["/console/functions", `/console/functions/${fn}/data`, `/console/functions/${fn}/delete`]) {
      const page = (await client.get(route)).text
      expect(page, route).not.toContain("<script>alert")
      expect(page, route).toContain("&lt;script&gt;alert(1)&lt;/script&gt;")
      // Every <script> tag is one of ours, with a src.
      expect(page.match(/<script\b[^>]*>/g)?.every((tag) => / src="\/console\/static\//.test(tag)), route).toBe(true)
    }
    // The message quoting a label name (below) is the background run's: read the page once that run has failed.
    const quoted = "&quot;[U+202E]gnp.exe&quot; (1 annotated sample)"
    let data = (await client.get(`/console/functions/${fn}/data`)).text
    for (let tries = 0; !data.includes(quoted) && tries < 60; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      data = (await client.get(`/console/functions/${fn}/data`)).text
    }
    // Wherever the RTL override is shown as text, it is the whole content of a <bdi> (isolated), never loose in the
    // text around it.
    const tokens = data.split(/(<[^>]*>)/)
    const shown = tokens.flatMap((token, i) => (i % 2 === 0 && token.includes("\u202E") ? [[tokens[i - 1], token, tokens[i + 1]]] : []))
    expect(shown.length).toBeGreaterThan(1)
    for (const around of shown) expect(around).toEqual(["<bdi>", rtl, "</bdi>"])
    // A message quoting the name (why training waits) shows the override as a code, so it cannot reverse the rest.
    expect(data).toContain(quoted)
    // The keyboard's label list is JSON in an attribute, escaped.
    expect(data).toContain(`data-labels="[&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;,&quot;${rtl}&quot;]"`)
  })

  it("serves thumbnails and images only to a signed-in browser, and only the function's own", async () => {
    const ids = tileIds((await client.get(`/console/functions/${fn}/data`)).text)
    expect(ids).toHaveLength(2)
    const thumb = `/console/functions/${fn}/samples/${ids[0]}/thumbnail`
    const anonymous = await fetch(`${server.base}${thumb}`, { redirect: "manual" })
    expect(anonymous.status).toBe(303)
    expect(anonymous.headers.get("content-type") ?? "").not.toMatch(/^image\//)
    const forged = await fetch(`${server.base}${thumb}`, { redirect: "manual", headers: { cookie: "loupe_console=" + "A".repeat(43) } })
    expect(forged.status).toBe(303)
    // The API key itself opens the API, not the console's images.
    const bearer = await fetch(`${server.base}${thumb}`, { redirect: "manual", headers: { authorization: `Bearer ${server.token}` } })
    expect(bearer.status).toBe(303)

    const response = await fetch(`${server.base}${thumb}`, { headers: { cookie: `loupe_console=${client.session}` } })
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toBe("image/webp")
    expect(response.headers.get("cache-control")).toBe("private, max-age=86400")
    const meta = await sharp(new Uint8Array(await response.arrayBuffer())).metadata()
    expect([meta.format, meta.width, meta.height]).toEqual(["webp", 192, 192])

    const full = await fetch(`${server.base}/console/functions/${fn}/samples/${ids[0]}/image`, { headers: { cookie: `loupe_console=${client.session}` } })
    expect(full.status).toBe(200)
    expect(full.headers.get("content-type")).toBe("image/jpeg")

    const other = await createFunction("Other")
    const crossed = await client.get(`/console/functions/${other}/samples/${ids[0]}/thumbnail`)
    expect(crossed.status).toBe(404)
  })

  it("makes a thumbnail once: the second request reads it from the blob store", async () => {
    const [id] = tileIds((await client.get(`/console/functions/${fn}/data`)).text)
    const route = `/console/functions/${fn}/samples/${id}/thumbnail`
    const first = await client.get(route)
    expect(first.status).toBe(200)
    const dir = path.join(server.store, "blobs", "thumbnails", fn)
    const [file] = fs.readdirSync(dir).filter((f) => f.endsWith("-192.webp"))
    expect(file).toMatch(/^[0-9a-f]{64}-192\.webp$/)
    const before = fs.statSync(path.join(dir, file!))
    await new Promise((r) => setTimeout(r, 20))
    const second = await fetch(`${server.base}${route}`, { headers: { cookie: `loupe_console=${client.session}` } })
    expect(Buffer.from(await second.arrayBuffer()).equals(fs.readFileSync(path.join(dir, file!)))).toBe(true)
    const after = fs.statSync(path.join(dir, file!))
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs])
  })

  it("pages through the samples 60 at a time, and filters by label and unlabelled", async () => {
    const paged = await createFunction("Paged")
    const cats = catsVsDogsPhotos("train", "cats", 0, 70)
    const dogs = catsVsDogsPhotos("train", "dogs", 0, 5)
    for (const file of cats) expect((await upload(paged, file)).status).toBe(201)
    for (const file of dogs) expect((await upload(paged, file, "dogs")).status).toBe(201)

    const first = (await client.get(`/console/functions/${paged}/data`)).text
    const second = (await client.get(`/console/functions/${paged}/data?page=2`)).text
    expect(tileIds(first)).toHaveLength(60)
    expect(tileIds(second)).toHaveLength(15)
    expect(new Set([...tileIds(first), ...tileIds(second)]).size).toBe(75)
    expect(first).toContain("Page 1 of 2 · 75 images")
    expect(first).toContain(`href="/console/functions/${paged}/data?page=2" rel="next"`)
    expect(second).toContain(`rel="prev"`)
    expect(second).not.toContain(`rel="next"`)

    const unlabelled = (await client.get(`/console/functions/${paged}/data?filter=unlabelled&page=2`)).text
    expect(tileIds(unlabelled)).toHaveLength(10)
    expect(unlabelled).toContain("Page 2 of 2 · 70 images")
    const labelId = first.match(/data\?filter=label%3A(label_[0-9a-f]+)"/)?.[1] ?? first.match(/filter=label:(label_[0-9a-f]+)"/)?.[1]
    expect(labelId).toBeDefined()
    const dogsOnly = (await client.get(`/console/functions/${paged}/data?filter=${encodeURIComponent(`label:${labelId}`)}`)).text
    expect(tileIds(dogsOnly)).toHaveLength(5)
    expect(dogsOnly.match(/class="caption">/g)).toHaveLength(5)
  })

  it("labels, unlabels and deletes in bulk through the function API, with the CSRF token", async () => {
    const bulk = await createFunction("Bulk")
    for (const file of catsVsDogsPhotos("test", "cats", 0, 4)) await upload(bulk, file)
    const ids = tileIds((await client.get(`/console/functions/${bulk}/data`)).text)
    expect(ids).toHaveLength(4)
    const refused = await client.post(`/console/functions/${bulk}/samples/bulk`, { op: "delete", ids: ids.join(",") }, { csrf: false })
    expect(refused.status).toBe(403)

    const labelled = await client.post(`/console/functions/${bulk}/samples/bulk`, { op: "label", label: "cats", ids: ids.slice(0, 3).join(",") })
    expect([labelled.status, labelled.text]).toEqual([200, "Labelled 3 images cats"])
    const page = (await client.get(`/console/functions/${bulk}/data`)).text
    expect(page.match(/class="caption"><bdi>cats<\/bdi>/g)).toHaveLength(3)
    expect(page).toMatch(/Unlabelled <span class="count">1<\/span>/)

    expect((await client.post(`/console/functions/${bulk}/samples/bulk`, { op: "unlabel", ids: ids[0]! })).status).toBe(200)
    const deleted = await client.post(`/console/functions/${bulk}/samples/bulk`, { op: "delete", ids: ids.slice(0, 2).join(",") })
    expect([deleted.status, deleted.text]).toEqual([200, "Deleted 2 images"])
    expect(tileIds((await client.get(`/console/functions/${bulk}/data`)).text)).toEqual(ids.slice(2))
    const gone = await client.post(`/console/functions/${bulk}/samples/bulk`, { op: "delete", ids: ids[0]! })
    expect(gone.status).toBe(404)
  })

  it("filters by label-noise suspect and by duplicate, in the order and with the notes of the function's insights", async () => {
    const noisy = await createFunction("Noisy")
    const cats = catsVsDogsPhotos("train", "cats", 10, 6)
    const dogs = catsVsDogsPhotos("train", "dogs", 10, 7)
    for (const file of cats) await upload(noisy, file, "cats")
    for (const file of dogs.slice(0, 6)) await upload(noisy, file, "dogs")
    await upload(noisy, dogs[6]!, "cats")
    // A recompressed copy of a cat: a near-duplicate.
    const copy = path.join(work, "copy.jpg")
    await sharp(cats[0]!).jpeg({ quality: 90 }).toFile(copy)
    await upload(noisy, copy)

    const insights = await (await fetch(`${server.base}/v1/functions/${noisy}/insights`, { headers: { authorization: `Bearer ${server.token}` } })).json() as {
      suspects: Array<{ sampleId: string; suggested: string }>
      duplicates: Array<{ sampleIdA: string; sampleIdB: string }>
    }
    expect(insights.suspects.length).toBeGreaterThan(0)
    const suspects = (await client.get(`/console/functions/${noisy}/data?filter=suspect`)).text
    expect(tileIds(suspects)).toEqual(insights.suspects.map((s) => s.sampleId))
    for (const s of insights.suspects) expect(suspects).toContain(`suspect → <bdi>${s.suggested}</bdi>`)
    expect(suspects).toContain(`Page 1 of 1 · ${insights.suspects.length} image`)

    expect(insights.duplicates.length).toBeGreaterThan(0)
    const duplicates = (await client.get(`/console/functions/${noisy}/data?filter=duplicate`)).text
    expect(tileIds(duplicates)).toEqual([...new Set(insights.duplicates.flatMap((d) => [d.sampleIdA, d.sampleIdB]))])
    expect(duplicates).toMatch(/class="badge"[^>]*>near-duplicate/)
  })

  it("shows training live, and announces a model promoted since the page was drawn", async () => {
    const functions = (await (await fetch(`${server.base}/v1/functions`, { headers: { authorization: `Bearer ${server.token}` } })).json()) as Array<{ id: string; name: string }>
    const id = functions.find((f) => f.name === "Noisy")!.id
    const status = (since: string) => client.get(`/console/functions/${id}/status?since=${since}`)
    let model = ""
    const deadline = Date.now() + 180_000
    while (model === "" && Date.now() < deadline) {
      const fragment = (await status("none")).text
      expect(fragment).toMatch(/hx-trigger="every 2s"/)
      model = fragment.match(/data-model="(model_[0-9a-f]+)"/)?.[1] ?? ""
      if (model === "") await new Promise((r) => setTimeout(r, 500))
    }
    expect(model).not.toBe("")
    // Drawn before any model: the first one is new. Drawn with it: it is just serving.
    const fresh = (await status("none")).text
    expect(fresh).toContain(`New model serving:</strong> <code>${model}</code>`)
    expect(fresh).toContain(`?since=none`)
    const same = (await status(model)).text
    expect(same).toContain(`serving <code>${model}</code>`)
    expect(same).not.toContain("New model serving")
    expect((await status("model_0123")).text).toContain(`New model serving:</strong> <code>${model}</code>`)
  })

  it("lists functions with their sample counts, and deletes one after asking", async () => {
    const list = (await client.get("/console/functions")).text
    expect(list).toMatch(/Paged<\/bdi><\/a>[\s\S]*?<td class="num" data-th="Samples">75<\/td>/)
    const doomed = await createFunction("Doomed")
    const ask = await client.get(`/console/functions/${doomed}/delete`)
    expect(ask.text).toContain("Delete <bdi>Doomed</bdi>?")
    const refused = await client.post(`/console/functions/${doomed}/delete`, {}, { csrf: false })
    expect(refused.status).toBe(403)
    const deleted = await client.post(`/console/functions/${doomed}/delete`, {})
    expect([deleted.status, deleted.headers.get("location")]).toEqual([303, "/console/functions"])
    expect((await client.get("/console/functions")).text).not.toContain("Doomed")
    expect((await client.get(`/console/functions/${doomed}/data`)).status).toBe(404)
  })

  it("refuses a bad function name by the form, escaped", async () => {
    const bad = await client.post("/console/functions", { name: "", preset: "fast" })
    expect(bad.status).toBe(400)
    expect(bad.text).toMatch(/class="error"/)
  })
})
