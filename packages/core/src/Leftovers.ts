/**
 * What a writer killed mid-write (kill -9, a crash, power loss) leaves behind: the temporary files and folders Loupe
 * writes beside their target, named with the writer's pid (`<name>.tmp-<pid>-<hex>`). One rule decides when such a
 * leftover is orphaned, for every writer (the blob store, output folders, the API key file): its writer process is
 * gone, or it is older than a day (then the pid has been reused). A live writer's files are never touched, from this
 * process or another on the machine; processes that share files must run on one machine, in one pid namespace.
 *
 * @since 0.2.0
 */
import { FileSystem } from "@effect/platform"
import type { Error as PlatformError } from "@effect/platform"
import { Effect, Option } from "effect"
import * as path from "node:path"

/**
 * Past this age a leftover is an orphan even if its pid names a live process (the pid was reused).
 *
 * @since 0.2.0
 * @category constants
 */
export const orphanAgeMs = 24 * 60 * 60 * 1000

/**
 * Whether a process with this pid runs on this machine (one of another user's counts: EPERM).
 *
 * @since 0.2.0
 * @category checks
 */
export const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Whether `file`, written by process `pid`, is orphaned: it exists, and its writer is gone or it is older than
 * `orphanAgeMs`.
 *
 * @since 0.2.0
 * @category checks
 */
export const orphaned = (fs: FileSystem.FileSystem, file: string, pid: number): Effect.Effect<boolean> =>
  Effect.map(Effect.option(fs.stat(file)), (info) => {
    if (Option.isNone(info)) return false
    const age = Date.now() - Option.getOrElse(info.value.mtime, () => new Date()).getTime()
    return !processAlive(pid) || age >= orphanAgeMs
  })

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/**
 * Remove the orphaned leftovers beside `target`: the entries of its folder named `<target's name>.<tag>-<pid>-<hex>`
 * (`tag` one of `tags`, the hex part `hexDigits` long) that are `orphaned` and that `owned` recognises as the
 * writer's own (say, by their content). Nothing else is touched. Returns the paths removed.
 *
 * @since 0.2.0
 * @category constructors
 */
export const removeBeside = <E, R>(
  target: string,
  options: {
    readonly tags: ReadonlyArray<string>
    readonly hexDigits: number
    readonly owned: (file: string) => Effect.Effect<boolean, E, R>
  }
): Effect.Effect<ReadonlyArray<string>, E | PlatformError.PlatformError, R | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = path.dirname(path.resolve(target))
    const name = new RegExp(
      `^${escape(path.basename(target))}\\.(?:${options.tags.map(escape).join("|")})-(\\d+)-[0-9a-f]{${options.hexDigits}}$`
    )
    const entries = yield* fs.readDirectory(dir).pipe(
      Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "NotFound", () => Effect.succeed([]))
    )
    const removed: Array<string> = []
    for (const entry of entries.sort()) {
      const match = name.exec(entry)
      if (match === null) continue
      const file = path.join(dir, entry)
      if (!(yield* orphaned(fs, file, Number(match[1])))) continue
      if (!(yield* options.owned(file))) continue
      yield* fs.remove(file, { recursive: true, force: true })
      removed.push(file)
    }
    return removed
  })
