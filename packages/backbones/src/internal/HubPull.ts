/**
 * Pulls files of a Hugging Face hub repository into a cache folder the way `huggingface_hub` does, and records what
 * was pulled so a later load can tell that the files are still the ones verified.
 *
 * Per file: a `HEAD` on `<hub>/<repo>/resolve/<revision>/<file>` (following only same-host redirects, as the hub
 * answers a renamed repo) gives the commit (`X-Repo-Commit`), the size and the checksum: `X-Linked-Etag`, the sha256
 * of an LFS file, whose answer is a redirect to the CDN holding it; or `ETag`, the git blob sha1 of a small file kept
 * in git. The body is then downloaded (resumable, `download`) and checked against it. `.loupe-pull.json` in the
 * folder records each file's size and sha256, and the commit; `verifyPulled` checks them on load.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Schema } from "effect"
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import { BackboneError } from "../BackboneError.js"
import { download, fetchWithin } from "./download.js"
import { hubFileUrl } from "./hub.js"
import { hashFiles } from "./weights.js"

/** Where the record of a pull lives, inside the model folder. */
export const pullRecordFile = ".loupe-pull.json"

const PulledFile = Schema.Struct({ bytes: Schema.Number, sha256: Schema.String })
const PullRecord = Schema.Struct({
  repo: Schema.String,
  revision: Schema.String,
  /** The commit the revision pointed at, when the hub said (`X-Repo-Commit`). */
  commit: Schema.optional(Schema.String),
  files: Schema.Record({ key: Schema.String, value: PulledFile })
})
export type PullRecord = typeof PullRecord.Type

export interface HubSource {
  /** The backbone the files belong to (named in errors). */
  readonly id: string
  readonly hubUrl: string
  readonly repo: string
  readonly revision: string
  readonly folder: string
  readonly headers: Readonly<Record<string, string>>
  /** The deadline for the first request's response: an unreachable hub fails this fast. */
  readonly firstTimeoutMs: number
  readonly timeoutMs: number
}

interface FileMeta {
  readonly downloadUrl: string
  readonly commit: string | undefined
  readonly sha256: string | undefined
  readonly gitSha1: string | undefined
}

const unquote = (etag: string | null) => etag?.replace(/^W\//, "").replace(/"/g, "").toLowerCase()

/** The `HEAD` of one file: where to download it and what its bytes must hash to. */
const metadata = (source: HubSource, file: string, timeoutMs: number): Effect.Effect<FileMeta, BackboneError> =>
  Effect.gen(function*() {
    let url = hubFileUrl(source.hubUrl, source.repo, source.revision, file)
    for (let hop = 0; hop < 5; hop++) {
      const response = yield* fetchWithin(source.id, url, { method: "HEAD", redirect: "manual", headers: { ...source.headers, "Accept-Encoding": "identity" } }, timeoutMs)
      const location = response.headers.get("location")
      const linked = unquote(response.headers.get("x-linked-etag"))
      const commit = response.headers.get("x-repo-commit") ?? undefined
      if (response.status >= 300 && response.status < 400 && location !== null) {
        const next = new URL(location, url)
        // A same-host redirect is the hub's own (a renamed repo): follow it. Another host is where an LFS file lives.
        if (next.host === new URL(url).host && linked === undefined) {
          url = next.href
          continue
        }
        return { downloadUrl: next.href, commit, sha256: linked, gitSha1: undefined }
      }
      if (!response.ok) {
        const code = response.headers.get("x-error-code")
        return yield* new BackboneError({
          reason: "DownloadFailed",
          field: source.id,
          file: url,
          message: `Cannot download ${url} for ${source.id}: HTTP ${response.status} ${response.statusText}`.trim() +
            (code ? ` (${code})` : "")
        })
      }
      const etag = linked ?? unquote(response.headers.get("etag"))
      return {
        downloadUrl: url,
        commit,
        sha256: etag !== undefined && /^[0-9a-f]{64}$/.test(etag) ? etag : undefined,
        gitSha1: etag !== undefined && /^[0-9a-f]{40}$/.test(etag) ? etag : undefined
      }
    }
    return yield* new BackboneError({ reason: "DownloadFailed", field: source.id, file: url, message: `${url}: too many redirects` })
  })

/** The pull record in `folder`, or undefined when there is none (a folder placed by hand). */
export const readPullRecord = (id: string, folder: string): Effect.Effect<PullRecord | undefined, BackboneError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const file = path.join(folder, pullRecordFile)
    if (!(yield* fs.exists(file).pipe(Effect.orElseSucceed(() => false)))) return undefined
    return yield* fs.readFileString(file).pipe(
      Effect.flatMap((text) => Effect.try(() => JSON.parse(text) as unknown)),
      Effect.flatMap(Schema.decodeUnknown(PullRecord)),
      Effect.mapError((cause) =>
        new BackboneError({ reason: "LoadFailed", field: id, file, message: `${id}: ${file} is not a pull record: ${String(cause)}`, cause })
      )
    )
  })

const writePullRecord = (id: string, folder: string, record: PullRecord) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const file = path.join(folder, pullRecordFile)
    const temp = `${file}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`
    yield* fs.writeFileString(temp, JSON.stringify(record, null, 2) + "\n")
    yield* fs.rename(temp, file)
  }).pipe(
    Effect.mapError((cause) =>
      new BackboneError({ reason: "DownloadFailed", field: id, file: path.join(folder, pullRecordFile), message: `Cannot record the pull of ${id}: ${String(cause)}`, cause })
    )
  )

/**
 * Downloads `files` (paths inside the repository) into the source's folder, each verified against the hub's
 * checksum, and adds them to the pull record. The first request waits at most `firstTimeoutMs`.
 */
export const pullFiles = (
  source: HubSource,
  files: ReadonlyArray<string>
): Effect.Effect<void, BackboneError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    if (files.length === 0) return
    const previous = yield* readPullRecord(source.id, source.folder)
    const record = {
      repo: source.repo,
      revision: source.revision,
      commit: previous?.commit,
      files: { ...previous?.files } as Record<string, typeof PulledFile.Type>
    }
    let first = true
    for (const file of files) {
      const meta = yield* metadata(source, file, first ? source.firstTimeoutMs : source.timeoutMs)
      first = false
      const done = yield* download({
        id: source.id,
        url: meta.downloadUrl,
        dest: path.join(source.folder, file),
        sha256: meta.sha256,
        gitSha1: meta.gitSha1,
        headers: source.headers,
        responseTimeoutMs: source.timeoutMs,
        resume: true,
        label: `${source.repo}/${file}`
      })
      record.files[file] = { bytes: done.bytes, sha256: done.sha256 }
      record.commit = meta.commit ?? record.commit
      yield* writePullRecord(source.id, source.folder, record)
    }
  })

/**
 * Checks the files of `folder` that its pull record lists against their recorded size and sha256; returns each
 * checked file's sha256. A file changed since the pull is a `ChecksumMismatch` naming it. No record: nothing checked.
 */
export const verifyPulled = (id: string, folder: string): Effect.Effect<ReadonlyMap<string, string>, BackboneError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const record = yield* readPullRecord(id, folder)
    const checked = new Map<string, string>()
    if (record === undefined) return checked
    const fs = yield* FileSystem.FileSystem
    for (const [file, expected] of Object.entries(record.files)) {
      const full = path.join(folder, file)
      const size = yield* fs.stat(full).pipe(Effect.map((s) => Number(s.size)), Effect.orElseSucceed(() => -1))
      const sha256 = size === expected.bytes ? yield* hashFiles([full]) : undefined
      if (sha256 !== expected.sha256) {
        return yield* new BackboneError({
          reason: "ChecksumMismatch",
          field: id,
          file: full,
          message: `${id}: ${full} is not the file pulled from ${record.repo}@${record.revision} ` +
            (size < 0 ? "(it is gone)" : `(${size} bytes${sha256 ? `, sha256 ${sha256}` : ""}; pulled: ${expected.bytes} bytes, sha256 ${expected.sha256})`) +
            `. Delete it and pull again: loupe models pull ${id}`
        })
      }
      checked.set(file, sha256)
    }
    return checked
  })
