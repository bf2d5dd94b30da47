/**
 * The image in a request payload, as Schema transformations the HTTP API decodes with: a JSON `data` string (a data
 * URI, or an http(s) URL fetched by `UrlFetch` when the server allows it), a multipart file, or a raw body. Each
 * runs `ImageGuard` (format, bytes, pixels, declared type) before anything decodes the image, under the
 * `ImageIntake` policy the server provides.
 *
 * A refused image does not fail the schema: it decodes to a `Checked` that holds the refusal (a `DeployError` naming
 * `data`), so the server answers with the refusal's own status (413 for a bomb, 415 for an SVG) rather than the
 * 400 every schema mismatch gets. The handler yields the `Checked` to get the image or fail with the refusal.
 *
 * @since 0.2.0
 */
import { FileSystem, HttpApiSchema, HttpServerRequest, Multipart } from "@effect/platform"
import { Context, Effect, Either, ParseResult, Schema, type SchemaAST } from "effect"
import { DeployError, invalid } from "./DeployError.js"
import * as ImageGuard from "./ImageGuard.js"
import * as UrlFetch from "./UrlFetch.js"

/**
 * What the server accepts as an image: its limits, and whether (and from which addresses) it fetches URLs.
 *
 * @since 0.2.0
 * @category models
 */
export interface IntakePolicy {
  readonly limits: ImageGuard.ImageLimits
  /** Fetch `http(s)` URLs given as JSON `data`. */
  readonly allowUrlFetch: boolean
  /** With `allowUrlFetch`: which private addresses (loopback, RFC 1918, link-local, ...) are fetched too. */
  readonly allowPrivateUrls: UrlFetch.AddressPolicy
}

/**
 * The `IntakePolicy` the payload schemas check images against; the server provides it.
 *
 * @since 0.2.0
 * @category services
 */
export class ImageIntake extends Context.Tag("@loupe/deploy/ImageIntake")<ImageIntake, IntakePolicy>() {}

/**
 * Image bytes that passed `ImageGuard`, with what their header says.
 *
 * @since 0.2.0
 * @category models
 */
export interface CheckedImage {
  readonly bytes: Uint8Array
  readonly info: ImageGuard.ImageInfo
}

/**
 * The verdict on a payload's image: the checked image, or why it was refused. Yielding it in `Effect.gen` gives
 * the image or fails with the refusal.
 *
 * @since 0.2.0
 * @category models
 */
export type Checked = Either.Either<CheckedImage, DeployError>

const CheckedSchema = Schema.declare(
  (u: unknown): u is Checked => Either.isEither(u),
  { identifier: "CheckedImage", description: "An image checked by ImageGuard, or why it was refused" }
)

const FIELD = "data"

const check = (bytes: Uint8Array, mediaType: string | undefined) =>
  Effect.flatMap(ImageIntake, (policy) =>
    Effect.flatMap(
      ImageGuard.inspect(bytes, policy.limits, FIELD),
      (info) => Effect.as(ImageGuard.checkDeclared(info, mediaType, FIELD), { bytes, info })
    ))

/** The bytes behind a JSON `data` string: a data URI, or (when enabled) an http(s) URL. */
const fromString = (
  data: string
): Effect.Effect<{ readonly bytes: Uint8Array; readonly mediaType: string | undefined }, DeployError, ImageIntake> =>
  Effect.flatMap(ImageIntake, (policy): Effect.Effect<{ readonly bytes: Uint8Array; readonly mediaType: string | undefined }, DeployError> => {
    if (data.startsWith("data:")) return ImageGuard.fromDataUri(data, policy.limits.maxBytes, FIELD)
    if (/^https?:\/\//i.test(data)) {
      if (!policy.allowUrlFetch) {
        return Effect.fail(
          new DeployError({
            reason: "UrlFetchDisabled",
            field: FIELD,
            message:
              "data: this server does not fetch URLs (that would let callers make it request any address); send the image as a data URI, multipart or a raw body"
          })
        )
      }
      return UrlFetch.fetchBytes(data, {
        maxBytes: policy.limits.maxBytes,
        field: FIELD,
        allowPrivateAddresses: policy.allowPrivateUrls,
        privateAddressHint: "this server does not fetch private addresses (start it with --allow-private-urls to allow them)"
      })
    }
    return Effect.fail(invalid(FIELD, "expected a data URI (data:image/jpeg;base64,...)"))
  })

/** Encoding back (for clients of the API): a checked image as a data URI; a refusal cannot be encoded. */
const toDataUri = (checked: Checked, ast: SchemaAST.AST) =>
  Either.match(checked, {
    onLeft: (e) => ParseResult.fail(new ParseResult.Forbidden(ast, checked, e.message)),
    onRight: ({ bytes, info }) => ParseResult.succeed(`data:${info.mimeType};base64,${Buffer.from(bytes).toString("base64")}`)
  })

/**
 * A JSON `data` string: a data URI (`data:image/jpeg;base64,...`), or an http(s) URL when the server fetches URLs.
 *
 * @since 0.2.0
 * @category schemas
 */
export const FromDataString: Schema.Schema<Checked, string, ImageIntake> = Schema.transformOrFail(Schema.String, CheckedSchema, {
  strict: true,
  decode: (data) => Effect.either(Effect.flatMap(fromString(data), ({ bytes, mediaType }) => check(bytes, mediaType))),
  encode: (checked, _, ast) => toDataUri(checked, ast)
}).annotations({
  description: "The image as a data URI (`data:image/jpeg;base64,...`). URLs are refused unless the server fetches URLs."
})

/**
 * A multipart form's one image file; its part's `Content-Type`, when it names an image type, must match the bytes.
 *
 * @since 0.2.0
 * @category schemas
 */
export const FromFile: Schema.Schema<Checked, ReadonlyArray<Multipart.PersistedFile>, ImageIntake | FileSystem.FileSystem> = Schema
  .transformOrFail(Multipart.SingleFileSchema, CheckedSchema, {
    strict: true,
    decode: (file) =>
      Effect.either(
        Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFile(file.path)).pipe(
          Effect.mapError((cause) => new DeployError({ reason: "Internal", field: FIELD, message: `data: the uploaded file cannot be read: ${cause.message}`, cause })),
          Effect.flatMap((bytes) => check(bytes, file.contentType))
        )
      ),
    encode: (checked, _, ast) => ParseResult.fail(new ParseResult.Forbidden(ast, checked, "a form file is not encoded"))
  })
  .annotations({ description: "The image file" })

/**
 * A raw image body; its `Content-Type` must match the bytes (`application/octet-stream` takes any accepted format).
 *
 * @since 0.2.0
 * @category schemas
 */
export const FromBody = (contentType: string): Schema.Schema<Checked, Uint8Array, ImageIntake | HttpServerRequest.HttpServerRequest> =>
  Schema.transformOrFail(Schema.Uint8ArrayFromSelf, CheckedSchema, {
    strict: true,
    decode: (bytes) =>
      Effect.either(Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => check(bytes, request.headers["content-type"]))),
    encode: (checked, _, ast) =>
      Either.match(checked, {
        onLeft: (e) => ParseResult.fail(new ParseResult.Forbidden(ast, checked, e.message)),
        onRight: ({ bytes }) => ParseResult.succeed(bytes)
      })
  }).pipe(HttpApiSchema.withEncoding({ kind: "Uint8Array", contentType }))

/**
 * The content types of a raw image body: the four accepted formats, and `application/octet-stream` for any of them.
 *
 * @since 0.2.0
 * @category constants
 */
export const rawContentTypes = ["image/jpeg", "image/png", "image/gif", "image/webp", "application/octet-stream"] as const
