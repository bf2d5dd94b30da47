/**
 * The local copies that a blob store in a database hands out (`localFile`, `localDirectory`), in one folder that
 * several processes of a machine may share, bounded in size:
 *
 * ```
 * <dir>/files/<sha256>          a blob's bytes
 * <dir>/folders/<sha256>/       a published folder (a model bundle), named by the hash of its files
 * <dir>/pins/<sha256>.<pid>     folder <sha256> was handed out to process <pid>, which may have a model loaded from it
 * ```
 *
 * Every hand-out sets the copy's modification time to now: that is its last use. After a new copy, when the copies
 * take more than `maxBytes`, the least recently used are deleted until they take at most 90 % of it (so that the
 * next copies do not trim again at once), except:
 *
 * - names Loupe did not give (anything but 64 hex digits: another program's files, writes in progress);
 * - copies used in the last `keepRecentMs`: a caller may hold the path without having read the file yet (a
 *   retrain is handed every image's path before it embeds them), so the limit is soft while such copies exceed it;
 * - folders pinned by a live process: a process pins each folder it hands out until its blob store closes.
 *
 * A copy appears only by a rename, and a folder is renamed away before it is deleted, so no process ever sees half
 * of one; a copy that vanished between the lookup and its use (`use` answers false) is fetched again. Each process
 * counts the bytes it adds and rescans the folder only when its count passes the limit, so with several processes
 * the folder may exceed the limit by what the others added since their last scan.
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, Option } from "effect"
import type { Scope } from "effect"
import { randomBytes } from "node:crypto"
import * as path from "node:path"

/** Default size limit: 4 GiB. */
export const DEFAULT_MAX_BYTES = 4 * 1024 ** 3

/** Default time a used copy is kept whatever the limit: 10 minutes. */
export const KEEP_RECENT_MS = 10 * 60 * 1000

const CONTENT_NAME = /^[0-9a-f]{64}$/
const PIN_NAME = /^([0-9a-f]{64})\.(\d+)$/

/** What is known of a copy when trimming. */
interface Copy {
  readonly file: string
  readonly name: string
  readonly folder: boolean
  readonly bytes: number
  readonly usedAt: number
}

/** The cache's operations. */
export interface BlobCache {
  readonly filePath: (sha256: string) => string
  readonly folderPath: (name: string) => string
  /** Mark a copy as used now; false when it is not there (never made, or trimmed): the caller fetches it again. */
  readonly use: (copy: string) => Effect.Effect<boolean>
  /** Keep a folder this process handed out until the cache's scope closes. */
  readonly pin: (folder: string) => Effect.Effect<void, PlatformError>
  /** Count a new copy's bytes, and trim the folder when the copies may exceed the limit. */
  readonly added: (bytes: number) => Effect.Effect<void>
}

/** Whether process `pid` of this machine is alive. */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: alive, but another user's.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const isNotFound = (e: PlatformError) => e._tag === "SystemError" && e.reason === "NotFound"

/** The cache in `dir` (whose `files` and `folders` exist); pins are removed when the scope closes. */
export const make = (
  dir: string,
  options: { readonly maxBytes: number; readonly keepRecentMs?: number }
): Effect.Effect<BlobCache, PlatformError, FileSystem.FileSystem | Scope.Scope> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const keepRecentMs = options.keepRecentMs ?? KEEP_RECENT_MS
    const files = path.join(dir, "files")
    const folders = path.join(dir, "folders")
    const pins = path.join(dir, "pins")
    yield* fs.makeDirectory(pins, { recursive: true, mode: 0o700 })
    const pinned = new Set<string>()
    yield* Effect.addFinalizer(() =>
      Effect.forEach(pinned, (name) => Effect.ignore(fs.remove(path.join(pins, `${name}.${process.pid}`))), { discard: true })
    )
    const trimming = yield* Effect.makeSemaphore(1)

    /** Bytes under `file`: its size, or a folder's files' sizes added up. */
    const bytesUnder = (file: string): Effect.Effect<number, PlatformError> =>
      Effect.flatMap(fs.stat(file), (info) =>
        info.type !== "Directory"
          ? Effect.succeed(Number(info.size))
          : Effect.flatMap(fs.readDirectory(file), (names) =>
            Effect.map(Effect.forEach(names, (n) => bytesUnder(path.join(file, n))), (sizes) => sizes.reduce((a, b) => a + b, 0))))

    const copiesIn = (parent: string, folder: boolean) =>
      Effect.flatMap(fs.readDirectory(parent), (names) =>
        Effect.forEach(names.filter((n) => CONTENT_NAME.test(n)), (name) => {
          const file = path.join(parent, name)
          return Effect.zipWith(fs.stat(file), bytesUnder(file), (info, bytes): Array<Copy> => [
            { file, name, folder, bytes, usedAt: Option.getOrElse(info.mtime, () => new Date(0)).getTime() }
          ]).pipe(
            // Trimmed meanwhile by another process.
            Effect.catchIf(isNotFound, () => Effect.succeed([]))
          )
        })).pipe(Effect.map((copies) => copies.flat()))

    /** Folders pinned by live processes; pins of processes that are gone are removed. */
    const livePins = Effect.flatMap(fs.readDirectory(pins), (names) =>
      Effect.reduce(names, new Set<string>(), (live, name) => {
        const match = PIN_NAME.exec(name)
        if (match === null) return Effect.succeed(live)
        if (alive(Number(match[2]))) return Effect.succeed(live.add(match[1]!))
        return Effect.as(Effect.ignore(fs.remove(path.join(pins, name))), live)
      }))

    const remove = (copy: Copy) =>
      copy.folder
        ? Effect.gen(function*() {
          // Renamed away first: a reader sees the whole folder or none of it.
          const doomed = `${copy.file}.tmp-trim-${process.pid}-${randomBytes(6).toString("hex")}`
          yield* fs.rename(copy.file, doomed)
          yield* fs.remove(doomed, { recursive: true })
        })
        : fs.remove(copy.file)

    /** Delete least recently used copies until they take at most 90 % of the limit; answers the bytes left. */
    const trim = Effect.gen(function*() {
      const copies = [...yield* copiesIn(files, false), ...yield* copiesIn(folders, true)].sort((a, b) => a.usedAt - b.usedAt)
      const keep = yield* livePins
      let total = copies.reduce((sum, c) => sum + c.bytes, 0)
      if (total <= options.maxBytes) return total
      const recent = Date.now() - keepRecentMs
      for (const copy of copies) {
        if (total <= 0.9 * options.maxBytes) break
        if (copy.usedAt >= recent || (copy.folder && keep.has(copy.name))) continue
        yield* remove(copy).pipe(Effect.catchIf(isNotFound, () => Effect.void))
        total -= copy.bytes
      }
      return total
    })

    let counted = yield* trim
    return {
      filePath: (sha256) => path.join(files, sha256),
      folderPath: (name) => path.join(folders, name),
      use: (copy) => {
        const now = new Date()
        return fs.utimes(copy, now, now).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
      },
      pin: (folder) => {
        const name = path.basename(folder)
        if (pinned.has(name)) return Effect.void
        pinned.add(name)
        return fs.writeFileString(path.join(pins, `${name}.${process.pid}`), "", { mode: 0o600 })
      },
      added: (bytes) =>
        trimming.withPermits(1)(Effect.suspend(() => {
          counted += bytes
          if (counted <= options.maxBytes) return Effect.void
          return trim.pipe(
            Effect.map((left) => void (counted = left)),
            Effect.catchAll((e) => Effect.logWarning(`Blob cache in ${dir}: trimming failed: ${e.message}`))
          )
        }))
    }
  })
