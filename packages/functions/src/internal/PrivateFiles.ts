/**
 * A store's files hold users' images and labels: its folders are created 0700 and its database files kept 0600, so
 * other accounts on the machine cannot read them (whatever the umask would give).
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect } from "effect"

export const folderMode = 0o700
export const fileMode = 0o600

/** Create `dir` and its missing parents as 0700 (an existing folder is left as it is). */
export const makeFolder = (fs: FileSystem.FileSystem, dir: string): Effect.Effect<void, PlatformError> =>
  fs.makeDirectory(dir, { recursive: true, mode: folderMode })

/** Create `dir` (0700, see `makeFolder`) and make the SQLite database `file` in it 0600 (see `privateDatabase`). */
export const databaseIn = (dir: string, file: string): Effect.Effect<void, PlatformError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => Effect.zipRight(makeFolder(fs, dir), privateDatabase(fs, file)))

/**
 * Make a SQLite database file 0600 before SQLite opens it: create it empty when missing (SQLite takes an empty file
 * as a new database), else tighten it, and its `-wal` / `-shm` files where they exist. SQLite creates those two with
 * the database file's mode, so new ones are 0600 too.
 */
const privateDatabase = (fs: FileSystem.FileSystem, file: string): Effect.Effect<void, PlatformError> =>
  Effect.gen(function*() {
    // Flag "a" creates the file when missing and never truncates one a concurrent process has just created.
    yield* Effect.scoped(fs.open(file, { flag: "a", mode: fileMode }))
    for (const f of [file, `${file}-wal`, `${file}-shm`]) yield* tighten(fs, f, fileMode)
  })

/** Take group and other access off `file`, when it is there (SQLite may remove `-wal` / `-shm` meanwhile). */
export const tighten = (fs: FileSystem.FileSystem, file: string, mode: number): Effect.Effect<void, PlatformError> =>
  fs.stat(file).pipe(
    Effect.flatMap((info) => ((info.mode & 0o077) === 0 ? Effect.void : fs.chmod(file, mode))),
    Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "NotFound", () => Effect.void)
  )
