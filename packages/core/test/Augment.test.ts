import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import sharp from "sharp"
import { Augment, Preprocess } from "@loupe/core"
import { catsVsDogs } from "../../../test/fixtures/shared.mjs"

const spec = Preprocess.imagenet()
const photo = path.join(catsVsDogs, "train", "dogs", "dog.3.jpg")
const readPhoto = Effect.promise(() => fs.readFile(photo))
const resolved = (options: Augment.AugmentOptions = {}) => Effect.runSync(Augment.resolveOptions(options))

/** A 60 x 40 PNG: left half red, right half blue. */
const halves = Effect.promise(async () => {
  const data = Buffer.alloc(60 * 40 * 3)
  for (let y = 0; y < 40; y++) for (let x = 0; x < 60; x++) data.set(x < 30 ? [255, 0, 0] : [0, 0, 255], (y * 60 + x) * 3)
  return sharp(data, { raw: { width: 60, height: 40, channels: 3 } }).png().toBuffer()
})

const mirror = (rgb: Uint8Array, size: number) => Augment.flipRgb(rgb.slice(), size)

/** Byte equality (vitest's deep equality is slow on 150k-element arrays). */
const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.compare(a, b) === 0

describe("Augment: views of a real photo", () => {
  const options: Augment.AugmentOptions = { brightness: 0.4, contrast: 0.4, saturation: 0.4 }

  it.effect("the same seed gives the same pixels; the output is size x size x 3", () =>
    Effect.gen(function*() {
      const bytes = yield* readPhoto
      const a = yield* Augment.augmentRgb(bytes, spec, options, 1234, photo)
      const b = yield* Augment.augmentRgb(bytes, spec, options, 1234, photo)
      expect(a.length).toBe(224 * 224 * 3)
      expect(same(b, a)).toBe(true)
      const small = yield* Augment.augmentRgb(bytes, Preprocess.imagenet({ size: 96 }), options, 1234, photo)
      expect(small.length).toBe(96 * 96 * 3)
    }))

  it.effect("different seeds give different views", () =>
    Effect.gen(function*() {
      const bytes = yield* readPhoto
      const seeds = [0, 1, 2, 3, 4, 5, 6, 7]
      const views = yield* Augment.augmentViews(bytes, spec, options, seeds, photo)
      expect(views.length).toBe(seeds.length)
      const distinct = new Set(views.map((v) => Buffer.from(v).toString("base64")))
      expect(distinct.size).toBe(seeds.length)
      // Views cut from one decode equal views made one at a time.
      expect(same(yield* Augment.augmentRgb(bytes, spec, options, 5, photo), views[5]!)).toBe(true)
    }))

  it.effect("without the random crop, views are the preprocessed image, mirrored or not", () =>
    Effect.gen(function*() {
      const bytes = yield* readPhoto
      const plain = yield* Preprocess.decodeRgb(bytes, spec, photo)
      const seeds = Array.from({ length: 12 }, (_, i) => i)
      const views = yield* Augment.augmentViews(bytes, spec, { randomResizedCrop: false }, seeds, photo)
      const mirrored = mirror(plain, 224)
      const flips = views.map((view) => {
        if (same(view, plain)) return false
        expect(same(view, mirrored)).toBe(true)
        return true
      })
      expect(flips).toContain(true)
      expect(flips).toContain(false)
    }))

  it.effect("a file that is not an image fails with InvalidImage naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Augment.augmentRgb(new TextEncoder().encode("not a picture"), spec, {}, 1, "notes.jpg")
      )
      expect([error.reason, error.file]).toEqual(["InvalidImage", "notes.jpg"])
    }))
})

describe("Augment: geometry on a synthetic image", () => {
  // scale [1, 1] and the image's own aspect ratio make the crop the whole image.
  const whole: Augment.AugmentOptions = { scale: [1, 1], ratio: [60 / 40, 60 / 40] }

  it.effect("a crop covering the whole image equals decodeRgb's squash; a flip mirrors it", () =>
    Effect.gen(function*() {
      const png = yield* halves
      const squashed = yield* Preprocess.decodeRgb(png, Preprocess.imagenet({ size: 32, resize: "squash" }), "halves")
      const s32 = Preprocess.imagenet({ size: 32 })
      const kept = yield* Augment.augmentRgb(png, s32, { ...whole, flipProbability: 0 }, 7, "halves")
      const flipped = yield* Augment.augmentRgb(png, s32, { ...whole, flipProbability: 1 }, 7, "halves")
      expect(same(kept, squashed)).toBe(true)
      expect(same(flipped, mirror(squashed, 32))).toBe(true)
      // Left half blue, right half red after the flip.
      expect([...flipped.subarray((10 * 32 + 2) * 3, (10 * 32 + 2) * 3 + 3)]).toEqual([0, 0, 255])
      expect([...flipped.subarray((10 * 32 + 29) * 3, (10 * 32 + 29) * 3 + 3)]).toEqual([255, 0, 0])
    }))

  it("flipRgb mirrors each row", () => {
    // 3 x 2 pixels: row 0 = 1 2 3, row 1 = 4 5 6 (each pixel's channels hold its number)
    const rgb = Uint8Array.from([1, 2, 3, 4, 5, 6].flatMap((v) => [v, v, v]))
    expect([...Augment.flipRgb(rgb, 3)].filter((_, i) => i % 3 === 0)).toEqual([3, 2, 1, 6, 5, 4])
  })

  it("random crops stay inside the image, within the area and aspect ranges", () => {
    const options = resolved()
    for (let seed = 0; seed < 500; seed++) {
      const { crop } = Augment.plan(500, 375, options, seed)
      expect(crop).toBeDefined()
      const { height, left, top, width } = crop!
      expect(left).toBeGreaterThanOrEqual(0)
      expect(top).toBeGreaterThanOrEqual(0)
      expect(left + width).toBeLessThanOrEqual(500)
      expect(top + height).toBeLessThanOrEqual(375)
      // Rounding w and h to whole pixels moves area and ratio a little past the sampled values.
      const area = (width * height) / (500 * 375)
      expect(area).toBeGreaterThan(0.07)
      expect(area).toBeLessThanOrEqual(1)
      expect(width / height).toBeGreaterThan(0.74)
      expect(width / height).toBeLessThan(1.35)
    }
  })

  it("when 10 tries find no crop, the fallback is torchvision's ratio-clamped centre crop", () => {
    // 1000 x 10: 8 % of the area is 800 px, so any crop with ratio <= 4/3 is taller than 10 px. The fallback keeps
    // the height (10) and takes width round(10 * 4/3) = 13, centred: left = floor((1000 - 13) / 2) = 493.
    expect(Augment.plan(1000, 10, resolved(), 3).crop).toEqual({ left: 493, top: 0, width: 13, height: 10 })
    // 10 x 1000: width 10, height round(10 / (3/4)) = 13, top = floor((1000 - 13) / 2) = 493.
    expect(Augment.plan(10, 1000, resolved(), 3).crop).toEqual({ left: 0, top: 493, width: 10, height: 13 })
  })

  it("flips about half the time; plans are deterministic per seed", () => {
    const options = resolved()
    const flips = Array.from({ length: 2000 }, (_, seed) => Augment.plan(100, 100, options, seed).flip)
    const rate = flips.filter(Boolean).length / flips.length
    expect(rate).toBeGreaterThan(0.45)
    expect(rate).toBeLessThan(0.55)
    expect(Augment.plan(100, 100, options, 42)).toEqual(Augment.plan(100, 100, options, 42))
  })
})

describe("Augment: colour jitter", () => {
  it("factors stay in range and every enabled change is applied once, in a seed-dependent order", () => {
    const options = resolved({ brightness: 0.4, contrast: 0.2, saturation: 0.9 })
    const orders = new Set<string>()
    for (let seed = 0; seed < 200; seed++) {
      const { jitter } = Augment.plan(50, 50, options, seed)
      expect(jitter.map((j) => j.kind).sort()).toEqual(["brightness", "contrast", "saturation"])
      for (const { factor, kind } of jitter) {
        const [low, high] = { brightness: [0.6, 1.4], contrast: [0.8, 1.2], saturation: [0.1, 1.9] }[kind]
        expect(factor).toBeGreaterThanOrEqual(low!)
        expect(factor).toBeLessThanOrEqual(high!)
      }
      orders.add(jitter.map((j) => j.kind).join(","))
    }
    expect(orders.size).toBe(6)
    expect(Augment.plan(50, 50, resolved(), 0).jitter).toEqual([])
  })

  it("brightness, saturation and contrast against hand-computed pixels", () => {
    const pixel = () => Uint8Array.from([100, 50, 200, 0, 0, 0])
    // brightness 1.5: (150, 75, 300 -> 255)
    expect([...Augment.jitterRgb(pixel(), [{ kind: "brightness", factor: 1.5 }])]).toEqual([150, 75, 255, 0, 0, 0])
    // saturation 0: each pixel becomes its grey, 0.299 * 100 + 0.587 * 50 + 0.114 * 200 = 82.05
    expect([...Augment.jitterRgb(pixel(), [{ kind: "saturation", factor: 0 }])]).toEqual([82, 82, 82, 0, 0, 0])
    // contrast 0.5: mean grey (82.05 + 0) / 2 = 41.025; out = 0.5 * v + 0.5 * 41.025 = 0.5 * v + 20.51
    expect([...Augment.jitterRgb(pixel(), [{ kind: "contrast", factor: 0.5 }])]).toEqual([71, 46, 121, 21, 21, 21])
    // Steps apply in order, rounding to 8 bits in between: brightness 0.5 gives (50, 25, 100), then saturation 2
    // blends away from grey 0.299 * 50 + 0.587 * 25 + 0.114 * 100 = 41.025: 2v - 41.025 = (58.98, 8.98, 158.98)
    expect([...Augment.jitterRgb(pixel(), [{ kind: "brightness", factor: 0.5 }, { kind: "saturation", factor: 2 }])])
      .toEqual([59, 9, 159, 0, 0, 0])
  })
})

describe("Augment: options and seeds", () => {
  const bad: ReadonlyArray<readonly [Augment.AugmentOptions, string]> = [
    [{ scale: [0.5, 0.2] }, "augment.scale"],
    [{ scale: [0, 1] }, "augment.scale"],
    [{ ratio: [2, 1] }, "augment.ratio"],
    [{ flipProbability: 1.5 }, "augment.flipProbability"],
    [{ brightness: -0.1 }, "augment.brightness"],
    [{ saturation: Number.NaN }, "augment.saturation"]
  ]
  for (const [options, field] of bad) {
    it.effect(`${JSON.stringify(options)} is an InvalidConfig error naming ${field}`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Augment.augmentRgb(new Uint8Array(1), spec, options, 0, "x.png"))
        expect([error.reason, error.field]).toEqual(["InvalidConfig", field])
      }))
  }

  it("defaults are torchvision's RandomResizedCrop + RandomHorizontalFlip, no jitter", () => {
    expect(resolved()).toEqual({
      randomResizedCrop: true,
      scale: [0.08, 1],
      ratio: [3 / 4, 4 / 3],
      flipProbability: 0.5,
      brightness: 0,
      contrast: 0,
      saturation: 0
    })
  })

  it("deriveSeed is deterministic and separates epochs, images and views", () => {
    const seeds = new Set<number>()
    for (let epoch = 0; epoch < 10; epoch++) {
      for (let image = 0; image < 100; image++) {
        for (let view = 0; view < 4; view++) seeds.add(Augment.deriveSeed(42, epoch, image, view))
      }
    }
    expect(seeds.size).toBe(4000)
    expect(Augment.deriveSeed(42, 1, 2)).toBe(Augment.deriveSeed(42, 1, 2))
    expect(Augment.deriveSeed(42, 1, 2)).not.toBe(Augment.deriveSeed(42, 2, 1))
    expect(Augment.deriveSeed(42, 1, 2)).not.toBe(Augment.deriveSeed(43, 1, 2))
  })
})
