// The one image check: what the server refuses, loading refuses too, before anything decodes the bytes.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { ImageCheck, Preprocess } from "@loupe/core"
import { catsVsDogs } from "../../../test/fixtures/shared.mjs"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-image-check-"))
const photo = path.join(catsVsDogs, "train/cats", fs.readdirSync(path.join(catsVsDogs, "train/cats")).sort()[0]!)
const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="red"/></svg>'

/** A valid greyscale PNG declaring `width` x `height`: its zero pixels compress about 1000:1. */
const pngBomb = (width: number, height: number) => {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8)
    head.writeUInt32BE(data.length, 0)
    head.write(type, 4, "latin1")
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(type, "latin1"), data])) >>> 0, 0)
    return Buffer.concat([head, data, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8
  return Buffer.concat([
    Buffer.from("\x89PNG\r\n\x1a\n", "latin1"),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(Buffer.alloc((width + 1) * height), { level: 9 })),
    chunk("IEND", Buffer.alloc(0))
  ])
}

describe("ImageCheck", () => {
  it("reads a real JPEG's header, and says what other bytes are", () => {
    expect(Either.getOrThrow(ImageCheck.check(fs.readFileSync(photo)))).toMatchObject({ format: "jpeg", mimeType: "image/jpeg" })
    expect(ImageCheck.check(new TextEncoder().encode(svg))).toEqual(Either.left({ kind: "UnsupportedFormat", message: "an SVG image" }))
    expect(ImageCheck.check(pngBomb(8000, 8000), ImageCheck.defaultLimits)).toEqual(
      Either.left({ kind: "TooManyPixels", message: "the PNG is 8000x8000 (64000000 pixels); the limit is 40000000 pixels" })
    )
    // Without limits, only the format and the header are checked.
    expect(Either.isRight(ImageCheck.check(pngBomb(8000, 8000)))).toBe(true)
  })

  it.effect("loading a file refuses an SVG named .jpg and a pixel bomb, naming the file, before decoding", () =>
    Effect.gen(function*() {
      const fake = path.join(work, "drawing.jpg")
      fs.writeFileSync(fake, svg)
      const bomb = path.join(work, "bomb.png")
      fs.writeFileSync(bomb, pngBomb(8000, 8000))
      const refusedSvg = yield* Effect.flip(Preprocess.readSource(fake))
      expect(refusedSvg).toMatchObject({ _tag: "CoreError", reason: "InvalidImage", file: fake })
      expect(refusedSvg.message).toBe(`Cannot decode ${fake}: an SVG image; Loupe reads JPEG, PNG, GIF and WebP images`)
      const refusedBomb = yield* Effect.flip(Preprocess.loadRgb(bomb, Preprocess.imagenet()))
      expect(refusedBomb).toMatchObject({ reason: "InvalidImage", file: bomb })
      expect(refusedBomb.message).toMatch(/8000x8000 \(64000000 pixels\); the limit is 40000000 pixels/)
      // SVG bytes in memory are refused too.
      expect(yield* Effect.flip(Preprocess.readSource(new TextEncoder().encode(svg)))).toMatchObject({ reason: "InvalidImage" })
      expect((yield* Preprocess.readSource(photo)).byteLength).toBe(fs.statSync(photo).size)
    }))
})
