import * as FileSystem from "@effect/platform/FileSystem"
import { Duration, Effect, Stream } from "effect"
import { Progress } from "@loupe/core"
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
  /** Expected git blob sha1 (hex) of the content, as a hub's ETag gives it for files kept in git rather than LFS. */
  readonly gitSha1?: string | undefined
  readonly headers?: Readonly<Record<string, string>>
  /** How long to wait for the response headers. The body then streams without a deadline. */
  readonly responseTimeoutMs: number
  /**
   * Keep a broken-off download as `<dest>.incomplete` and continue it next time with an HTTP Range request (a server
   * that answers 200 instead of 206 sends it all again). Without it the temp file is private and always removed.
   */
  readonly resume?: boolean
  /** What progress events name (`detail`); default the file name. */
  readonly label?: string
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

/** `fetch` with a deadline on the response headers, failing with `DownloadFailed` naming the URL. */
export const fetchWithin = (
  id: string,
  url: string,
  init: RequestInit,
  timeoutMs: number
): Effect.Effect<Response, BackboneError> => {
  const failure = (message: string, cause?: unknown) =>
    new BackboneError({ reason: "DownloadFailed", field: id, file: url, message: `Cannot download ${url} for ${id}: ${message}`, cause })
  return Effect.tryPromise({
    try: (signal) => fetch(url, { ...init, signal }),
    catch: (cause) => failure(fetchErrorText(cause), cause)
  }).pipe(Effect.timeoutFail({ duration: Duration.millis(timeoutMs), onTimeout: () => failure(`no response within ${timeoutMs} ms`) }))
}

const statusText = (response: Response) => {
  const code = response.headers.get("x-error-code")
  return `HTTP ${response.status} ${response.statusText}`.trim() + (code ? ` (${code})` : "")
}

/**
 * Downloads `url` to `dest` atomically: the body is streamed to a private temp file in the same folder while hashing,
 * flushed, checked against `sha256` / `gitSha1` when given, then renamed over `dest`. On a failure the temp file is
 * removed, so `dest` is either absent, the previous file, or the complete verified one. Progress goes to the
 * `Progress` service as `download` events counted in bytes.
 *
 * With `resume`, a broken-off download is kept as `<dest>.incomplete` (unless its content was refused), and the next
 * one claims it by renaming it to its own private temp file (atomic, so two pulls at once never write one file; the
 * loser starts over) and asks only for the rest with an HTTP Range request.
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
    const temp = `${dest}.${process.pid}-${randomBytes(4).toString("hex")}.part`
    const incomplete = `${dest}.incomplete`
    const already = request.resume
      ? yield* fs.rename(incomplete, temp).pipe(
        Effect.zipRight(fs.stat(temp)),
        Effect.map((s) => Number(s.size)),
        Effect.orElseSucceed(() => 0)
      )
      : 0
    let refused = false
    return yield* Effect.gen(function*() {
      const response = yield* fetchWithin(id, url, {
        redirect: "follow",
        headers: { ...request.headers, ...(already > 0 ? { Range: `bytes=${already}-` } : {}) }
      }, request.responseTimeoutMs)
      if (!response.ok || response.body === null) {
        yield* Effect.promise(() => response.body?.cancel() ?? Promise.resolve())
        return yield* failure("DownloadFailed", `Cannot download ${url} for ${id}: ${statusText(response)}`)
      }
      // 206: the server continues where the temp file stops; anything else starts over.
      const offset = response.status === 206 ? already : 0
      const length = Number(response.headers.get("content-length") ?? NaN)
      const total = Number.isFinite(length) ? offset + length : undefined
      const written = yield* Effect.mapError(
        writeHashed(response.body, temp, { offset, total, label: request.label ?? path.basename(dest) }),
        (cause) => failure("DownloadFailed", `Download of ${url} for ${id} broke off: ${fetchErrorText(cause)}`, cause)
      )
      const problem = yield* Effect.mapError(
        mismatch(request, temp, written.sha256, written.bytes),
        (cause) => failure("DownloadFailed", `Cannot read back ${temp}: ${String(cause)}`, cause)
      )
      if (problem !== undefined) {
        refused = true
        return yield* failure("ChecksumMismatch", `${url} for ${id} ${problem}; nothing was kept`)
      }
      yield* Effect.mapError(
        fs.rename(temp, dest),
        (cause) => failure("DownloadFailed", `Cannot move the download of ${url} to ${dest}: ${String(cause)}`, cause)
      )
      return { path: dest, sha256: written.sha256, bytes: written.bytes }
    }).pipe(
      Effect.onExit((exit) =>
        exit._tag === "Success"
          ? Effect.void
          : request.resume && !refused
          ? Effect.ignore(fs.rename(temp, incomplete))
          : Effect.ignore(fs.remove(temp, { force: true }))
      ),
      // A temp file that could not be kept for a resume (renamed away meanwhile) is not left behind.
      Effect.ensuring(Effect.ignore(fs.remove(temp, { force: true })))
    )
  })

/** Why the written file is refused, or undefined when it matches what the request expects. */
const mismatch = (request: DownloadRequest, file: string, sha256: string, bytes: number) =>
  Effect.gen(function*() {
    const expected = request.sha256?.toLowerCase()
    if (expected !== undefined && sha256 !== expected) return `has sha256 ${sha256}, expected ${expected}`
    const gitSha1 = request.gitSha1?.toLowerCase()
    if (gitSha1 === undefined) return undefined
    // Only small files are kept in git (a hub's large ones are LFS, checked by sha256), so hashing again is cheap.
    const git = createHash("sha1").update(`blob ${bytes}\0`)
    yield* Stream.runForEach(FileSystem.FileSystem.pipe(Effect.map((fs) => fs.stream(file)), Stream.unwrap), (chunk) =>
      Effect.sync(() => git.update(chunk)))
    const actual = git.digest("hex")
    return actual === gitSha1 ? undefined : `has git blob sha1 ${actual}, expected ${gitSha1}`
  })

/**
 * Streams `body` into the private temp `file` from `offset` on (the bytes before it, claimed from an earlier try, are
 * hashed first; without them the file is started over), hashing it, then flushes it.
 */
const writeHashed = (
  body: ReadableStream<Uint8Array>,
  file: string,
  { label, offset, total }: { offset: number; total: number | undefined; label: string }
) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const sha256 = createHash("sha256")
    if (offset > 0) {
      yield* fs.truncate(file, offset)
      yield* Stream.runForEach(fs.stream(file), (chunk) => Effect.sync(() => sha256.update(chunk)))
    }
    const out = yield* fs.open(file, { flag: offset > 0 ? "a" : "w" })
    let bytes = offset
    let reported = 0
    yield* Stream.fromReadableStream({ evaluate: () => body, onError: (cause) => cause }).pipe(
      Stream.runForEach((chunk) =>
        Effect.gen(function*() {
          sha256.update(chunk)
          bytes += chunk.byteLength
          yield* out.writeAll(chunk)
          // About 100 events per file at most.
          if (total !== undefined && bytes - reported >= total / 100) {
            reported = bytes
            yield* Progress.report({ stage: "download", done: bytes, total, detail: label })
          }
        })
      )
    )
    yield* out.sync
    return { sha256: sha256.digest("hex"), bytes }
  }))
