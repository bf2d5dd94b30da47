// Output folders: a bundle goes only where nothing but an earlier bundle is, and replacing one is atomic.
import { expect, layer } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Exit } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Bundle, OutputFolder } from "@loupe/core"

const work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "loupe-output-folder-")))
let counter = 0
const fresh = () => path.join(work, `case-${counter++}`)

const bundleFiles = (n: number) => ({ "manifest.json": `{"n": ${n}}\n`, "head.json": `[${n}]` })

/** Everything under `dir`: relative path -> contents ("<dir>" for folders). */
const snapshot = (dir: string): Record<string, string> =>
  Object.fromEntries(
    (fs.readdirSync(dir, { recursive: true }) as Array<string>).sort().map((e) => {
      const file = path.join(dir, e)
      return [e, fs.statSync(file).isDirectory() ? "<dir>" : fs.readFileSync(file, "utf8")]
    })
  )

/** The siblings Loupe stages or moves aside (`<name>.tmp-*`, `<name>.old-*`). */
const leftovers = (target: string) =>
  fs.readdirSync(path.dirname(target)).filter((e) => e.startsWith(`${path.basename(target)}.`))

const refusal = <A>(effect: Effect.Effect<A, unknown, any>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error as any : undefined
    expect(error).toMatchObject({ _tag: "CoreError", reason: "OutputNotFree" })
    return error
  })

layer(NodeFileSystem.layer)("OutputFolder", (it) => {
  it.effect("writes a bundle into a new or an empty folder, marked with what it wrote", () =>
    Effect.gen(function*() {
      const target = fresh()
      yield* Bundle.writeDirectoryAtomic(target, bundleFiles(1))
      const empty = fresh()
      fs.mkdirSync(empty)
      yield* Bundle.writeDirectoryAtomic(empty, bundleFiles(2))
      for (const dir of [target, empty]) {
        expect(JSON.parse(fs.readFileSync(path.join(dir, OutputFolder.MARKER), "utf8"))).toEqual({
          format: "loupe-output",
          kind: "loupe-bundle",
          entries: ["head.json", "manifest.json"]
        })
        expect(leftovers(dir)).toEqual([])
      }
      expect(fs.readFileSync(path.join(empty, "head.json"), "utf8")).toBe("[2]")
      // A private folder stays private: what replaces it gets no more access than it had.
      const private_ = fresh()
      fs.mkdirSync(private_, { mode: 0o700 })
      yield* Bundle.writeDirectoryAtomic(private_, bundleFiles(3))
      const modes = [".", ...fs.readdirSync(private_)].map((e) => (fs.statSync(path.join(private_, e)).mode & 0o777).toString(8))
      expect(modes).toEqual(["700", "600", "600", "600"])
    }))

  it.effect("refuses a folder holding unrelated files, a regular file, and a bundle with a user's file in it; all survive", () =>
    Effect.gen(function*() {
      const unrelated = fresh()
      fs.mkdirSync(path.join(unrelated, "photos"), { recursive: true })
      fs.writeFileSync(path.join(unrelated, "thesis.tex"), "years of work")
      fs.writeFileSync(path.join(unrelated, "photos", "cat.jpg"), "meow")
      const before = snapshot(unrelated)
      const error = yield* refusal(Bundle.writeDirectoryAtomic(unrelated, bundleFiles(1)))
      expect(error.file).toBe(unrelated)
      expect(error.message).toContain(unrelated)
      expect(snapshot(unrelated)).toEqual(before)
      expect(leftovers(unrelated)).toEqual([])

      const file = fresh()
      fs.writeFileSync(file, "a regular file")
      yield* refusal(Bundle.writeDirectoryAtomic(file, bundleFiles(1)))
      expect(fs.readFileSync(file, "utf8")).toBe("a regular file")

      const bundle = fresh()
      yield* Bundle.writeDirectoryAtomic(bundle, bundleFiles(1))
      fs.writeFileSync(path.join(bundle, "notes.txt"), "mine")
      const withNotes = yield* refusal(Bundle.writeDirectoryAtomic(bundle, bundleFiles(2)))
      expect(withNotes.message).toContain("notes.txt")
      expect(fs.readFileSync(path.join(bundle, "notes.txt"), "utf8")).toBe("mine")
      expect(fs.readFileSync(path.join(bundle, "head.json"), "utf8")).toBe("[1]")
    }))

  it.effect("refuses another kind of Loupe output, a marker that is not Loupe's, and a symbolic link", () =>
    Effect.gen(function*() {
      const onnx = fresh()
      yield* Bundle.writeDirectoryAtomic(onnx, { "model.onnx": "graph", "model.json": "{}" }, "loupe-onnx")
      const before = snapshot(onnx)
      const kind = yield* refusal(Bundle.writeDirectoryAtomic(onnx, bundleFiles(1)))
      expect(kind.message).toMatch(/holds a loupe-onnx output, not a loupe-bundle one/)
      expect(snapshot(onnx)).toEqual(before)

      const forged = fresh()
      fs.mkdirSync(forged)
      fs.writeFileSync(path.join(forged, OutputFolder.MARKER), "not JSON")
      fs.writeFileSync(path.join(forged, "data.csv"), "1,2")
      yield* refusal(Bundle.writeDirectoryAtomic(forged, bundleFiles(1)))
      expect(fs.readFileSync(path.join(forged, "data.csv"), "utf8")).toBe("1,2")

      const bundle = fresh()
      yield* Bundle.writeDirectoryAtomic(bundle, bundleFiles(1))
      const link = fresh()
      fs.symlinkSync(bundle, link)
      yield* refusal(Bundle.writeDirectoryAtomic(link, bundleFiles(2)))
      expect(fs.readlinkSync(link)).toBe(bundle)
    }))

  it.effect("never writes over the current folder, home, / or a folder above them, however spelled, even when empty", () =>
    Effect.gen(function*() {
      const cwd = fresh()
      fs.mkdirSync(path.join(cwd, "inner"), { recursive: true })
      const link = fresh()
      fs.symlinkSync(cwd, link)
      const previous = process.cwd()
      process.chdir(path.join(cwd, "inner"))
      try {
        for (const spelling of [".", "./", "..", path.join(link, "inner"), `${cwd}/inner/../inner/.`, "/", "/..", os.homedir(), path.dirname(os.homedir())]) {
          const error = yield* refusal(OutputFolder.check(spelling, "loupe-bundle"))
          expect(error.message).toMatch(/the current folder|the home folder|a folder above/)
        }
      } finally {
        process.chdir(previous)
      }
      expect(fs.readdirSync(path.join(cwd, "inner"))).toEqual([])
    }))

  it.effect("replaces an earlier bundle atomically: new contents, nothing left beside it; a failed write keeps the old one", () =>
    Effect.gen(function*() {
      const target = fresh()
      yield* Bundle.writeDirectoryAtomic(target, bundleFiles(1))
      expect(yield* OutputFolder.check(target, "loupe-bundle")).toBe("earlier")
      yield* Bundle.writeDirectoryAtomic(target, bundleFiles(2))
      expect(fs.readFileSync(path.join(target, "head.json"), "utf8")).toBe("[2]")
      expect(leftovers(target)).toEqual([])

      // A build that fails half-way: the earlier bundle is untouched, and the half-built folder is gone.
      const before = snapshot(target)
      const failed = yield* Effect.exit(OutputFolder.write(target, "loupe-bundle", (staging) =>
        Effect.zipRight(
          Effect.sync(() => fs.writeFileSync(path.join(staging, "manifest.json"), "half")),
          Effect.fail("disk full" as const)
        )))
      expect(Exit.isFailure(failed)).toBe(true)
      expect(snapshot(target)).toEqual(before)
      expect(leftovers(target)).toEqual([])

      // While the new bundle is built, readers still see the whole earlier one.
      let seenDuringBuild: Record<string, string> = {}
      yield* OutputFolder.write(target, "loupe-bundle", (staging) =>
        Effect.sync(() => {
          seenDuringBuild = snapshot(target)
          for (const [name, contents] of Object.entries(bundleFiles(3))) fs.writeFileSync(path.join(staging, name), contents)
        }))
      expect(seenDuringBuild).toEqual(before)
      expect(fs.readFileSync(path.join(target, "head.json"), "utf8")).toBe("[3]")
      expect(leftovers(target)).toEqual([])
    }))
  it.effect("removes what a killed writer left beside the target, once the next write is in place: only its own, only a dead writer's", () =>
    Effect.gen(function*() {
      const target = fresh()
      yield* Bundle.writeDirectoryAtomic(target, bundleFiles(1))
      // A pid no process has any more (one that has exited), and this live process's.
      const dead = spawnSync(process.execPath, ["-e", ""]).pid!
      const live = process.pid
      const earlier = fresh()
      yield* Bundle.writeDirectoryAtomic(earlier, bundleFiles(0))
      const besides = {
        setAside: `${target}.old-${dead}-0123abcd`, // an earlier bundle moved aside, the writer killed before removing it
        staged: `${target}.tmp-${dead}-89abcdef`, // killed before building anything
        liveStaging: `${target}.tmp-${live}-01234567`, // a writer still at work
        userFile: `${target}.old-${dead}-fedcba98`, // a set-aside bundle a user has since put a file into
        unmarked: `${target}.tmp-${dead}-76543210`, // files, but no marker: not provably Loupe's
        otherName: `${target}.tmp-notes` // not Loupe's naming
      }
      fs.renameSync(earlier, besides.setAside)
      fs.mkdirSync(besides.staged)
      fs.mkdirSync(besides.liveStaging)
      fs.cpSync(besides.setAside, besides.userFile, { recursive: true })
      fs.writeFileSync(path.join(besides.userFile, "notes.txt"), "mine")
      fs.mkdirSync(besides.unmarked)
      fs.writeFileSync(path.join(besides.unmarked, "head.json"), "[9]")
      fs.mkdirSync(besides.otherName)

      yield* Bundle.writeDirectoryAtomic(target, bundleFiles(2))
      expect(fs.readFileSync(path.join(target, "head.json"), "utf8")).toBe("[2]")
      expect(leftovers(target).sort()).toEqual(
        [besides.liveStaging, besides.userFile, besides.unmarked, besides.otherName].map((f) => path.basename(f)).sort()
      )
      expect(fs.readFileSync(path.join(besides.userFile, "notes.txt"), "utf8")).toBe("mine")
    }))
})
