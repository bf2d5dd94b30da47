/**
 * The sharp steps shared by preprocessing and augmentation: open encoded bytes (EXIF orientation applied), read
 * 8-bit sRGB pixels (alpha flattened onto white; greyscale, CMYK and 16-bit converted), and turn any failure into a
 * `CoreError` naming the image.
 *
 * @internal
 */
import { Effect } from "effect"
import sharp, { type Sharp } from "sharp"
import { CoreError } from "../CoreError.js"

/** Packed 8-bit RGB pixels, row-major (HWC). */
export interface RawRgb {
  readonly data: Uint8Array
  readonly width: number
  readonly height: number
}

/** Run a sharp job; a failure becomes an `InvalidImage` error naming `name`. */
export const attempt = <A>(name: string, job: () => Promise<A>): Effect.Effect<A, CoreError> =>
  Effect.tryPromise({
    try: job,
    catch: (cause) =>
      new CoreError({
        reason: "InvalidImage",
        file: name,
        message: `Cannot decode ${name}: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  })

/** Open encoded image bytes, oriented per EXIF. Throws on empty input (call inside `attempt`). */
export const open = (bytes: Uint8Array): Sharp => {
  if (bytes.byteLength === 0) throw new Error("the file is empty")
  return sharp(bytes, { failOn: "truncated", autoOrient: true })
}

/** Wrap packed RGB pixels for further sharp operations. */
export const fromRaw = (image: RawRgb): Sharp =>
  sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })

/** Read the pixels of a pipeline whose output already is 3-channel 8-bit (e.g. one started with `fromRaw`). */
export const readRaw = async (image: Sharp): Promise<RawRgb> => {
  const { data, info } = await image.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true })
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`)
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height }
}

/** Flatten transparency onto white, convert to 8-bit sRGB and read the pixels. */
export const toRgb = (image: Sharp): Promise<RawRgb> =>
  readRaw(image.flatten({ background: { r: 255, g: 255, b: 255 } }).toColourspace("srgb"))
