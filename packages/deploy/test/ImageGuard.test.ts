import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { ImageGuard } from "@loupe/deploy"
import * as fs from "node:fs"
import { png } from "../../../test/fixtures/png.mjs"
import { photos } from "./fixtures/shared.js"

const limits = ImageGuard.defaultLimits
const inspect = (bytes: Uint8Array, l = limits) => Effect.runSync(Effect.either(ImageGuard.inspect(bytes, l, "data")))

describe("ImageGuard", () => {
  const jpeg = new Uint8Array(fs.readFileSync(photos("test", "cats", 1)[0]!))

  it("reads a real JPEG's format and size from its header", () => {
    const info = inspect(jpeg)
    expect(Either.getOrThrow(info)).toEqual({ format: "jpeg", mimeType: "image/jpeg", width: 498, height: 415 })
  })

  it("rejects a decompression bomb PNG from its header, before decoding", () => {
    const bomb = png(8_000, 8_000)
    expect(bomb.byteLength).toBeLessThan(1_000_000)
    const started = performance.now()
    const result = inspect(bomb)
    expect(performance.now() - started).toBeLessThan(50)
    expect(Either.isLeft(result) && result.left.reason).toBe("ImageTooLarge")
    expect(Either.isLeft(result) && result.left.message).toMatch(/8000x8000 \(64000000 pixels\)/)
  })

  it("reads PNG, GIF (every frame) and WebP headers", () => {
    const small = png(64, 32)
    expect(Either.getOrThrow(inspect(small))).toMatchObject({ format: "png", width: 64, height: 32 })
    // GIF89a with a 10x10 screen and one 50000x50000 frame: the frame is what counts.
    const gif = Buffer.concat([
      Buffer.from("GIF89a", "latin1"),
      Buffer.from([10, 0, 10, 0, 0, 0, 0]),
      Buffer.from([0x2c, 0, 0, 0, 0, 0x50, 0xc3, 0x50, 0xc3, 0, 2, 0]),
      Buffer.from([0x3b])
    ])
    const bigFrame = inspect(new Uint8Array(gif))
    expect(Either.isLeft(bigFrame) && bigFrame.left.reason).toBe("ImageTooLarge")
    const vp8x = Buffer.alloc(30)
    vp8x.write("RIFF", 0, "latin1")
    vp8x.write("WEBPVP8X", 8, "latin1")
    vp8x.writeUIntLE(639, 24, 3)
    vp8x.writeUIntLE(479, 27, 3)
    expect(Either.getOrThrow(inspect(new Uint8Array(vp8x)))).toMatchObject({ format: "webp", width: 640, height: 480 })
  })

  it("names what other bytes are", () => {
    const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')
    const cases: Array<[Uint8Array, string, RegExp]> = [
      [svg, "UnsupportedMediaType", /an SVG image/],
      [new TextEncoder().encode("II*\0rest"), "UnsupportedMediaType", /TIFF/],
      [new TextEncoder().encode("hello"), "UnsupportedMediaType", /not a JPEG, PNG, GIF or WebP/],
      [new Uint8Array(0), "InvalidImage", /empty/],
      [jpeg.subarray(0, 40), "InvalidImage", /ends before its frame header/]
    ]
    for (const [bytes, reason, message] of cases) {
      const result = inspect(bytes)
      expect(Either.isLeft(result) && result.left.reason).toBe(reason)
      expect(Either.isLeft(result) && result.left.message).toMatch(message)
      expect(Either.isLeft(result) && result.left.field).toBe("data")
    }
    const tooBig = inspect(jpeg, { maxBytes: 1000, maxPixels: limits.maxPixels })
    expect(Either.isLeft(tooBig) && tooBig.left.reason).toBe("BodyTooLarge")
  })

  it("decodes data URIs only under the size limit and checks declared types", () => {
    const uri = `data:image/jpeg;base64,${Buffer.from(jpeg).toString("base64")}`
    const decoded = Effect.runSync(ImageGuard.fromDataUri(uri, 1_000_000, "data"))
    expect(Buffer.compare(Buffer.from(decoded.bytes), Buffer.from(jpeg))).toBe(0)
    const fail = (u: string, max = 1_000_000) => {
      const r = Effect.runSync(Effect.either(ImageGuard.fromDataUri(u, max, "data")))
      return Either.isLeft(r) ? r.left.reason : "ok"
    }
    expect(fail(uri, 1000)).toBe("BodyTooLarge")
    expect(fail("data:image/jpeg;base64,@@@@")).toBe("InvalidRequest")
    expect(fail("data:image/jpeg,rawtext")).toBe("InvalidRequest")
    expect(fail("data:text/html;base64,PGgxPg==")).toBe("UnsupportedMediaType")
    expect(fail("http://example.com/a.jpg")).toBe("InvalidRequest")
    const info = Effect.runSync(ImageGuard.inspect(jpeg, limits, "data"))
    const declared = Effect.runSync(Effect.either(ImageGuard.checkDeclared(info, "image/png", "data")))
    expect(Either.isLeft(declared) && declared.left.message).toMatch(/declared as image\/png but the bytes are image\/jpeg/)
    expect(Either.isRight(Effect.runSync(Effect.either(ImageGuard.checkDeclared(info, "image/jpg", "data"))))).toBe(true)
  })
})
