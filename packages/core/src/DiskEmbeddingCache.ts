/**
 * The embedding cache on disk. Each namespace (backbone id + weights hash + preprocessing, see
 * `EmbeddingCache.namespaceOf`) is a folder of immutable segment files, each holding many (content sha256, vector)
 * records:
 *
 * ```
 * <dir>/<namespace>/<time>-<pid>-<random>.seg
 * ```
 *
 * - Writes are buffered and land as a new segment (every `flushEvery` vectors, every few seconds, and when the
 *   layer's scope closes), written under a temporary name, synced, then renamed: readers never see a torn file, and
 *   a crash leaves at most a temporary file that is never read (and is removed later).
 * - Two processes writing at once each write their own segments, so they never interleave bytes. A vector computed
 *   by both is stored twice and merged away by compaction.
 * - Opening a namespace reads only the segments' keys (and checks each file's size and checksum); vectors are read
 *   from disk on demand, so memory stays small with many entries. When a namespace holds more than `maxSegments`
 *   segments, they are merged into one.
 *
 * One segment file instead of one file per vector: reading 1,600 cached vectors back from one segment takes a few
 * milliseconds, against hundreds of milliseconds for 1,600 small files (see bench/RESULTS.md).
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type { Duration } from "effect"
import type { Scope } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { EmbeddingCache, type EmbeddingCacheShape } from "./EmbeddingCache.js"
import * as Segment from "./internal/vectorSegment.js"
import { LoupeConfig } from "./LoupeConfig.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface DiskCacheOptions {
  /** Vectors buffered in memory before they are written as one segment. Default 512. */
  readonly flushEvery?: number
  /** How often buffered vectors are written even when fewer than `flushEvery` are waiting. Default 5 seconds. */
  readonly flushInterval?: Duration.DurationInput
  /** Segments in one namespace above which opening it merges them into one. Default 16. */
  readonly maxSegments?: number
}

/** Temporary files older than this are leftovers of a crashed writer. */
const STALE_TEMP_MS = 60 * 60 * 1000

const HEX_KEY = /^[0-9a-f]{64}$/
const SAFE_NAME = /^[A-Za-z0-9._-]{1,100}$/
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

/** Content hashes are used as they are; any other key is hashed to the same 32-byte form. */
const keyOf = (key: string) => (HEX_KEY.test(key) ? key : sha256(key))
const folderOf = (namespace: string) =>
  SAFE_NAME.test(namespace) && !namespace.startsWith(".") ? namespace : sha256(namespace).slice(0, 32)

interface Location {
  readonly segment: Segment.Segment
  readonly slot: number
}

/** One namespace folder: the index of stored vectors and the vectors waiting to be written. */
class Namespace {
  readonly index = new Map<string, Location>()
  readonly pending = new Map<string, Float32Array>()
  segments: Array<Segment.Segment> = []
  dim: number | undefined
  /** Writes run one at a time; this is the last one queued. */
  private writing: Promise<void> = Promise.resolve()

  constructor(readonly dir: string, readonly flushEvery: number) {}

  add(segment: Segment.Segment): void {
    this.segments.push(segment)
    this.dim ??= segment.dim
    segment.keys.forEach((key, slot) => this.index.set(key, { segment, slot }))
  }

  async get(key: string): Promise<Float32Array | undefined> {
    const waiting = this.pending.get(key)
    if (waiting !== undefined) return waiting
    const at = this.index.get(key)
    return at === undefined ? undefined : Segment.readVector(at.segment, at.slot)
  }

  async set(key: string, vector: Float32Array): Promise<void> {
    if (this.index.has(key) || this.pending.has(key)) return
    this.dim ??= vector.length
    if (vector.length !== this.dim) {
      throw new Error(`a vector of ${vector.length} values in a namespace of ${this.dim}-value vectors`)
    }
    this.pending.set(key, Float32Array.from(vector))
    if (this.pending.size >= this.flushEvery) await this.flush()
  }

  flush(): Promise<void> {
    const run = this.writing.then(() => this.writePending())
    this.writing = run.catch(() => undefined)
    return run
  }

  private async writePending(): Promise<void> {
    if (this.pending.size === 0 || this.dim === undefined) return
    const entries = [...this.pending]
    const segment = await Segment.write(this.dir, this.dim, entries.map(([k]) => k), (i) => entries[i]![1])
    this.add(segment)
    for (const [key] of entries) this.pending.delete(key)
  }

  /** Merge every segment into one, then delete the merged files. */
  async compact(): Promise<void> {
    const old = this.segments
    const locations = [...this.index]
    const merged = await Segment.write(this.dir, this.dim!, locations.map(([k]) => k), (i) => {
      const { segment, slot } = locations[i]![1]
      return Segment.readVector(segment, slot)
    })
    this.segments = []
    this.index.clear()
    this.add(merged)
    for (const segment of old) {
      await segment.handle.close()
      await fs.rm(segment.file, { force: true })
    }
  }

  async close(): Promise<void> {
    await this.flush()
    for (const segment of this.segments) await segment.handle.close()
    this.segments = []
  }
}

/** Open a namespace folder: index its valid segments, drop broken ones and stale temporary files. */
const openNamespace = async (
  dir: string,
  options: { readonly flushEvery: number; readonly maxSegments: number },
  warn: (message: string) => void
): Promise<Namespace> => {
  await fs.mkdir(dir, { recursive: true })
  const ns = new Namespace(dir, options.flushEvery)
  for (const name of (await fs.readdir(dir)).sort()) {
    const file = path.join(dir, name)
    if (name.startsWith(Segment.TEMP_PREFIX)) {
      const stat = await fs.stat(file).catch(() => undefined)
      if (stat !== undefined && Date.now() - stat.mtimeMs > STALE_TEMP_MS) await fs.rm(file, { force: true })
      continue
    }
    if (!name.endsWith(Segment.SEGMENT_SUFFIX)) continue
    // A segment may vanish between readdir and open when another process compacts the folder.
    const opened = await Segment.open(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined
      throw error
    })
    if (opened === undefined) continue
    if (typeof opened === "string") {
      warn(`embedding cache: removing ${file}: ${opened}`)
      await fs.rm(file, { force: true })
    } else if (ns.dim !== undefined && opened.dim !== ns.dim) {
      warn(`embedding cache: ignoring ${file}: ${opened.dim}-value vectors in a folder of ${ns.dim}-value vectors`)
      await opened.handle.close()
    } else {
      ns.add(opened)
    }
  }
  if (ns.segments.length > options.maxSegments) await ns.compact()
  return ns
}

/**
 * A disk cache rooted at `dir`. Buffered vectors are written when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (dir: string, options: DiskCacheOptions = {}): Effect.Effect<EmbeddingCacheShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = { flushEvery: options.flushEvery ?? 512, maxSegments: options.maxSegments ?? 16 }
    const namespaces = new Map<string, Promise<Namespace>>()
    const warnings: Array<string> = []
    const warn = (message: string) => warnings.push(message)
    const logWarnings = Effect.suspend(() => Effect.forEach(warnings.splice(0), (w) => Effect.logWarning(w), { discard: true }))

    const namespace = (name: string): Promise<Namespace> => {
      let opened = namespaces.get(name)
      if (opened === undefined) {
        opened = openNamespace(path.join(dir, folderOf(name)), settings, warn)
        // A failed open is retried by the next call instead of being remembered.
        opened.catch(() => namespaces.delete(name))
        namespaces.set(name, opened)
      }
      return opened
    }

    /** Cache failures never fail an embedding run: they are logged and the cache behaves as a miss. */
    const attempt = <A>(what: string, job: () => Promise<A>, fallback: A): Effect.Effect<A> =>
      Effect.tryPromise(job).pipe(
        Effect.catchAll((error) => Effect.logWarning(`embedding cache in ${dir}: ${what} failed: ${error.cause}`).pipe(Effect.as(fallback))),
        Effect.zipLeft(logWarnings)
      )

    const flushAll = attempt("write", async () => {
      for (const ns of namespaces.values()) await (await ns).flush()
    }, undefined)

    yield* Effect.addFinalizer(() =>
      attempt("close", async () => {
        for (const ns of namespaces.values()) await (await ns).close()
      }, undefined)
    )
    yield* Effect.forkScoped(flushAll.pipe(Effect.delay(options.flushInterval ?? "5 seconds"), Effect.forever))

    return {
      get: (name, key) => attempt("read", () => namespace(name).then((ns) => ns.get(keyOf(key))), undefined),
      set: (name, key, vector) => attempt("write", () => namespace(name).then((ns) => ns.set(keyOf(key), vector)), undefined)
    } satisfies EmbeddingCacheShape
  })

/**
 * The disk cache as the `EmbeddingCache` service, in `dir`, or by default in `<cacheDir>/embeddings` of
 * `LoupeConfig`.
 *
 * @example
 * ```ts
 * const cached = Embedder.embedSamples(backbone, samples).pipe(Effect.provide(DiskEmbeddingCache.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export function layer(): Layer.Layer<EmbeddingCache, never, LoupeConfig>
export function layer(dir: string, options?: DiskCacheOptions): Layer.Layer<EmbeddingCache>
export function layer(dir?: string, options?: DiskCacheOptions): Layer.Layer<EmbeddingCache, never, LoupeConfig> {
  return Layer.scoped(
    EmbeddingCache,
    dir === undefined
      ? Effect.flatMap(LoupeConfig, (config) => make(path.join(config.cacheDir, "embeddings"), options))
      : make(dir, options)
  )
}
