/**
 * Seeded, deterministic image augmentation for augmented probes and manual training: torchvision-style
 * `RandomResizedCrop`, horizontal flip and colour jitter. The output has the same shape as `Preprocess.decodeRgb`
 * (`size x size x 3` 8-bit RGB, HWC), so it feeds `Preprocess.writeNormalized` unchanged.
 *
 * The same bytes, options and seed always give the same pixels.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { CoreError } from "./CoreError.js"
import * as Decode from "./internal/Decode.js"
import * as Prng from "./Prng.js"
import { decodeRgb, type PreprocessSpec } from "./Preprocess.js"

/**
 * Options of one augmentation: crop, flip and colour jitter. Every field is optional; `defaults` fills the rest, and
 * `resolveOptions` checks the ranges.
 *
 * @since 0.1.0
 * @category models
 */
export interface AugmentOptions {
  /**
   * Take a random crop of the decoded image (area fraction from `scale`, aspect ratio from `ratio`) and resize it to
   * `size x size`, like torchvision's `RandomResizedCrop`. When `false`, the image is resized and cropped as
   * `Preprocess.decodeRgb` does, and only flip and jitter vary (useful for test-time augmentation). Default `true`.
   */
  readonly randomResizedCrop?: boolean
  /** Range of the crop's area as a fraction of the image's area. Default `[0.08, 1]`. */
  readonly scale?: readonly [number, number]
  /** Range of the crop's aspect ratio (width / height), sampled log-uniformly. Default `[3/4, 4/3]`. */
  readonly ratio?: readonly [number, number]
  /** Probability of a horizontal flip. Default `0.5`. */
  readonly flipProbability?: number
  /** Brightness factor drawn from `[max(0, 1 - b), 1 + b]`. Default `0` (off). */
  readonly brightness?: number
  /** Contrast factor drawn from `[max(0, 1 - c), 1 + c]`, blending with the mean grey. Default `0` (off). */
  readonly contrast?: number
  /** Saturation factor drawn from `[max(0, 1 - s), 1 + s]`, blending with each pixel's grey. Default `0` (off). */
  readonly saturation?: number
}

/**
 * The default options: torchvision's `RandomResizedCrop` (area `[0.08, 1]`, ratio `[3/4, 4/3]`) and a flip with
 * probability 0.5; colour jitter off.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults: Required<AugmentOptions> = {
  randomResizedCrop: true,
  scale: [0.08, 1],
  ratio: [3 / 4, 4 / 3],
  flipProbability: 0.5,
  brightness: 0,
  contrast: 0,
  saturation: 0
}

/**
 * A crop rectangle in pixels of the decoded (oriented) image.
 *
 * @since 0.1.0
 * @category models
 */
export interface CropBox {
  readonly left: number
  readonly top: number
  readonly width: number
  readonly height: number
}

/**
 * The colour property a jitter step changes.
 *
 * @since 0.1.0
 * @category models
 */
export type JitterKind = "brightness" | "contrast" | "saturation"

/**
 * Everything random about one augmented view, drawn from its seed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  /** `undefined` when `randomResizedCrop` is off. */
  readonly crop: CropBox | undefined
  readonly flip: boolean
  /** Colour changes in the order they are applied (a random order, as torchvision's `ColorJitter`). */
  readonly jitter: ReadonlyArray<{ readonly kind: JitterKind; readonly factor: number }>
}

const invalid = (field: string, message: string): CoreError =>
  new CoreError({ reason: "InvalidConfig", field: `augment.${field}`, message: `augment.${field}: ${message}` })

/**
 * Fill in defaults and check ranges; an out-of-range option fails with `InvalidConfig` naming it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveOptions = (options: AugmentOptions = {}): Effect.Effect<Required<AugmentOptions>, CoreError> => {
  const o: Required<AugmentOptions> = { ...defaults, ...options }
  const [sLow, sHigh] = o.scale
  const [rLow, rHigh] = o.ratio
  if (!(sLow > 0 && sLow <= sHigh && sHigh <= 1)) {
    return Effect.fail(invalid("scale", `expected 0 < low <= high <= 1, got [${sLow}, ${sHigh}]`))
  }
  if (!(rLow > 0 && rLow <= rHigh && Number.isFinite(rHigh))) {
    return Effect.fail(invalid("ratio", `expected 0 < low <= high, got [${rLow}, ${rHigh}]`))
  }
  if (!(o.flipProbability >= 0 && o.flipProbability <= 1)) {
    return Effect.fail(invalid("flipProbability", `expected a probability in [0, 1], got ${o.flipProbability}`))
  }
  for (const kind of jitterKinds) {
    const value = o[kind]
    if (!(value >= 0 && Number.isFinite(value))) {
      return Effect.fail(invalid(kind, `expected a finite number >= 0, got ${value}`))
    }
  }
  return Effect.succeed(o)
}

const jitterKinds: ReadonlyArray<JitterKind> = ["brightness", "contrast", "saturation"]

/** torchvision's `RandomResizedCrop.get_params`: 10 tries, then a centre crop clamped to the ratio range. */
const sampleCrop = (width: number, height: number, o: Required<AugmentOptions>, rng: Prng.Prng): CropBox => {
  const area = width * height
  const logLow = Math.log(o.ratio[0])
  const logHigh = Math.log(o.ratio[1])
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(o.scale[0], o.scale[1])
    const aspect = Math.exp(rng.uniform(logLow, logHigh))
    const w = Math.round(Math.sqrt(targetArea * aspect))
    const h = Math.round(Math.sqrt(targetArea / aspect))
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { top: rng.int(height - h + 1), left: rng.int(width - w + 1), width: w, height: h }
    }
  }
  const inRatio = width / height
  const [w, h] = inRatio < o.ratio[0]
    ? [width, Math.round(width / o.ratio[0])]
    : inRatio > o.ratio[1]
    ? [Math.round(height * o.ratio[1]), height]
    : [width, height]
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), width: w, height: h }
}

/**
 * Draw the random choices for one view of a `width x height` image. Pure: the same arguments give the same plan.
 * `options` should come from `resolveOptions`.
 *
 * @since 0.1.0
 * @category augmentation
 */
export const plan = (width: number, height: number, options: Required<AugmentOptions>, seed: number): Plan => {
  const rng = Prng.make(seed)
  const crop = options.randomResizedCrop ? sampleCrop(width, height, options, rng) : undefined
  const flip = rng.next() < options.flipProbability
  const jitter = jitterKinds
    .filter((kind) => options[kind] > 0)
    .map((kind) => ({ kind, factor: rng.uniform(Math.max(0, 1 - options[kind]), 1 + options[kind]) }))
  return { crop, flip, jitter: rng.shuffle(jitter) }
}

/**
 * Mirror packed RGB pixels left to right, in place.
 *
 * @since 0.1.0
 * @category augmentation
 */
export const flipRgb = (rgb: Uint8Array, width: number): Uint8Array => {
  const height = rgb.length / (width * 3)
  for (let y = 0; y < height; y++) {
    const row = y * width * 3
    for (let l = 0, r = width - 1; l < r; l++, r--) {
      for (let c = 0; c < 3; c++) {
        const a = row + l * 3 + c
        const b = row + r * 3 + c
        const t = rgb[a]!
        rgb[a] = rgb[b]!
        rgb[b] = t
      }
    }
  }
  return rgb
}

/** ITU-R 601 luma, as torchvision's `rgb_to_grayscale`. */
const grey = (r: number, g: number, b: number): number => 0.299 * r + 0.587 * g + 0.114 * b

/**
 * Apply colour jitter steps to packed RGB pixels, in place. Each step blends with a reference (black for
 * brightness, the mean grey for contrast, the pixel's own grey for saturation) and rounds back to 8 bits, as
 * torchvision does on uint8 images.
 *
 * @since 0.1.0
 * @category augmentation
 */
export const jitterRgb = (rgb: Uint8Array, steps: Plan["jitter"]): Uint8Array => {
  const out = new Uint8ClampedArray(rgb.buffer, rgb.byteOffset, rgb.byteLength)
  for (const { kind, factor } of steps) {
    const keep = 1 - factor
    if (kind === "brightness") {
      for (let i = 0; i < out.length; i++) out[i] = out[i]! * factor
    } else if (kind === "contrast") {
      let sum = 0
      for (let i = 0; i < out.length; i += 3) sum += grey(out[i]!, out[i + 1]!, out[i + 2]!)
      const offset = keep * (sum / (out.length / 3))
      for (let i = 0; i < out.length; i++) out[i] = out[i]! * factor + offset
    } else {
      for (let i = 0; i < out.length; i += 3) {
        const offset = keep * grey(out[i]!, out[i + 1]!, out[i + 2]!)
        out[i] = out[i]! * factor + offset
        out[i + 1] = out[i + 1]! * factor + offset
        out[i + 2] = out[i + 2]! * factor + offset
      }
    }
  }
  return rgb
}

const finish = (rgb: Uint8Array, size: number, view: Plan): Uint8Array => {
  if (view.flip) flipRgb(rgb, size)
  return jitterRgb(rgb, view.jitter)
}

/**
 * Augmented views of one image, one per seed, each `spec.size x spec.size x 3` 8-bit RGB. The image is decoded once
 * (EXIF orientation, colour conversion and alpha handled as in `Preprocess.decodeRgb`) and every view is cut from
 * that decode. `name` is used in error messages.
 *
 * @since 0.1.0
 * @category augmentation
 */
export const augmentViews = (
  bytes: Uint8Array,
  spec: PreprocessSpec,
  options: AugmentOptions,
  seeds: ReadonlyArray<number>,
  name: string
): Effect.Effect<ReadonlyArray<Uint8Array>, CoreError> =>
  Effect.flatMap(resolveOptions(options), (o) => {
    const { size } = spec
    if (!o.randomResizedCrop) {
      return Effect.map(decodeRgb(bytes, spec, name), (rgb) =>
        seeds.map((seed) => finish(rgb.slice(), size, plan(size, size, o, seed))))
    }
    return Effect.flatMap(Decode.attempt(name, () => Decode.toRgb(Decode.open(bytes))), (image) =>
      Effect.forEach(seeds, (seed) => {
        const view = plan(image.width, image.height, o, seed)
        return Effect.map(
          Decode.attempt(name, () =>
            Decode.readRaw(Decode.fromRaw(image).extract(view.crop!).resize(size, size, { fit: "fill" }))),
          (rgb) => finish(rgb.data, size, view)
        )
      }))
  })

/**
 * One augmented view (see `augmentViews`).
 *
 * @since 0.1.0
 * @category augmentation
 */
export const augmentRgb = (
  bytes: Uint8Array,
  spec: PreprocessSpec,
  options: AugmentOptions,
  seed: number,
  name: string
): Effect.Effect<Uint8Array, CoreError> =>
  Effect.map(augmentViews(bytes, spec, options, [seed], name), (views) => views[0]!)

/**
 * Combine a base seed with integer keys (epoch, image index, view index, ...) into the seed of one view, so a run
 * is reproducible and every (epoch, image, view) gets its own augmentation.
 *
 * @since 0.1.0
 * @category seeds
 */
export const deriveSeed: (seed: number, ...keys: ReadonlyArray<number>) => number = Prng.deriveSeed
