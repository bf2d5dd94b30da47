/**
 * The embedding cache on disk. Each namespace (backbone id + weights hash + preprocessing, see
 * `EmbeddingCache.namespaceOf`) is a folder of immutable segment files, each holding many (content sha256, vector)
 * records:
 *
 * ```
 * <dir>/<namespace>/<time>-<pid>-<random>.seg
 * <dir>/.files/<time>-<pid>-<random>.seg        file fingerprint -> content sha256
 * ```
 *
 * - Writes are buffered and land as a new segment (every `flushEvery` records, every few seconds, and when the
 *   layer's scope closes), written under a temporary name, synced, then renamed: readers never see a torn file, and
 *   a crash leaves at most a temporary file that is never read (and is removed later).
 * - Two processes writing at once each write their own segments, so they never interleave bytes. A vector computed
 *   by both is stored twice and merged away by compaction.
 * - Opening a namespace reads only the segments' keys (and checks each file's size and checksum); vectors are read
 *   from disk on demand, so memory stays small with many entries. When a namespace holds more than `maxSegments`
 *   segments, they are merged into one.
 * - It also remembers each image file's content hash under the file's fingerprint (path, inode, size, times), so a
 *   rerun over unchanged files reads neither the images nor their bytes' hashes again.
 *
 * Segments rather than one file per vector: for 1,600 vectors, writing is about 4x and reading back (with the
 * opening checks) about 2x faster than 1,600 small files written with temp + rename (`bench/embed/cache-layout.mjs`,
 * results in bench/RESULTS.md), and a folder holds a handful of files instead of thousands.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type { Cause, Duration, Scope } from "effect"
import { hash } from "node:crypto"
// node:fs, not FileSystem: the segments' open handles are read synchronously (`recordSegment.readValue`), and
// FileSystem would add a requirement to `layer`, which its callers provide without one.
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { EmbeddingCache, type EmbeddingCacheShape } from "./EmbeddingCache.js"
import * as Segment from "./internal/recordSegment.js"
import { LoupeConfig } from "./LoupeConfig.js"

/**
 * How the disk cache batches its writes and how many segments a namespace may grow to before they are merged.
 *
 * @since 0.1.0
 * @category models
 */
export interface DiskCacheOptions {
  /** Records buffered in memory before they are written as one segment. Default 512. */
  readonly flushEvery?: number
  /** How often buffered records are written even when fewer than `flushEvery` are waiting. Default 5 seconds. */
  readonly flushInterval?: Duration.DurationInput
  /** Segments in one namespace above which opening it merges them into one. Default 16. */
  readonly maxSegments?: number
}

/** Temporary files older than this are leftovers of a crashed writer. */
const STALE_TEMP_MS = 60 * 60 * 1000
/** The folder of file fingerprints; vector namespaces never start with a dot (see `folderOf`). */
const FILES_FOLDER = ".files"

const HEX_KEY = /^[0-9a-f]{64}$/
const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/
const sha256 = (text: string) => hash("sha256", text)

/** Content hashes are used as they are; any other key is hashed to the same 32-byte form. */
const keyOf = (key: string) => (HEX_KEY.test(key) ? key : sha256(key))
const folderOf = (namespace: string) => (SAFE_NAME.test(namespace) ? namespace : sha256(namespace).slice(0, 32))

const bytesOf = (vector: Float32Array) => new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength).slice()
const vectorOf = (bytes: Uint8Array) => new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)

interface Location {
  readonly segment: Segment.Segment
  readonly slot: number
}

interface Settings {
  readonly flushEvery: number
  readonly maxSegments: number
}

/** One folder of segments: the index of stored records and the records waiting to be written. */
class Namespace {
  readonly index = new Map<string, Location>()
  readonly pending = new Map<string, Uint8Array>()
  segments: Array<Segment.Segment> = []
  valueBytes: number | undefined
  /** Writes run one at a time; this is the last one queued. */
  private writing: Promise<void> = Promise.resolve()

  constructor(readonly dir: string, readonly flushEvery: number) {}

  add(segment: Segment.Segment): void {
    this.segments.push(segment)
    this.valueBytes ??= segment.valueBytes
    segment.keys.forEach((key, slot) => this.index.set(key, { segment, slot }))
  }

  get(key: string): Uint8Array | undefined {
    const waiting = this.pending.get(key)
    if (waiting !== undefined) return waiting
    const at = this.index.get(key)
    return at === undefined ? undefined : Segment.readValue(at.segment, at.slot)
  }

  /**
   * Buffer a record (the caller gives up `value`). Returns the write's promise when this record filled the buffer,
   * and nothing otherwise.
   */
  set(key: string, value: Uint8Array): Promise<void> | undefined {
    if (this.index.has(key) || this.pending.has(key)) return undefined
    this.valueBytes ??= value.length
    if (value.length !== this.valueBytes) {
      throw new Error(`a record of ${value.length} bytes in a folder of ${this.valueBytes}-byte records`)
    }
    this.pending.set(key, value)
    return this.pending.size >= this.flushEvery ? this.flush() : undefined
  }

  flush(): Promise<void> {
    const run = this.writing.then(() => this.writePending())
    this.writing = run.catch(() => undefined)
    return run
  }

  private async writePending(): Promise<void> {
    if (this.pending.size === 0 || this.valueBytes === undefined) return
    const entries = [...this.pending]
    const segment = await Segment.write(this.dir, this.valueBytes, entries.map(([k]) => k), (i) => entries[i]![1])
    this.add(segment)
    for (const [key] of entries) this.pending.delete(key)
  }

  /** Merge every segment into one, then delete the merged files. */
  async compact(): Promise<void> {
    const old = this.segments
    const locations = [...this.index]
    const merged = await Segment.write(this.dir, this.valueBytes!, locations.map(([k]) => k), (i) => {
      const { segment, slot } = locations[i]![1]
      return Segment.readValue(segment, slot)
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
const openNamespace = async (dir: string, settings: Settings, warn: (message: string) => void): Promise<Namespace> => {
  await fs.mkdir(dir, { recursive: true })
  const ns = new Namespace(dir, settings.flushEvery)
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
    } else if (ns.valueBytes !== undefined && opened.valueBytes !== ns.valueBytes) {
      warn(`embedding cache: ignoring ${file}: ${opened.valueBytes}-byte records in a folder of ${ns.valueBytes}-byte records`)
      await opened.handle.close()
    } else {
      ns.add(opened)
    }
  }
  if (ns.segments.length > settings.maxSegments) await ns.compact()
  return ns
}

/**
 * A disk cache rooted at `dir`. Buffered records are written when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (dir: string, options: DiskCacheOptions = {}): Effect.Effect<EmbeddingCacheShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const settings: Settings = { flushEvery: options.flushEvery ?? 512, maxSegments: options.maxSegments ?? 16 }
    const opening = new Map<string, Promise<Namespace>>()
    const opened = new Map<string, Namespace>()
    const warnings: Array<string> = []
    const warn = (message: string) => warnings.push(message)
    const logWarnings = Effect.suspend(() =>
      warnings.length === 0 ? Effect.void : Effect.forEach(warnings.splice(0), (w) => Effect.logWarning(w), { discard: true })
    )

    const namespace = (folder: string): Promise<Namespace> => {
      let pending = opening.get(folder)
      if (pending === undefined) {
        pending = openNamespace(path.join(dir, folder), settings, warn).then((ns) => {
          opened.set(folder, ns)
          return ns
        })
        // A failed open is retried by the next call instead of being remembered.
        pending.catch(() => opening.delete(folder))
        opening.set(folder, pending)
      }
      return pending
    }

    /**
     * Run `job` on a namespace: synchronously once the namespace is open (reads are synchronous, see
     * `Segment.readValue`), and through its opening the first time; a promise `job` returns is awaited. Cache
     * failures never fail an embedding run: they are logged and the cache behaves as a miss.
     */
    const attempt = <A>(what: string, folder: string, job: (ns: Namespace) => A | Promise<A>, fallback: A): Effect.Effect<A> => {
      const ns = opened.get(folder)
      const run: Effect.Effect<A | Promise<A>, Cause.UnknownException> = ns !== undefined
        ? Effect.try(() => job(ns))
        : Effect.tryPromise(() => namespace(folder).then(job))
      return run.pipe(
        Effect.flatMap((a) => (a instanceof Promise ? Effect.tryPromise(() => a) : Effect.succeed(a))),
        Effect.catchAll((error) =>
          Effect.logWarning(`embedding cache in ${dir}: ${what} failed: ${error.cause}`).pipe(Effect.as(fallback))
        ),
        Effect.zipLeft(logWarnings)
      )
    }

    const forAll = (what: string, job: (ns: Namespace) => Promise<void>) =>
      Effect.tryPromise(async () => {
        for (const ns of opening.values()) await job(await ns)
      }).pipe(
        Effect.catchAll((error) => Effect.logWarning(`embedding cache in ${dir}: ${what} failed: ${error.cause}`)),
        Effect.zipLeft(logWarnings)
      )

    yield* Effect.addFinalizer(() => forAll("close", (ns) => ns.close()))
    yield* Effect.forkScoped(
      forAll("write", (ns) => ns.flush()).pipe(Effect.delay(options.flushInterval ?? "5 seconds"), Effect.forever)
    )

    return {
      get: (name, key) => attempt("read", folderOf(name), (ns) => mapDefined(ns.get(keyOf(key)), vectorOf), undefined),
      set: (name, key, vector) => attempt("write", folderOf(name), (ns) => ns.set(keyOf(key), bytesOf(vector)), undefined),
      knownContentHash: (fingerprint) =>
        attempt("read", FILES_FOLDER, (ns) => mapDefined(ns.get(keyOf(fingerprint)), (b) => Buffer.from(b).toString("hex")), undefined),
      rememberContentHash: (fingerprint, hash) =>
        attempt("write", FILES_FOLDER, (ns) => ns.set(keyOf(fingerprint), Buffer.from(keyOf(hash), "hex")), undefined)
    } satisfies EmbeddingCacheShape
  })

const mapDefined = <A, B>(a: A | undefined, f: (a: A) => B): B | undefined => (a === undefined ? undefined : f(a))

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
