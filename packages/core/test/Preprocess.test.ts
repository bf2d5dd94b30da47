import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import sharp from "sharp"
import { Preprocess } from "@loupe/core"
import { catsVsDogs } from "../../../test/fixtures/shared.mjs"

type Rgb = readonly [number, number, number]

const squash = (size: number): Preprocess.PreprocessSpec =>
  Preprocess.imagenet({ size, resize: "squash" })

const crop = (size: number, resizeShorter: number): Preprocess.PreprocessSpec =>
  Preprocess.imagenet({ size, resizeShorter })

const pixel = (rgb: Uint8Array, width: number, x: number, y: number): Rgb => {
  const i = (y * width + x) * 3
  return [rgb[i]!, rgb[i + 1]!, rgb[i + 2]!]
}

const expectClose = (actual: Rgb, expected: Rgb, tolerance: number) => {
  actual.forEach((v, c) => expect(Math.abs(v - expected[c]!), `${actual} vs ${expected}`).toBeLessThanOrEqual(tolerance))
}

/** Raw 8-bit pixels of `width x height` filled by `colour(x, y)`. */
const raw = (width: number, height: number, channels: 1 | 2 | 3 | 4, colour: (x: number, y: number) => ReadonlyArray<number>) => {
  const data = Buffer.alloc(width * height * channels)
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(colour(x, y), (y * width + x) * channels)
  return sharp(data, { raw: { width, height, channels } })
}

const decode = (bytes: Uint8Array, spec: Preprocess.PreprocessSpec) => Preprocess.decodeRgb(bytes, spec, "synthetic")

const RED: Rgb = [255, 0, 0]
const GREEN: Rgb = [0, 255, 0]
const BLUE: Rgb = [0, 0, 255]
const WHITE: Rgb = [255, 255, 255]

describe("Preprocess: EXIF orientation", () => {
  // Stored pixels: top-left red, top-right green, bottom-left blue, bottom-right white.
  const quadrants = raw(32, 32, 3, (x, y) => (y < 16 ? (x < 16 ? RED : GREEN) : x < 16 ? BLUE : WHITE))
  // What the viewer sees in each corner (TL, TR, BL, BR) for each EXIF orientation, worked out by hand from the
  // EXIF definitions: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate
  // 90 anticlockwise.
  const expected: Record<number, readonly [Rgb, Rgb, Rgb, Rgb]> = {
    1: [RED, GREEN, BLUE, WHITE],
    2: [GREEN, RED, WHITE, BLUE],
    3: [WHITE, BLUE, GREEN, RED],
    4: [BLUE, WHITE, RED, GREEN],
    5: [RED, BLUE, GREEN, WHITE],
    6: [BLUE, RED, WHITE, GREEN],
    7: [WHITE, GREEN, BLUE, RED],
    8: [GREEN, WHITE, RED, BLUE]
  }

  for (const [orientation, [tl, tr, bl, br]] of Object.entries(expected)) {
    it.effect(`orientation ${orientation} lands each quadrant where the viewer sees it`, () =>
      Effect.gen(function*() {
        const jpeg = yield* Effect.promise(() =>
          quadrants.clone().jpeg({ quality: 95 }).withMetadata({ orientation: Number(orientation) }).toBuffer()
        )
        expect((yield* Effect.promise(() => sharp(jpeg).metadata())).orientation).toBe(Number(orientation))
        const rgb = yield* decode(jpeg, squash(8))
        expectClose(pixel(rgb, 8, 1, 1), tl, 24)
        expectClose(pixel(rgb, 8, 6, 1), tr, 24)
        expectClose(pixel(rgb, 8, 1, 6), bl, 24)
        expectClose(pixel(rgb, 8, 6, 6), br, 24)
      }))
  }

  it.effect("a rotated landscape image is cropped as the portrait it displays as", () =>
    Effect.gen(function*() {
      // Stored 64 wide x 32 high, left half red, right half blue; orientation 6 shows it 32 wide x 64 high with red
      // on top. Shorter side to 16 gives 16 x 32; the centre 16 x 16 is rows 8..23: top half red, bottom half blue.
      // Were the orientation ignored, the crop would be red on the left and blue on the right.
      const jpeg = yield* Effect.promise(() =>
        raw(64, 32, 3, (x) => (x < 32 ? RED : BLUE)).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer()
      )
      const rgb = yield* decode(jpeg, crop(16, 16))
      for (const x of [1, 8, 14]) {
        expectClose(pixel(rgb, 16, x, 2), RED, 24)
        expectClose(pixel(rgb, 16, x, 13), BLUE, 24)
      }
    }))
})

describe("Preprocess: channel conversion to 8-bit RGB", () => {
  it.effect("greyscale becomes three equal channels", () =>
    Effect.gen(function*() {
      const png = yield* Effect.promise(() => raw(8, 8, 1, () => [100]).toColourspace("b-w").png().toBuffer())
      expect((yield* Effect.promise(() => sharp(png).metadata())).channels).toBe(1)
      const rgb = yield* decode(png, squash(4))
      expect(rgb.length).toBe(4 * 4 * 3)
      expect([...new Set(rgb)]).toEqual([100])
    }))

  it.effect("alpha is flattened onto white: out = a * c + (1 - a) * 255", () =>
    Effect.gen(function*() {
      // Columns: alpha 128, alpha 0 (transparent), alpha 255 (opaque), each 4 pixels wide.
      const alphas = [128, 0, 255]
      const png = yield* Effect.promise(() =>
        raw(12, 4, 4, (x) => [200, 50, 0, alphas[Math.floor(x / 4)]!]).png().toBuffer()
      )
      expect((yield* Effect.promise(() => sharp(png).metadata())).channels).toBe(4)
      const rgb = yield* decode(png, squash(12))
      // (200 * 128 + 255 * 127) / 255 = 227.39, (50 * 128 + 255 * 127) / 255 = 152.10, 255 * 127 / 255 = 127
      expectClose(pixel(rgb, 12, 1, 1), [227, 152, 127], 1)
      expect(pixel(rgb, 12, 5, 1)).toEqual(WHITE)
      expect(pixel(rgb, 12, 10, 1)).toEqual([200, 50, 0])
    }))

  it.effect("greyscale with alpha: grey 100 at alpha 128 over white is 177", () =>
    Effect.gen(function*() {
      const png = yield* Effect.promise(() => raw(8, 8, 2, () => [100, 128]).toColourspace("b-w").png().toBuffer())
      expect((yield* Effect.promise(() => sharp(png).metadata())).channels).toBe(2)
      // (100 * 128 + 255 * 127) / 255 = 177.2
      expectClose(pixel(yield* decode(png, squash(4)), 4, 2, 2), [177, 177, 177], 1)
    }))

  it.effect("16-bit PNG is scaled to 8 bits (v / 257)", () =>
    Effect.gen(function*() {
      const data = new Uint16Array(8 * 8 * 3)
      for (let i = 0; i < 64; i++) data.set([40000, 5240, 65535], i * 3)
      const png = yield* Effect.promise(() =>
        sharp(data, { raw: { width: 8, height: 8, channels: 3 } }).toColourspace("rgb16").png().toBuffer()
      )
      expect((yield* Effect.promise(() => sharp(png).metadata())).depth).toBe("ushort")
      // 40000 / 257 = 155.6, 5240 / 257 = 20.4, 65535 / 257 = 255
      expect(pixel(yield* decode(png, squash(4)), 4, 1, 1)).toEqual([156, 20, 255])
    }))

  it.effect("CMYK JPEG is converted back to sRGB", () =>
    Effect.gen(function*() {
      for (const colour of [[180, 120, 90], [90, 140, 170], [255, 255, 255]] as const) {
        const jpeg = yield* Effect.promise(() =>
          raw(8, 8, 3, () => colour).toColourspace("cmyk").jpeg({ quality: 100 }).toBuffer()
        )
        const meta = yield* Effect.promise(() => sharp(jpeg).metadata())
        expect([meta.space, meta.channels]).toEqual(["cmyk", 4])
        const rgb = yield* decode(jpeg, squash(4))
        expect(rgb.length).toBe(4 * 4 * 3)
        // sRGB -> CMYK -> sRGB through colour profiles is not exact; in-gamut colours come back within a few levels.
        expectClose(pixel(rgb, 4, 2, 2), colour, 12)
      }
    }))
})

describe("Preprocess: crop geometry", () => {
  // A 200 x 100 gradient: red = x, green = 2y. Resampling reproduces a linear ramp, so each output pixel's value
  // tells which source coordinate it came from.
  const gradient = () => raw(200, 100, 3, (x, y) => [x, 2 * y, 0]).png().toBuffer()

  it.effect("shorter side to 64, then the centre 32 x 32", () =>
    Effect.gen(function*() {
      const rgb = yield* decode(yield* Effect.promise(gradient), crop(32, 64))
      // Scale 64 / 100 = 0.64 gives 128 x 64; the centre 32 x 32 starts at (48, 16) of the resized image, and output
      // pixel c samples source x = (c + 48 + 0.5) / 0.64 - 0.5 (pixel centres), likewise y with 16.
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const [r, g] = pixel(rgb, 32, x, y)
          expect(Math.abs(r - ((x + 48.5) / 0.64 - 0.5))).toBeLessThanOrEqual(1)
          expect(Math.abs(g - 2 * ((y + 16.5) / 0.64 - 0.5))).toBeLessThanOrEqual(1)
        }
      }
    }))

  it.effect("squash maps the whole image onto the square", () =>
    Effect.gen(function*() {
      const rgb = yield* decode(yield* Effect.promise(gradient), squash(32))
      // x scale 200 / 32 = 6.25, y scale 100 / 32 = 3.125
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const [r, g] = pixel(rgb, 32, x, y)
          expect(Math.abs(r - ((x + 0.5) * 6.25 - 0.5))).toBeLessThanOrEqual(1)
          expect(Math.abs(g - 2 * ((y + 0.5) * 3.125 - 0.5))).toBeLessThanOrEqual(1)
        }
      }
    }))

  it.effect("the centre crop of red | green | blue thirds is the green third", () =>
    Effect.gen(function*() {
      const png = yield* Effect.promise(() =>
        raw(300, 100, 3, (x) => (x < 100 ? RED : x < 200 ? GREEN : BLUE)).png().toBuffer()
      )
      const centre = yield* decode(png, crop(30, 30))
      // Resampling blurs the two seams a little; everything 3 pixels in is pure green.
      for (let y = 0; y < 30; y++) for (let x = 3; x < 27; x++) expect(pixel(centre, 30, x, y)).toEqual(GREEN)
      const squashed = yield* decode(png, squash(30))
      expect(pixel(squashed, 30, 4, 15)).toEqual(RED)
      expect(pixel(squashed, 30, 15, 15)).toEqual(GREEN)
      expect(pixel(squashed, 30, 25, 15)).toEqual(BLUE)
    }))

  it.effect("resizeShorter below the crop size is a config error", () =>
    Effect.gen(function*() {
      const png = yield* Effect.promise(gradient)
      const error = yield* Effect.flip(decode(png, crop(32, 16)))
      expect(error.reason).toBe("InvalidConfig")
      expect(error.field).toBe("preprocess.resizeShorter")
    }))
})

describe("Preprocess: normalisation", () => {
  // A 2 x 2 image: (255, 0, 128) (0, 255, 64) / (10, 20, 30) (200, 100, 50)
  const rgb = Uint8Array.from([255, 0, 128, 0, 255, 64, 10, 20, 30, 200, 100, 50])
  const spec = (layout: "NCHW" | "NHWC") => Preprocess.imagenet({ size: 2, layout })

  // (x / 255 - mean) / std, by hand, for each channel in pixel order.
  const red = [(1 - 0.485) / 0.229, (0 - 0.485) / 0.229, (10 / 255 - 0.485) / 0.229, (200 / 255 - 0.485) / 0.229]
  const green = [(0 - 0.456) / 0.224, (1 - 0.456) / 0.224, (20 / 255 - 0.456) / 0.224, (100 / 255 - 0.456) / 0.224]
  const blue = [(128 / 255 - 0.406) / 0.225, (64 / 255 - 0.406) / 0.225, (30 / 255 - 0.406) / 0.225, (50 / 255 - 0.406) / 0.225]

  it("hand-computed numbers", () => {
    expect(red[0]).toBeCloseTo(2.24891, 5)
    expect(green[0]).toBeCloseTo(-2.03571, 5)
    expect(blue[0]).toBeCloseTo(0.42649, 5)
  })

  it("NCHW: all red, then all green, then all blue", () => {
    const out = Preprocess.toTensor([rgb], spec("NCHW"))
    expect(out.length).toBe(12)
    ;[...red, ...green, ...blue].forEach((v, i) => expect(out[i]).toBeCloseTo(v, 5))
  })

  it("NHWC: red, green, blue per pixel", () => {
    const out = Preprocess.toTensor([rgb], spec("NHWC"))
    ;[0, 1, 2, 3].forEach((p) => {
      expect(out[p * 3]).toBeCloseTo(red[p]!, 5)
      expect(out[p * 3 + 1]).toBeCloseTo(green[p]!, 5)
      expect(out[p * 3 + 2]).toBeCloseTo(blue[p]!, 5)
    })
  })

  it("scale 127.5 with mean 1 and std 1 maps 0..255 onto -1..1", () => {
    const s = Preprocess.imagenet({ size: 2, scale: 127.5, mean: [1, 1, 1], std: [1, 1, 1] })
    const out = Preprocess.toTensor([rgb], s)
    expect(out[0]).toBeCloseTo(1, 6) // red of pixel 0: 255
    expect(out[1]).toBeCloseTo(-1, 6) // red of pixel 1: 0
    expect(out[8 + 3]).toBeCloseTo(50 / 127.5 - 1, 6) // blue of pixel 3: 50
  })

  it("writeNormalized fills slot `index` of a batch and leaves the others alone", () => {
    const s = spec("NCHW")
    const out = new Float32Array(3 * 12).fill(42)
    Preprocess.writeNormalized(rgb, s, out, 1)
    expect([...out.subarray(0, 12)].every((v) => v === 42)).toBe(true)
    expect([...out.subarray(24)].every((v) => v === 42)).toBe(true)
    expect(out[12]).toBeCloseTo(red[0]!, 5)
    expect(out[12 + 11]).toBeCloseTo(blue[3]!, 5)
  })

  it("gives, for every byte value, the float32 of (x / scale - mean) / std computed in doubles, bit for bit", () => {
    // 16 x 16 pixels: pixel p has the value p in every channel, so each channel sees all 256 values.
    const all = Uint8Array.from({ length: 256 * 3 }, (_, i) => Math.floor(i / 3))
    for (const layout of ["NCHW", "NHWC"] as const) {
      const s = Preprocess.imagenet({ size: 16, layout })
      const out = Preprocess.toTensor([all], s)
      const expected = new Float32Array(256 * 3)
      for (let x = 0; x < 256; x++) {
        for (let c = 0; c < 3; c++) {
          expected[layout === "NCHW" ? c * 256 + x : x * 3 + c] = (x * (1 / s.scale) - s.mean[c]!) * (1 / s.std[c]!)
        }
      }
      expect(Buffer.from(out.buffer).equals(Buffer.from(expected.buffer))).toBe(true)
    }
  })

  it("toTensor into a used, larger buffer writes the same values as into a fresh one", () => {
    const s = spec("NCHW")
    const other = Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 255, 128])
    const reused = new Float32Array(4 * 12).fill(Number.NaN)
    Preprocess.toTensor([rgb, other, rgb, other], s, false, reused)
    expect(Preprocess.toTensor([other, rgb], s, true, reused)).toBe(reused)
    expect(Array.from(reused)).toEqual(Array.from(Preprocess.toTensor([other, rgb], s, true)))
  })
})

describe("Preprocess: mirror images", () => {
  it("mirrorRgb flips each row left to right, and toTensor puts the mirror images after the images", () => {
    // 2 x 2 RGB: pixel values are 10 * (row * 2 + column) + channel
    const rgb = Uint8Array.from([0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32])
    expect(Array.from(Preprocess.mirrorRgb(rgb, 2))).toEqual([10, 11, 12, 0, 1, 2, 30, 31, 32, 20, 21, 22])
    const spec = Preprocess.imagenet({ size: 2, layout: "NHWC", scale: 1, mean: [0, 0, 0], std: [1, 1, 1] })
    expect(Array.from(Preprocess.toTensor([rgb], spec, true))).toEqual([...rgb, 10, 11, 12, 0, 1, 2, 30, 31, 32, 20, 21, 22])
  })
})

describe("Preprocess: bad input names the file", () => {
  const dir = fs.mkdtemp(path.join(os.tmpdir(), "loupe-preprocess-"))
  const write = (name: string, bytes: Uint8Array | string) =>
    Effect.promise(async () => {
      const file = path.join(await dir, name)
      await fs.writeFile(file, bytes)
      return file
    })
  const cat = path.join(catsVsDogs, "train", "cats", "cat.1.jpg")

  const cases: ReadonlyArray<readonly [string, Effect.Effect<string>]> = [
    ["an empty file", write("empty.jpg", "")],
    ["text named .jpg", write("notes.jpg", "these are my notes, not a picture\n")],
    [
      "a truncated JPEG",
      Effect.promise(() => fs.readFile(cat)).pipe(Effect.flatMap((bytes) => write("half.jpg", bytes.subarray(0, bytes.length / 2))))
    ],
    ["a JPEG header and nothing else", write("header.jpg", Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 16]))]
  ]

  for (const [what, make] of cases) {
    it.effect(`${what} fails with InvalidImage`, () =>
      Effect.gen(function*() {
        const file = yield* make
        const error = yield* Effect.flip(Preprocess.loadRgb(file, Preprocess.imagenet()))
        expect(error.reason).toBe("InvalidImage")
        expect(error.file).toBe(file)
        expect(error.message).toContain(file)
      }))
  }

  it.effect("a missing file fails with Io naming it", () =>
    Effect.gen(function*() {
      const file = path.join(yield* Effect.promise(() => dir), "missing.jpg")
      const error = yield* Effect.flip(Preprocess.loadRgb(file, Preprocess.imagenet()))
      expect(error.reason).toBe("Io")
      expect(error.file).toBe(file)
    }))
})

/** Python's `round`: halves go to the even neighbour. */
const roundHalfEven = (x: number): number => {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

describe("Preprocess: real photos", () => {
  const photos = ["train/cats/cat.1.jpg", "train/dogs/dog.7.jpg", "test/dogs/dog.4001.jpg"]

  for (const photo of photos) {
    it.effect(`${photo}: resize + centre crop matches torchvision's Resize(256) + CenterCrop(224)`, () =>
      Effect.gen(function*() {
        const file = path.join(catsVsDogs, photo)
        const rgb = yield* Preprocess.loadRgb(file, Preprocess.imagenet())
        expect(rgb.length).toBe(224 * 224 * 3)
        // torchvision: the shorter side becomes 256, the longer int(256 * long / short); the crop starts at
        // round((side - 224) / 2) with Python's round (half to even). Built here from sharp's plain resize, then
        // compared at offsets around torchvision's crop: sharp's cover resize rounds the longer side instead of
        // truncating it, so the two may be up to a pixel apart, never more.
        const { width, height } = yield* Effect.promise(() => sharp(file).metadata())
        const [w, h] = width < height
          ? [256, Math.floor((256 * height) / width)]
          : [Math.floor((256 * width) / height), 256]
        const resized = yield* Effect.promise(() => sharp(file).resize(w, h, { fit: "fill" }).raw().toBuffer())
        const meanDiff = (left: number, top: number) => {
          let diff = 0
          for (let y = 0; y < 224; y++) {
            for (let x = 0; x < 224 * 3; x++) diff += Math.abs(rgb[y * 224 * 3 + x]! - resized[((top + y) * w + left) * 3 + x]!)
          }
          return diff / rgb.length
        }
        const left = roundHalfEven((w - 224) / 2)
        const top = roundHalfEven((h - 224) / 2)
        const shifts = [-2, -1, 0, 1, 2].flatMap((dy) => [-2, -1, 0, 1, 2].map((dx) => ({ dx, dy })))
          .filter(({ dx, dy }) => left + dx >= 0 && top + dy >= 0 && left + dx + 224 <= w && top + dy + 224 <= h)
          .map(({ dx, dy }) => ({ dx, dy, diff: meanDiff(left + dx, top + dy) }))
          .sort((a, b) => a.diff - b.diff)
        const best = shifts[0]!
        expect(Math.abs(best.dx)).toBeLessThanOrEqual(1)
        expect(Math.abs(best.dy)).toBeLessThanOrEqual(1)
        expect(best.diff).toBeLessThan(4)
      }))
  }

  it.effect("squash keeps the photo's mean colour", () =>
    Effect.gen(function*() {
      const file = path.join(catsVsDogs, photos[0]!)
      const rgb = yield* Preprocess.loadRgb(file, squash(224))
      const { channels } = yield* Effect.promise(() => sharp(file).stats())
      for (let c = 0; c < 3; c++) {
        let sum = 0
        for (let i = c; i < rgb.length; i += 3) sum += rgb[i]!
        expect(Math.abs(sum / (224 * 224) - channels[c]!.mean)).toBeLessThan(1.5)
      }
    }))

  it.effect("the same photo from a path and from bytes decodes identically", () =>
    Effect.gen(function*() {
      const file = path.join(catsVsDogs, photos[1]!)
      const fromPath = yield* Preprocess.loadRgb(file, Preprocess.imagenet())
      const bytes = yield* Preprocess.readSource(file)
      const fromBytes = yield* Preprocess.loadRgb(bytes, Preprocess.imagenet())
      expect(Buffer.compare(fromBytes, fromPath)).toBe(0)
    }))
})
