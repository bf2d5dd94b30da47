/**
 * A sample's image as a data URI, as Nyckel's clients read samples back: transparency flattened onto white (as PNG,
 * so nothing else changes); an opaque JPEG, PNG, GIF or WebP as stored; any other format as PNG.
 *
 * @internal
 */
import { ImageCheck } from "@loupe/core"
import { Effect } from "effect"
import sharp from "sharp"
import { FunctionsError } from "../FunctionsError.js"

/** The MIME type of bytes in a format browsers and clients decode as they are (`ImageCheck.sniff`), else undefined. */
export const mimeType = (bytes: Uint8Array): string | undefined => {
  const format = ImageCheck.sniff(bytes)
  return format === undefined ? undefined : `image/${format}`
}

const uri = (type: string, bytes: Uint8Array) => `data:${type};base64,${Buffer.from(bytes).toString("base64")}`

/** The data URI of stored image bytes; `file` names the blob in errors. */
export const dataUri = (bytes: Uint8Array, file: string): Effect.Effect<string, FunctionsError> =>
  Effect.tryPromise({
    try: async () => {
      const type = mimeType(bytes)
      const image = sharp(bytes, { failOn: "error" })
      const { hasAlpha } = await image.metadata()
      if (type !== undefined && !hasAlpha) return uri(type, bytes)
      return uri("image/png", await image.flatten({ background: "#ffffff" }).png().toBuffer())
    },
    catch: (cause) =>
      new FunctionsError({
        reason: "InvalidImage",
        file,
        message: `Cannot read the image ${file}: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  })
