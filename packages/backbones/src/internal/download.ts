import { Duration, Effect } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import type { ReadableStream as WebReadableStream } from "node:stream/web"
import { BackboneError } from "../BackboneError.js"

export interface DownloadRequest {
  /** The backbone the file belongs to (named in errors). */
  readonly id: string
  readonly url: string
  /** The final path. The body goes to a temp file in the same folder, renamed into place once complete and verified. */
  readonly dest: string
  /** Expected sha256 (hex); a mismatch is an error and leaves no file behind. */
  readonly sha256?: string | undefined
  readonly headers?: Readonly<Record<string, string>>
  /** How long to wait for the response headers. The body then streams without a deadline. */
  readonly responseTimeoutMs: number
}

export interface Downloaded {
  readonly path: string
  readonly sha256: string
  readonly bytes: number
}

/** Why a fetch failed, in words (`fetch failed` alone says nothing). */
export const fetchErrorText = (cause: unknown): string => {
  const inner = (cause as { cause?: { code?: string; message?: string } } | undefined)?.cause
  if (inner?.code) return inner.code
  return cause instanceof Error ? cause.message : String(cause)
}

/**
 * Downloads `url` to `dest` atomically: the body is streamed to `<dest>.<pid>-<random>.part` while hashing, flushed,
 * checked against `sha256` when given, then renamed over `dest`. On any failure or interruption the temp file is
 * removed, so `dest` is either absent, the previous file, or the complete verified one.
 */
export const download = (request: DownloadRequest): Effect.Effect<Downloaded, BackboneError> =>
  Effect.gen(function*() {
    const { dest, id, url } = request
    const failure = (reason: "DownloadFailed" | "ChecksumMismatch", message: string, cause?: unknown) =>
      new BackboneError({ reason, field: id, file: url, message, cause })
    yield* Effect.tryPromise({
      try: () => fs.promises.mkdir(path.dirname(dest), { recursive: true }),
      catch: (cause) => failure("DownloadFailed", `Cannot create ${path.dirname(dest)} for ${id}: ${String(cause)}`, cause)
    })
    const response = yield* Effect.tryPromise({
      try: (signal) => fetch(url, { signal, redirect: "follow", headers: { ...request.headers } }),
      catch: (cause) => failure("DownloadFailed", `Cannot download ${url} for ${id}: ${fetchErrorText(cause)}`, cause)
    }).pipe(
      Effect.timeoutFail({
        duration: Duration.millis(request.responseTimeoutMs),
        onTimeout: () => failure("DownloadFailed", `Cannot download ${url} for ${id}: no response within ${request.responseTimeoutMs} ms`)
      })
    )
    if (!response.ok || response.body === null) {
      yield* Effect.promise(() => response.body?.cancel() ?? Promise.resolve())
      return yield* failure("DownloadFailed", `Cannot download ${url} for ${id}: HTTP ${response.status} ${response.statusText}`.trim())
    }
    const body = response.body as unknown as WebReadableStream<Uint8Array>
    return yield* Effect.acquireUseRelease(
      Effect.sync(() => `${dest}.${process.pid}-${randomBytes(4).toString("hex")}.part`),
      (temp) =>
        Effect.gen(function*() {
          const written = yield* Effect.tryPromise({
            try: (signal) => writeHashed(body, temp, signal),
            catch: (cause) => failure("DownloadFailed", `Download of ${url} for ${id} broke off: ${fetchErrorText(cause)}`, cause)
          })
          const expected = request.sha256?.toLowerCase()
          if (expected !== undefined && written.sha256 !== expected) {
            return yield* failure(
              "ChecksumMismatch",
              `${url} for ${id} has sha256 ${written.sha256}, expected ${expected}; nothing was kept`
            )
          }
          yield* Effect.tryPromise({
            try: () => fs.promises.rename(temp, dest),
            catch: (cause) => failure("DownloadFailed", `Cannot move the download of ${url} to ${dest}: ${String(cause)}`, cause)
          })
          return { path: dest, ...written }
        }),
      (temp) => Effect.promise(() => fs.promises.rm(temp, { force: true }))
    )
  })

const writeHashed = async (body: WebReadableStream<Uint8Array>, file: string, signal: AbortSignal) => {
  const hash = createHash("sha256")
  let bytes = 0
  await pipeline(
    Readable.fromWeb(body),
    async function*(source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk)
        bytes += chunk.byteLength
        yield chunk
      }
    },
    fs.createWriteStream(file, { flags: "wx", flush: true }),
    { signal }
  )
  return { sha256: hash.digest("hex"), bytes }
}

