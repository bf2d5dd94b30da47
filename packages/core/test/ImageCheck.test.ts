// The one image check: what the server refuses, loading refuses too, before anything decodes the bytes.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ImageCheck, Preprocess } from "@loupe/core"
import { png } from "../../../test/fixtures/png.mjs"
import { catsVsDogs } from "../../../test/fixtures/shared.mjs"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-image-check-"))
const photo = path.join(catsVsDogs, "train/cats", fs.readdirSync(path.join(catsVsDogs, "train/cats")).sort()[0]!)
const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="red"/></svg>'


describe("ImageCheck", () => {
  it("reads a real JPEG's header, and says what other bytes are", () => {
    expect(Either.getOrThrow(ImageCheck.check(fs.readFileSync(photo)))).toMatchObject({ format: "jpeg", mimeType: "image/jpeg" })
    expect(ImageCheck.check(new TextEncoder().encode(svg))).toEqual(Either.left({ kind: "UnsupportedFormat", message: "an SVG image" }))
    expect(ImageCheck.check(png(8000, 8000), ImageCheck.defaultLimits)).toEqual(
      Either.left({ kind: "TooManyPixels", message: "the PNG is 8000x8000 (64000000 pixels); the limit is 40000000 pixels" })
    )
    // Without limits, only the format and the header are checked.
    expect(Either.isRight(ImageCheck.check(png(8000, 8000)))).toBe(true)
  })

  it.effect("loading a file refuses an SVG named .jpg and a pixel bomb, naming the file, before decoding", () =>
    Effect.gen(function*() {
      const fake = path.join(work, "drawing.jpg")
      fs.writeFileSync(fake, svg)
      const bomb = path.join(work, "bomb.png")
      fs.writeFileSync(bomb, png(8000, 8000))
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
