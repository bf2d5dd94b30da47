/**
 * Image input of the function API: a path, bytes, a `data:` URI, or a URL (`file:` always; `http(s):` only when
 * fetching is enabled, through `UrlFetch` from `@loupe/deploy`: public addresses only unless `allowPrivateUrls`).
 * Reading fails with `InvalidImage` naming the field (`data`, `samples[3].data`).
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import { Effect, Either } from "effect"
import { ImageCheck, Preprocess } from "@loupe/core"
import { UrlFetch } from "@loupe/deploy"
import { fileURLToPath } from "node:url"
import { FunctionsError } from "../FunctionsError.js"
import { plainBytes } from "./Bytes.js"

/** An image: a file path, its bytes (a Buffer is a Uint8Array), a `data:` URI, or a URL. */
export type ImageData = string | Uint8Array | URL

export interface ReadOptions {
  /** Fetch `http:` and `https:` URLs. Off by default: a service fetching URLs it is handed can be abused (SSRF). */
  readonly allowUrlFetch?: boolean | undefined
  /**
   * With `allowUrlFetch`: fetch from private addresses too (loopback, RFC 1918, link-local, unique-local, ...): `true`
   * for all, or a function deciding per address. Off by default: only public addresses are fetched.
   */
  readonly allowPrivateUrls?: UrlFetch.AddressPolicy | undefined
  /** Largest image accepted, in bytes. Default `ImageCheck.defaultLimits`' (the server's). */
  readonly maxBytes?: number | undefined
  /** Largest width x height accepted (read from the header, before decoding). Default `ImageCheck.defaultLimits`'. */
  readonly maxPixels?: number | undefined
  /** Timeout of a URL fetch, redirects included. Default 10 s (`UrlFetch`'s). */
  readonly fetchTimeoutMs?: number | undefined
}

const invalid = (field: string, message: string, cause?: unknown) =>
  new FunctionsError({ reason: "InvalidImage", field, message: `${field}: ${message}`, cause })

const fromDataUri = (uri: string, field: string): Effect.Effect<Uint8Array, FunctionsError> => {
  const comma = uri.indexOf(",")
  if (comma < 0) return Effect.fail(invalid(field, "a data URI needs a comma before its payload"))
  const header = uri.slice(5, comma)
  const payload = uri.slice(comma + 1)
  return Effect.try({
    try: () =>
      header.endsWith(";base64")
        ? new Uint8Array(Buffer.from(payload, "base64"))
        : new Uint8Array(Buffer.from(decodeURIComponent(payload), "latin1")),
    catch: (cause) => invalid(field, "the data URI's payload cannot be decoded", cause)
  })
}

const fromFile = (file: string, field: string): Effect.Effect<Uint8Array, FunctionsError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFile(file)).pipe(
    Effect.mapError((cause) => invalid(field, `cannot read ${file}: ${cause.message}`, cause)),
    Effect.map(plainBytes)
  )

const fromUrl = (url: URL, field: string, options: ReadOptions): Effect.Effect<Uint8Array, FunctionsError, FileSystem.FileSystem> => {
  switch (url.protocol) {
    case "file:":
      return fromFile(fileURLToPath(url), field)
    case "data:":
      return fromDataUri(url.href, field)
    case "http:":
    case "https:": {
      if (options.allowUrlFetch !== true) {
        return Effect.fail(invalid(field, `fetching ${url.href} is disabled; enable URL fetching or send the bytes`))
      }
      return UrlFetch.fetchBytes(url, {
        maxBytes: options.maxBytes ?? ImageCheck.defaultLimits.maxBytes,
        field,
        allowPrivateAddresses: options.allowPrivateUrls ?? false,
        privateAddressHint: "private addresses are not fetched (allowPrivateUrls allows them)",
        timeoutMs: options.fetchTimeoutMs
      }).pipe(
        Effect.map((fetched) => fetched.bytes),
        Effect.mapError((e) => new FunctionsError({ reason: "InvalidImage", field, message: e.message, cause: e }))
      )
    }
    default:
      return Effect.fail(invalid(field, `unsupported URL scheme ${url.protocol}`))
  }
}

/**
 * The bytes behind `data`, without decoding them, checked as the server and the command line check images
 * (`ImageCheck`: format from the magic bytes, size and pixel count from the header).
 */
export const readBytes = (
  data: unknown,
  field: string,
  options: ReadOptions = {}
): Effect.Effect<Uint8Array, FunctionsError, FileSystem.FileSystem> => {
  const bytes: Effect.Effect<Uint8Array, FunctionsError, FileSystem.FileSystem> = data instanceof Uint8Array
    ? Effect.succeed(data)
    : data instanceof URL
    ? fromUrl(data, field, options)
    : typeof data === "string"
    ? data.startsWith("data:")
      ? fromDataUri(data, field)
      : /^https?:\/\//i.test(data)
      ? Effect.flatMap(
        Effect.try({ try: () => new URL(data), catch: (cause) => invalid(field, `${data} is not a valid URL`, cause) }),
        (url) => fromUrl(url, field, options)
      )
      : data === ""
      ? Effect.fail(invalid(field, "the path is empty"))
      : fromFile(data, field)
    : Effect.fail(invalid(field, "expected a file path, image bytes, a data URI or a URL"))
  const limits = {
    maxBytes: options.maxBytes ?? ImageCheck.defaultLimits.maxBytes,
    maxPixels: options.maxPixels ?? ImageCheck.defaultLimits.maxPixels
  }
  return Effect.flatMap(bytes, (b) =>
    Either.match(ImageCheck.check(b, limits), {
      onRight: () => Effect.succeed(b),
      onLeft: (problem) =>
        Effect.fail(invalid(field, problem.kind === "UnsupportedFormat" ? `${problem.message}; send a JPEG, PNG, GIF or WebP image` : problem.message))
    }))
}

/** A tiny decode target: enough for sharp to decode the whole image, cheap thanks to shrink-on-load. */
const probe: Preprocess.PreprocessSpec = {
  size: 8,
  resize: "squash",
  layout: "NHWC",
  scale: 1,
  mean: [0, 0, 0],
  std: [1, 1, 1]
}

/** The bytes behind `data`, checked to decode as an image. */
export const read = (
  data: unknown,
  field: string,
  options: ReadOptions = {}
): Effect.Effect<Uint8Array, FunctionsError, FileSystem.FileSystem> =>
  Effect.tap(readBytes(data, field, options), (bytes) =>
    Preprocess.decodeRgb(bytes, probe, field).pipe(
      Effect.mapError((e) => invalid(field, e.message.replace(`Cannot decode ${field}: `, "not a decodable image: "), e))
    ))
