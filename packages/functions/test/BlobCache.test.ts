// The local copies a Postgres blob store hands out (`<cacheDir>/files`, `<cacheDir>/folders`), bounded in size:
// least recently used copies go first; foreign files, recent copies and pinned folders stay; a vanished copy is
// fetched again. Real photos through `BlobStore.layerSql` on a real, throwaway Postgres.
import { afterAll, describe, expect, it } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { LoupeConfig } from "@loupe/core"
import { BlobStore } from "@loupe/functions"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { startPostgres } from "../../../test/fixtures/postgres.mjs"
import { catsVsDogsPhotos } from "./fixtures/environment.js"

const started = await startPostgres()
const pg = "url" in started ? started : undefined
if (!("url" in started)) console.log(`BlobCache tests skipped: ${started.skipped}`)
afterAll(() => pg?.stop())

const photos = catsVsDogsPhotos("train", "cats", 0, 6).map((file) => new Uint8Array(fs.readFileSync(file)))
const total = (bytes: ReadonlyArray<Uint8Array>) => bytes.reduce((sum, b) => sum + b.byteLength, 0)

/** Run `body` on a blob store over the test database whose copies live in `cacheDir`. */
const withStore = <A>(cacheDir: string, maxCacheBytes: number, body: (store: BlobStore.BlobStoreShape) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(BlobStore.BlobStore, body)).pipe(
    Effect.provide(BlobStore.layerSql({ cacheDir, maxCacheBytes }).pipe(Layer.provide(Layer.mergeAll(
      PgClient.layer({ url: Redacted.make(pg!.url) }),
      NodeFileSystem.layer,
      LoupeConfig.LoupeConfig.layer({ cacheDir })
    ))))
  ))

/** Make `file` look last used `minutes` ago. */
const age = (file: string, minutes: number) => {
  const then = new Date(Date.now() - minutes * 60_000)
  fs.utimesSync(file, then, then)
}

describe.skipIf(pg === undefined)("the local blob cache of a Postgres store", () => {
  it("trims least recently used copies past its limit, keeping foreign files, recent copies and pinned folders", async () => {
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-blob-cache-"))
    // Room for about four of the six photos.
    const limit = Math.round(total(photos.slice(0, 4)) * 1.05)
    await withStore(cacheDir, limit, (store) =>
      Effect.gen(function*() {
        yield* Effect.forEach(photos, (bytes, i) => store.put(`images/f/${i}`, bytes), { discard: true })
        yield* store.putDirectory("bundles/f/v1", (dir) => Effect.sync(() => fs.writeFileSync(path.join(dir, "a.jpg"), photos[5]!)))
        yield* store.putDirectory("bundles/f/v0", (dir) => Effect.sync(() => fs.writeFileSync(path.join(dir, "a.jpg"), photos[4]!)))
        // Another program's file in the cache folder, old and big: never Loupe's to delete.
        const foreign = path.join(cacheDir, "files", "notes.bin")
        fs.writeFileSync(foreign, Buffer.alloc(limit))
        age(foreign, 120)

        // The bundle v1, loaded by this process (pinned), used long ago.
        const bundle = yield* store.localDirectory("bundles/f/v1")
        age(bundle, 100)
        // Bundle v0, pinned only by a process that is gone.
        const v0 = yield* store.localDirectory("bundles/f/v0")
        fs.rmSync(path.join(cacheDir, "pins", `${path.basename(v0)}.${process.pid}`))
        const gone = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout
        fs.writeFileSync(path.join(cacheDir, "pins", `${path.basename(v0)}.${gone}`), "")
        age(v0, 90)

        // Photos 0-3 copied, used 80, 70, 60 and 50 minutes ago; photo 4 just now.
        const copies: Array<string> = []
        for (let i = 0; i < 5; i++) copies.push(yield* store.localFile(`images/f/${i}`))
        copies.slice(0, 4).forEach((copy, i) => age(copy, 80 - 10 * i))
        // Photo 5's copy takes the cache past its limit.
        copies.push(yield* store.localFile(`images/f/5`))

        const left = (file: string) => fs.existsSync(file)
        expect(left(foreign)).toBe(true)
        expect(left(bundle)).toBe(true)
        expect(left(v0)).toBe(false)
        expect(fs.existsSync(path.join(cacheDir, "pins", `${path.basename(v0)}.${gone}`))).toBe(false)
        // The oldest photos went until the copies fit in 90 % of the limit; the newest stay.
        const kept = copies.map(left)
        expect(kept.slice(4)).toEqual([true, true])
        const firstKept = kept.indexOf(true)
        expect(firstKept).toBeGreaterThan(0)
        expect(kept.slice(firstKept)).toEqual(kept.slice(firstKept).map(() => true))
        const cached = fs.readdirSync(path.join(cacheDir, "files")).filter((n) => n !== "notes.bin")
        const folderBytes = photos[5]!.byteLength
        const fileBytes = cached.reduce((sum, n) => sum + fs.statSync(path.join(cacheDir, "files", n)).size, 0)
        expect(fileBytes + folderBytes).toBeLessThanOrEqual(0.9 * limit)
        // No temporary files left behind by the copies or the trim.
        expect(fs.readdirSync(path.join(cacheDir, "files")).filter((n) => n.includes(".tmp-"))).toEqual([])
        expect(fs.readdirSync(path.join(cacheDir, "folders")).filter((n) => n.includes(".tmp-"))).toEqual([])

        // A trimmed copy is fetched again, with the right bytes, when asked for.
        const again = yield* store.localFile("images/f/0")
        expect(Buffer.from(fs.readFileSync(again)).equals(Buffer.from(photos[0]!))).toBe(true)
        const bundleAgain = yield* store.localDirectory("bundles/f/v0")
        expect(Buffer.from(fs.readFileSync(path.join(bundleAgain, "a.jpg"))).equals(Buffer.from(photos[4]!))).toBe(true)
      }))
  })

  it("keeps copies used in the last minutes even past its limit, and a fresh process trims an old cache on opening", async () => {
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-blob-cache-"))
    // Room for one of the three photos.
    const small = Math.round(Math.max(...photos.slice(0, 3).map((b) => b.byteLength)) * 1.2)
    const copies = await withStore(cacheDir, small, (store) =>
      Effect.gen(function*() {
        yield* Effect.forEach(photos.slice(0, 3), (bytes, i) => store.put(`images/g/${i}`, bytes), { discard: true })
        return yield* Effect.forEach([0, 1, 2], (i) => store.localFile(`images/g/${i}`))
      }))
    // All three just used: kept, though they take twice the limit.
    expect(copies.map((c) => fs.existsSync(c))).toEqual([true, true, true])
    copies.forEach((copy, i) => age(copy, 60 - i))
    // A new store on the same folder (another process, or a restart) trims on opening.
    await withStore(cacheDir, small, () => Effect.void)
    expect(copies.map((c) => fs.existsSync(c))).toEqual([false, false, true])
  })

  it("takes its limit from LOUPE_BLOB_CACHE_MB, and refuses one that is not a positive number, naming it", async () => {
    const open = (mb: string) =>
      Effect.runPromise(Effect.scoped(Layer.build(BlobStore.layerSql())).pipe(
        Effect.provide(Layer.mergeAll(
          PgClient.layer({ url: Redacted.make(pg!.url) }),
          NodeFileSystem.layer,
          LoupeConfig.LoupeConfig.layer({ cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), "loupe-blob-cache-")) })
        )),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["LOUPE_BLOB_CACHE_MB", mb]]))),
        Effect.flip
      ))
    const error = await open("-3")
    expect(error).toMatchObject({ reason: "InvalidOptions", field: "LOUPE_BLOB_CACHE_MB" })
    expect((await open("lots")).message).toContain("LOUPE_BLOB_CACHE_MB")
  })
})
