// Image input given as an http URL, fetched by @loupe/deploy's UrlFetch: refused from a private address unless
// `allowPrivateUrls`, with the field named in the error; the options of `Functions`, of the server and of
// `loupe serve` reach the fetch.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpServer } from "@effect/platform"
import { ApiKeys, Server as DeployServer } from "@loupe/deploy"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { Functions, Server } from "@loupe/functions"
import { loupe, sharedDir } from "./fixtures/cli.js"
import { functionsEnvironment } from "../../functions/test/fixtures/environment.js"

const catsDir = path.join(sharedDir, "datasets", "cats-vs-dogs", "test", "cats")
const cat = fs.readFileSync(path.join(catsDir, fs.readdirSync(catsDir).sort()[0]!))
const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-url-input-"))
const environment = functionsEnvironment(path.join(work, "cache"))

let origin: http.Server
let base = ""

beforeAll(async () => {
  origin = http.createServer((req, res) => {
    if (req.url === "/cat.jpg") res.writeHead(200, { "content-type": "image/jpeg" }).end(cat)
    else res.writeHead(302, { location: "http://[fd00::1]/cat.jpg" }).end()
  })
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(origin.address() as { port: number }).port}`
})

afterAll(() => {
  origin.close()
})

describe("URL image input", () => {
  it.live("refuses a private address unless allowPrivateUrls, naming the field", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(Functions.readImage(`${base}/cat.jpg`, "data", { allowUrlFetch: true }))
      expect(refused).toMatchObject({
        _tag: "FunctionsError",
        reason: "InvalidImage",
        field: "data",
        message: `data: ${base}/cat.jpg resolves to 127.0.0.1, a loopback address; private addresses are not fetched (allowPrivateUrls allows them)`
      })
      const bytes = yield* Functions.readImage(new URL(`${base}/cat.jpg`), "data", { allowUrlFetch: true, allowPrivateUrls: true })
      expect(Buffer.from(bytes)).toEqual(cat)
      // The redirect leaves the one private address allowed: refused.
      const onlyOrigin = { allowUrlFetch: true, allowPrivateUrls: (address: string) => address === "127.0.0.1" }
      expect((yield* Effect.flip(Functions.readImage(`${base}/elsewhere.jpg`, "samples[2].data", onlyOrigin))).message).toBe(
        `samples[2].data: ${base}/elsewhere.jpg redirects to http://[fd00::1]/cat.jpg, which resolves to fd00::1, a unique-local (fc00::/7) address; private addresses are not fetched (allowPrivateUrls allows them)`
      )
      // The byte cap applies to fetched images too.
      expect((yield* Effect.flip(Functions.readImage(`${base}/cat.jpg`, "data", { allowUrlFetch: true, allowPrivateUrls: true, maxBytes: 1000 }))).message)
        .toMatch(/over the 1000-byte limit/)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.live("createSamples fetches with the options of Functions", () =>
    Effect.gen(function*() {
      const withFunctions = <A, E>(dir: string, options: Functions.FunctionsConfig, f: (functions: Functions.FunctionsShape) => Effect.Effect<A, E>) =>
        Effect.flatMap(Functions.Functions, f).pipe(
          Effect.provide(Functions.layerDirectory(path.join(work, dir), { resumeOnStart: false, ...options }).pipe(Layer.provide(environment)))
        )

      const refused = yield* withFunctions("public-only", { allowUrlFetch: true }, (functions) =>
        Effect.flip(Effect.flatMap(functions.create("pets"), (fn) => functions.createSamples(fn.id, [{ data: `${base}/cat.jpg` }]))))
      expect(refused).toMatchObject({ reason: "InvalidImage", field: "samples[0].data" })
      expect(refused.message).toContain("a loopback address")

      const ids = yield* withFunctions("private-allowed", { allowUrlFetch: true, allowPrivateUrls: true }, (functions) =>
        Effect.flatMap(functions.create("pets"), (fn) => functions.createSamples(fn.id, [{ data: `${base}/cat.jpg` }])))
      expect(ids.length).toBe(1)
    }))

  it.live("the server answers 400 naming the field, and fetches once --allow-private-urls is given", () =>
    Effect.gen(function*() {
      const store = path.join(work, "served")
      const token = (yield* Effect.flatMap(ApiKeys.make(ApiKeys.fileIn(store)), (k) => k.create("tests")).pipe(
        Effect.provide(NodeFileSystem.layer)
      )).token
      const post = (options: Partial<Server.ServeOptions>) =>
        Effect.gen(function*() {
          const url = yield* Effect.provide(DeployServer.url, yield* Layer.build(Server.layer({ store, port: 0, resumeOnStart: false, ...options }).pipe(
            Layer.provide(environment)
          )))
          const send = (route: string, body: unknown) =>
            Effect.promise(async () => {
              const response = await fetch(`${url}${route}`, {
                method: "POST",
                headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
                body: JSON.stringify(body)
              })
              // Either a created function (`id`) or an error answer (`reason`, `field`, `message`).
              const answer = await response.json() as { readonly id?: string; readonly reason?: string; readonly field?: string; readonly message?: string }
              return { status: response.status, body: answer }
            })
          const fn = (yield* send("/v1/functions", { name: "pets" })).body.id!
          return yield* send(`/v1/functions/${fn}/samples`, { data: `${base}/cat.jpg` })
        }).pipe(Effect.scoped)

      const refused = yield* post({ allowUrlFetch: true })
      expect(refused.status).toBe(400)
      expect(refused.body).toMatchObject({
        reason: "InvalidImage",
        field: "data",
        message: `data: ${base}/cat.jpg resolves to 127.0.0.1, a loopback address; this server does not fetch private addresses (start it with --allow-private-urls to allow them)`
      })
      expect((yield* post({ allowUrlFetch: true, allowPrivateUrls: true })).status).toBe(201)
    }))

  it("loupe serve refuses --allow-private-urls without --allow-url-fetch", () => {
    const run = loupe(["serve", "--store", path.join(work, "cli"), "--port", "0", "--allow-private-urls"])
    expect(run.status).toBe(1)
    expect(run.stderr).toContain("--allow-private-urls only applies to URL fetching: add --allow-url-fetch")
  })
})
