import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { DiskEmbeddingCache, EmbeddingCache, LoupeConfig } from "@loupe/core"
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { compileSources } from "./fixtures/compiledSources.js"

const made: Array<string> = []
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-cache-"))
  made.push(dir)
  return dir
}
afterAll(() => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })))
const keyOf = (i: number) => createHash("sha256").update(`entry-${i}`).digest("hex")
const vectorOf = (i: number, dim = 64) => Float32Array.from({ length: dim }, (_, j) => i + j / dim)

/** Run `f` with a disk cache in `dir`; the cache's scope (and its final write) closes when `f` ends. */
const withCache = <A>(dir: string, f: (cache: EmbeddingCache.EmbeddingCacheShape) => Effect.Effect<A>, options?: DiskEmbeddingCache.DiskCacheOptions) =>
  Effect.scoped(Effect.flatMap(DiskEmbeddingCache.make(dir, options), f))

const files = (dir: string) => fs.readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => !fs.statSync(path.join(dir, f)).isDirectory())

describe("DiskEmbeddingCache", () => {
  it.effect("keeps vectors across instances, per namespace", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          for (let i = 0; i < 100; i++) yield* cache.set("ns-a", keyOf(i), vectorOf(i))
          yield* cache.set("ns-b", keyOf(0), vectorOf(1000))
          // Readable before it reaches the disk.
          expect(Array.from((yield* cache.get("ns-a", keyOf(5)))!)).toEqual(Array.from(vectorOf(5)))
        }))
      // 100 vectors, fewer than flushEvery: one segment per namespace, written when the scope closed.
      expect(files(dir).filter((f) => f.endsWith(".seg"))).toHaveLength(2)
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          for (let i = 0; i < 100; i++) {
            expect(Array.from((yield* cache.get("ns-a", keyOf(i)))!)).toEqual(Array.from(vectorOf(i)))
          }
          expect(Array.from((yield* cache.get("ns-b", keyOf(0)))!)).toEqual(Array.from(vectorOf(1000)))
          expect(yield* cache.get("ns-b", keyOf(1))).toBeUndefined()
          expect(yield* cache.get("ns-c", keyOf(0))).toBeUndefined()
        }))
    }))

  it.effect("remembers file content hashes by fingerprint, apart from the vectors", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const file = path.join(dir, "image.bin")
      fs.writeFileSync(file, "first content")
      const fingerprint = () => EmbeddingCache.fileFingerprint(file, fs.statSync(file, { bigint: true }))
      const before = fingerprint()
      yield* withCache(dir, (cache) => cache.rememberContentHash!(before, keyOf(1)))
      fs.writeFileSync(file, "other content")
      const after = fingerprint()
      expect(after).not.toBe(before)
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          expect(yield* cache.knownContentHash!(before)).toBe(keyOf(1))
          expect(yield* cache.knownContentHash!(after)).toBeUndefined()
          // Fingerprints live in their own folder: no vector namespace sees them.
          expect(yield* cache.get(".files", before)).toBeUndefined()
        }))
    }))

  it.effect("defaults to <cacheDir>/embeddings", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* Effect.scoped(Effect.gen(function*() {
        const cache = yield* EmbeddingCache.EmbeddingCache
        yield* cache.set("ns", keyOf(1), vectorOf(1))
      })).pipe(Effect.provide(DiskEmbeddingCache.layer()), Effect.provide(LoupeConfig.LoupeConfig.layer({ cacheDir: dir })))
      expect(files(path.join(dir, "embeddings", "ns")).filter((f) => f.endsWith(".seg"))).toHaveLength(1)
    }))

  it.effect("never reads a torn or damaged file, and removes broken segments", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* withCache(dir, (cache) => cache.set("ns", keyOf(1), vectorOf(1)))
      yield* withCache(dir, (cache) => cache.set("ns", keyOf(2), vectorOf(2)))
      const nsDir = path.join(dir, "ns")
      const [first, second] = files(nsDir).sort()
      // A crash mid-write leaves a temporary file; a lost tail or a flipped byte damages a complete-looking one.
      fs.writeFileSync(path.join(nsDir, ".tmp-crashed-writer"), fs.readFileSync(path.join(nsDir, first!)).subarray(0, 100))
      const torn = fs.readFileSync(path.join(nsDir, first!))
      fs.writeFileSync(path.join(nsDir, first!), torn.subarray(0, torn.length - 10))
      const damaged = fs.readFileSync(path.join(nsDir, second!))
      damaged[damaged.length - 1] ^= 0xff
      fs.writeFileSync(path.join(nsDir, second!), damaged)
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          expect(yield* cache.get("ns", keyOf(1))).toBeUndefined()
          expect(yield* cache.get("ns", keyOf(2))).toBeUndefined()
          // Still a working cache.
          yield* cache.set("ns", keyOf(3), vectorOf(3))
          expect(Array.from((yield* cache.get("ns", keyOf(3)))!)).toEqual(Array.from(vectorOf(3)))
        }))
      const left = files(nsDir)
      expect(left).not.toContain(first)
      expect(left).not.toContain(second)
      // A recent temporary file may belong to a live writer in another process: left alone, but never read.
      expect(left).toContain(".tmp-crashed-writer")
    }))

  it.effect("merges many segments into one when a namespace is opened", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      yield* withCache(dir, (cache) =>
        Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => cache.set("ns", keyOf(i), vectorOf(i))), { flushEvery: 2 })
      expect(files(path.join(dir, "ns"))).toHaveLength(5)
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          for (let i = 0; i < 10; i++) expect(Array.from((yield* cache.get("ns", keyOf(i)))!)).toEqual(Array.from(vectorOf(i)))
        }), { maxSegments: 3 })
      expect(files(path.join(dir, "ns"))).toHaveLength(1)
    }))

  it.scoped("two processes writing the same namespace at once lose nothing and tear nothing", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const barrier = tempDir()
      const compiled = yield* Effect.acquireRelease(
        Effect.sync(compileSources),
        (out) => Effect.sync(() => fs.rmSync(out, { recursive: true, force: true }))
      )
      const writer = path.join(import.meta.dirname, "fixtures", "cacheWriter.mjs")
      // Overlapping ranges: entries 200-299 are written by both.
      const child = (from: number, to: number) =>
        Effect.tryPromise(() =>
          promisify(execFile)(process.execPath, [writer, compiled, dir, String(from), String(to), barrier, "2"])
        )
      yield* Effect.all([child(0, 300), child(200, 500)], { concurrency: 2 })
      // Only complete segments: no temporary file is left, and every file passes the size and checksum checks below.
      const written = files(path.join(dir, "shared-namespace"))
      expect(written.length).toBeGreaterThan(0)
      expect(written.every((f) => f.endsWith(".seg"))).toBe(true)
      yield* withCache(dir, (cache) =>
        Effect.gen(function*() {
          for (let i = 0; i < 500; i++) {
            expect(Array.from((yield* cache.get("shared-namespace", keyOf(i)))!), `entry ${i}`).toEqual(Array.from(vectorOf(i)))
          }
        }), { maxSegments: 100 })
      // None was found broken and removed.
      expect(files(path.join(dir, "shared-namespace"))).toEqual(written)
    }), 180_000)
})
