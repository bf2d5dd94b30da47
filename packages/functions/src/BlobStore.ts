/**
 * Where image bytes and model bundles live: a key -> bytes store with atomic writes. The filesystem implementation
 * keeps everything under one root folder; the interface is small enough for an S3-compatible implementation (keys
 * map to object names, `putDirectory` uploads a staged folder, `localFile` / `localDirectory` download to a local
 * cache).
 *
 * Keys are `/`-separated relative names (`images/<function>/<sha256>`, `bundles/<function>/<version>`); a key with
 * `..`, a leading `/`, an empty segment or a segment named like the store's temporary files is rejected.
 *
 * @since 0.1.0
 */
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import type { SqlClient } from "@effect/sql"
import { Config, Context, Effect, Layer, Option } from "effect"
import { Leftovers, LoupeConfig } from "@loupe/core"
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import { FunctionsError, fromConfigError } from "./FunctionsError.js"
import { plainBytes } from "./internal/Bytes.js"
import { notFound, tempName, validateKey } from "./internal/BlobKeys.js"
import * as BlobCache from "./internal/BlobCache.js"
import * as PrivateFiles from "./internal/PrivateFiles.js"
import * as SqlBlobStore from "./internal/SqlBlobStore.js"

/**
 * The operations of a blob store. Every operation fails with `FunctionsError`: `InvalidInput` (field `key`) for a
 * malformed key, `NotFound` (naming the key in `file`) for a missing blob, `StoreFailed` for an I/O failure.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlobStoreShape {
  /** Store `bytes` under `key`, atomically: a reader sees the old value or the whole new one, never a torn file. */
  readonly put: (key: string, bytes: Uint8Array) => Effect.Effect<void, FunctionsError>
  /** The bytes under `key`; `NotFound` when there are none. */
  readonly get: (key: string) => Effect.Effect<Uint8Array, FunctionsError>
  readonly has: (key: string) => Effect.Effect<boolean, FunctionsError>
  /** Remove `key`, or every key under the folder `key`. Removing what is not there is not an error. */
  readonly remove: (key: string) => Effect.Effect<void, FunctionsError>
  /**
   * The keys of the blobs under the folder `prefix`, at any depth, sorted; none when there are none.
   *
   * @since 0.2.0
   */
  readonly list: (prefix: string) => Effect.Effect<ReadonlyArray<string>, FunctionsError>
  /** A local file holding the bytes under `key` (the file itself on a filesystem store; a cached copy elsewhere). */
  readonly localFile: (key: string) => Effect.Effect<string, FunctionsError>
  /**
   * Publish a folder under `prefix`: `write` fills a fresh local staging folder, which then becomes visible under
   * `prefix` all at once (a rename on a filesystem store). Fails when `prefix` already exists.
   */
  readonly putDirectory: <A, E, R>(
    prefix: string,
    write: (dir: string) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | FunctionsError, R>
  /** A local folder holding the files published under `prefix`. */
  readonly localDirectory: (prefix: string) => Effect.Effect<string, FunctionsError>
}

/**
 * The blob store service; `Functions`, `Retrainer` and `Server` read and write images and bundles through it.
 * Provide it with `layerFileSystem` (or an implementation of your own).
 *
 * @since 0.1.0
 * @category tags
 */
export class BlobStore extends Context.Tag("@loupe/functions/BlobStore")<BlobStore, BlobStoreShape>() {}

const storeFailed = (key: string, what: string) => (cause: PlatformError) =>
  new FunctionsError({ reason: "StoreFailed", file: key, message: `Blob store: cannot ${what} ${key}: ${cause.message}`, cause })

/** The name of a write in progress (see `BlobKeys.tempName`). */
const tempSuffix = () => `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`

/**
 * Remove the temporary files and staging folders that writers killed mid-write (kill -9, a crash, power loss) left
 * under `base`: names matching `tempName` that are orphaned (`Leftovers.orphaned` of `@loupe/core`: the writer process
 * is gone, or they are a day old). A live writer's are left alone, from this process or any other on the machine.
 * Returns the paths removed.
 */
const removeOrphans = (fs: FileSystem.FileSystem, base: string) =>
  Effect.gen(function*() {
    const entries = yield* fs.readDirectory(base, { recursive: true })
    const removed: Array<string> = []
    for (const entry of entries.sort()) {
      const match = tempName.exec(path.basename(entry))
      // Inside a staging folder already removed.
      if (match === null || removed.some((r) => entry.startsWith(r + path.sep))) continue
      const file = path.join(base, entry)
      if (!(yield* Leftovers.orphaned(fs, file, Number(match[1])))) continue
      yield* fs.remove(file, { recursive: true, force: true })
      removed.push(entry)
    }
    return removed
  })

/**
 * A blob store on the filesystem, in the folder `root` (created when missing; relative to the working directory).
 * Writes go to a temporary file, are flushed to disk and renamed into place. Opening it removes the temporary files
 * of writers that died mid-write (a process that is gone, or a file a day old), never those of a live writer on this
 * machine; processes that share a store must run on one machine (and in one pid namespace). Blob files are 0600 and
 * folders 0700, `root` included. Fails with `StoreFailed` when `root` cannot be created or cleaned.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFileSystem = (
  root: string
): Effect.Effect<BlobStoreShape, FunctionsError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const base = path.resolve(root)
    yield* PrivateFiles.makeFolder(fs, base).pipe(
      Effect.zipRight(PrivateFiles.tighten(fs, base, PrivateFiles.folderMode)),
      Effect.mapError(storeFailed(base, "create"))
    )
    const orphans = yield* removeOrphans(fs, base).pipe(Effect.mapError(storeFailed(base, "clean")))
    if (orphans.length > 0) yield* Effect.logInfo(`Blob store: removed ${orphans.length} temporary files left by interrupted writes`)
    const resolve = (key: string) => Effect.map(validateKey(key), (k) => path.join(base, ...k.split("/")))

    // Write to a temporary name, flush to disk, then rename: a reader sees the old bytes or all the new ones.
    const put = (key: string, bytes: Uint8Array) =>
      Effect.flatMap(resolve(key), (file) => {
        const tmp = file + tempSuffix()
        return Effect.gen(function*() {
          yield* PrivateFiles.makeFolder(fs, path.dirname(file))
          yield* Effect.scoped(
            Effect.flatMap(fs.open(tmp, { flag: "wx", mode: PrivateFiles.fileMode }), (handle) =>
              Effect.zipRight(handle.writeAll(bytes), handle.sync))
          )
          yield* fs.rename(tmp, file)
        }).pipe(
          Effect.onError(() => Effect.ignore(fs.remove(tmp, { force: true }))),
          Effect.mapError(storeFailed(key, "write"))
        )
      })

    const get = (key: string) =>
      Effect.flatMap(resolve(key), (file) =>
        fs.readFile(file).pipe(
          Effect.mapError((cause) =>
            cause._tag === "SystemError" && cause.reason === "NotFound" ? notFound(key) : storeFailed(key, "read")(cause)
          ),
          Effect.map(plainBytes)
        ))

    const has = (key: string) => Effect.flatMap(resolve(key), (file) => fs.exists(file).pipe(Effect.mapError(storeFailed(key, "stat"))))

    const remove = (key: string) =>
      Effect.flatMap(resolve(key), (file) =>
        fs.remove(file, { recursive: true, force: true }).pipe(Effect.mapError(storeFailed(key, "remove"))))

    const list = (prefix: string) =>
      Effect.flatMap(resolve(prefix), (dir) =>
        Effect.gen(function*() {
          const info = yield* fs.stat(dir)
          if (info.type !== "Directory") return []
          const entries = yield* fs.readDirectory(dir, { recursive: true })
          const keys: Array<string> = []
          for (const entry of entries) {
            // Writes in progress, and anything inside a folder being staged.
            if (entry.split(path.sep).some((segment) => tempName.test(segment))) continue
            if ((yield* fs.stat(path.join(dir, entry))).type === "File") keys.push(`${prefix}/${entry.split(path.sep).join("/")}`)
          }
          return keys.sort()
        }).pipe(
          Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "NotFound", () => Effect.succeed([])),
          Effect.mapError(storeFailed(prefix, "list"))
        ))

    const localFile = (key: string) =>
      Effect.flatMap(resolve(key), (file) =>
        Effect.flatMap(has(key), (present) => (present ? Effect.succeed(file) : Effect.fail(notFound(key)))))

    const putDirectory = <A, E, R>(prefix: string, write: (dir: string) => Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const target = yield* resolve(prefix)
        if (yield* has(prefix)) {
          return yield* new FunctionsError({ reason: "StoreFailed", file: prefix, message: `Blob store: ${prefix} already exists` })
        }
        const staging = target + tempSuffix()
        yield* PrivateFiles.makeFolder(fs, staging).pipe(Effect.mapError(storeFailed(prefix, "create")))
        const cleanup = Effect.ignore(fs.remove(staging, { recursive: true, force: true }))
        const result = yield* write(staging).pipe(Effect.onError(() => cleanup))
        yield* fs.rename(staging, target).pipe(Effect.mapError(storeFailed(prefix, "publish")), Effect.onError(() => cleanup))
        return result
      })

    const localDirectory = (prefix: string) => localFile(prefix)

    return { put, get, has, remove, list, localFile, putDirectory, localDirectory } satisfies BlobStoreShape
  })

/**
 * The filesystem blob store (`makeFileSystem`) as a layer; it needs a `FileSystem` (`NodeContext.layer`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFileSystem = (root: string): Layer.Layer<BlobStore, FunctionsError, FileSystem.FileSystem> =>
  Layer.effect(BlobStore, makeFileSystem(root))

/**
 * Options of `layerSql`.
 *
 * @since 0.2.0
 * @category models
 */
export interface SqlBlobOptions {
  /**
   * Where the local copies that `localFile` and `localDirectory` hand out are kept (0700; named by content, so a
   * copy is never stale). Default: `blobs` in `LoupeConfig`'s cache folder.
   */
  readonly cacheDir?: string
  /**
   * About how many bytes the local copies may take before the least recently used are deleted (copies used in the
   * last 10 minutes and model folders this or another live process handed out are kept). Default: the
   * `LOUPE_BLOB_CACHE_MB` environment variable in MiB, else 4 GiB.
   *
   * @since 0.2.0
   */
  readonly maxCacheBytes?: number
  /** Blobs above this many bytes are stored in several chunks of this size. Default 1 MiB. */
  readonly chunkBytes?: number
}

/**
 * A blob store in the database of the provided `SqlClient` (Postgres: `BYTEA`), which every process that reaches
 * the database shares. Blobs are rows of `blobs` (key, size, sha256) with their bytes in `blob_chunks` of at most
 * `chunkBytes` (1 MiB), keyed (key, seq). A blob, or a whole folder of `putDirectory`, is written in one
 * transaction, and a read is one statement that checks size and sha256, so a reader never sees half of one.
 * `localFile` and `localDirectory` download to a local cache. Runs its migrations (`loupe_shared_migrations`) first;
 * fails with `StoreFailed` when they or the cache folder fail, `InvalidOptions` (field
 * `LOUPE_BLOB_CACHE_MB`) when that variable is not a positive number. `SharedState.layerPostgres` gives it on a Postgres
 * store's connection pool.
 *
 * The next step past one database is an S3-compatible object store: keys map to object names, `put` is one
 * `PutObject` (atomic there), `putDirectory` uploads the staged files and then a manifest object that makes the
 * folder visible, and the local cache stays as here.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerSql = (
  options: SqlBlobOptions = {}
): Layer.Layer<BlobStore, FunctionsError, SqlClient.SqlClient | FileSystem.FileSystem | LoupeConfig.LoupeConfig> =>
  Layer.scoped(
    BlobStore,
    Effect.gen(function*() {
      const config = yield* LoupeConfig.LoupeConfig
      const maxCacheBytes = options.maxCacheBytes ?? (yield* cacheLimitFromEnv)
      return yield* SqlBlobStore.make({
        cacheDir: options.cacheDir ?? path.join(config.cacheDir, "blobs"),
        maxCacheBytes,
        ...(options.chunkBytes === undefined ? {} : { chunkBytes: options.chunkBytes })
      })
    })
  )

/** `LOUPE_BLOB_CACHE_MB` in bytes, else the default; a value that is not a positive number fails, naming it. */
const cacheLimitFromEnv = Config.option(Config.number("LOUPE_BLOB_CACHE_MB")).pipe(
  Effect.mapError(fromConfigError),
  Effect.flatMap(Option.match({
    onNone: () => Effect.succeed(BlobCache.DEFAULT_MAX_BYTES),
    onSome: (mb) =>
      mb > 0 && Number.isFinite(mb)
        ? Effect.succeed(Math.round(mb * 1024 * 1024))
        : Effect.fail(new FunctionsError({ reason: "InvalidOptions", field: "LOUPE_BLOB_CACHE_MB", message: `LOUPE_BLOB_CACHE_MB must be a positive number of MiB, not ${mb}` }))
  }))
)
