/**
 * Image preprocessing with sharp: decode (honouring EXIF orientation), convert to 8-bit RGB, resize and crop, then
 * normalise into the float32 layout a backbone expects.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
// node:fs, not FileSystem: `readSource` (and so `loadRgb` and every Embedder entry point) requires nothing, and
// FileSystem would add a requirement to all of them and their callers.
import * as fs from "node:fs/promises"
import { CoreError } from "./CoreError.js"
import * as ImageCheck from "./ImageCheck.js"
import * as Decode from "./internal/Decode.js"
import { describeSource, type ImageSource } from "./Sample.js"

/**
 * How a backbone wants its pixels. Normalised value = (x / scale - mean[c]) / std[c] for x in 0..255.
 *
 * @since 0.1.0
 * @category models
 */
export interface PreprocessSpec {
  /** Side of the square input, e.g. 224. */
  readonly size: number
  /**
   * `shorter-side-center-crop`: resize so the shorter side is `resizeShorter` (default `size`), then centre-crop
   * `size` x `size` (torchvision's Resize + CenterCrop). `squash`: resize to `size` x `size`, ignoring aspect.
   */
  readonly resize: "shorter-side-center-crop" | "squash"
  readonly resizeShorter?: number
  readonly layout: "NCHW" | "NHWC"
  readonly scale: number
  readonly mean: readonly [number, number, number]
  readonly std: readonly [number, number, number]
}

/**
 * The usual ImageNet preprocessing (torchvision's): resize the shorter side to 256, centre-crop 224 x 224, NCHW,
 * ImageNet mean and std. `overrides` replace any field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const imagenet = (overrides: Partial<PreprocessSpec> = {}): PreprocessSpec => ({
  size: 224,
  resize: "shorter-side-center-crop",
  resizeShorter: 256,
  layout: "NCHW",
  scale: 255,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  ...overrides
})

/**
 * What `decodeRgb` depends on: specs with the same key decode an image to the same pixels (they may still normalise
 * them differently), so several backbones can share one decode.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeKey = (spec: PreprocessSpec): string =>
  `${spec.size}/${spec.resize}${spec.resize === "squash" ? "" : `/${spec.resizeShorter ?? spec.size}`}`

/**
 * Read the bytes behind a source (a path is read from disk; bytes are taken as they are) and check them with
 * `ImageCheck` before anything decodes them: only JPEG, PNG, GIF and WebP, with a readable header, are let through,
 * whatever a file is called. A file must also meet `ImageCheck.defaultLimits` (the server's limits), so training,
 * evaluation and prediction refuse exactly the files the server refuses; bytes in memory have met their caller's
 * limits already (the server's, possibly configured).
 *
 * Fails with `CoreError`: `Io` naming the file when it cannot be read, `InvalidImage` naming it when the check
 * refuses it (saying why: "an SVG image", "8000x8000 pixels; the limit is ...").
 *
 * @since 0.1.0
 * @category decoding
 */
export const readSource = (source: ImageSource): Effect.Effect<Uint8Array, CoreError> =>
  typeof source === "string"
    ? Effect.tryPromise({
      try: () => fs.readFile(source),
      catch: (cause) =>
        new CoreError({ reason: "Io", file: source, message: `Cannot read ${source}: ${String(cause)}`, cause })
    }).pipe(Effect.tap((bytes) => ImageCheck.inspect(bytes, source, ImageCheck.defaultLimits)))
    : Effect.as(ImageCheck.inspect(source, describeSource(source)), source)

/**
 * Decode image bytes to `size x size x 3` 8-bit RGB (HWC), following `spec`: EXIF orientation applied, greyscale,
 * CMYK and 16-bit converted to 8-bit sRGB, transparency flattened onto white, then resized and cropped.
 * `name` is used in error messages.
 *
 * Fails with `CoreError`: `InvalidImage` naming `name` when the bytes do not decode, `InvalidConfig` (field
 * `preprocess.resizeShorter`) when `resizeShorter` is smaller than `size`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeRgb = (bytes: Uint8Array, spec: PreprocessSpec, name: string): Effect.Effect<Uint8Array, CoreError> => {
  const { size } = spec
  const shorter = spec.resizeShorter ?? size
  if (spec.resize === "shorter-side-center-crop" && shorter < size) {
    return Effect.fail(
      new CoreError({
        reason: "InvalidConfig",
        field: "preprocess.resizeShorter",
        message: `preprocess.resizeShorter (${shorter}) is smaller than the crop size ${size}`
      })
    )
  }
  return Decode.attempt(name, async () => {
    let image = Decode.open(bytes)
    if (spec.resize === "squash") {
      image = image.resize(size, size, { fit: "fill" })
    } else {
      const offset = Math.round((shorter - size) / 2)
      image = image.resize(shorter, shorter, { fit: "cover", position: "centre" })
      if (shorter > size) image = image.extract({ left: offset, top: offset, width: size, height: size })
    }
    const rgb = await Decode.toRgb(image)
    if (rgb.width !== size || rgb.height !== size) {
      throw new Error(`decoded to ${rgb.width}x${rgb.height}, expected ${size}x${size}`)
    }
    return rgb.data
  })
}

/**
 * Read and decode a source (see `decodeRgb`).
 *
 * Fails as `readSource` and `decodeRgb` do.
 *
 * @since 0.1.0
 * @category decoding
 */
export const loadRgb = (source: ImageSource, spec: PreprocessSpec): Effect.Effect<Uint8Array, CoreError> =>
  Effect.flatMap(readSource(source), (bytes) => decodeRgb(bytes, spec, describeSource(source)))

/**
 * Normalise one `size x size x 3` RGB image into slot `index` of a batch tensor laid out per `spec.layout`.
 *
 * @since 0.1.0
 * @category tensors
 */
export const writeNormalized = (rgb: Uint8Array, spec: PreprocessSpec, out: Float32Array, index: number): void => {
  const pixels = spec.size * spec.size
  const base = index * pixels * 3
  // One float32 per channel and byte value, computed as the formula is, so a lookup gives the same bits as the
  // arithmetic and costs less per pixel.
  const inv = 1 / spec.scale
  const table = new Float32Array(3 * 256)
  for (let c = 0; c < 3; c++) {
    const mean = spec.mean[c]!
    const scale = 1 / spec.std[c]!
    for (let x = 0; x < 256; x++) table[c * 256 + x] = (x * inv - mean) * scale
  }
  if (spec.layout === "NHWC") {
    const slot = out.subarray(base, base + pixels * 3)
    for (let i = 0; i < pixels * 3; i += 3) {
      slot[i] = table[rgb[i]!]!
      slot[i + 1] = table[256 + rgb[i + 1]!]!
      slot[i + 2] = table[512 + rgb[i + 2]!]!
    }
  } else {
    const r = out.subarray(base, base + pixels)
    const g = out.subarray(base + pixels, base + 2 * pixels)
    const b = out.subarray(base + 2 * pixels, base + 3 * pixels)
    for (let p = 0, i = 0; p < pixels; p++, i += 3) {
      r[p] = table[rgb[i]!]!
      g[p] = table[256 + rgb[i + 1]!]!
      b[p] = table[512 + rgb[i + 2]!]!
    }
  }
}

/**
 * The mirror image (flipped left to right) of a `size x size x 3` RGB image.
 *
 * @since 0.1.0
 * @category tensors
 */
export const mirrorRgb = (rgb: Uint8Array, size: number): Uint8Array => {
  const out = new Uint8Array(rgb.length)
  const stride = size * 3
  for (let row = 0; row < size; row++) {
    const start = row * stride
    for (let x = 0; x < size; x++) {
      const from = start + x * 3
      const to = start + (size - 1 - x) * 3
      out[to] = rgb[from]!
      out[to + 1] = rgb[from + 1]!
      out[to + 2] = rgb[from + 2]!
    }
  }
  return out
}

/**
 * Normalise several RGB images into one batch tensor. With `mirror`, the tensor holds `2 x images.length` images:
 * the images in order, then their mirror images in the same order.
 *
 * @since 0.1.0
 * @category tensors
 */
export const toTensor = (
  images: ReadonlyArray<Uint8Array>,
  spec: PreprocessSpec,
  mirror = false,
  /** Where to write (a reused batch buffer): at least as long as the fresh tensor would be; the rest stays as is. */
  out: Float32Array = new Float32Array((mirror ? 2 : 1) * images.length * spec.size * spec.size * 3)
): Float32Array => {
  const n = images.length
  images.forEach((rgb, i) => {
    writeNormalized(rgb, spec, out, i)
    if (mirror) writeNormalized(mirrorRgb(rgb, spec.size), spec, out, n + i)
  })
  return out
}
