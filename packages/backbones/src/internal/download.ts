import * as FileSystem from "@effect/platform/FileSystem"
import { Duration, Effect, Stream } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as path from "node:path"
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
export const download = (request: DownloadRequest): Effect.Effect<Downloaded, BackboneError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const { dest, id, url } = request
    const fs = yield* FileSystem.FileSystem
    const failure = (reason: "DownloadFailed" | "ChecksumMismatch", message: string, cause?: unknown) =>
      new BackboneError({ reason, field: id, file: url, message, cause })
    yield* Effect.mapError(
      fs.makeDirectory(path.dirname(dest), { recursive: true }),
      (cause) => failure("DownloadFailed", `Cannot create ${path.dirname(dest)} for ${id}: ${String(cause)}`, cause)
    )
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
    const body = response.body
    return yield* Effect.acquireUseRelease(
      Effect.sync(() => `${dest}.${process.pid}-${randomBytes(4).toString("hex")}.part`),
      (temp) =>
        Effect.gen(function*() {
          const written = yield* Effect.mapError(
            writeHashed(body, temp),
            (cause) => failure("DownloadFailed", `Download of ${url} for ${id} broke off: ${fetchErrorText(cause)}`, cause)
          )
          const expected = request.sha256?.toLowerCase()
          if (expected !== undefined && written.sha256 !== expected) {
            return yield* failure(
              "ChecksumMismatch",
              `${url} for ${id} has sha256 ${written.sha256}, expected ${expected}; nothing was kept`
            )
          }
          yield* Effect.mapError(
            fs.rename(temp, dest),
            (cause) => failure("DownloadFailed", `Cannot move the download of ${url} to ${dest}: ${String(cause)}`, cause)
          )
          return { path: dest, ...written }
        }),
      (temp) => Effect.ignore(fs.remove(temp, { force: true }))
    )
  })

/** Streams `body` into a new file (`wx`: never over another download's temp file), hashing it, then flushes it. */
const writeHashed = (body: ReadableStream<Uint8Array>, file: string) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const out = yield* fs.open(file, { flag: "wx" })
    const hash = createHash("sha256")
    let bytes = 0
    yield* Stream.fromReadableStream({ evaluate: () => body, onError: (cause) => cause }).pipe(
      Stream.runForEach((chunk) => {
        hash.update(chunk)
        bytes += chunk.byteLength
        return out.writeAll(chunk)
      })
    )
    yield* out.sync
    return { sha256: hash.digest("hex"), bytes }
  }))
