/**
 * Checks on untrusted image bytes that run before anything decodes them, as the server's typed errors: the format is
 * sniffed from the magic bytes (JPEG, PNG, GIF and WebP are accepted; SVG, TIFF, HEIF and the rest are not), and the
 * dimensions are read from the header, so an image whose pixel count is over the limit (a decompression bomb: a
 * small file that decodes to gigabytes) is rejected without being decoded. GIF frames are walked so that no frame
 * may be larger than the limit either. The checks themselves are `ImageCheck` of `@loupe/core`, shared with the
 * command line, so both refuse the same images.
 *
 * Also here: data URIs (`data:image/jpeg;base64,...`), decoded only after their size is known to be under the
 * limit, and the content-type check between a declared media type and the sniffed format.
 *
 * @since 0.1.0
 */
import { ImageCheck } from "@loupe/core"
import { Effect, Either } from "effect"
import { DeployError } from "./DeployError.js"

/**
 * The image formats accepted: JPEG, PNG, GIF and WebP (`ImageCheck.ImageFormat` of `@loupe/core`).
 *
 * @since 0.1.0
 * @category models
 */
export type ImageFormat = ImageCheck.ImageFormat

/**
 * What `inspect` read from an image's header: its format, the matching MIME type (`image/jpeg`, ...), and its
 * width and height in pixels.
 *
 * @since 0.1.0
 * @category models
 */
export type ImageInfo = ImageCheck.ImageInfo

/**
 * The size limits an untrusted image must meet before it is decoded.
 *
 * @since 0.1.0
 * @category models
 */
export type ImageLimits = ImageCheck.ImageLimits

/**
 * The default limits: 16 MiB encoded and 40 megapixels, enough for any camera photo and far below a
 * decompression bomb. The command line reads files with the same limits.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultLimits: ImageLimits = ImageCheck.defaultLimits

/**
 * The format the magic bytes announce, or `undefined` for anything else (SVG, TIFF, HEIF, text, ...). Only the
 * first 12 bytes are looked at; the image is not validated.
 *
 * @since 0.1.0
 * @category checks
 */
export const sniff: (bytes: Uint8Array) => ImageFormat | undefined = ImageCheck.sniff

/** The server's reason for each of the image check's problems. */
const reasons: Readonly<Record<ImageCheck.ImageProblem["kind"], DeployError["reason"]>> = {
  Empty: "InvalidImage",
  TooManyBytes: "BodyTooLarge",
  UnsupportedFormat: "UnsupportedMediaType",
  Malformed: "InvalidImage",
  TooManyPixels: "ImageTooLarge"
}

/**
 * Read an image's format and dimensions from its header and check them against `limits` (`ImageCheck.check` of
 * `@loupe/core`, which the command line runs too). Nothing is decoded. `field` names the input in errors (`data`,
 * `file`).
 *
 * @since 0.1.0
 * @category checks
 */
export const inspect = (bytes: Uint8Array, limits: ImageLimits, field: string): Effect.Effect<ImageInfo, DeployError> =>
  Effect.suspend(() =>
    Either.match(ImageCheck.check(bytes, limits), {
      onRight: Effect.succeed,
      onLeft: (problem) =>
        Effect.fail(
          new DeployError({
            reason: reasons[problem.kind],
            field,
            message: `${field}: ${problem.message}${problem.kind === "UnsupportedFormat" ? "; send a JPEG, PNG, GIF or WebP image" : ""}`
          })
        )
    })
  )

/** The image format a media type names (`image/jpg` is taken for `image/jpeg`), `undefined` for others. */
const formatOfMediaType = (mediaType: string): ImageFormat | undefined => {
  const type = mediaType.split(";")[0]!.trim().toLowerCase()
  switch (type) {
    case "image/jpeg":
    case "image/jpg":
    case "image/pjpeg":
      return "jpeg"
    case "image/png":
      return "png"
    case "image/gif":
      return "gif"
    case "image/webp":
      return "webp"
    default:
      return undefined
  }
}

/**
 * Check that image bytes declared with `mediaType` are what they claim: `application/octet-stream` (or no type)
 * accepts any accepted format; an image type must match the sniffed format.
 *
 * @since 0.1.0
 * @category checks
 */
export const checkDeclared = (
  info: ImageInfo,
  mediaType: string | undefined,
  field: string
): Effect.Effect<ImageInfo, DeployError> => {
  const type = mediaType?.split(";")[0]!.trim().toLowerCase() ?? ""
  if (type === "" || type === "application/octet-stream") return Effect.succeed(info)
  const declared = formatOfMediaType(type)
  if (declared === undefined) {
    return Effect.fail(new DeployError({
      reason: "UnsupportedMediaType",
      field,
      message: `${field}: media type ${type} is not one of image/jpeg, image/png, image/gif, image/webp`
    }))
  }
  return declared === info.format ? Effect.succeed(info) : Effect.fail(new DeployError({
    reason: "UnsupportedMediaType",
    field,
    message: `${field}: declared as ${type} but the bytes are ${info.mimeType}`
  }))
}

const base64Pattern = /^[A-Za-z0-9+/_-]*={0,2}$/

/**
 * Decode a `data:` URI holding an image. The payload's decoded size is computed from its length before anything
 * is decoded, so an oversized URI costs nothing. Only base64 payloads of an image media type are accepted.
 *
 * @since 0.1.0
 * @category decoding
 */
export const fromDataUri = (
  uri: string,
  maxBytes: number,
  field: string
): Effect.Effect<{ readonly bytes: Uint8Array; readonly mediaType: string }, DeployError> =>
  Effect.suspend(() => {
    const fail = (reason: "InvalidRequest" | "UnsupportedMediaType" | "BodyTooLarge", message: string) =>
      Effect.fail(new DeployError({ reason, field, message: `${field}: ${message}` }))
    if (!uri.startsWith("data:")) return fail("InvalidRequest", "expected a data URI (data:image/jpeg;base64,...)")
    const comma = uri.indexOf(",")
    if (comma < 0 || comma > 200) return fail("InvalidRequest", "a data URI needs a short header and a comma before its payload")
    const header = uri.slice(5, comma).toLowerCase()
    const parts = header.split(";").map((s) => s.trim())
    const mediaType = parts[0] ?? ""
    if (!parts.includes("base64")) return fail("InvalidRequest", "the data URI must be base64 encoded (data:image/jpeg;base64,...)")
    if (mediaType !== "" && mediaType !== "application/octet-stream" && formatOfMediaType(mediaType) === undefined) {
      return fail("UnsupportedMediaType", `media type ${mediaType} is not one of image/jpeg, image/png, image/gif, image/webp`)
    }
    const payloadLength = uri.length - comma - 1
    const decodedBytes = Math.floor((payloadLength * 3) / 4)
    if (decodedBytes > maxBytes + 2) {
      return fail("BodyTooLarge", `the data URI holds about ${decodedBytes} bytes; the limit is ${maxBytes}`)
    }
    const payload = uri.slice(comma + 1)
    if (!base64Pattern.test(payload)) return fail("InvalidRequest", "the data URI's payload is not valid base64")
    const buffer = Buffer.from(payload, payload.includes("-") || payload.includes("_") ? "base64url" : "base64")
    return Effect.succeed({ bytes: new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), mediaType })
  })
