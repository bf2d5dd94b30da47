/**
 * Reading untrusted request bodies: a byte cap enforced while reading (and from `Content-Length` before reading),
 * content-type dispatch (JSON, multipart form, raw image), JSON that must parse and match its schema (unknown keys
 * are errors naming them), image URLs fetched (when enabled) by `UrlFetch` under its address policy, and image data
 * that passes `ImageGuard` before anything decodes it. Every failure is a `DeployError` naming the offending field.
 *
 * @internal
 */
import { HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Effect, ParseResult, Schema } from "effect"
import { DeployError, invalid } from "../DeployError.js"
import * as ImageGuard from "../ImageGuard.js"
import * as UrlFetch from "../UrlFetch.js"

export interface BodyLimits {
  /** Largest request body, in bytes. */
  readonly maxBodyBytes: number
  readonly image: ImageGuard.ImageLimits
  /** Fetch `http(s)` URLs given as image data. */
  readonly allowUrlFetch: boolean
  /** With `allowUrlFetch`: which private addresses (loopback, RFC 1918, link-local, ...) are fetched too. */
  readonly allowPrivateUrls: UrlFetch.AddressPolicy
}

const tooLarge = (message: string) =>
  // The rest of an oversized body is not read: close the connection after answering.
  Effect.zipRight(
    HttpApp.appendPreResponseHandler((_, response) => Effect.succeed(HttpServerResponse.setHeader(response, "connection", "close"))),
    Effect.fail(new DeployError({ reason: "BodyTooLarge", field: "body", message }))
  )

/** The body's bytes, at most `maxBytes` of them. */
export const readBytes = (maxBytes: number): Effect.Effect<Uint8Array, DeployError, HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const declared = Number(request.headers["content-length"] ?? "0")
    if (declared > maxBytes) return tooLarge(`body: ${declared} bytes is over the ${maxBytes}-byte limit`)
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const read = Effect.async<Uint8Array, DeployError | "tooLarge">((resume) => {
      const chunks: Array<Buffer> = []
      let size = 0
      const cleanup = () => {
        incoming.off("data", onData)
        incoming.off("end", onEnd)
        incoming.off("error", onError)
      }
      // After a `data` listener the stream flows; once it is removed the rest is read and dropped.
      const onData = (chunk: Buffer) => {
        size += chunk.length
        if (size > maxBytes) {
          cleanup()
          incoming.resume()
          resume(Effect.fail("tooLarge"))
        } else {
          chunks.push(chunk)
        }
      }
      const onEnd = () => {
        cleanup()
        const body = Buffer.concat(chunks, size)
        resume(Effect.succeed(new Uint8Array(body.buffer, body.byteOffset, body.byteLength)))
      }
      const onError = (cause: Error) => {
        cleanup()
        resume(Effect.fail(new DeployError({ reason: "InvalidRequest", field: "body", message: `body: cannot be read: ${cause.message}`, cause })))
      }
      incoming.on("data", onData)
      incoming.on("end", onEnd)
      incoming.on("error", onError)
      return Effect.sync(cleanup)
    })
    return Effect.catchIf(read, (e): e is "tooLarge" => e === "tooLarge", () => tooLarge(`body: over the ${maxBytes}-byte limit`)) as Effect.Effect<
      Uint8Array,
      DeployError
    >
  })

/** The media type of the request (lowercase, without parameters); `""` when there is none. */
export const mediaType = (request: HttpServerRequest.HttpServerRequest): string =>
  (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()

/** The dotted path of the first issue of a parse error, and its message. */
export const describeParseError = (error: ParseResult.ParseError): { readonly field: string; readonly message: string } => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join(".") : "body"
  return { field, message: issue?.message ?? error.message }
}

/** Decode `value` with `schema`, refusing unknown keys; the error names the field. */
export const decode = <A, I>(schema: Schema.Schema<A, I>, value: unknown): Effect.Effect<A, DeployError> =>
  Schema.decodeUnknown(schema, { onExcessProperty: "error", errors: "first" })(value).pipe(
    Effect.mapError((e) => {
      const { field, message } = describeParseError(e)
      return invalid(field, message)
    })
  )

const parseJson = (bytes: Uint8Array): Effect.Effect<unknown, DeployError> =>
  Effect.try({
    try: () => JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as unknown,
    catch: (cause) => invalid("body", `not valid JSON: ${cause instanceof Error ? cause.message : String(cause)}`)
  })

const unsupported = (type: string, accepted: string) =>
  new DeployError({
    reason: "UnsupportedMediaType",
    field: "content-type",
    message: `content-type: ${type === "" ? "missing" : type}; this route takes ${accepted}`
  })

/** A JSON body decoded with `schema`. */
export const json = <A, I>(schema: Schema.Schema<A, I>, limits: BodyLimits) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const type = mediaType(request)
    if (type !== "application/json") return yield* unsupported(type, "application/json")
    return yield* decode(schema, yield* parseJson(yield* readBytes(limits.maxBodyBytes)))
  })

/** An image with the other fields of its request. */
export interface ImageBody<F> {
  readonly image: Uint8Array
  readonly info: ImageGuard.ImageInfo
  readonly fields: F
}

/** The bytes behind a JSON `data` string: a data URI, or (when enabled) an http(s) URL. */
const fromDataString = (data: string, limits: BodyLimits) => {
  if (data.startsWith("data:")) return ImageGuard.fromDataUri(data, limits.image.maxBytes, "data")
  if (/^https?:\/\//i.test(data)) {
    if (!limits.allowUrlFetch) {
      return Effect.fail(new DeployError({
        reason: "UrlFetchDisabled",
        field: "data",
        message: "data: this server does not fetch URLs (that would let callers make it request any address); send the image as a data URI, multipart or a raw body"
      }))
    }
    return UrlFetch.fetchBytes(data, {
      maxBytes: limits.image.maxBytes,
      field: "data",
      allowPrivateAddresses: limits.allowPrivateUrls,
      privateAddressHint: "this server does not fetch private addresses (start it with --allow-private-urls to allow them)"
    })
  }
  return Effect.fail(invalid("data", "expected a data URI (data:image/jpeg;base64,...)"))
}

const checked = (bytes: Uint8Array, mediaType: string | undefined, limits: BodyLimits) =>
  Effect.flatMap(ImageGuard.inspect(bytes, limits.image, "data"), (info) => ImageGuard.checkDeclared(info, mediaType, "data"))

/**
 * A request carrying one image: JSON `{ data: "data:...", ...fields }`, a multipart form with the file as `data`
 * and text fields (decoded with `form`, then mapped with `fromForm` to the JSON fields), or a raw image body (no
 * fields). The image is checked (format, bytes, pixels) but not decoded.
 */
export const image = <J extends { readonly data: string }, JI, F, FI>(
  jsonSchema: Schema.Schema<J, JI>,
  form: { readonly schema: Schema.Schema<F, FI>; readonly fields: ReadonlyArray<string>; readonly toFields: (f: F) => Omit<J, "data"> },
  limits: BodyLimits
): Effect.Effect<ImageBody<Omit<J, "data">>, DeployError, HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const type = mediaType(request)
    if (type === "application/json") {
      const { data, ...fields } = yield* decode(jsonSchema, yield* parseJson(yield* readBytes(limits.maxBodyBytes)))
      const { bytes, mediaType: declared } = yield* fromDataString(data, limits)
      return { image: bytes, info: yield* checked(bytes, declared, limits), fields }
    }
    if (type === "multipart/form-data") {
      const body = yield* readBytes(limits.maxBodyBytes)
      const parsed = yield* Effect.tryPromise({
        try: () => new Response(body, { headers: { "content-type": request.headers["content-type"]! } }).formData(),
        catch: (cause) => invalid("body", `not a valid multipart form: ${cause instanceof Error ? cause.message : String(cause)}`)
      })
      const text: Record<string, string> = {}
      let file: Blob | undefined
      for (const [name, value] of parsed.entries()) {
        if (name === "data") {
          if (typeof value === "string") return yield* invalid("data", "the form's data field must be a file")
          if (file !== undefined) return yield* invalid("data", "send one file")
          file = value
        } else if (!form.fields.includes(name)) {
          return yield* invalid(name, `is not a field of this form (fields: data${form.fields.map((f) => `, ${f}`).join("")})`)
        } else if (typeof value !== "string") {
          return yield* invalid(name, "must be a text field")
        } else {
          text[name] = value
        }
      }
      if (file === undefined) return yield* invalid("data", "the form has no data file")
      const bytes = new Uint8Array(yield* Effect.promise(() => file!.arrayBuffer()))
      const fields = form.toFields(yield* decode(form.schema, text))
      return { image: bytes, info: yield* checked(bytes, file.type || undefined, limits), fields }
    }
    if (type.startsWith("image/") || type === "application/octet-stream") {
      const bytes = yield* readBytes(limits.image.maxBytes)
      const fields = form.toFields(yield* decode(form.schema, {}))
      return { image: bytes, info: yield* checked(bytes, type, limits), fields }
    }
    return yield* unsupported(type, "application/json, multipart/form-data or an image/* body")
  })
