// One set of image limits on every path: the function API (what `loupe function add` reads with) refuses what the
// server refuses, and a server started with a raised pixel limit (`loupe serve --max-pixels`) takes such images on
// the function path too, instead of a second, fixed limit refusing them after the server let them in.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Context, Effect, Either, Exit, Layer, Scope } from "effect"
import { HttpServer } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { ImageCheck } from "@loupe/core"
import { ApiKeys, Server as DeployServer } from "@loupe/deploy"
import { Functions, Server } from "@loupe/functions"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { png } from "../../../test/fixtures/png.mjs"
import { catsVsDogsPhotos, functionsEnvironment } from "./fixtures/environment.js"

/** 6400 x 6400: 40.96 megapixels, just over the default 40; a real, decodable black image (1-bit, a few KB). */
const bigPng = png(6400, 6400, { bitDepth: 1 })
/** A real cat photo followed by padding to one byte over the default 16 MiB (a JPEG decoder ignores what follows its end). */
const catPhoto = fs.readFileSync(catsVsDogsPhotos("train", "cats", 0, 1)[0]!)
const heavyJpeg = new Uint8Array(Buffer.concat([catPhoto, Buffer.alloc(ImageCheck.defaultLimits.maxBytes + 1 - catPhoto.length)]))

const readImage = (data: Uint8Array) =>
  Effect.runPromise(Effect.either(Functions.readImage(data, "photo.jpg")).pipe(Effect.provide(NodeFileSystem.layer)))

describe("image limits", () => {
  it("are the server's by default: what the server refuses, the function API (loupe function add) refuses", async () => {
    for (const bytes of [bigPng, heavyJpeg]) {
      const server = ImageCheck.check(bytes, DeployServer.defaultImageLimits)
      expect(Either.isLeft(server)).toBe(true)
      const read = await readImage(bytes)
      expect(Either.isLeft(read) && read.left).toMatchObject({ reason: "InvalidImage", field: "photo.jpg" })
      expect(Either.isLeft(read) && read.left.message).toContain(Either.isLeft(server) ? server.left.message : "")
    }
    // Under the limits the same photo is taken.
    expect(Either.isRight(await readImage(new Uint8Array(catPhoto)))).toBe(true)
  })

  describe("on a server with a raised pixel limit", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-limits-"))
    const store = path.join(work, "store")
    let scope: Scope.CloseableScope
    let base = ""
    let token = ""

    beforeAll(async () => {
      token = (await Effect.runPromise(
        Effect.flatMap(ApiKeys.make(ApiKeys.fileIn(store)), (k) => k.create("tests")).pipe(Effect.provide(NodeFileSystem.layer))
      )).token
      scope = Effect.runSync(Scope.make())
      const serving = Server.layer({
        store,
        port: 0,
        // No retrain while the test runs: it is about taking the sample.
        debounce: "1 hour",
        image: { maxPixels: 50_000_000 }
      }).pipe(Layer.provide(functionsEnvironment(path.join(work, "cache"))))
      const context = await Effect.runPromise(Layer.buildWithScope(serving, scope))
      base = Effect.runSync(Effect.provide(DeployServer.url, Context.pick(HttpServer.HttpServer)(context)))
    })

    afterAll(async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      fs.rmSync(work, { recursive: true, force: true })
    })

    const post = async (route: string, body: unknown) => {
      const response = await fetch(`${base}${route}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body)
      })
      return { status: response.status, body: (await response.json()) as any }
    }

    it("takes a 41-megapixel sample on the function path", async () => {
      const fn = await post("/v1/functions", { name: "Big", preset: "fast" })
      expect(fn.status).toBe(201)
      const data = `data:image/png;base64,${Buffer.from(bigPng).toString("base64")}`
      const sample = await post(`/v1/functions/${fn.body.id}/samples`, { data, annotation: { labelName: "black" } })
      expect(sample.body).toMatchObject({ annotation: { labelName: "black" } })
      expect(sample.status).toBe(201)
    })
  })
})
