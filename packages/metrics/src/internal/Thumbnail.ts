/** Square JPEG thumbnails as data URIs, for the HTML report. */
import { Sample } from "@loupe/core"
import { Effect } from "effect"
import sharp from "sharp"
import { MetricsError } from "../MetricsError.js"

/** Decodes `source` (honouring EXIF orientation), centre-crops it to a `size` px square and encodes it as JPEG. */
export const dataUri = (source: Sample.ImageSource, size: number): Effect.Effect<string, MetricsError> =>
  Effect.tryPromise({
    try: () =>
      sharp(source, { failOn: "error" })
        .rotate()
        .resize(size, size, { fit: "cover" })
        .flatten({ background: "#ffffff" })
        .jpeg({ quality: 78, mozjpeg: true })
        .toBuffer(),
    catch: (cause) =>
      new MetricsError({
        reason: "RenderFailed",
        file: Sample.describeSource(source),
        message: `could not make a thumbnail of ${Sample.describeSource(source)}: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  }).pipe(Effect.map((jpeg) => `data:image/jpeg;base64,${jpeg.toString("base64")}`))
