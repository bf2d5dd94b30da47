// The bad-input corpus: what an attacker or a careless client sends to `loupe serve`, class by class (issue 16),
// against the real server on a real store. Every case asserts the issue's required behaviour: no 5xx, the status and
// reason, the field at fault named, the server still answering afterwards, and nothing written (store counts and
// the image blobs unchanged) for a refused request. URL inputs also assert that the canary, the loopback server a
// URL that slipped through would reach, was never asked. Cases for "Found" items carry the item's number.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { OpenApi } from "@effect/platform"
import { FunctionApi } from "@loupe/deploy"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import {
  type Answer,
  canary,
  catPhoto,
  dataUri,
  dogPhoto,
  filesUnder,
  generated,
  gifFrameBomb,
  gifHeader,
  imageOrigin,
  jpegHeader,
  multipart,
  type Origin,
  ORIGIN_HOST,
  pngHeader,
  type RawBody,
  send,
  sendBlind,
  serve,
  type Serving,
  slowHeaders,
  svg
} from "./fixtures/badInput.js"
import { catsVsDogsPhotos } from "./fixtures/environment.js"

/** The server's headers timeout here; slow headers must be cut after it (item 7). */
const HEADERS_TIMEOUT_MS = 3000
/**
 * A temporary file a writer killed mid-write leaves in the image blobs (item 6), planted before the store opens,
 * named with the pid of a process that has exited.
 */
const ORPHAN = path.join("blobs", "images", `orphan.jpg.tmp-${spawnSync(process.execPath, ["-e", ""]).pid}-0123456789ab`)

let server: Serving
let canaryOrigin: Origin
let origin: Origin
/** The function the corpus posts to, one of its samples and one of its labels. */
let fn = ""
let sampleId = ""
let labelId = ""
/** A function with a model, for invoke cases. */
let trained = ""
/** What the credential cases aim at: a key that got through would change it, not the corpus's function. */
const victim = { fn: "", sampleId: "", labelId: "" }

const key = () => ({ authorization: `Bearer ${server.token}` })
const call = (method: string, route: string, options: { headers?: Record<string, string>; body?: RawBody } = {}) =>
  send(server.base, method, route, options)
/** A request with the live key and a JSON body (a string is sent as it is). */
const json = (method: string, route: string, value: unknown, headers: Record<string, string> = {}) =>
  call(method, route, {
    headers: { ...key(), "content-type": "application/json", ...headers },
    body: typeof value === "string" || value instanceof Uint8Array ? value : JSON.stringify(value)
  })
const postSample = (value: unknown) => json("POST", `/v1/functions/${fn}/samples`, value)
const postSampleRaw = (type: string | undefined, body: RawBody) =>
  call("POST", `/v1/functions/${fn}/samples`, { headers: { ...key(), ...(type === undefined ? {} : { "content-type": type }) }, body })
const postForm = (parts: Parameters<typeof multipart>[1], route = `/v1/functions/${fn}/samples`) =>
  call("POST", route, { headers: { ...key(), "content-type": "multipart/form-data; boundary=corpus" }, body: multipart("corpus", parts) })
const invoke = (value: unknown, query = "") => json("POST", `/v1/functions/${trained}/invoke${query}`, value)
const postUrl = (url: string) => postSample({ data: url })

/** What the store holds: functions, their label and sample counts, and the image blobs. */
const snapshot = async () => {
  const functions = await call("GET", "/v1/functions", { headers: key() })
  expect(functions.status).toBe(200)
  const counts = await Promise.all((functions.body as Array<{ id: string }>).map(async ({ id }) => {
    const [labels, samples] = await Promise.all([
      call("GET", `/v1/functions/${id}/labels`, { headers: key() }),
      call("GET", `/v1/functions/${id}/samples?limit=1000`, { headers: key() })
    ])
    return `${id}: ${labels.body.length} labels, ${samples.body.length} samples`
  }))
  return { counts, images: filesUnder(path.join(server.store, "blobs", "images")) }
}

interface Case {
  readonly name: string
  readonly send: () => Promise<Answer>
  /** The status required, or the ones allowed. */
  readonly status: number | ReadonlyArray<number>
  readonly reason?: string
  /** The field the error must name, or the ones allowed. */
  readonly field?: string | ReadonlyArray<string>
  readonly message?: RegExp
  /** An accepted request may write (`true`, or a test of the answer); a refused one never does. */
  readonly writes?: boolean | ((answer: Answer) => boolean)
  /** More checks of the answer. */
  readonly check?: (answer: Answer) => void
}

const oneOf = <A>(want: A | ReadonlyArray<A>, got: A) => (Array.isArray(want) ? (want.includes(got) ? got : want) : want)

/** The store as the last case that passed left it: the next case's "before", saving a snapshot per case. */
let lastSnapshot: Awaited<ReturnType<typeof snapshot>> | undefined

/** Send the case and check everything the corpus asserts, all differences reported at once. */
const run = async (c: Case) => {
  const before = lastSnapshot ?? await snapshot()
  lastSnapshot = undefined
  const asked = canaryOrigin.requests.length
  const answer = await c.send().catch((e: Error) => {
    throw new Error(`no answer: the connection failed first (${e.message})`)
  })
  const got = {
    status: answer.status,
    serverError: answer.status >= 500,
    ...(c.reason === undefined ? {} : { reason: answer.body?.reason }),
    ...(c.field === undefined ? {} : { field: answer.body?.field }),
    ...(c.message === undefined ? {} : { message: answer.body?.message })
  }
  expect(got, `answer: ${JSON.stringify(answer.body).slice(0, 300)}`).toEqual({
    status: oneOf(c.status, answer.status),
    serverError: false,
    ...(c.reason === undefined ? {} : { reason: c.reason }),
    ...(c.field === undefined ? {} : { field: oneOf(c.field, answer.body?.field) }),
    ...(c.message === undefined ? {} : { message: expect.stringMatching(c.message) })
  })
  c.check?.(answer)
  // Still answering, nothing written for a refused request, and no URL reached the canary.
  expect((await call("GET", "/healthz")).status).toBe(200)
  const wrote = typeof c.writes === "function" ? c.writes(answer) : c.writes === true
  const after = wrote ? undefined : await snapshot()
  if (after !== undefined) expect(after).toEqual(before)
  expect(canaryOrigin.requests.slice(asked)).toEqual([])
  lastSnapshot = after
}

/** Every case in the corpus, counted as the groups are declared. */
let corpusSize = 0
/** A group of cases, each its own test. */
const group = (name: string, list: ReadonlyArray<Case>) => {
  corpusSize += list.length
  describe(name, () => {
    for (const c of list) it(c.name, () => run(c), 30_000)
  })
}

/** Wait until a function's retrains are done; its detail then. */
const settled = async (id: string) => {
  const deadline = Date.now() + 60_000
  while (true) {
    await new Promise((r) => setTimeout(r, 200))
    const detail = await call("GET", `/v1/functions/${id}`, { headers: key() })
    const { training, model, trainError } = detail.body
    if (Date.now() > deadline || (training.phase === "idle" && !training.pending && (model !== null || trainError !== null))) return detail
  }
}

/** A function trained on 2 cats and 2 dogs (its first model). */
const trainedFunction = async () => {
  const id = (await json("POST", "/v1/functions", { name: "trained", preset: "fast" })).body.id as string
  const photos = [...catsVsDogsPhotos("train", "cats", 10, 2), ...catsVsDogsPhotos("train", "dogs", 10, 2)]
  for (const [i, file] of photos.entries()) {
    const posted = await json("POST", `/v1/functions/${id}/samples`, { data: dataUri(fs.readFileSync(file)), annotation: { labelName: i < 2 ? "cats" : "dogs" } })
    expect(posted.status).toBe(201)
  }
  expect((await settled(id)).body).toMatchObject({ trainError: null, model: { upToDate: true } })
  return id
}

beforeAll(async () => {
  canaryOrigin = await canary()
  origin = await imageOrigin(canaryOrigin.base)
  server = await serve({
    headersTimeoutMs: HEADERS_TIMEOUT_MS,
    beforeOpen: (store) => {
      // As a Loupe writer leaves it: its folders 0700, the file 0600 and empty.
      fs.mkdirSync(path.dirname(path.join(store, ORPHAN)), { recursive: true, mode: 0o700 })
      fs.writeFileSync(path.join(store, ORPHAN), "", { mode: 0o600 })
    }
  })
  const created = await json("POST", "/v1/functions", { name: "corpus", preset: "fast" })
  expect(created.status).toBe(201)
  fn = created.body.id
  const label = await json("POST", `/v1/functions/${fn}/labels`, { name: "cats" })
  labelId = label.body.id
  const sample = await postSample({ data: dataUri(catPhoto), annotation: { labelName: "cats" }, externalId: "first" })
  expect(sample.status).toBe(201)
  sampleId = sample.body.id
  trained = await trainedFunction()
  victim.fn = (await json("POST", "/v1/functions", { name: "victim" })).body.id
  victim.labelId = (await json("POST", `/v1/functions/${victim.fn}/labels`, { name: "dogs" })).body.id
  victim.sampleId = (await json("POST", `/v1/functions/${victim.fn}/samples`, { data: dataUri(dogPhoto) })).body.id
}, 180_000)

afterAll(async () => {
  await server?.close()
  await origin?.close()
  await canaryOrigin?.close()
})

// ---------------------------------------------------------------------------------------------------------------
// Credentials, on every route the API documents (the same declaration /openapi.json is generated from)

const secured = Object.entries(OpenApi.fromApi(FunctionApi.FunctionApi).paths).flatMap(([route, operations]) =>
  Object.entries(operations as Record<string, { readonly security?: ReadonlyArray<unknown> }>)
    .filter(([, operation]) => (operation.security ?? []).length > 0)
    .map(([method, operation]) => ({ method: method.toUpperCase(), route, hasBody: "requestBody" in operation }))
)

/** A documented route with its parameters filled in with the victim's ids (unknown ones for the rest). */
const concrete = (route: string) =>
  route.replace(/\{(\w+)\}/g, (_, name: string) =>
    name === "functionId" ? victim.fn : name === "sampleId" ? victim.sampleId : name === "labelId" ? victim.labelId : `${name}_unknown`)

const credentialVariants: ReadonlyArray<readonly [string, () => { headers: Record<string, string>; query?: string }]> = [
  ["no credentials", () => ({ headers: {} })],
  ["a well-formed key that does not exist", () => ({ headers: { authorization: `Bearer loupe_00000000_${"A".repeat(32)}` } })],
  ["a malformed key", () => ({ headers: { authorization: "Bearer not-a-key" } })],
  ["an empty Bearer", () => ({ headers: { authorization: "Bearer " } })],
  ["Basic credentials carrying the live key", () => ({ headers: { authorization: `Basic ${Buffer.from(`${server.token}:`).toString("base64")}` } })],
  ["a revoked key", () => ({ headers: { authorization: `Bearer ${server.revokedToken}` } })],
  // "Digest " is as long as "Bearer ": a prefix check by length took the live key behind it.
  ["the live key under the Digest scheme", () => ({ headers: { authorization: `Digest ${server.token}` } })],
  ["the live key as ?api_key=", () => ({ headers: {}, query: `?api_key=${server.token}` })]
]

group(
  "credentials on every route",
  secured.flatMap(({ method, route, hasBody }) =>
    credentialVariants.map(([variant, credentials]): Case => ({
      name: `${method} ${route}: ${variant}`,
      send: () => {
        const { headers, query = "" } = credentials()
        return call(method, `${concrete(route)}${query}`, {
          headers: { ...headers, ...(hasBody ? { "content-type": "application/json" } : {}) },
          ...(hasBody ? { body: "{}" } : {})
        })
      },
      status: 401,
      reason: "Unauthorized",
      field: "authorization",
      check: (answer) => {
        expect(answer.headers["www-authenticate"]).toBe("Bearer")
        expect(JSON.stringify(answer.body)).not.toContain(server.token.slice(15))
      }
    }))
  )
)

// ---------------------------------------------------------------------------------------------------------------
// Path tricks: none reaches a route without a key

const refusedWithoutKey = [401, 404]
group("path tricks", [
  { name: "//v1/functions", send: () => call("GET", "//v1/functions"), status: refusedWithoutKey },
  { name: "/V1/functions", send: () => call("GET", "/V1/functions"), status: refusedWithoutKey },
  { name: "/x/../v1/functions", send: () => call("GET", "/x/../v1/functions"), status: refusedWithoutKey },
  { name: "/healthz/../v1/functions", send: () => call("GET", "/healthz/../v1/functions"), status: refusedWithoutKey },
  { name: "/v1/./functions", send: () => call("GET", "/v1/./functions"), status: refusedWithoutKey },
  { name: "/v1//functions", send: () => call("GET", "/v1//functions"), status: refusedWithoutKey },
  { name: "/v1/functions/ (trailing slash)", send: () => call("GET", "/v1/functions/"), status: refusedWithoutKey },
  { name: "/v1/functions%2F", send: () => call("GET", "/v1/functions%2F"), status: refusedWithoutKey },
  { name: "/v1/%66unctions (an encoded letter)", send: () => call("GET", "/v1/%66unctions"), status: refusedWithoutKey },
  { name: "HEAD /v1/functions", send: () => call("HEAD", "/v1/functions"), status: [401, 404, 405] },
  { name: "OPTIONS /v1/functions", send: () => call("OPTIONS", "/v1/functions"), status: [401, 404, 405] },
  { name: "DELETE //v1/functions/{id}", send: () => call("DELETE", `//v1/functions/${fn}`), status: refusedWithoutKey },
  { name: "an unknown route with a key", send: () => call("GET", "/v1/nothing-here", { headers: key() }), status: 404, reason: "NotFound" }
])

// ---------------------------------------------------------------------------------------------------------------
// JSON bodies

/** `[[[...]]]`, `depth` levels. */
const nestedArrays = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`
/** `{"a":{"a":...}}`, `depth` levels. */
const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`

group("JSON bodies", [
  { name: "malformed JSON", send: () => json("POST", "/v1/functions", '{ "name": '), status: 400, reason: "InvalidRequest", field: "body" },
  { name: "an empty JSON body", send: () => json("POST", "/v1/functions", ""), status: 400, reason: "InvalidRequest", field: "body" },
  { name: "JSON null", send: () => json("POST", "/v1/functions", "null"), status: 400, reason: "InvalidRequest", field: "body" },
  { name: "a JSON array", send: () => json("POST", "/v1/functions", "[]"), status: 400, reason: "InvalidRequest", field: "body" },
  { name: "a JSON string", send: () => json("POST", "/v1/functions", '"corpus"'), status: 400, reason: "InvalidRequest", field: "body" },
  { name: "a name of the wrong type", send: () => json("POST", "/v1/functions", { name: 42 }), status: 400, reason: "InvalidRequest", field: "name" },
  { name: "a name that overflows to Infinity", send: () => json("POST", "/v1/functions", '{"name":1e400}'), status: 400, field: "name" },
  { name: "an extra key", send: () => json("POST", "/v1/functions", { name: "x", colour: "red" }), status: 400, field: "colour" },
  {
    name: "a __proto__ key",
    send: () => json("POST", "/v1/functions", '{"name":"x","__proto__":{"admin":true}}'),
    status: 400,
    field: "__proto__"
  },
  { name: "JSON that is not UTF-8", send: () => json("POST", "/v1/functions", Buffer.from('{"name":"\xff\xfe"}', "latin1")), status: 400, field: "body" },
  { name: "an unknown preset", send: () => json("POST", "/v1/functions", { name: "x", preset: "turbo" }), status: 400, field: "preset" },
  {
    name: "an unknown override names it in a short message (item 7's HTTP twin)",
    send: () => json("POST", "/v1/functions", { name: "x", overrides: { fold: 3 } }),
    status: 400,
    message: /fold/,
    check: (answer) => expect(answer.body.message, answer.body.message).toMatch(/^.{1,400}$/s)
  },
  { name: "1,000 nested arrays as a name", send: () => json("POST", "/v1/functions", `{"name":${nestedArrays(1000)}}`), status: 400, field: "name" },
  { name: "5,000 nested arrays as a name (item 2)", send: () => json("POST", "/v1/functions", `{"name":${nestedArrays(5000)}}`), status: 400, field: "name" },
  {
    name: "5,000 nested objects as overrides (item 2)",
    send: () => json("POST", "/v1/functions", `{"name":"x","overrides":${nestedObjects(5000)}}`),
    status: 400,
    field: ["overrides", "overrides.a"]
  },
  {
    name: "5,000 nested arrays as a label name (item 2)",
    send: () => json("POST", `/v1/functions/${fn}/labels`, `{"name":${nestedArrays(5000)}}`),
    status: 400,
    field: "name"
  },
  {
    name: "5,000 nested arrays as an annotation (item 2)",
    send: () => json("PUT", `/v1/functions/${fn}/samples/${sampleId}/annotation`, `{"labelName":${nestedArrays(5000)}}`),
    status: 400,
    field: "labelName"
  },
  { name: "5,000 nested arrays as sample data (item 2)", send: () => postSample(`{"data":${nestedArrays(5000)}}`), status: 400, field: "data" },
  { name: "5,000 nested objects as invoke data (item 2)", send: () => invoke(`{"data":${nestedObjects(5000)}}`), status: 400, field: "data" },
  {
    name: "an annotation by name and id at once",
    send: () => json("PUT", `/v1/functions/${fn}/samples/${sampleId}/annotation`, { labelName: "cats", labelId }),
    status: 400
  },
  { name: "an empty annotation", send: () => json("PUT", `/v1/functions/${fn}/samples/${sampleId}/annotation`, {}), status: 400 },
  {
    name: "an annotation with an unknown label id",
    send: () => json("PUT", `/v1/functions/${fn}/samples/${sampleId}/annotation`, { labelId: "label_nope" }),
    status: 404,
    field: "annotation.labelId"
  },
  { name: "JSON sent as text/plain", send: () => json("POST", "/v1/functions", { name: "x" }, { "content-type": "text/plain" }), status: 415, field: "content-type" },
  {
    name: "a form-urlencoded function",
    send: () => call("POST", "/v1/functions", { headers: { ...key(), "content-type": "application/x-www-form-urlencoded" }, body: "name=x" }),
    status: 415,
    field: "content-type"
  },
  { name: "a JSON body with no content type", send: () => call("POST", "/v1/functions", { headers: key(), body: '{"name":"x"}' }), status: 415, field: "content-type" }
])

// ---------------------------------------------------------------------------------------------------------------
// Image data: data URIs, content types, truncated, tiny and bomb images

const truncatedJpeg = catPhoto.subarray(0, 3000)
const png = pngHeader(16, 16)

group("data URIs", [
  { name: "bad base64", send: () => postSample({ data: "data:image/jpeg;base64,@@@" }), status: 400, field: "data" },
  { name: "an empty data URI", send: () => postSample({ data: "data:," }), status: 400, field: "data" },
  { name: "an empty base64 payload", send: () => postSample({ data: "data:image/jpeg;base64," }), status: 400, field: "data" },
  { name: "a data URI without a comma", send: () => postSample({ data: "data:image/jpeg;base64" }), status: 400, field: "data" },
  { name: "a percent-encoded data URI of a truncated JPEG", send: () => postSample({ data: "data:image/jpeg,%FF%D8%FF" }), status: 400, field: "data" },
  { name: "an empty string", send: () => postSample({ data: "" }), status: 400, field: "data" },
  { name: "a file path", send: () => postSample({ data: "/etc/passwd" }), status: 400, field: "data" },
  { name: "data of the wrong type", send: () => postSample({ data: 42 }), status: 400, field: "data" },
  { name: "data null", send: () => postSample({ data: null }), status: 400, field: "data" },
  { name: "no data", send: () => postSample({ annotation: { labelName: "cats" } }), status: 400, field: "data" },
  { name: "a data URI of text", send: () => postSample({ data: dataUri("hello", "text/plain") }), status: 415, field: "data" },
  { name: "a data URI of HTML", send: () => postSample({ data: dataUri("<html></html>", "text/html") }), status: 415, field: "data" }
])

group("content types and image bytes", [
  { name: "text sent as image/jpeg", send: () => postSampleRaw("image/jpeg", "hello, not an image"), status: 415, field: "data" },
  // image/svg+xml is not a content type the route documents: refused before the body is read.
  { name: "an SVG as image/svg+xml", send: () => postSampleRaw("image/svg+xml", svg), status: 415, field: "content-type" },
  { name: "an SVG in a data URI", send: () => postSample({ data: dataUri(svg, "image/svg+xml") }), status: 415, field: "data" },
  { name: "an SVG named .jpg in a form", send: () => postForm([["data", "cat.jpg", "image/jpeg", svg]]), status: 415, field: "data" },
  { name: "a JPEG declared as PNG", send: () => postSampleRaw("image/png", catPhoto), status: 415, field: "data" },
  { name: "a JPEG in a GIF data URI", send: () => postSample({ data: dataUri(catPhoto, "image/gif") }), status: 415, field: "data" },
  { name: "a PNG declared as JPEG in a form", send: () => postForm([["data", "x.jpg", "image/jpeg", png]]), status: 415, field: "data" },
  { name: "random bytes as octet-stream", send: () => postSampleRaw("application/octet-stream", new Uint8Array(512).fill(7)), status: 415, field: "data" },
  { name: "a truncated JPEG as a data URI (item 7)", send: () => postSample({ data: dataUri(truncatedJpeg) }), status: 400, reason: "InvalidImage", field: "data" },
  { name: "a truncated JPEG in a form", send: () => postForm([["data", "cat.jpg", "image/jpeg", truncatedJpeg]]), status: 400, reason: "InvalidImage", field: "data" },
  { name: "a truncated JPEG as a raw body", send: () => postSampleRaw("image/jpeg", truncatedJpeg), status: 400, reason: "InvalidImage", field: "data" },
  { name: "a truncated JPEG to invoke", send: () => invoke({ data: dataUri(truncatedJpeg) }), status: 400, reason: "InvalidImage", field: "data" },
  { name: "a JPEG of SOI and EOI only", send: () => postSampleRaw("image/jpeg", new Uint8Array([0xff, 0xd8, 0xff, 0xd9])), status: 400, field: "data" },
  { name: "a three-byte JPEG", send: () => postSample({ data: dataUri(new Uint8Array([0xff, 0xd8, 0xff])) }), status: 400, field: "data" },
  { name: "an empty image body", send: () => postSampleRaw("image/jpeg", new Uint8Array(0)), status: 400, field: "data" },
  { name: "a PNG of 0 x 0", send: () => postSampleRaw("image/png", pngHeader(0, 0)), status: 400, field: "data" }
])

group("bombs: headers declaring huge sizes", [
  { name: "a PNG declaring 100,000 x 100,000", send: () => postSampleRaw("image/png", pngHeader(100_000, 100_000)), status: 413, reason: "ImageTooLarge", field: "data" },
  { name: "a PNG declaring 1 x 2^31-1", send: () => postSample({ data: dataUri(pngHeader(1, 2 ** 31 - 1), "image/png") }), status: 413, reason: "ImageTooLarge", field: "data" },
  { name: "a JPEG declaring 65,500 x 65,500", send: () => postSampleRaw("image/jpeg", jpegHeader(65_500, 65_500)), status: 413, reason: "ImageTooLarge", field: "data" },
  {
    name: "a JPEG declaring 65,500 x 65,500 in a form",
    send: () => postForm([["data", "big.jpg", "image/jpeg", jpegHeader(65_500, 65_500)]]),
    status: 413,
    reason: "ImageTooLarge",
    field: "data"
  },
  { name: "a GIF declaring 65,535 x 65,535", send: () => postSample({ data: dataUri(gifHeader(65_535, 65_535), "image/gif") }), status: 413, reason: "ImageTooLarge", field: "data" },
  { name: "a small GIF with a 50,000 x 50,000 frame", send: () => postSampleRaw("image/gif", gifFrameBomb()), status: 413, reason: "ImageTooLarge", field: "data" },
  { name: "a PNG bomb to invoke", send: () => call("POST", `/v1/functions/${trained}/invoke`, { headers: { ...key(), "content-type": "image/png" }, body: pngHeader(100_000, 100_000) }), status: 413, reason: "ImageTooLarge", field: "data" }
])

// ---------------------------------------------------------------------------------------------------------------
// 50 MB bodies: the 413 reaches a client that is still sending (item 5)

const FIFTY_MB = 50 * 1024 * 1024
const tooLarge = (name: string, body: () => Promise<Answer>): Case => ({
  name,
  send: body,
  status: 413,
  reason: "BodyTooLarge",
  field: "body",
  check: (answer) => expect(answer.stillSending).toBe(true)
})
const samplesRoute = () => `/v1/functions/${fn}/samples`

group("50 MB bodies", [
  tooLarge("a raw 50 MB image/jpeg body", () => postSampleRaw("image/jpeg", generated(FIFTY_MB, "\xff\xd8\xff"))),
  tooLarge("a 50 MB JSON body", () => postSampleRaw("application/json", generated(FIFTY_MB, '{"data":"data:image/jpeg;base64,', '"}'))),
  tooLarge(
    "a 50 MB multipart body",
    () =>
      postSampleRaw(
        "multipart/form-data; boundary=corpus",
        generated(FIFTY_MB, '--corpus\r\ncontent-disposition: form-data; name="data"; filename="a.jpg"\r\ncontent-type: image/jpeg\r\n\r\n', "\r\n--corpus--\r\n")
      )
  ),
  tooLarge("a chunked 50 MB image body", () => postSampleRaw("image/jpeg", generated(FIFTY_MB, "", "", true))),
  tooLarge("a chunked 50 MB JSON body", () => postSampleRaw("application/json", generated(FIFTY_MB, '{"data":"', '"}', true))),
  tooLarge("a 50 MB body to invoke", () => call("POST", `/v1/functions/${trained}/invoke`, { headers: { ...key(), "content-type": "image/jpeg" }, body: generated(FIFTY_MB) })),
  tooLarge("a 50 MB JSON body to create a function", () => call("POST", "/v1/functions", { headers: { ...key(), "content-type": "application/json" }, body: generated(FIFTY_MB, '{"name":"') })),
  ...[1, 2, 3, 4, 5].map((n): Case => ({
    name: `a 50 MB upload from a client that reads only once it has sent everything (${n} of 5: none may lose its 413, item 5)`,
    send: () => sendBlind(server.base, "POST", samplesRoute(), { ...key(), "content-type": "image/jpeg" }, generated(FIFTY_MB)),
    status: 413,
    reason: "BodyTooLarge",
    field: "body"
  }))
])

// ---------------------------------------------------------------------------------------------------------------
// Content types and multipart forms

group("content types and multipart forms", [
  { name: "text/plain", send: () => postSampleRaw("text/plain", "cat"), status: 415, field: "content-type" },
  { name: "no content type", send: () => postSampleRaw(undefined, "cat"), status: 415, field: "content-type" },
  { name: "application/xml", send: () => postSampleRaw("application/xml", "<cat/>"), status: 415, field: "content-type" },
  { name: "form-urlencoded", send: () => postSampleRaw("application/x-www-form-urlencoded", "data=cat"), status: 415, field: "content-type" },
  { name: "multipart without a boundary", send: () => postSampleRaw("multipart/form-data", multipart("corpus", [["data", "a.jpg", "image/jpeg", catPhoto]])), status: [400, 415], field: ["body", "content-type"] },
  { name: "multipart with the wrong boundary", send: () => postSampleRaw("multipart/form-data; boundary=other", multipart("corpus", [["data", "a.jpg", "image/jpeg", catPhoto]])), status: 400, field: ["body", "data"] },
  { name: "an empty multipart body", send: () => postSampleRaw("multipart/form-data; boundary=corpus", ""), status: 400, field: ["body", "data"] },
  { name: "a multipart form with an unknown field", send: () => postForm([["data", "a.jpg", "image/jpeg", catPhoto], ["label", undefined, undefined, "cats"]]), status: 400, field: "label" },
  { name: "a multipart form whose data is text", send: () => postForm([["data", undefined, undefined, "not a file"]]), status: 400, field: "data" },
  { name: "a multipart form with two files", send: () => postForm([["data", "a.jpg", "image/jpeg", catPhoto], ["data", "b.jpg", "image/jpeg", dogPhoto]]), status: 400, field: "data" },
  { name: "a multipart form without a file", send: () => postForm([["labelName", undefined, undefined, "cats"]]), status: 400, field: "data" },
  { name: "a multipart label name of 201 characters", send: () => postForm([["data", "a.jpg", "image/jpeg", dogPhoto], ["labelName", undefined, undefined, "x".repeat(201)]]), status: 400, field: "labelName" },
  { name: "a blank multipart label name", send: () => postForm([["data", "a.jpg", "image/jpeg", dogPhoto], ["labelName", undefined, undefined, "  "]]), status: 400, field: "labelName" },
  { name: "a multipart form with an unknown field to invoke", send: () => postForm([["data", "a.jpg", "image/jpeg", catPhoto], ["labelName", undefined, undefined, "cats"]], `/v1/functions/${trained}/invoke`), status: 400, field: "labelName" }
])

// ---------------------------------------------------------------------------------------------------------------
// URL inputs: every spelling of a loopback, link-local or private address is refused before connecting

const canaryUrl = (host: string) => `http://${host}:${new URL(canaryOrigin.base).port}/secret`
const originUrl = (route: string) => `${origin.base}${route}`
const notAllowed = /resolves to .*, (a|the) [\w "()/.:-]+ address; this server does not fetch private addresses/
const refusedUrl = (name: string, url: () => string, message = notAllowed): Case => ({
  name,
  send: () => postUrl(url()),
  status: 400,
  reason: "InvalidImage",
  field: "data",
  message
})
const notDataUri = (name: string, url: () => string): Case => ({ name, send: () => postUrl(url()), status: 400, field: "data" })

group("URL inputs", [
  refusedUrl("loopback 127.0.0.1", () => canaryUrl("127.0.0.1")),
  refusedUrl("loopback 127.1", () => canaryUrl("127.1")),
  refusedUrl("loopback in decimal (2130706433)", () => canaryUrl("2130706433")),
  refusedUrl("loopback in hex (0x7f000001)", () => canaryUrl("0x7f000001")),
  refusedUrl("loopback in dotted hex (0x7f.0.0.1)", () => canaryUrl("0x7f.0.0.1")),
  refusedUrl("loopback in octal (0177.0.0.1)", () => canaryUrl("0177.0.0.1")),
  refusedUrl("loopback in whole octal (017700000001)", () => canaryUrl("017700000001")),
  refusedUrl("loopback zero-padded (127.000.000.001)", () => canaryUrl("127.000.000.001")),
  refusedUrl("loopback with a trailing dot", () => canaryUrl("127.0.0.1.")),
  refusedUrl("loopback in circled digits (IDNA)", () => canaryUrl("①②⑦.⓪.⓪.①")),
  refusedUrl("loopback with ideographic full stops", () => canaryUrl("127。0。0。1")),
  refusedUrl("IPv6 loopback [::1]", () => canaryUrl("[::1]")),
  refusedUrl("IPv6 loopback written out", () => canaryUrl("[0:0:0:0:0:0:0:1]")),
  refusedUrl("IPv4-mapped loopback [::ffff:127.0.0.1]", () => canaryUrl("[::ffff:127.0.0.1]")),
  refusedUrl("IPv4-mapped loopback in hex [::ffff:7f00:1]", () => canaryUrl("[::ffff:7f00:1]")),
  refusedUrl("IPv4-compatible loopback [::127.0.0.1]", () => canaryUrl("[::127.0.0.1]")),
  refusedUrl("NAT64 loopback [64:ff9b::127.0.0.1]", () => canaryUrl("[64:ff9b::127.0.0.1]")),
  refusedUrl("6to4 loopback [2002:7f00:1::]", () => canaryUrl("[2002:7f00:1::]")),
  refusedUrl("0", () => canaryUrl("0")),
  refusedUrl("0.0.0.0", () => canaryUrl("0.0.0.0")),
  refusedUrl("[::]", () => canaryUrl("[::]")),
  refusedUrl("localhost", () => canaryUrl("localhost")),
  refusedUrl("LOCALHOST", () => canaryUrl("LOCALHOST")),
  refusedUrl("localhost in circled letters (IDNA)", () => canaryUrl("ⓛⓞⓒⓐⓛⓗⓞⓢⓣ")),
  refusedUrl("an upper-case scheme", () => `HTTP://127.0.0.1:${new URL(canaryOrigin.base).port}/secret`),
  refusedUrl("link-local metadata 169.254.169.254", () => "http://169.254.169.254/latest/meta-data/"),
  refusedUrl("link-local metadata in decimal (2852039166)", () => "http://2852039166/latest/meta-data/"),
  refusedUrl("IPv4-mapped link-local", () => "http://[::ffff:169.254.169.254]/latest/meta-data/"),
  refusedUrl("IPv6 link-local [fe80::1]", () => "http://[fe80::1]/"),
  refusedUrl("private 10.0.0.1", () => "http://10.0.0.1/cat.jpg"),
  refusedUrl("private 172.16.0.1", () => "http://172.16.0.1/cat.jpg"),
  refusedUrl("private 192.168.1.1", () => "http://192.168.1.1/cat.jpg"),
  refusedUrl("carrier-grade NAT 100.64.0.1", () => "http://100.64.0.1/cat.jpg"),
  refusedUrl("unique-local [fd00::1]", () => "http://[fd00::1]/cat.jpg"),
  refusedUrl("an IPv6 zone id", () => "http://[fe80::1%25lo]/", /not a valid URL/),
  notDataUri("file://", () => "file:///etc/passwd"),
  notDataUri("ftp://", () => "ftp://127.0.0.1/cat.jpg"),
  notDataUri("gopher://", () => canaryUrl("127.0.0.1").replace("http", "gopher")),
  notDataUri("a URL after a space", () => ` ${canaryUrl("127.0.0.1")}`),
  notDataUri("a scheme-relative URL", () => `//127.0.0.1:${new URL(canaryOrigin.base).port}/secret`),
  refusedUrl("credentials in the URL", () => originUrl("/cat.jpg").replace("//", "//user:secret@"), /user name or password/),
  refusedUrl("a user name alone", () => originUrl("/cat.jpg").replace("//", "//user@"), /user name or password/),
  refusedUrl("the allowed host as a user name", () => canaryUrl(`${ORIGIN_HOST}@127.0.0.1`), /user name or password|loopback/),
  refusedUrl("a redirect to loopback", () => originUrl("/to-loopback"), /redirects to .*, which resolves to 127\.0\.0\.1, a loopback address/),
  refusedUrl("a redirect to loopback in decimal", () => originUrl("/to-decimal-loopback"), /which resolves to 127\.0\.0\.1, a loopback address/),
  refusedUrl("a redirect to [::1]", () => originUrl("/to-ipv6-loopback"), /which resolves to ::1, a loopback address/),
  refusedUrl("a redirect to localhost", () => originUrl("/to-localhost"), /which resolves to .*, a loopback address/),
  refusedUrl("a redirect to the metadata address", () => originUrl("/to-metadata"), /which resolves to 169\.254\.169\.254, a link-local address/),
  refusedUrl("a redirect to file://", () => originUrl("/to-file"), /redirects to file:\/\/\/etc\/passwd, which is not an http\(s\) URL/),
  refusedUrl("a redirect to a URL with credentials", () => originUrl("/to-credentials"), /user name or password/),
  refusedUrl("a redirect loop", () => originUrl("/loop"), /redirects more than 3 times/),
  refusedUrl("an origin answering 404", () => originUrl("/missing"), /HTTP 404/),
  { name: "an SVG behind a URL", send: () => postUrl(originUrl("/svg")), status: 415, field: "data" },
  { name: "HTML behind a URL", send: () => postUrl(originUrl("/html")), status: 415, field: "data" },
  {
    name: "a URL image declared over 16 MiB gives 413, as a body that size does (item 7)",
    send: () => postUrl(originUrl("/big-declared.jpg")),
    status: 413,
    reason: "BodyTooLarge",
    field: "data"
  },
  {
    name: "a URL image streamed over 16 MiB gives 413 (item 7)",
    send: () => postUrl(originUrl("/big-streamed.jpg")),
    status: 413,
    reason: "BodyTooLarge",
    field: "data"
  },
  tooLarge("a raw body of the same 17 MB gives 413 (item 7)", () => postSampleRaw("image/jpeg", generated(17_000_000, "\xff\xd8\xff"))),
  {
    name: "the allowed origin's JPEG is fetched (the control)",
    send: () => postUrl(originUrl("/cat.jpg")),
    status: 201,
    writes: true,
    check: () => expect(origin.requests).toContain("/cat.jpg")
  }
])

// ---------------------------------------------------------------------------------------------------------------
// Paging and labelCount

const list = (query: string, route = "samples") => () => call("GET", `/v1/functions/${fn}/${route}${query}`, { headers: key() })
const invokeWith = (query: string) => () => invoke({ data: dataUri(dogPhoto) }, query)

group("paging and labelCount", [
  { name: "limit=0", send: list("?limit=0"), status: 400, field: "limit" },
  { name: "limit=1001", send: list("?limit=1001"), status: 400, field: "limit" },
  { name: "limit=-1", send: list("?limit=-1"), status: 400, field: "limit" },
  { name: "limit=1.5", send: list("?limit=1.5"), status: 400, field: "limit" },
  { name: "limit=abc", send: list("?limit=abc"), status: 400, field: "limit" },
  { name: "limit= (empty)", send: list("?limit="), status: 400, field: "limit" },
  { name: "limit=1e400", send: list("?limit=1e400"), status: 400, field: "limit" },
  { name: "limit twice", send: list("?limit=10&limit=20"), status: 400, field: "limit" },
  { name: "offset=-1", send: list("?offset=-1"), status: 400, field: "offset" },
  { name: "offset past 2^53", send: list("?offset=9007199254740993"), status: 400, field: "offset" },
  { name: "an offset past the end is an empty page", send: list("?offset=1000000"), status: 200, check: (a) => expect(a.body).toEqual([]) },
  { name: "captures limit=5000", send: list("?limit=5000", "captures"), status: 400, field: "limit" },
  { name: "captures offset=x", send: list("?offset=x", "captures"), status: 400, field: "offset" },
  {
    name: "a valid invoke with labelCount=1 (the control)",
    send: invokeWith("?labelCount=1"),
    status: 200,
    check: (a) => expect(a.body.labelConfidences).toHaveLength(1)
  },
  { name: "labelCount=0", send: invokeWith("?labelCount=0"), status: 400, field: "labelCount" },
  { name: "labelCount=-1", send: invokeWith("?labelCount=-1"), status: 400, field: "labelCount" },
  { name: "labelCount=1001", send: invokeWith("?labelCount=1001"), status: 400, field: "labelCount" },
  { name: "labelCount=1.5", send: invokeWith("?labelCount=1.5"), status: 400, field: "labelCount" },
  { name: "labelCount=abc", send: invokeWith("?labelCount=abc"), status: 400, field: "labelCount" },
  { name: "capture=maybe", send: invokeWith("?capture=maybe"), status: 400, field: "capture" },
  // Nyckel's SDK sends `modelId=` when no model is named: the promoted model answers, as with no modelId at all.
  {
    name: "an empty modelId is the promoted model",
    send: invokeWith("?modelId="),
    status: 200,
    check: (a) => expect(a.body.modelId).toEqual(expect.stringMatching(/^model_/))
  },
  { name: "a modelId of 101 characters", send: invokeWith(`?modelId=${"m".repeat(101)}`), status: 400, field: "modelId" }
])

// ---------------------------------------------------------------------------------------------------------------
// Names and ids: refused naming the field, or kept exactly as sent

const postLabel = (name: unknown, extra: Record<string, unknown> = {}) => json("POST", `/v1/functions/${fn}/labels`, { name, ...extra })
/** A name that may be refused (400 naming `name`) or kept, but then exactly as sent, never altered. */
const keptOrRefused = (caseName: string, name: string): Case => ({
  name: caseName,
  send: () => postLabel(name),
  status: [201, 400],
  writes: (answer) => answer.status === 201,
  check: (answer) =>
    expect(answer.status === 201 ? answer.body.name : answer.body.field).toBe(answer.status === 201 ? name : "name")
})
const get = (route: () => string) => () => call("GET", route(), { headers: key() })
const idStatus = [400, 404]
let photo = 1
/** Another photo each time, so a sample is new (not a re-post of known bytes). */
const freshPhoto = () => dataUri(fs.readFileSync(catsVsDogsPhotos("train", "dogs", photo++, 1)[0]!))

group("names and ids", [
  { name: "a label name of 201 characters", send: () => postLabel("x".repeat(201)), status: 400, field: "name" },
  { name: "a label name of 100,000 characters", send: () => postLabel("x".repeat(100_000)), status: 400, field: "name" },
  { name: "an empty label name", send: () => postLabel(""), status: 400, field: "name" },
  { name: "a blank label name", send: () => postLabel("   "), status: 400, field: "name" },
  { name: "a label name of tabs and newlines", send: () => postLabel("\t\n\r"), status: 400, field: "name" },
  { name: "a label description of 2,001 characters", send: () => postLabel("long", { description: "d".repeat(2001) }), status: 400, field: "description" },
  { name: "label metadata that is not a string", send: () => postLabel("meta", { metadata: { kind: 3 } }), status: 400, field: "metadata.kind" },
  { name: "a function name of 201 characters", send: () => json("POST", "/v1/functions", { name: "f".repeat(201) }), status: 400, field: "name" },
  { name: "a blank function name", send: () => json("POST", "/v1/functions", { name: " " }), status: 400, field: "name" },
  keptOrRefused("a zero-width label name", "\u200b\u200c\u200d"),
  keptOrRefused("a label name with a NUL", "ca\u0000ts"),
  keptOrRefused("a label name with an RTL override", "\u202egpj.stac"),
  keptOrRefused("a traversal-looking label name", "../../../../etc/passwd"),
  keptOrRefused("a label name with a backslash path", "..\\..\\windows\\win.ini"),
  keptOrRefused("a label name of one dot", "."),
  { name: "re-creating an existing label adds none", send: () => postLabel("cats"), status: [200, 201, 400, 409] },
  { name: "a unicode label name is kept exactly", send: () => postLabel("猫 🐈 café"), status: 201, writes: true, check: (a) => expect(a.body.name).toBe("猫 🐈 café") },
  { name: "a function id of 1,000 characters", send: get(() => `/v1/functions/${"f".repeat(1000)}`), status: idStatus, field: "functionId" },
  { name: "a function id of a NUL", send: get(() => "/v1/functions/%00"), status: idStatus, field: "functionId" },
  { name: "a traversal-looking function id", send: get(() => "/v1/functions/..%2F..%2Fetc%2Fpasswd"), status: idStatus, field: "functionId" },
  { name: "a function id of an RTL override", send: get(() => "/v1/functions/%E2%80%AE"), status: idStatus, field: "functionId" },
  { name: "a function id of a zero-width space", send: get(() => "/v1/functions/%E2%80%8B"), status: idStatus, field: "functionId" },
  { name: "a function id of a space", send: get(() => "/v1/functions/%20"), status: idStatus, field: "functionId" },
  { name: "a function id with broken percent-encoding", send: get(() => "/v1/functions/%ZZ"), status: idStatus },
  { name: "a function id of 100,000 characters", send: get(() => `/v1/functions/${"f".repeat(100_000)}`), status: [400, 404, 414, 431] },
  { name: "a traversal-looking sample id", send: get(() => `/v1/functions/${fn}/samples/..%2F..%2Floupe.db`), status: idStatus, field: "sampleId" },
  { name: "deleting a traversal-looking function id", send: () => call("DELETE", "/v1/functions/..%2F..", { headers: key() }), status: idStatus },
  { name: "deleting a traversal-looking sample id", send: () => call("DELETE", `/v1/functions/${fn}/samples/..%2Fblobs`, { headers: key() }), status: idStatus },
  { name: "an externalId of 101 characters", send: () => postSample({ data: dataUri(dogPhoto), externalId: "e".repeat(101) }), status: 400, field: "externalId" },
  { name: "an empty externalId", send: () => postSample({ data: dataUri(dogPhoto), externalId: "" }), status: 400, field: "externalId" },
  ...[["a NUL", "ext\u0000id"], ["an RTL override", "\u202eexe.txt"], ["zero-width characters", "\u200b\u200b"], ["a traversal-looking", "../../etc/passwd"]].map(
    ([what, externalId]): Case => ({
      name: `an externalId with ${what} is refused or kept exactly`,
      send: () => postSample({ data: freshPhoto(), externalId }),
      status: [201, 400],
      writes: (answer) => answer.status === 201,
      check: (answer) => expect(answer.status === 201 ? answer.body.externalId : answer.body.field).toBe(answer.status === 201 ? externalId : "externalId")
    })
  )
])

describe("names and ids", () => {
  it("wrote nothing outside the store for traversal-looking names", () => {
    const outside = path.dirname(server.store)
    expect(fs.readdirSync(outside).sort()).toEqual(["cache", "store"].filter((f) => fs.existsSync(path.join(outside, f))))
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The "Found" items of issue 16 that the server shows

describe("found items", () => {
  it("re-posting known bytes with another label and externalId returns the same sample, updated, and says so (item 4)", async () => {
    const first = await postSample({ data: dataUri(dogPhoto), annotation: { labelName: "cats" }, externalId: "dog-1" })
    expect(first.status).toBe(201)
    const again = await postSample({ data: dataUri(dogPhoto), annotation: { labelName: "dogs" }, externalId: "dog-2" })
    expect(again.status).toBeLessThan(300)
    expect({ id: again.body.id, labelName: again.body.annotation?.labelName, externalId: again.body.externalId, updated: again.body.updated }).toEqual({
      id: first.body.id,
      labelName: "dogs",
      externalId: "dog-2",
      updated: expect.arrayContaining(["annotation", "externalId"])
    })
  })

  it("a label with fewer than 2 samples is left out of training, not blocking it; and it can be deleted (item 3)", async () => {
    const created = await json("POST", "/v1/functions", { name: "sparse", preset: "fast" })
    const sparse = created.body.id as string
    const birds = await json("POST", `/v1/functions/${sparse}/labels`, { name: "birds" })
    expect(birds.status).toBe(201)
    const photos = [...catsVsDogsPhotos("train", "cats", 20, 2), ...catsVsDogsPhotos("train", "dogs", 20, 2)]
    for (const [i, file] of photos.entries()) {
      const posted = await json("POST", `/v1/functions/${sparse}/samples`, { data: dataUri(fs.readFileSync(file)), annotation: { labelName: i < 2 ? "cats" : "dogs" } })
      expect(posted.status).toBe(201)
    }
    const detail = await settled(sparse)
    expect({ trainError: detail.body.trainError, trained: detail.body.model !== null }).toEqual({ trainError: null, trained: true })
    const removed = await call("DELETE", `/v1/functions/${sparse}/labels/${birds.body.id}`, { headers: key() })
    expect([200, 204]).toContain(removed.status)
    expect((await call("GET", `/v1/functions/${sparse}/labels`, { headers: key() })).body.map((l: { name: string }) => l.name)).not.toContain("birds")
  }, 270_000)

  it("opening the store removed the temporary file a killed writer left (item 6)", () => {
    expect(fs.existsSync(path.join(server.store, ORPHAN))).toBe(false)
  })

  it("every file in the store is 0600 and every folder 0700 (item 7)", () => {
    const modes = [".", ...fs.readdirSync(server.store, { recursive: true, encoding: "utf8" })].map((entry) => {
      const stat = fs.statSync(path.join(server.store, entry))
      return `${entry} ${(stat.mode & 0o777).toString(8)}${stat.isDirectory() ? "/" : ""}`
    })
    expect(modes).toEqual(modes.map((m) => m.replace(/\d+(\/?)$/, (_, folder: string) => (folder === "/" ? "700/" : "600"))))
  })

  it(`slow headers are cut at the configured ${HEADERS_TIMEOUT_MS} ms, not at the next half-minute sweep (item 7)`, async () => {
    // Two slow clients 2.5 s apart: a sweep that happens to fall in one's window cannot fall in the other's too.
    const clients = [0, 2500].map((delay) =>
      new Promise<void>((r) => setTimeout(r, delay)).then(() => slowHeaders(server.base, HEADERS_TIMEOUT_MS + 3000)))
    for (const cut of await Promise.all(clients)) {
      expect(cut, "the connection was still open").toBeDefined()
      expect(cut!.closedAfterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 500)
      expect(cut!.closedAfterMs).toBeLessThanOrEqual(HEADERS_TIMEOUT_MS + 1500)
      expect(cut!.answer === "" || cut!.answer.startsWith("HTTP/1.1 408")).toBe(true)
    }
    expect((await call("GET", "/healthz")).status).toBe(200)
  }, 20_000)

  it("the corpus has at least 80 cases", () => {
    expect(corpusSize).toBeGreaterThanOrEqual(80)
  })
})
