/**
 * A sample's image as a data URI, as Nyckel's clients read samples back: transparency flattened onto white (as PNG,
 * so nothing else changes); an opaque JPEG, PNG, GIF or WebP as stored; any other format as PNG.
 *
 * @internal
 */
import { Effect } from "effect"
import sharp from "sharp"
import { FunctionsError } from "../FunctionsError.js"

const typeOf = (b: Uint8Array): string | undefined => {
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg"
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "image/png"
  if (b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return "image/gif"
  if (String.fromCharCode(...b.subarray(0, 4)) === "RIFF" && String.fromCharCode(...b.subarray(8, 12)) === "WEBP") return "image/webp"
  return undefined
}

const uri = (type: string, bytes: Uint8Array) => `data:${type};base64,${Buffer.from(bytes).toString("base64")}`

/** The data URI of stored image bytes; `file` names the blob in errors. */
export const dataUri = (bytes: Uint8Array, file: string): Effect.Effect<string, FunctionsError> =>
  Effect.tryPromise({
    try: async () => {
      const type = typeOf(bytes)
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
