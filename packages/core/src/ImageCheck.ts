/**
 * The one image check of Loupe, run on untrusted bytes before anything decodes them: by the HTTP server on every
 * upload (`ImageGuard` in `@loupe/deploy`), and by training, evaluation and prediction on every file they read
 * (`Preprocess.readSource`), so the command line refuses exactly what the server refuses.
 *
 * The format is sniffed from the magic bytes (JPEG, PNG, GIF and WebP are accepted; SVG, TIFF, HEIF, AVIF and the
 * rest are not, whatever the file is called), and the dimensions are read from the header, so an image whose pixel
 * count is over the limit (a decompression bomb: a small file that decodes to gigabytes) is refused without being
 * decoded. GIF frames are walked so that no frame may be larger than the limit either. Nothing here decodes pixels.
 *
 * @since 0.2.0
 */
import { Effect, Either } from "effect"
import { CoreError } from "./CoreError.js"

/**
 * The image formats accepted: JPEG, PNG, GIF and WebP.
 *
 * @since 0.2.0
 * @category models
 */
export type ImageFormat = "jpeg" | "png" | "gif" | "webp"

/**
 * What `check` read from an image's header: its format, the matching MIME type (`image/jpeg`, ...), and its width
 * and height in pixels.
 *
 * @since 0.2.0
 * @category models
 */
export interface ImageInfo {
  readonly format: ImageFormat
  readonly mimeType: string
  readonly width: number
  readonly height: number
}

/**
 * The size limits an untrusted image must meet before it is decoded.
 *
 * @since 0.2.0
 * @category models
 */
export interface ImageLimits {
  /** Largest encoded image, in bytes. */
  readonly maxBytes: number
  /** Largest width x height (of the image, and of every GIF frame). */
  readonly maxPixels: number
}

/**
 * The default limits, the server's too: 16 MiB encoded and 40 megapixels, enough for any camera photo and far
 * below a decompression bomb.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultLimits: ImageLimits = { maxBytes: 16 * 1024 * 1024, maxPixels: 40_000_000 }

/**
 * Why bytes were refused: `Empty`, `TooManyBytes` (over `maxBytes`), `UnsupportedFormat` (not JPEG, PNG, GIF or
 * WebP; `message` says what they look like, e.g. "an SVG image"), `Malformed` (a header that cannot be read) or
 * `TooManyPixels` (over `maxPixels`). `message` says it for people, without naming the input.
 *
 * @since 0.2.0
 * @category models
 */
export interface ImageProblem {
  readonly kind: "Empty" | "TooManyBytes" | "UnsupportedFormat" | "Malformed" | "TooManyPixels"
  readonly message: string
}

const mimeTypes: Readonly<Record<ImageFormat, string>> = {
  jpeg: "image/jpeg",
  png: "image/png",
  gif: "image/gif",
  webp: "image/webp"
}

const startsWith = (bytes: Uint8Array, at: number, ascii: string): boolean => {
  if (bytes.length < at + ascii.length) return false
  for (let i = 0; i < ascii.length; i++) if (bytes[at + i] !== ascii.charCodeAt(i)) return false
  return true
}

/**
 * The format the magic bytes announce, or `undefined` for anything else (SVG, TIFF, HEIF, text, ...). Only the
 * first 12 bytes are looked at; the image is not validated.
 *
 * @since 0.2.0
 * @category checks
 */
export const sniff = (bytes: Uint8Array): ImageFormat | undefined => {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg"
  if (startsWith(bytes, 0, "\x89PNG\r\n\x1a\n")) return "png"
  if (startsWith(bytes, 0, "GIF87a") || startsWith(bytes, 0, "GIF89a")) return "gif"
  if (startsWith(bytes, 0, "RIFF") && startsWith(bytes, 8, "WEBP")) return "webp"
  return undefined
}

/** What the bytes look like when they are not an accepted image, for error messages. */
const describeOther = (bytes: Uint8Array): string => {
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, 256)).trimStart().toLowerCase()
  if (head.startsWith("<svg") || (head.startsWith("<?xml") && head.includes("<svg"))) return "an SVG image"
  if (startsWith(bytes, 0, "II*\0") || startsWith(bytes, 0, "MM\0*")) return "a TIFF image"
  if (startsWith(bytes, 4, "ftyp")) return "an ISO media file (HEIF/AVIF/MP4)"
  if (startsWith(bytes, 0, "BM")) return "a BMP image"
  if (startsWith(bytes, 0, "%PDF")) return "a PDF document"
  if (head.startsWith("<")) return "markup (HTML or XML)"
  if (head.startsWith("{") || head.startsWith("[")) return "JSON"
  return "not a JPEG, PNG, GIF or WebP image"
}

type Dimensions = { readonly width: number; readonly height: number } | string

const u16be = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!
const u16le = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8)
const u24le = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16)
const u32be = (b: Uint8Array, i: number) => ((b[i]! << 24) >>> 0) + (b[i + 1]! << 16) + (b[i + 2]! << 8) + b[i + 3]!

/** Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic coded). */
const jpegFrameMarkers = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf])

const jpegSize = (b: Uint8Array): Dimensions => {
  let p = 2
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return `JPEG marker expected at byte ${p}`
    const marker = b[p + 1]!
    if (marker === 0xff) {
      p++ // fill byte
      continue
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      p += 2 // markers without a length
      continue
    }
    if (marker === 0xd9 || marker === 0xda) return "the JPEG has no frame header before its image data"
    const length = u16be(b, p + 2)
    if (length < 2) return `JPEG segment at byte ${p} has length ${length}`
    if (jpegFrameMarkers.has(marker)) {
      if (p + 9 > b.length) break
      const height = u16be(b, p + 5)
      const width = u16be(b, p + 7)
      if (height === 0 || width === 0) return "the JPEG frame header gives a zero dimension"
      return { width, height }
    }
    p += 2 + length
  }
  return "the JPEG ends before its frame header"
}

const pngSize = (b: Uint8Array): Dimensions => {
  if (b.length < 24 || !startsWith(b, 12, "IHDR")) return "the PNG does not start with an IHDR chunk"
  const width = u32be(b, 16)
  const height = u32be(b, 20)
  if (width === 0 || height === 0) return "the PNG header gives a zero dimension"
  return { width, height }
}

/** The GIF's logical screen, and the largest frame, walking the blocks without decompressing them. */
const gifSize = (b: Uint8Array, maxPixels: number): Dimensions => {
  if (b.length < 13) return "the GIF ends inside its header"
  const width = u16le(b, 6)
  const height = u16le(b, 8)
  if (width === 0 || height === 0) return "the GIF header gives a zero dimension"
  const flags = b[10]!
  let p = 13 + (flags & 0x80 ? 3 * 2 ** ((flags & 0x07) + 1) : 0)
  const skipSubBlocks = () => {
    while (p < b.length) {
      const size = b[p]!
      p += 1 + size
      if (size === 0) return true
    }
    return false
  }
  while (p < b.length) {
    const block = b[p]!
    if (block === 0x3b) break // trailer
    if (block === 0x21) {
      p += 2
      if (!skipSubBlocks()) break
    } else if (block === 0x2c) {
      if (p + 10 > b.length) break
      const fw = u16le(b, p + 5)
      const fh = u16le(b, p + 7)
      if (fw * fh > maxPixels) return { width: fw, height: fh }
      const local = b[p + 9]!
      p += 10 + (local & 0x80 ? 3 * 2 ** ((local & 0x07) + 1) : 0) + 1
      if (!skipSubBlocks()) break
    } else {
      return `unexpected GIF block 0x${block.toString(16)} at byte ${p}`
    }
  }
  return { width, height }
}

const webpSize = (b: Uint8Array): Dimensions => {
  if (startsWith(b, 12, "VP8X")) {
    if (b.length < 30) return "the WebP ends inside its VP8X header"
    return { width: u24le(b, 24) + 1, height: u24le(b, 27) + 1 }
  }
  if (startsWith(b, 12, "VP8L")) {
    if (b.length < 25 || b[20] !== 0x2f) return "the WebP lossless header is malformed"
    const bits = b[21]! | (b[22]! << 8) | (b[23]! << 16) | (b[24]! << 24)
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 }
  }
  if (startsWith(b, 12, "VP8 ")) {
    if (b.length < 30 || b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) return "the WebP lossy header is malformed"
    const width = u16le(b, 26) & 0x3fff
    const height = u16le(b, 28) & 0x3fff
    if (width === 0 || height === 0) return "the WebP header gives a zero dimension"
    return { width, height }
  }
  return "the WebP has no VP8, VP8L or VP8X chunk"
}

/**
 * Read an image's format and dimensions from its header and check them against `limits` (none: only the format and
 * the header are checked). Nothing is decoded.
 *
 * @since 0.2.0
 * @category checks
 */
export const check = (bytes: Uint8Array, limits?: ImageLimits): Either.Either<ImageInfo, ImageProblem> => {
  const problem = (kind: ImageProblem["kind"], message: string) => Either.left({ kind, message })
  if (bytes.byteLength === 0) return problem("Empty", "the image is empty")
  if (limits !== undefined && bytes.byteLength > limits.maxBytes) {
    return problem("TooManyBytes", `the image has ${bytes.byteLength} bytes; the limit is ${limits.maxBytes}`)
  }
  const format = sniff(bytes)
  if (format === undefined) return problem("UnsupportedFormat", describeOther(bytes))
  const maxPixels = limits?.maxPixels ?? Infinity
  const size = format === "jpeg"
    ? jpegSize(bytes)
    : format === "png"
    ? pngSize(bytes)
    : format === "gif"
    ? gifSize(bytes, maxPixels)
    : webpSize(bytes)
  if (typeof size === "string") return problem("Malformed", size)
  if (size.width * size.height > maxPixels) {
    return problem(
      "TooManyPixels",
      `the ${format.toUpperCase()} is ${size.width}x${size.height} (${size.width * size.height} pixels); the limit is ${maxPixels} pixels`
    )
  }
  return Either.right({ format, mimeType: mimeTypes[format], width: size.width, height: size.height })
}

/**
 * `check` as an Effect: fails with `CoreError` `InvalidImage` naming `name` (a file, or the input's description)
 * and saying why, as an image that does not decode fails (`Cannot decode <name>: an SVG image; ...`).
 *
 * @since 0.2.0
 * @category checks
 */
export const inspect = (bytes: Uint8Array, name: string, limits?: ImageLimits): Effect.Effect<ImageInfo, CoreError> =>
  Either.match(check(bytes, limits), {
    onRight: Effect.succeed,
    onLeft: (p) =>
      Effect.fail(
        new CoreError({
          reason: "InvalidImage",
          file: name,
          message: `Cannot decode ${name}: ${p.message}${p.kind === "UnsupportedFormat" ? "; Loupe reads JPEG, PNG, GIF and WebP images" : ""}`
        })
      )
  })
