/**
 * The folders Loupe writes (a bundle, an ONNX export, a Docker build context) never replace anything Loupe did not
 * write. A target folder must be missing, empty, or an earlier Loupe output of the same kind; anything else (a
 * regular file, a symbolic link, a folder holding other files, another kind of Loupe output) is refused with
 * `CoreError` `OutputNotFree` naming it. The current folder, the home folder and every folder above them are
 * refused whatever they hold, however they are spelled (`.`, `/`, `~/..`, a symbolic link to them).
 *
 * Loupe recognises its own outputs by the marker it writes into each, `.loupe-output.json`: the kind of output and
 * every entry it wrote. An earlier output is replaced only when it holds nothing but those entries.
 *
 * Writing is atomic: the new folder is built beside the target, marked, and renamed into place; an earlier output
 * is first renamed aside and removed only after the swap. A failure before the swap leaves the target as it was and
 * removes only the folder Loupe was building; the staging and set-aside folders a killed writer left beside the target
 * (`<dir>.tmp-<pid>-*`, `<dir>.old-<pid>-*`) are removed once the next write to it is in place, when they are Loupe's own (empty,
 * or holding only what their marker lists) and their writer is gone. The new output gets no more access than the folder it replaces had
 * (an empty 0700 folder gets 0700 folders and 0600 files).
 *
 * @since 0.2.0
 */
import { FileSystem } from "@effect/platform"
import type { Error as PlatformError } from "@effect/platform"
import { Effect, Schema } from "effect"
import { randomBytes } from "node:crypto"
import * as os from "node:os"
import * as path from "node:path"
import { CoreError } from "./CoreError.js"
import * as Leftovers from "./Leftovers.js"

/**
 * The marker file in every folder Loupe writes.
 *
 * @since 0.2.0
 * @category constants
 */
export const MARKER = ".loupe-output.json"

/**
 * The schema of the marker: the output's kind (`loupe-bundle`, `loupe-onnx`, ...) and the entries (files and
 * folders, relative, `/`-separated) Loupe wrote, the marker itself left out.
 *
 * @since 0.2.0
 * @category schemas
 */
export const Marker = Schema.Struct({
  format: Schema.Literal("loupe-output"),
  kind: Schema.String,
  entries: Schema.Array(Schema.String)
})

/**
 * What a target folder holds now: nothing (`missing`), an empty folder (`empty`), or an earlier Loupe output of the
 * same kind (`earlier`), which writing replaces.
 *
 * @since 0.2.0
 * @category models
 */
export type State = "missing" | "empty" | "earlier"

const refuse = (file: string, message: string) => new CoreError({ reason: "OutputNotFree", file, message })

const io = (file: string) => (cause: PlatformError.PlatformError) =>
  new CoreError({ reason: "Io", file, message: `Cannot write ${file}: ${cause.message}`, cause })

const isNotFound = (e: PlatformError.PlatformError) => e._tag === "SystemError" && e.reason === "NotFound"

/** `dir` with every symbolic link resolved, for the part of it that exists (the rest appended as it is). */
const realPath = (fs: FileSystem.FileSystem, dir: string): Effect.Effect<string> =>
  fs.realPath(dir).pipe(
    Effect.catchAll(() => {
      const parent = path.dirname(dir)
      return parent === dir ? Effect.succeed(dir) : Effect.map(realPath(fs, parent), (real) => path.join(real, path.basename(dir)))
    })
  )

/** The folders never written over: the current and home folders and every folder above them. */
const protectedFolders = (fs: FileSystem.FileSystem) =>
  Effect.gen(function*() {
    const folders = new Map<string, string>()
    for (const [start, name] of [[process.cwd(), "the current folder"], [os.homedir(), "the home folder"]] as const) {
      let dir = yield* realPath(fs, start)
      if (!folders.has(dir)) folders.set(dir, name)
      while (path.dirname(dir) !== dir) {
        dir = path.dirname(dir)
        if (!folders.has(dir)) folders.set(dir, `a folder above ${name}`)
      }
    }
    return folders
  })

/** Every entry under `dir`, relative and `/`-separated, sorted. */
const entriesOf = (fs: FileSystem.FileSystem, dir: string) =>
  Effect.map(fs.readDirectory(dir, { recursive: true }), (all) => all.map((e) => e.split(path.sep).join("/")).sort())

const decodeMarker = Schema.decodeUnknownOption(Schema.parseJson(Marker))

/** The marker of `dir`, if it has a valid one. */
const readMarker = (fs: FileSystem.FileSystem, dir: string) =>
  fs.readFileString(path.join(dir, MARKER)).pipe(
    Effect.map(decodeMarker),
    Effect.map((marker) => (marker._tag === "Some" ? marker.value : undefined)),
    Effect.orElseSucceed(() => undefined)
  )

/** Whether `dir` holds nothing but what its marker lists; the first foreign entry otherwise. */
const foreignEntry = (fs: FileSystem.FileSystem, dir: string, marker: typeof Marker.Type) =>
  Effect.map(entriesOf(fs, dir), (entries) => {
    const written = new Set(marker.entries)
    return entries.find((e) => e !== MARKER && !written.has(e))
  })

/** Take from `file` any access `mode` does not give. */
const restrict = (fs: FileSystem.FileSystem, file: string, mode: number) =>
  Effect.flatMap(fs.stat(file), (info) => ((info.mode & ~mode & 0o777) === 0 ? Effect.void : fs.chmod(file, info.mode & mode & 0o777)))

/**
 * Check that `dir` may receive an output of `kind`, and say what it holds now (see `State`). Nothing is written.
 *
 * Fails with `CoreError` `OutputNotFree` naming `dir` when it is a protected folder, a file or symbolic link, a
 * folder with anything but an earlier `kind` output in it; `Io` when it cannot be read.
 *
 * @since 0.2.0
 * @category checks
 */
export const check = (dir: string, kind: string): Effect.Effect<State, CoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const target = path.resolve(dir)
    const real = yield* realPath(fs, target)
    const protectedAs = (yield* protectedFolders(fs)).get(real)
    if (protectedAs !== undefined) {
      return yield* refuse(target, `${target} is ${protectedAs}: Loupe never writes an output over it; choose a new folder, e.g. ${path.join(target, "loupe-output")}`)
    }
    if (yield* Effect.isSuccess(fs.readLink(target))) {
      return yield* refuse(target, `${target} is a symbolic link: Loupe does not replace it; choose a new folder`)
    }
    const info = yield* fs.stat(target).pipe(Effect.map((i) => i.type), Effect.catchIf(isNotFound, () => Effect.succeed(undefined)))
    if (info === undefined) return "missing"
    if (info !== "Directory") return yield* refuse(target, `${target} already exists and is not a folder: Loupe does not replace it; choose a new folder`)
    const entries = yield* fs.readDirectory(target)
    if (entries.length === 0) return "empty"
    const marker = yield* readMarker(fs, target)
    if (marker === undefined) {
      return yield* refuse(target, `${target} already holds files Loupe did not write: choose a new or empty folder (nothing in it is deleted)`)
    }
    if (marker.kind !== kind) {
      return yield* refuse(target, `${target} holds a ${marker.kind} output, not a ${kind} one: choose another folder`)
    }
    const foreign = yield* foreignEntry(fs, target, marker)
    if (foreign !== undefined) {
      return yield* refuse(target, `${target} holds ${foreign}, which Loupe did not write there: move it away or choose another folder (nothing in it is deleted)`)
    }
    return "earlier" as const
  }).pipe(Effect.mapError((e) => (e._tag === "CoreError" ? e : io(dir)(e))))

/**
 * Remove what writers killed mid-write (kill -9) left beside `target`: `<target>.tmp-*` and `<target>.old-*` folders
 * that are Loupe's own (empty, or holding nothing but what their marker lists) and whose writer is gone
 * (`Leftovers.orphaned`). Anything else of such a name is left alone.
 */
const removeLeftovers = (fs: FileSystem.FileSystem, target: string) =>
  Effect.gen(function*() {
    const removed = yield* Leftovers.removeBeside(target, {
      tags: ["tmp", "old"],
      hexDigits: 8,
      owned: (folder) =>
        Effect.gen(function*() {
          if ((yield* fs.stat(folder)).type !== "Directory" || (yield* Effect.isSuccess(fs.readLink(folder)))) return false
          if ((yield* fs.readDirectory(folder)).length === 0) return true
          const marker = yield* readMarker(fs, folder)
          return marker !== undefined && (yield* foreignEntry(fs, folder, marker)) === undefined
        }).pipe(Effect.orElseSucceed(() => false))
    })
    if (removed.length > 0) yield* Effect.logInfo(`${target}: removed ${removed.length} folders left by interrupted writes: ${removed.join(", ")}`)
  }).pipe(Effect.catchAll((e) => Effect.logWarning(`${target}: cannot clean what interrupted writes left beside it: ${e.message}`)))

/**
 * Write an output of `kind` to `dir`, atomically: `build` fills a fresh folder beside `dir`, which is marked (see
 * `MARKER`) and renamed into place. `dir` is checked (see `check`) before `build` runs and again just before the
 * swap; an earlier output of the same kind is renamed aside, and removed once the new one is in place, unless
 * something appeared in it meanwhile (then it is left beside the target, with a warning). When `build` fails, only
 * the folder it was filling is removed.
 *
 * Fails with `build`'s error, or `CoreError`: `OutputNotFree` (see `check`), `Io` naming `dir`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const write = <A, E, R>(
  dir: string,
  kind: string,
  build: (staging: string) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | CoreError, R | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const target = path.resolve(dir)
    yield* check(target, kind)
    const suffix = `${process.pid}-${randomBytes(4).toString("hex")}`
    const staging = `${target}.tmp-${suffix}`
    yield* fs.makeDirectory(path.dirname(target), { recursive: true }).pipe(Effect.mapError(io(target)))
    yield* fs.makeDirectory(staging).pipe(Effect.mapError(io(target)))
    const swap = Effect.gen(function*() {
      const result = yield* build(staging)
      const entries = (yield* entriesOf(fs, staging).pipe(Effect.mapError(io(target)))).filter((e) => e !== MARKER)
      // The new output gets no more access than the folder it replaces had (a private store's folder stays private).
      const replaced = yield* fs.stat(target).pipe(Effect.map((i) => i.mode & 0o777), Effect.orElseSucceed(() => undefined))
      if (replaced !== undefined) {
        yield* Effect.forEach([".", ...entries], (e) => restrict(fs, path.join(staging, e), replaced), { discard: true }).pipe(
          Effect.mapError(io(target))
        )
      }
      const marker: typeof Marker.Type = { format: "loupe-output", kind, entries }
      yield* Effect.scoped(Effect.gen(function*() {
        const file = yield* fs.open(path.join(staging, MARKER), { flag: "w", ...(replaced === undefined ? {} : { mode: replaced & 0o666 }) })
        yield* file.writeAll(new TextEncoder().encode(JSON.stringify(marker, null, 2) + "\n"))
        yield* file.sync
      })).pipe(Effect.mapError(io(target)))
      const state = yield* check(target, kind)
      if (state !== "earlier") {
        // rename(2) replaces an empty folder, and fails on anything else that appeared meanwhile.
        yield* fs.rename(staging, target).pipe(Effect.mapError(io(target)))
        return result
      }
      const old = `${target}.old-${suffix}`
      yield* fs.rename(target, old).pipe(Effect.mapError(io(target)))
      yield* fs.rename(staging, target).pipe(
        Effect.mapError(io(target)),
        Effect.tapError(() => Effect.ignore(fs.rename(old, target)))
      )
      const earlier = yield* readMarker(fs, old)
      const foreign = earlier === undefined ? MARKER : yield* Effect.orElseSucceed(foreignEntry(fs, old, earlier), () => MARKER)
      if (foreign === undefined) {
        yield* Effect.ignore(fs.remove(old, { recursive: true }))
      } else {
        yield* Effect.logWarning(`${target}: the earlier ${kind} output changed while it was being replaced (${foreign}); it is kept at ${old}`)
      }
      return result
    })
    const result = yield* Effect.onError(swap, () => Effect.ignore(fs.remove(staging, { recursive: true })))
    // Only once the new output is in place: a set-aside folder may be the only copy of the earlier output.
    yield* removeLeftovers(fs, target)
    return result
  })
