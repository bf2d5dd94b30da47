/**
 * The blob store in a SQL database (Postgres for a shared store): a `blobs` row per key with its size and sha256,
 * and its bytes in `blob_chunks` rows of at most `chunkBytes` each, keyed (key, seq). See `BlobStore.layerSql`.
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql"
import { Effect } from "effect"
import type { Scope } from "effect"
import { hash, randomBytes } from "node:crypto"
import * as path from "node:path"
import type { BlobStoreShape } from "../BlobStore.js"
import { FunctionsError } from "../FunctionsError.js"
import * as BlobCache from "./BlobCache.js"
import { notFound, validateKey } from "./BlobKeys.js"
import { plainBytes } from "./Bytes.js"
import * as PrivateFiles from "./PrivateFiles.js"
import { migrate } from "./SharedSchema.js"

/** Default chunk size: 1 MiB, well under Postgres' 1 GB field limit and small enough to stream through a pool. */
export const CHUNK_BYTES = 1024 * 1024

interface BlobRow {
  readonly key: string
  readonly size: number | string
  readonly sha256: string
}

const failed = (key: string, what: string) => (cause: SqlError.SqlError | PlatformError) =>
  new FunctionsError({ reason: "StoreFailed", file: key, message: `Blob store: cannot ${what} ${key}: ${cause.message}`, cause })

const sha256 = (bytes: Uint8Array) => hash("sha256", bytes)

/** `LIKE` pattern of the keys under the folder `prefix` (escape character `!`). */
const underPattern = (prefix: string) => prefix.replace(/[!%_]/g, (c) => `!${c}`) + "/%"

/** The same name in a folder, for a write in progress there. */
const stagingName = (target: string) => `${target}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`

/**
 * The blob store over the provided `SqlClient`, keeping local copies (`localFile`, `localDirectory`) in `cacheDir`,
 * named by content (a file by its sha256, a folder by the hash of its keys and their sha256s), so a copy is never
 * stale, and trimmed to about `maxCacheBytes` (see `BlobCache`). Runs the shared-state migrations first.
 */
export const make = (
  options: { readonly cacheDir: string; readonly chunkBytes?: number; readonly maxCacheBytes: number }
): Effect.Effect<BlobStoreShape, FunctionsError, SqlClient.SqlClient | FileSystem.FileSystem | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const fs = yield* FileSystem.FileSystem
    const chunkBytes = options.chunkBytes ?? CHUNK_BYTES
    const cacheDir = path.resolve(options.cacheDir)
    yield* migrate
    yield* Effect.forEach([cacheDir, path.join(cacheDir, "files"), path.join(cacheDir, "folders")], (dir) =>
      PrivateFiles.makeFolder(fs, dir).pipe(Effect.zipRight(PrivateFiles.tighten(fs, dir, PrivateFiles.folderMode))), {
      discard: true
    }).pipe(Effect.mapError(failed(cacheDir, "create")))
    const cache = yield* BlobCache.make(cacheDir, { maxBytes: options.maxCacheBytes }).pipe(Effect.mapError(failed(cacheDir, "open")))

    const under = (prefix: string) => sql`key LIKE ${underPattern(prefix)} ESCAPE '!'`

    /**
     * Write one blob inside the caller's transaction. The header's upsert comes first: it locks the row, so a second
     * writer of the key waits for this one to commit, then replaces all its chunks.
     */
    const writeRows = (key: string, bytes: Uint8Array) =>
      Effect.gen(function*() {
        const header = { key, size: bytes.byteLength, sha256: sha256(bytes), written_at: new Date().toISOString() }
        yield* sql`INSERT INTO blobs ${sql.insert(header)} ON CONFLICT (key) DO UPDATE
          SET size = excluded.size, sha256 = excluded.sha256, written_at = excluded.written_at`
        yield* sql`DELETE FROM blob_chunks WHERE key = ${key}`
        for (let seq = 0; seq === 0 || seq * chunkBytes < bytes.byteLength; seq++) {
          const chunk = bytes.subarray(seq * chunkBytes, (seq + 1) * chunkBytes)
          yield* sql`INSERT INTO blob_chunks ${
            sql.insert({ key, seq, data: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) })
          }`
        }
      })

    const put = (key: string, bytes: Uint8Array) =>
      Effect.flatMap(validateKey(key), () => sql.withTransaction(writeRows(key, bytes)).pipe(Effect.mapError(failed(key, "write"))))

    /**
     * The bytes under `key` and their sha256. One statement reads the header and every chunk, so it sees one
     * committed version of the blob; the size and sha256 are checked all the same.
     */
    const read = (key: string) =>
      Effect.gen(function*() {
        const rows = yield* sql<{ readonly size: number | string; readonly sha256: string; readonly data: Uint8Array }>`
          SELECT b.size, b.sha256, c.data FROM blobs b JOIN blob_chunks c ON c.key = b.key
          WHERE b.key = ${key} ORDER BY c.seq`.pipe(Effect.mapError(failed(key, "read")))
        if (rows.length === 0) return yield* notFound(key)
        const bytes = plainBytes(Buffer.concat(rows.map((r) => r.data)))
        const digest = sha256(bytes)
        if (bytes.byteLength !== Number(rows[0]!.size) || digest !== rows[0]!.sha256) {
          return yield* new FunctionsError({
            reason: "StoreFailed",
            file: key,
            message: `Blob store: ${key} is damaged (${bytes.byteLength} bytes with sha256 ${digest}, recorded ${rows[0]!.size} bytes with ${
              rows[0]!.sha256
            })`
          })
        }
        return { bytes, sha256: digest }
      })

    const get = (key: string) => Effect.flatMap(validateKey(key), () => Effect.map(read(key), (blob) => blob.bytes))

    const has = (key: string) =>
      Effect.flatMap(validateKey(key), () =>
        sql`SELECT 1 AS found FROM blobs WHERE key = ${key} OR ${under(key)} LIMIT 1`.pipe(
          Effect.map((rows) => rows.length > 0),
          Effect.mapError(failed(key, "look up"))
        ))

    const remove = (key: string) =>
      Effect.flatMap(validateKey(key), () =>
        sql`DELETE FROM blobs WHERE key = ${key} OR ${under(key)}`.pipe(Effect.asVoid, Effect.mapError(failed(key, "remove"))))

    const blobsUnder = (prefix: string) =>
      Effect.flatMap(validateKey(prefix), () =>
        sql<BlobRow>`SELECT key, size, sha256 FROM blobs WHERE ${under(prefix)} ORDER BY key`.pipe(
          Effect.mapError(failed(prefix, "list"))
        ))

    const list = (prefix: string) => Effect.map(blobsUnder(prefix), (rows) => rows.map((r) => r.key))

    /** Write `bytes` to `file` through a temporary name, so the cache never holds a torn file. */
    const writeCopy = (file: string, bytes: Uint8Array) =>
      Effect.gen(function*() {
        const tmp = stagingName(file)
        yield* fs.writeFile(tmp, bytes, { mode: PrivateFiles.fileMode })
        yield* fs.rename(tmp, file).pipe(Effect.onError(() => Effect.ignore(fs.remove(tmp))))
      })

    const localFile = (key: string) =>
      Effect.gen(function*() {
        yield* validateKey(key)
        const rows = yield* sql<{ readonly sha256: string }>`SELECT sha256 FROM blobs WHERE key = ${key}`.pipe(
          Effect.mapError(failed(key, "look up"))
        )
        if (rows.length === 0) return yield* notFound(key)
        const cached = cache.filePath(rows[0]!.sha256)
        if (yield* cache.use(cached)) return cached
        // Named by what was read: the blob may have been replaced since the lookup.
        const blob = yield* read(key)
        const file = cache.filePath(blob.sha256)
        yield* writeCopy(file, blob.bytes).pipe(Effect.mapError(failed(key, "copy")))
        yield* cache.added(blob.bytes.byteLength)
        return file
      })

    const localDirectory = (prefix: string) =>
      Effect.gen(function*() {
        const rows = yield* blobsUnder(prefix)
        if (rows.length === 0) return yield* notFound(prefix)
        const files = rows.map((r) => ({ key: r.key, name: r.key.slice(prefix.length + 1), sha256: r.sha256 }))
        const folder = cache.folderPath(hash("sha256", JSON.stringify(files.map((f) => [f.name, f.sha256]))))
        const pin = cache.pin(folder).pipe(Effect.mapError(failed(prefix, "copy")))
        if (yield* cache.use(folder)) return yield* Effect.as(pin, folder)
        const staging = stagingName(folder)
        let bytes = 0
        yield* Effect.gen(function*() {
          for (const f of files) {
            const blob = yield* read(f.key)
            bytes += blob.bytes.byteLength
            const file = path.join(staging, ...f.name.split("/"))
            yield* PrivateFiles.makeFolder(fs, path.dirname(file)).pipe(Effect.mapError(failed(prefix, "copy")))
            yield* fs.writeFile(file, blob.bytes, { mode: PrivateFiles.fileMode }).pipe(Effect.mapError(failed(f.key, "copy")))
          }
          // Another process may have made the same copy meanwhile: theirs is as good.
          yield* fs.rename(staging, folder).pipe(
            Effect.catchAll((e) => Effect.flatMap(fs.exists(folder), (done) => (done ? Effect.void : Effect.fail(e)))),
            Effect.mapError(failed(prefix, "copy"))
          )
        }).pipe(Effect.ensuring(Effect.ignore(fs.remove(staging, { recursive: true, force: true }))))
        yield* pin
        yield* cache.added(bytes)
        return folder
      })

    const putDirectory = <A, E, R>(prefix: string, write: (dir: string) => Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        yield* validateKey(prefix)
        const exists = new FunctionsError({ reason: "StoreFailed", file: prefix, message: `Blob store: ${prefix} already exists` })
        if (yield* has(prefix)) return yield* exists
        const staging = stagingName(path.join(cacheDir, "folders", "publish"))
        yield* PrivateFiles.makeFolder(fs, staging).pipe(Effect.mapError(failed(prefix, "stage")))
        return yield* Effect.gen(function*() {
          const result = yield* write(staging)
          const entries = yield* fs.readDirectory(staging, { recursive: true }).pipe(Effect.mapError(failed(prefix, "stage")))
          const names: Array<string> = []
          for (const entry of entries.sort()) {
            const info = yield* fs.stat(path.join(staging, entry)).pipe(Effect.mapError(failed(prefix, "stage")))
            if (info.type === "File") names.push(entry.split(path.sep).join("/"))
          }
          yield* Effect.forEach(names, (name) => validateKey(`${prefix}/${name}`), { discard: true })
          // Every file in one transaction: readers see none of the folder or all of it.
          yield* sql.withTransaction(Effect.gen(function*() {
            const taken = yield* sql`SELECT 1 AS found FROM blobs WHERE key = ${prefix} OR ${under(prefix)} LIMIT 1`
            if (taken.length > 0) return yield* exists
            for (const name of names) yield* writeRows(`${prefix}/${name}`, yield* fs.readFile(path.join(staging, name)))
          })).pipe(Effect.catchTags({ SqlError: failed(prefix, "publish"), SystemError: failed(prefix, "publish"), BadArgument: failed(prefix, "publish") }))
          return result
        }).pipe(Effect.ensuring(Effect.ignore(fs.remove(staging, { recursive: true, force: true }))))
      })

    return { put, get, has, remove, list, localFile, putDirectory, localDirectory } satisfies BlobStoreShape
  })
