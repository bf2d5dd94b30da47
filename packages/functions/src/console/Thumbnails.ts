/**
 * Thumbnails of a function's samples for the console's grids: a `SIZE` px square WebP, EXIF-rotated and
 * centre-cropped by sharp, made once and kept in the blob store under
 * `thumbnails/<functionId>/<contentHash>-<size>.webp`, so a second request reads it rather than encoding again.
 * Full images are served as stored when they are JPEG, PNG, WebP or GIF, and otherwise as PNG (an SVG or TIFF
 * sample is never handed to the browser as such).
 *
 * @internal
 */
import { Context, Effect } from "effect"
import sharp from "sharp"
import { BlobStore } from "../BlobStore.js"
import { FunctionsError } from "../FunctionsError.js"
import * as SampleData from "../internal/SampleData.js"
import { imageKey } from "../Store.js"

/** The thumbnails' edge, in pixels. */
export const SIZE = 192

/** An image to send: its bytes and content type. */
export interface ImageBytes {
  readonly bytes: Uint8Array
  readonly contentType: string
}

/** Thumbnails and full images of samples, by function and content hash. */
export interface ThumbnailsShape {
  readonly thumbnail: (functionId: string, contentHash: string) => Effect.Effect<ImageBytes, FunctionsError>
  readonly image: (functionId: string, contentHash: string) => Effect.Effect<ImageBytes, FunctionsError>
  /** Drop a sample's thumbnail (after it was deleted). */
  readonly remove: (functionId: string, contentHash: string) => Effect.Effect<void, FunctionsError>
  /** Drop every thumbnail of a function (after it was deleted). */
  readonly forget: (functionId: string) => Effect.Effect<void, FunctionsError>
}

/** The thumbnail service of the console. */
export class Thumbnails extends Context.Tag("@loupe/functions/console/Thumbnails")<Thumbnails, ThumbnailsShape>() {}

const prefix = (functionId: string) => `thumbnails/${functionId}`
const key = (functionId: string, contentHash: string) => `${prefix(functionId)}/${contentHash}-${SIZE}.webp`

const encode = (what: string, functionId: string, contentHash: string, run: () => Promise<Buffer>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) =>
      new FunctionsError({
        reason: "InvalidImage",
        file: imageKey(functionId, contentHash),
        message: `Cannot make the ${what} of ${imageKey(functionId, contentHash)}: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  }).pipe(Effect.map((buffer) => new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)))

/** Thumbnails over the blob store in context. */
export const make: Effect.Effect<ThumbnailsShape, never, BlobStore> = Effect.gen(function*() {
  const blobs = yield* BlobStore
  return {
    thumbnail: (functionId, contentHash) =>
      Effect.gen(function*() {
        const cached = key(functionId, contentHash)
        if (yield* blobs.has(cached)) return { bytes: yield* blobs.get(cached), contentType: "image/webp" }
        const original = yield* blobs.get(imageKey(functionId, contentHash))
        const bytes = yield* encode("thumbnail", functionId, contentHash, () =>
          sharp(original, { failOn: "error" }).rotate().resize(SIZE, SIZE, { fit: "cover" }).webp({ quality: 74 }).toBuffer())
        yield* blobs.put(cached, bytes)
        return { bytes, contentType: "image/webp" }
      }),
    image: (functionId, contentHash) =>
      Effect.gen(function*() {
        const bytes = yield* blobs.get(imageKey(functionId, contentHash))
        const type = SampleData.mimeType(bytes)
        if (type !== undefined) return { bytes, contentType: type }
        const png = yield* encode("PNG copy", functionId, contentHash, () => sharp(bytes, { failOn: "error" }).rotate().png().toBuffer())
        return { bytes: png, contentType: "image/png" }
      }),
    remove: (functionId, contentHash) => blobs.remove(key(functionId, contentHash)),
    forget: (functionId) => blobs.remove(prefix(functionId))
  }
})
