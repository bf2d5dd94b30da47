// The HTTP server over a real bundle (BundleBackend): routes, auth, rate limit, bad input, OpenAPI, graceful drain.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Exit, Layer, Scope } from "effect"
import { ApiKeys, BundleBackend, DeployError, FunctionBackend, Predictor, Server } from "@loupe/deploy"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import { png } from "../../../test/fixtures/png.mjs"
import { environment, fitBundle, photos, tempDir } from "./fixtures/shared.js"
import { dataUri, type Running, start } from "./fixtures/server.js"

type Body = NonNullable<RequestInit["body"]>

const work = tempDir("server")
const bundleDir = path.join(work, "cats-or-dogs")
const keysFile = path.join(work, "keys.json")
const cat = new Uint8Array(fs.readFileSync(photos("test", "cats", 1)[0]!))
const dog = new Uint8Array(fs.readFileSync(photos("test", "dogs", 1)[0]!))
const fn = "cats-or-dogs"

let scope: Scope.CloseableScope
let backend: Layer.Layer<FunctionBackend.FunctionBackend>
let keys: Layer.Layer<ApiKeys.ApiKeys>
let token = ""
let server: Running

const serve = (options: Server.ServerOptions = {}) =>
  start(Server.layer({ port: 0, ...options }).pipe(Layer.provide(backend), Layer.provide(keys)))

beforeAll(async () => {
  await Effect.runPromise(fitBundle(bundleDir, 8))
  scope = Effect.runSync(Scope.make())
  const predictor = await Effect.runPromise(
    Predictor.load(bundleDir).pipe(Effect.provide(environment), Scope.extend(scope))
  )
  backend = Layer.succeed(FunctionBackend.FunctionBackend, BundleBackend.make(predictor, bundleDir))
  const store = await Effect.runPromise(ApiKeys.make(keysFile).pipe(Effect.provide(NodeFileSystem.layer)))
  token = (await Effect.runPromise(store.create("tests"))).token
  keys = Layer.succeed(ApiKeys.ApiKeys, store)
  server = await serve({ image: { maxBytes: 2_000_000 }, rateLimit: { perSecond: 1000, burst: 1000 } })
})

afterAll(async () => {
  await server?.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

const auth = () => ({ authorization: `Bearer ${token}` })

const call = async (
  route: string,
  init: { method?: string; headers?: Record<string, string>; body?: Body | Uint8Array; target?: Running } = {}
) => {
  const response = await fetch(`${(init.target ?? server).url}${route}`, <RequestInit> {
    method: init.method ?? "GET",
    headers: init.headers ?? {},
    ...(init.body === undefined ? {} : { body: init.body as Body, duplex: "half" })
  })
  const text = await response.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status: response.status, headers: response.headers, body }
}

const invokeJson = (body: unknown, query = "") =>
  call(`/v1/functions/${fn}/invoke${query}`, {
    method: "POST",
    headers: { ...auth(), "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body)
  })

describe("routes", () => {
  it("answers the probes and serves the OpenAPI document without a key", async () => {
    expect((await call("/healthz")).body).toEqual({ status: "ok" })
    expect((await call("/readyz")).body).toEqual({ status: "ready" })
    const spec = (await call("/openapi.json")).body
    expect(spec.openapi).toMatch(/^3\./)
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining([
      "/v1/functions",
      "/v1/functions/{functionId}",
      "/v1/functions/{functionId}/labels",
      "/v1/functions/{functionId}/samples",
      "/v1/functions/{functionId}/samples/{sampleId}/annotation",
      "/v1/functions/{functionId}/invoke",
      "/v1/functions/{functionId}/metrics",
      "/v1/functions/{functionId}/captures"
    ]))
    expect(JSON.stringify(spec.components.securitySchemes)).toMatch(/bearer/i)
  })

  it("invokes with a data URI, a multipart file and a raw body, agreeing with each other", async () => {
    const json = await invokeJson({ data: dataUri(cat), externalId: "ext-1" })
    expect(json.status).toBe(200)
    expect(json.body).toMatchObject({ labelName: "cats", labelId: "cats", sampleId: null, externalId: "ext-1" })
    expect(json.body.labelConfidences.map((c: any) => c.labelName)).toEqual(["cats", "dogs"])
    expect(json.body.confidence).toBeGreaterThan(0.5)
    expect(json.body.labelConfidences.reduce((s: number, c: any) => s + c.confidence, 0)).toBeCloseTo(1, 6)

    const dogJson = await invokeJson({ data: dataUri(dog) })
    const form = new FormData()
    form.append("data", new Blob([dog], { type: "image/jpeg" }), "dog.jpg")
    const multipart = await call(`/v1/functions/${fn}/invoke?labelCount=1`, { method: "POST", headers: auth(), body: form })
    expect(multipart.status).toBe(200)
    expect(multipart.body.labelName).toBe(dogJson.body.labelName)
    expect(multipart.body.confidence).toBeCloseTo(dogJson.body.confidence, 6)
    expect(multipart.body.labelConfidences).toHaveLength(1)

    const raw = await call(`/v1/functions/${fn}/invoke`, {
      method: "POST",
      headers: { ...auth(), "content-type": "image/jpeg" },
      body: cat
    })
    expect(raw.status).toBe(200)
    expect(raw.body.confidence).toBeCloseTo(json.body.confidence, 6)
  })

  it("lists the function, its labels and its detail; mutations answer 405 on a read-only bundle", async () => {
    expect((await call("/v1/functions", { headers: auth() })).body).toEqual([
      expect.objectContaining({ id: fn, name: fn })
    ])
    const detail = (await call(`/v1/functions/${fn}`, { headers: auth() })).body
    expect(detail.labels.map((l: any) => l.name)).toEqual(["cats", "dogs"])
    expect(detail.model).toMatchObject({ upToDate: true })
    expect((await call(`/v1/functions/${fn}/labels`, { headers: auth() })).body).toHaveLength(2)
    expect((await call(`/v1/functions/${fn}/captures`, { headers: auth() })).body).toEqual([])
    const create = await call("/v1/functions", {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body: JSON.stringify({ name: "x" })
    })
    expect(create.status).toBe(405)
    expect(create.body).toMatchObject({ _tag: "MethodNotAllowed", reason: "ReadOnly" })
    expect(detail.leftOutLabels).toEqual([])
    const deleteLabel = await call(`/v1/functions/${fn}/labels/cats`, { method: "DELETE", headers: auth() })
    expect(deleteLabel).toMatchObject({ status: 405, body: { reason: "ReadOnly" } })
    expect((await call(`/v1/functions/${fn}/metrics`, { headers: auth() })).body).toMatchObject({ reason: "NotFound", field: "metrics" })
  })

  it("lists the bundle's one model, serving; promoting it leaves it serving, another id is 404", async () => {
    const models = (await call(`/v1/functions/${fn}/models`, { headers: auth() })).body
    const detail = (await call(`/v1/functions/${fn}`, { headers: auth() })).body
    expect(models).toEqual([expect.objectContaining({ id: detail.model.id, labels: ["cats", "dogs"], serving: true, heldBack: null })])
    expect(detail.heldBack).toBeNull()
    const promote = (id: string) => call(`/v1/functions/${fn}/models/${id}/promote`, { method: "POST", headers: auth() })
    expect(await promote(detail.model.id)).toMatchObject({ status: 200, body: { id: detail.model.id, serving: true } })
    expect(await promote("model_other")).toMatchObject({ status: 404, body: { reason: "NotFound", field: "modelId" } })
  })
})

describe("auth", () => {
  it("refuses missing, malformed, unknown and revoked keys with 401 and a reason", async () => {
    const route = `/v1/functions/${fn}/invoke`
    const post = (headers: Record<string, string>) =>
      call(route, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify({ data: dataUri(cat) }) })
    const none = await post({})
    expect(none.status).toBe(401)
    expect(none.headers.get("www-authenticate")).toBe("Bearer")
    expect(none.body).toMatchObject({ _tag: "Unauthorized", reason: "Unauthorized", field: "authorization" })
    expect(none.body.message).toMatch(/Authorization: Bearer/)
    expect((await post({ authorization: "Bearer nope" })).body.message).toMatch(/malformed/)
    expect((await post({ authorization: `Basic ${Buffer.from("a:b").toString("base64")}` })).status).toBe(401)
    const wrong = token.slice(0, -4) + (token.endsWith("AAAA") ? "BBBB" : "AAAA")
    expect((await post({ authorization: `Bearer ${wrong}` })).body.message).toMatch(/not known/)
    // Reads need a key too.
    expect((await call("/v1/functions")).status).toBe(401)
    // The key is checked before anything about the body: no content type, an undocumented one, or a form (which
    // the server would otherwise read) all answer 401.
    for (const headers of [{}, { "content-type": "text/plain" }, { "content-type": "multipart/form-data; boundary=x" }]) {
      const unkeyed = await call(route, { method: "POST", headers, body: "--x\r\ncontent-disposition: form-data; name=\"data\"\r\n\r\ncat\r\n--x--\r\n" })
      expect(unkeyed.status).toBe(401)
    }

    const store = await Effect.runPromise(ApiKeys.make(keysFile).pipe(Effect.provide(NodeFileSystem.layer)))
    const doomed = await Effect.runPromise(store.create("doomed"))
    expect((await post({ authorization: `Bearer ${doomed.token}` })).status).toBe(200)
    await Effect.runPromise(store.revoke(doomed.id))
    await new Promise((r) => setTimeout(r, 1100))
    const revoked = await post({ authorization: `Bearer ${doomed.token}` })
    expect(revoked.status).toBe(401)
    expect(revoked.body.message).toMatch(/revoked/)
  })

  it("answers 429 with Retry-After past a key's rate limit", async () => {
    const limited = await serve({ rateLimit: { perSecond: 1, burst: 3 } })
    try {
      const statuses: Array<number> = []
      let retryAfter: string | null = null
      for (let i = 0; i < 5; i++) {
        const r = await call("/v1/functions", { headers: auth(), target: limited })
        statuses.push(r.status)
        if (r.status === 429) {
          retryAfter = r.headers.get("retry-after")
          expect(r.body).toMatchObject({ _tag: "TooManyRequests", reason: "RateLimited", field: "authorization" })
        }
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429])
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
    } finally {
      await limited.close()
    }
  })
})


describe("bad input", () => {
  const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"></svg>')
  const gifBomb = new Uint8Array(Buffer.concat([
    Buffer.from("GIF89a", "latin1"),
    Buffer.from([10, 0, 10, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, 0x50, 0xc3, 0x50, 0xc3, 0, 2, 0, 0x3b])
  ]))
  const form = (entries: Array<[string, string | Blob]>) => {
    const f = new FormData()
    for (const [k, v] of entries) f.append(k, v)
    return f
  }
  const post = (query: string, headers: Record<string, string>, body: Body | Uint8Array) =>
    call(`/v1/functions/${fn}/invoke${query}`, { method: "POST", headers: { ...auth(), ...headers }, body })
  const jsonType = { "content-type": "application/json" }

  const cases: Array<[string, () => Promise<{ status: number; body: any }>, number, string, string | undefined]> = [
    ["malformed JSON", () => post("", jsonType, "{ data: "), 400, "InvalidRequest", "body"],
    ["JSON that is not UTF-8", () => post("", jsonType, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 400, "InvalidRequest", "body"],
    ["no data field", () => invokeJson({ externalId: "x" }), 400, "InvalidRequest", "data"],
    ["data of the wrong type", () => invokeJson({ data: 42 }), 400, "InvalidRequest", "data"],
    ["an unknown field", () => invokeJson({ data: dataUri(cat), colour: "red" }), 400, "InvalidRequest", "colour"],
    ["an empty externalId", () => invokeJson({ data: dataUri(cat), externalId: "" }), 400, "InvalidRequest", "externalId"],
    ["data that is not a data URI", () => invokeJson({ data: "/etc/passwd" }), 400, "InvalidRequest", "data"],
    ["a URL while fetching is off (SSRF)", () => invokeJson({ data: "http://169.254.169.254/latest/meta-data/" }), 400, "UrlFetchDisabled", "data"],
    ["a data URI that is not base64", () => invokeJson({ data: "data:image/jpeg;base64,@@@" }), 400, "InvalidRequest", "data"],
    ["a data URI of HTML", () => invokeJson({ data: dataUri(svg, "text/html") }), 415, "UnsupportedMediaType", "data"],
    ["an SVG image", () => invokeJson({ data: dataUri(svg, "application/octet-stream") }), 415, "UnsupportedMediaType", "data"],
    ["a JPEG declared as PNG", () => invokeJson({ data: dataUri(cat, "image/png") }), 415, "UnsupportedMediaType", "data"],
    ["a truncated JPEG", () => invokeJson({ data: dataUri(cat.subarray(0, 3000)) }), 400, "InvalidImage", "data"],
    ["an empty image", () => post("", { "content-type": "image/jpeg" }, new Uint8Array(0)), 400, "InvalidImage", "data"],
    ["text sent as image/jpeg", () => post("", { "content-type": "image/jpeg" }, "hello"), 415, "UnsupportedMediaType", "data"],
    ["a PNG decompression bomb", () => post("", { "content-type": "image/png" }, png(8000, 8000)), 413, "ImageTooLarge", "data"],
    ["a GIF with a giant frame", () => invokeJson({ data: dataUri(gifBomb, "image/gif") }), 413, "ImageTooLarge", "data"],
    ["a body over the size limit", () => invokeJson({ data: dataUri(new Uint8Array(3_000_000)) }), 413, "BodyTooLarge", "body"],
    ["a chunked body over the limit", () => post("", { "content-type": "image/jpeg" }, new Blob([new Uint8Array(2_500_000)]).stream() as any), 413, "BodyTooLarge", "body"],
    ["a text/plain body", () => post("", { "content-type": "text/plain" }, "cat"), 415, "UnsupportedMediaType", "content-type"],
    ["no content type", () => call(`/v1/functions/${fn}/invoke`, { method: "POST", headers: auth() }), 415, "UnsupportedMediaType", "content-type"],
    ["labelCount=0", () => invokeJson({ data: dataUri(cat) }, "?labelCount=0"), 400, "InvalidRequest", "labelCount"],
    ["labelCount=abc", () => invokeJson({ data: dataUri(cat) }, "?labelCount=abc"), 400, "InvalidRequest", "labelCount"],
    ["capture=maybe", () => invokeJson({ data: dataUri(cat) }, "?capture=maybe"), 400, "InvalidRequest", "capture"],
    ["an unknown model id", () => invokeJson({ data: dataUri(cat) }, "?modelId=model_x"), 404, "NotFound", "modelId"],
    ["an unknown function", () => call("/v1/functions/nope/invoke", { method: "POST", headers: { ...auth(), ...jsonType }, body: JSON.stringify({ data: dataUri(cat) }) }), 404, "NotFound", "functionId"],
    ["a function id longer than any id", () => call(`/v1/functions/${"f".repeat(300)}`, { headers: auth() }), 400, "InvalidRequest", "functionId"],
    ["a limit over 1000", () => call(`/v1/functions/${fn}/captures?limit=5000`, { headers: auth() }), 400, "InvalidRequest", "limit"],
    ["a form without a file", () => post("", {}, form([["externalId", "x"]])), 400, "InvalidRequest", "data"],
    ["a form with an unknown field", () => post("", {}, form([["data", new Blob([cat], { type: "image/jpeg" })], ["label", "cats"]])), 400, "InvalidRequest", "label"],
    ["a form whose data is text", () => post("", {}, form([["data", "not a file"]])), 400, "InvalidRequest", "data"],
    ["a broken multipart body", () => post("", { "content-type": "multipart/form-data; boundary=xyz" }, "--xyz\r\nnonsense"), 400, "InvalidRequest", "body"],
    ["an unknown route", () => call("/v1/nothing-here", { headers: auth() }), 404, "NotFound", undefined]
  ]

  it(`answers each of ${cases.length} bad requests with a 4xx, a named reason and the field`, async () => {
    expect(cases.length).toBeGreaterThanOrEqual(20)
    const got: Array<unknown> = []
    const want: Array<unknown> = []
    for (const [name, send, status, reason, field] of cases) {
      const { body, status: code } = await send()
      got.push({ name, status: code, reason: body?.reason, field: body?.field, message: typeof body?.message })
      want.push({ name, status, reason, field, message: "string" })
    }
    expect(got).toEqual(want)
    // And the server is still there.
    expect((await invokeJson({ data: dataUri(cat) })).status).toBe(200)
  })
})

describe("deep nesting", () => {
  it("answers JSON nested 5,000 levels deep with 400 naming the problem on every JSON route, as it does 1,000 levels", async () => {
    const nested = (levels: number) => "[".repeat(levels) + "]".repeat(levels)
    const routes: Array<[string, string]> = [
      ["POST", "/v1/functions"],
      ["POST", `/v1/functions/${fn}/labels`],
      ["POST", `/v1/functions/${fn}/samples`],
      ["PUT", `/v1/functions/${fn}/samples/s1/annotation`],
      ["POST", `/v1/functions/${fn}/invoke`]
    ]
    const got: Array<unknown> = []
    for (const [method, route] of routes) {
      for (const body of [nested(5_000), `{"name":${nested(5_000)}}`, `{"data":${nested(1_000)}}`]) {
        const r = await call(route, { method, headers: { ...auth(), "content-type": "application/json" }, body })
        got.push({ route, size: body.length > 9_000, status: r.status, reason: r.body.reason, field: r.body.field, message: r.body.message })
      }
    }
    // The field is the top-level key the nesting is under (the body itself for a nested array).
    expect(got).toEqual(routes.flatMap(([, route]) =>
      ([[true, "body"], [true, "name"], [false, "data"]] as const).map(([size, field]) => ({
        route,
        size,
        status: 400,
        reason: "InvalidRequest",
        field,
        message: `${field}: nests arrays or objects deeper than 64 levels`
      }))
    ))
    expect((await invokeJson({ data: dataUri(cat) })).status).toBe(200)
  })
})

/**
 * A client that sends `headers`, then up to 50 MB of body (as fast as the socket takes it, chunked or not) while it
 * reads: what it got back, how much it had sent by then, and any socket error.
 */
const keepSending = (target: Running, head: string, chunked: boolean) =>
  new Promise<{ response: string; sent: number; error: string | undefined }>((resolve) => {
    const { hostname, port } = new URL(target.url)
    const socket = net.connect(Number(port), hostname)
    const piece = Buffer.alloc(64 * 1024, 0x41)
    const frame = chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")]) : piece
    let response = ""
    let sent = 0
    let error: string | undefined
    let answered = false
    const pump = (): unknown => {
      while (!answered && sent < 50 * 1024 * 1024) {
        sent += piece.length
        if (!socket.write(frame)) return socket.once("drain", pump)
      }
      return chunked && !answered ? socket.write("0\r\n\r\n") : undefined
    }
    socket.on("connect", () => {
      socket.write(head)
      pump()
    })
    socket.on("data", (data) => {
      response += data.toString("latin1")
      // The whole answer is in once its JSON body is.
      if (!answered && response.includes("\r\n\r\n") && response.trimEnd().endsWith("}")) {
        answered = true
        socket.end()
      }
    })
    socket.on("error", (e) => (error = (e as NodeJS.ErrnoException).code ?? e.message))
    socket.on("close", () => resolve({ response, sent, error }))
  })

describe("oversized bodies", () => {
  // The answer comes at once, and the rest of the body is read and dropped with the connection kept open, so a client
  // that reads only after sending gets it too (the corpus in @loupe/functions has that client).
  it("answers 413 to a client still sending 50 MB, raw, JSON, multipart, with a length or chunked", async () => {
    const route = `/v1/functions/${fn}/invoke`
    const types = ["image/jpeg", "application/json", "multipart/form-data; boundary=b"]
    const got: Array<unknown> = []
    for (const chunked of [false, true]) {
      for (const type of types) {
        const preamble = type.startsWith("multipart")
          ? "--b\r\nContent-Disposition: form-data; name=\"data\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
          : ""
        const head = `POST ${route} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: ${type}\r\n` +
          (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : `Content-Length: ${50 * 1024 * 1024 + preamble.length}\r\n\r\n`) +
          (chunked && preamble !== "" ? `${preamble.length.toString(16)}\r\n${preamble}\r\n` : preamble)
        const { response, sent, error } = await keepSending(server, head, chunked)
        const body = JSON.parse(response.slice(response.indexOf("{"), response.lastIndexOf("}") + 1))
        got.push({ type, chunked, status: response.slice(0, 12), reason: body.reason, field: body.field, error, stoppedEarly: sent < 50 * 1024 * 1024 })
      }
    }
    expect(got).toEqual([false, true].flatMap((chunked) =>
      types.map((type) => ({
        type,
        chunked,
        status: "HTTP/1.1 413",
        reason: "BodyTooLarge",
        field: "body",
        error: undefined,
        stoppedEarly: true
      }))
    ))
    expect((await invokeJson({ data: dataUri(cat) })).status).toBe(200)
  })
})

describe("slow clients", () => {
  it("cuts a request whose headers trickle in at the configured timeout, not at Node's 30 s check", async () => {
    const slow = await serve({ requestTimeoutMs: 1_500 })
    try {
      const { hostname, port } = new URL(slow.url)
      const started = Date.now()
      const { answer, after } = await new Promise<{ answer: string; after: number }>((resolve) => {
        const socket = net.connect(Number(port), hostname, () => socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n`))
        let answer = ""
        const trickle = setInterval(() => socket.write("X-Slow: 1\r\n"), 200)
        socket.on("data", (d) => (answer += d.toString("latin1")))
        socket.on("error", () => {})
        socket.on("close", () => {
          clearInterval(trickle)
          resolve({ answer, after: Date.now() - started })
        })
      })
      expect(answer).toMatch(/^HTTP\/1\.1 408/)
      expect(after).toBeGreaterThanOrEqual(1_400)
      expect(after).toBeLessThan(3_000)
    } finally {
      await slow.close()
    }
  })
})

describe("the OpenAPI document", () => {
  type Schema = { readonly [key: string]: any }
  let spec: any
  const resolve = (schema: Schema): Schema => (schema.$ref ? spec.components.schemas[schema.$ref.split("/").pop()] : schema)
  /** Where `value` departs from the document's JSON schema (the parts of JSON Schema the document uses). */
  const problems = (schema: Schema, value: unknown, at = "$"): Array<string> => {
    const s = resolve(schema)
    if (s.anyOf) return s.anyOf.some((o: Schema) => problems(o, value, at).length === 0) ? [] : [`${at}: matches none of its anyOf`]
    const is = (ok: boolean) => (ok ? [] : [`${at}: ${JSON.stringify(value)} is not ${s.type}${s.enum ? ` in ${s.enum}` : ""}`])
    switch (s.type) {
      case "null":
        return is(value === null)
      case "string":
        return is(typeof value === "string" && (s.enum === undefined || s.enum.includes(value)))
      case "number":
        return is(typeof value === "number")
      case "integer":
        return is(Number.isInteger(value))
      case "boolean":
        return is(typeof value === "boolean")
      case "array":
        return Array.isArray(value) ? value.flatMap((v, i) => problems(s.items ?? {}, v, `${at}[${i}]`)) : is(false)
      case "object": {
        if (typeof value !== "object" || value === null || Array.isArray(value)) return is(false)
        const properties: Record<string, Schema> = s.properties ?? {}
        return [
          ...(s.required ?? []).filter((k: string) => !(k in value)).map((k: string) => `${at}.${k}: missing`),
          ...(s.additionalProperties === false ? Object.keys(value).filter((k) => !(k in properties)).map((k) => `${at}.${k}: not documented`) : []),
          ...Object.entries(value).flatMap(([k, v]) => (properties[k] ? problems(properties[k]!, v, `${at}.${k}`) : []))
        ]
      }
      default:
        return []
    }
  }
  /** Where an answer departs from what the document says `operation` answers with `status`. */
  const conformance = (operation: any, status: number, body: unknown): Array<string> => {
    const documented = operation.responses[String(status)]
    if (documented === undefined) return [`status ${status} is not documented`]
    const schema = documented.content?.["application/json"]?.schema
    if (schema === undefined) return body === "" ? [] : [`status ${status} documents no body, got ${JSON.stringify(body)}`]
    return problems(schema, body)
  }
  const operations = () =>
    Object.entries(spec.paths as Record<string, Record<string, any>>).flatMap(([route, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ route, method: method.toUpperCase(), operation }))
    )
  const fill = (route: string) => route.replace("{functionId}", fn).replace("{sampleId}", "sample_1")

  // Small images of each documented raw type (the invoke route decodes them for real).
  const images: Record<string, Uint8Array> = {
    "image/jpeg": cat,
    "image/png": png(8, 8, { colourType: 2, fill: 0x80 }),
    "image/gif": new Uint8Array(Buffer.from("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==", "base64")),
    "image/webp": new Uint8Array(Buffer.from("UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA", "base64")),
    "application/octet-stream": dog
  }
  /** A valid body of `type` for the route, and the headers it goes with (fetch sets a form's boundary). */
  const valid = (route: string, type: string): { body: Body | Uint8Array; headers: Record<string, string> } => {
    if (type === "multipart/form-data") {
      const form = new FormData()
      form.append("data", new Blob([cat], { type: "image/jpeg" }), "cat.jpg")
      if (route.endsWith("/samples")) form.append("labelName", "cats")
      form.append("externalId", "ext-1")
      return { body: form, headers: {} }
    }
    if (type === "application/x-www-form-urlencoded") {
      // The key's client credentials: its id, and the key as secret.
      const form = new URLSearchParams({ grant_type: "client_credentials", client_id: token.split("_")[1]!, client_secret: token })
      return { body: form.toString(), headers: { "content-type": type } }
    }
    if (type !== "application/json") return { body: images[type]!, headers: { "content-type": type } }
    const json = route.endsWith("/invoke")
      ? { data: dataUri(cat), externalId: "ext-1" }
      : route.startsWith("/v0.9/") && route.endsWith("/samples")
      ? { data: dataUri(cat), annotation: [{ labelName: "cats", present: true }], externalId: "ext-1" }
      : route.endsWith("/samples")
      ? { data: dataUri(cat), annotation: { labelName: "cats" }, externalId: "ext-1" }
      : route.startsWith("/v0.9/") && route.endsWith("/annotation")
      ? [{ labelName: "cats", present: true }]
      : route.endsWith("/annotation")
      ? { labelName: "cats" }
      : { name: "birds" }
    return { body: JSON.stringify(json), headers: { "content-type": type } }
  }

  beforeAll(async () => {
    spec = (await call("/openapi.json")).body
  })

  it("takes every documented content type on every route that documents it, answering as documented", async () => {
    const tried: Array<string> = []
    const departures: Array<string> = []
    for (const { route, method, operation } of operations()) {
      for (const type of Object.keys(operation.requestBody?.content ?? {})) {
        const { body, headers } = valid(route, type)
        const r = await call(fill(route), { method, headers: { ...auth(), ...headers }, body })
        tried.push(`${method} ${route} ${type}`)
        // Accepted: decoded and handled (the bundle server is read-only, so changes answer 405 ReadOnly).
        const accepted = (r.status >= 200 && r.status < 300) || (r.status === 405 && r.body.reason === "ReadOnly")
        if (!accepted) departures.push(`${method} ${route} ${type}: ${r.status} ${JSON.stringify(r.body)}`)
        departures.push(...conformance(operation, r.status, r.body).map((p) => `${method} ${route} ${type}: ${p}`))
      }
    }
    expect(departures).toEqual([])
    // 17, and the Nyckel routes': the token, a label's update, a Tags sample, its retagging, invoke and a project's
    // creation.
    expect(tried).toHaveLength(23)
    expect(tried).toContain(`POST /v1/functions/{functionId}/invoke image/webp`)
    // Decoding failures are answered as BadRequest, so the platform's own decode error is not documented.
    expect(JSON.stringify(spec)).not.toContain("HttpApiDecodeError")
  })

  it("answers each documented error status somewhere, in the shape the document gives it", async () => {
    // Failures a bundle cannot show, injected: no model yet (409) and a failing store (500).
    const faulty = await start(Server.layer({ port: 0 }).pipe(
      Layer.provide(Layer.effect(
        FunctionBackend.FunctionBackend,
        Effect.map(FunctionBackend.FunctionBackend, (b): FunctionBackend.FunctionBackendShape => ({
          ...b,
          metrics: () => Effect.fail(new DeployError.DeployError({ reason: "NotTrained", field: "functionId", message: "functionId: no model yet" })),
          listCaptures: () => Effect.fail(new DeployError.DeployError({ reason: "Internal", message: "the store failed" }))
        }))
      ).pipe(Layer.provide(backend))),
      Layer.provide(keys)
    ))
    const limited = await serve({ rateLimit: { perSecond: 1, burst: 1 } })
    const draining = await serve()
    const op = (method: string, route: string) => spec.paths[route][method.toLowerCase()]
    const invoke = "/v1/functions/{functionId}/invoke"
    const jsonType = { ...auth(), "content-type": "application/json" }
    try {
      const provoke: Record<number, () => Promise<{ method: string; route: string; status: number; body: any }>> = {
        400: async () => ({ method: "POST", route: invoke, ...(await call(fill(invoke), { method: "POST", headers: jsonType, body: "{}" })) }),
        401: async () => ({ method: "GET", route: "/v1/functions", ...(await call("/v1/functions")) }),
        404: async () => ({ method: "GET", route: "/v1/functions/{functionId}", ...(await call("/v1/functions/nope", { headers: auth() })) }),
        405: async () => ({ method: "POST", route: "/v1/functions", ...(await call("/v1/functions", { method: "POST", headers: jsonType, body: "{\"name\":\"x\"}" })) }),
        409: async () => ({ method: "GET", route: "/v1/functions/{functionId}/metrics", ...(await call(`/v1/functions/${fn}/metrics`, { headers: auth(), target: faulty })) }),
        413: async () => ({ method: "POST", route: invoke, ...(await call(fill(invoke), { method: "POST", headers: jsonType, body: JSON.stringify({ data: dataUri(new Uint8Array(3_000_000)) }) })) }),
        415: async () => ({ method: "POST", route: invoke, ...(await call(fill(invoke), { method: "POST", headers: { ...auth(), "content-type": "text/plain" }, body: "cat" })) }),
        429: async () => {
          await call("/v1/functions", { headers: auth(), target: limited })
          return { method: "GET", route: "/v1/functions", ...(await call("/v1/functions", { headers: auth(), target: limited })) }
        },
        500: async () => ({ method: "GET", route: "/v1/functions/{functionId}/captures", ...(await call(`/v1/functions/${fn}/captures`, { headers: auth(), target: faulty })) }),
        // A request whose headers are still arriving when the server starts to shut down, while another one, its
        // body still arriving, keeps the server draining.
        503: async () => {
          const { hostname, port } = new URL(draining.url)
          const open = async () => {
            const socket = net.connect(Number(port), hostname)
            let text = ""
            const closed = new Promise<string>((resolve) => {
              socket.on("data", (d) => (text += d.toString("latin1")))
              socket.on("close", () => resolve(text))
              socket.on("error", () => {})
            })
            await new Promise((r) => socket.once("connect", r))
            return { socket, closed }
          }
          const body = JSON.stringify({ data: dataUri(cat) })
          const inFlight = await open()
          inFlight.socket.write(
            `POST ${fill(invoke)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 100)}`
          )
          const late = await open()
          late.socket.write(`GET /v1/functions HTTP/1.1\r\nHost: x\r\n`)
          await new Promise((r) => setTimeout(r, 200))
          const closing = draining.close()
          await new Promise((r) => setTimeout(r, 100))
          late.socket.write(`Authorization: Bearer ${token}\r\n\r\n`)
          await new Promise((r) => setTimeout(r, 200))
          inFlight.socket.write(body.slice(100))
          const answer = await late.closed
          expect((await inFlight.closed).slice(0, 12)).toBe("HTTP/1.1 200")
          await closing
          const json = JSON.parse(answer.slice(answer.indexOf("{"), answer.lastIndexOf("}") + 1))
          return { method: "GET", route: "/v1/functions", status: Number(answer.slice(9, 12)), body: json }
        }
      }
      const documented = new Set(operations().flatMap(({ operation }) => Object.keys(operation.responses).map(Number).filter((s) => s >= 400)))
      expect([...documented].sort()).toEqual(Object.keys(provoke).map(Number).sort())
      const got: Array<unknown> = []
      for (const status of documented) {
        const r = await provoke[status]!()
        got.push({ status: r.status, departures: conformance(op(r.method, r.route), r.status, r.body) })
      }
      expect(got).toEqual([...documented].map((status) => ({ status, departures: [] })))
    } finally {
      await faulty.close()
      await limited.close()
    }
  })
})

describe("URL fetching", () => {
  it("fetches http URLs only when enabled, from private addresses only when allowed, re-checking redirects and capping downloads", async () => {
    const origin = http.createServer((req, res) => {
      if (req.url === "/cat.jpg") res.writeHead(200, { "content-type": "image/jpeg" }).end(cat)
      else if (req.url === "/big.jpg") res.writeHead(200, { "content-type": "image/jpeg" }).end(Buffer.alloc(3_000_000))
      else if (req.url === "/moved.jpg") res.writeHead(301, { location: "/cat.jpg" }).end()
      else res.writeHead(302, { location: "http://169.254.169.254/" }).end()
    })
    await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve))
    const base = `http://127.0.0.1:${(origin.address() as { port: number }).port}`
    // The test origin listens on 127.0.0.1: allowed here, and nothing else that is private.
    const fetching = await serve({ allowUrlFetch: true, allowPrivateUrls: (address) => address === "127.0.0.1", image: { maxBytes: 2_000_000 } })
    const publicOnly = await serve({ allowUrlFetch: true, image: { maxBytes: 2_000_000 } })
    try {
      const post = (data: string, target: Running) =>
        call(`/v1/functions/${fn}/invoke`, {
          method: "POST",
          headers: { ...auth(), "content-type": "application/json" },
          body: JSON.stringify({ data }),
          target
        })
      const ok = await post(`${base}/cat.jpg`, fetching)
      expect(ok.status).toBe(200)
      expect(ok.body.confidence).toBeCloseTo((await invokeJson({ data: dataUri(cat) })).body.confidence, 6)
      const moved = await post(`${base}/moved.jpg`, fetching)
      expect(moved.status).toBe(200)
      expect(moved.body.confidence).toBeCloseTo(ok.body.confidence, 6)
      const redirected = await post(`${base}/redirect.jpg`, fetching)
      expect(redirected.status).toBe(400)
      expect(redirected.body).toMatchObject({ reason: "InvalidImage", field: "data" })
      expect(redirected.body.message).toBe(
        `data: ${base}/redirect.jpg redirects to http://169.254.169.254/, which resolves to 169.254.169.254, a link-local address; this server does not fetch private addresses (start it with --allow-private-urls to allow them)`
      )
      expect((await post(`${base}/big.jpg`, fetching)).body.message).toMatch(/over the 2000000-byte limit/)
      const refused = await post(`${base}/cat.jpg`, publicOnly)
      expect(refused.status).toBe(400)
      expect(refused.body).toMatchObject({
        reason: "InvalidImage",
        field: "data",
        message: `data: ${base}/cat.jpg resolves to 127.0.0.1, a loopback address; this server does not fetch private addresses (start it with --allow-private-urls to allow them)`
      })
      expect((await post("http://169.254.169.254/latest/meta-data/", publicOnly)).body).toMatchObject({ reason: "InvalidImage", field: "data" })
      expect((await post(`${base}/cat.jpg`, server)).body).toMatchObject({ reason: "UrlFetchDisabled", field: "data" })
    } finally {
      await fetching.close()
      await publicOnly.close()
      origin.close()
    }
  })
})

describe("shutdown", () => {
  it("finishes a request in flight, refuses new connections, then stops", async () => {
    const draining = await serve()
    const { hostname, port } = new URL(draining.url)
    const body = Buffer.from(JSON.stringify({ data: dataUri(cat) }))
    const half = Math.floor(body.length / 2)
    const response = new Promise<{ status: number; text: string; connection: string | undefined }>((resolve, reject) => {
      const request = http.request({
        host: hostname,
        port,
        method: "POST",
        path: `/v1/functions/${fn}/invoke`,
        headers: { ...auth(), "content-type": "application/json", "content-length": String(body.length) }
      }, (res) => {
        let text = ""
        res.on("data", (c) => (text += c))
        res.on("end", () => resolve({ status: res.statusCode!, text, connection: res.headers.connection }))
      })
      request.on("error", reject)
      request.write(body.subarray(0, half))
      setTimeout(() => request.end(body.subarray(half)), 600)
    })
    await new Promise((r) => setTimeout(r, 200))
    const closed = draining.close()
    await new Promise((r) => setTimeout(r, 100))
    await expect(fetch(`${draining.url}/healthz`)).rejects.toThrow()
    const done = await response
    expect(done.status).toBe(200)
    expect(JSON.parse(done.text).labelName).toBe("cats")
    expect(done.connection).toBe("close")
    await closed
  })
})
