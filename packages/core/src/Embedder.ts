/**
 * Turns samples into embeddings with a loaded backbone. Around the plugin's single `embedBatch` call it adds:
 * reading and hashing, the embedding cache, decoding with bounded concurrency, batching, shape checks, progress
 * events, and tolerance of bad images (each is skipped with its reason; the run goes on).
 *
 * The work is a pipeline of stages that run at the same time, each holding a bounded number of items, so memory
 * does not grow with the dataset:
 *
 * 1. prepare a batch (two batches at a time): look its samples up in the cache (with a cache that remembers file
 *    fingerprints, an unchanged file whose vector is cached is not even read), then read and hash the rest, look
 *    those up, and decode the images still missing, up to `decodeConcurrency` images at once, and normalise them
 *    into one float tensor;
 * 2. run the backbone on a batch while stage 1 prepares the next ones; store the new vectors in the cache.
 *
 * The cache is asked once per batch and namespace (`EmbeddingCache.getMany` / `setMany`), not once per image: a
 * database cache then costs a round trip per batch.
 *
 * With `mirror`, each image is also embedded flipped left to right, from the same decode and in the same backbone
 * calls; heads train on both vectors and predict the mean of both (see `Pipeline`).
 *
 * With several backbones (`embedSamplesMany`), one pipeline serves them all: an image is read and hashed once and
 * decoded once per distinct decoding the backbones ask for, and each backbone gets its own normalised batch.
 *
 * @since 0.1.0
 */
import { Chunk, Effect, Option, Stream } from "effect"
// node:fs, not FileSystem: a synchronous stat with nanosecond change time for file fingerprints (see `recall`).
import * as fs from "node:fs"
import type { LoadedBackbone } from "./Backbone.js"
import { CoreError } from "./CoreError.js"
import {
  type CacheEntry,
  contentHash,
  EmbeddingCache,
  fileFingerprint,
  getMany,
  knownContentHashes,
  namespaceOf,
  setMany
} from "./EmbeddingCache.js"
import * as Matrix from "./Matrix.js"
import { decodeKey, decodeRgb, type PreprocessSpec, readSource, toTensor } from "./Preprocess.js"
import { report } from "./Progress.js"
import { describeSource, type Sample, type SkippedSample } from "./Sample.js"

/**
 * How images are embedded: the batch size, how many images are read and decoded at once, and whether mirror images
 * are embedded too.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmbedOptions {
  /** Images per `embedBatch` call; capped by the backbone's `maxBatchSize`. Default 16. */
  readonly batchSize?: number
  /** Images read, hashed and decoded at once. Default 4. */
  readonly decodeConcurrency?: number
  /** Also embed the mirror image of each sample (cached apart from the originals). Default false. */
  readonly mirror?: boolean
}

/**
 * The embeddings of a list of samples by one backbone: one vector per sample that could be read and decoded, the
 * samples skipped with their reasons, and how many vectors came from the cache.
 *
 * @since 0.1.0
 * @category models
 */
export interface Embeddings {
  readonly backboneId: string
  /** One row per embedded sample, in input order. */
  readonly vectors: Matrix.Matrix
  /** With the `mirror` option: the vectors of the mirror images, rows aligned with `vectors`. */
  readonly mirrored?: Matrix.Matrix
  /** The samples that were embedded (input order, skipped ones left out). */
  readonly samples: ReadonlyArray<Sample>
  /** sha256 of each embedded sample's bytes, aligned with `samples`. */
  readonly contentHashes: ReadonlyArray<string>
  readonly skipped: ReadonlyArray<SkippedSample>
  /** How many vectors came from the cache. */
  readonly cacheHits: number
}

/**
 * The outcome for one sample, as `embedStream` emits it.
 *
 * @since 0.1.0
 * @category models
 */
export type EmbedResult =
  | {
    readonly _tag: "Embedded"
    readonly sample: Sample
    readonly contentHash: string
    readonly vector: Float32Array
    /** With the `mirror` option: the vector of the mirror image (else undefined). */
    readonly mirrored: Float32Array | undefined
    /** True when the vector came from the cache. */
    readonly cached: boolean
  }
  | { readonly _tag: "Skipped"; readonly sample: Sample; readonly reason: string }

/** One backbone's part of a run over several: its cache namespaces and how its images are decoded. */
interface Lane {
  readonly backbone: LoadedBackbone
  readonly dim: number
  readonly spec: PreprocessSpec
  readonly namespace: string
  readonly mirrorNamespace: string
  /** Lanes with the same key decode an image the same way, so they share one decode. */
  readonly decodeKey: string
}

/** An image's cached vectors for one lane. */
interface Hit {
  readonly vector: Float32Array
  readonly mirrored: Float32Array | undefined
}

type Prepared =
  | {
    readonly _tag: "Ready"
    readonly sample: Sample
    readonly hash: string
    /** Per lane: the cached vectors, or undefined when the lane must embed the image. */
    readonly hits: ReadonlyArray<Hit | undefined>
    /** The decoded image per decode key of the lanes that must embed it. */
    readonly rgb: ReadonlyMap<string, Uint8Array>
  }
  | { readonly _tag: "Skipped"; readonly sample: Sample; readonly reason: string }

/** A sample the first look could not finish; `file` holds what the cache knew about its file. */
interface Pending {
  readonly _tag: "Pending"
  readonly sample: Sample
  readonly file?: {
    readonly fingerprint: string
    readonly hash: string | undefined
    /** The lanes' lookups under `hash`, when it is known. */
    readonly hits: ReadonlyArray<Hit | undefined>
  }
}

interface Assembled {
  readonly group: ReadonlyArray<Prepared>
  /**
   * Per lane: the images of the group it must embed, normalised, in group order (then their mirror images, with
   * `mirror`); undefined when it has none.
   */
  readonly inputs: ReadonlyArray<{ readonly tensor: Float32Array; readonly count: number } | undefined>
}

/** One sample's outcome in a run over several backbones. */
type MultiResult =
  | {
    readonly _tag: "Embedded"
    readonly sample: Sample
    readonly contentHash: string
    /** Per backbone, in the order given. */
    readonly vectors: ReadonlyArray<Hit & { readonly cached: boolean }>
  }
  | { readonly _tag: "Skipped"; readonly sample: Sample; readonly reason: string }

/**
 * Run a backbone on `rows` normalised images of `tensor`, at most `maxBatchSize` per call, and check that it
 * returned one embedding per image.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embedTensor = (
  backbone: LoadedBackbone,
  tensor: Float32Array,
  rows: number
): Effect.Effect<Float32Array, CoreError> =>
  Effect.gen(function*() {
    const { info, maxBatchSize } = backbone
    const dim = info.embeddingSize
    const perImage = info.preprocess.size * info.preprocess.size * 3
    const output = new Float32Array(rows * dim)
    for (let start = 0; start < rows; start += maxBatchSize) {
      const count = Math.min(maxBatchSize, rows - start)
      const part = yield* backbone.embedBatch(tensor.subarray(start * perImage, (start + count) * perImage), count).pipe(
        Effect.mapError((e) =>
          new CoreError({ reason: "BackboneFailed", field: info.id, message: `${info.id} failed: ${e.message}`, cause: e })
        )
      )
      if (part.length !== count * dim) {
        return yield* new CoreError({
          reason: "ShapeMismatch",
          field: info.id,
          message: `${info.id} returned ${part.length} values for ${count} images; expected ${dim} per image`
        })
      }
      output.set(part, start * dim)
    }
    return output
  })

/**
 * The pipeline over one or more backbones, one array of results per batch. Each image is read and hashed once and
 * decoded once per distinct decoding among the backbones that do not have it cached; each backbone then gets its own
 * normalised batch.
 */
const embedGroups = <E, R>(
  backbones: ReadonlyArray<LoadedBackbone>,
  samples: Stream.Stream<Sample, E, R>,
  options: EmbedOptions
): Stream.Stream<ReadonlyArray<MultiResult>, CoreError | E, R> =>
  Stream.unwrap(Effect.gen(function*() {
    const lanes: ReadonlyArray<Lane> = backbones.map((backbone) => ({
      backbone,
      dim: backbone.info.embeddingSize,
      spec: backbone.info.preprocess,
      namespace: namespaceOf(backbone),
      mirrorNamespace: namespaceOf(backbone, "mirror"),
      decodeKey: decodeKey(backbone.info.preprocess)
    }))
    const batchSize = Math.max(1, Math.min(options.batchSize ?? 16, ...backbones.map((b) => b.maxBatchSize)))
    const mirror = options.mirror === true
    const cache = Option.getOrUndefined(yield* Effect.serviceOption(EmbeddingCache))

    const decodePermits = yield* Effect.makeSemaphore(Math.max(1, options.decodeConcurrency ?? 4))
    // Each lane's batch tensors, reused from batch to batch (at most four are in use at once: two batches in
    // preparation, one waiting, one in the backbone). A fresh 10 MB tensor per batch of 16 at 224 x 224 cost a
    // garbage collection every few batches and page faults on first write.
    const spareTensors = lanes.map((): Array<Float32Array> => [])
    const batchTensor = (l: number) => {
      const { size } = lanes[l]!.spec
      return spareTensors[l]!.pop() ?? new Float32Array((mirror ? 2 : 1) * batchSize * size * size * 3)
    }

    /**
     * The cached vectors of some images, per image then per lane, one cache round trip per namespace: a hit needs
     * the mirror image's vector too when `mirror` is on.
     */
    const lookupMany = (hashes: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<ReadonlyArray<Hit | undefined>>> =>
      Effect.gen(function*() {
        if (cache === undefined || hashes.length === 0) return hashes.map(() => lanes.map(() => undefined))
        const fetch = (ns: string, dim: number, of: ReadonlyArray<string>) =>
          Effect.map(getMany(cache, ns, of), (vectors) => vectors.map((v) => (v?.length === dim ? v : undefined)))
        const perLane = yield* Effect.forEach(lanes, (lane) =>
          Effect.gen(function*() {
            const vectors = yield* fetch(lane.namespace, lane.dim, hashes)
            if (!mirror) return vectors.map((vector) => vector && { vector, mirrored: undefined })
            const found = hashes.filter((_, i) => vectors[i] !== undefined)
            const mirrored = new Map((yield* fetch(lane.mirrorNamespace, lane.dim, found)).map((m, j) => [found[j]!, m]))
            return vectors.map((vector, i): Hit | undefined => {
              const m = mirrored.get(hashes[i]!)
              return vector && m && { vector, mirrored: m }
            })
          }))
        return hashes.map((_, i) => perLane.map((hits) => hits[i]))
      })

    /**
     * The cheap first look at a batch: for each file, its fingerprint and the content hash the cache remembers for
     * it; a sample every backbone has a cached vector for under that hash is done without reading the file.
     */
    const recall = (group: ReadonlyArray<Sample>): Effect.Effect<Array<Prepared | Pending>> =>
      Effect.gen(function*() {
        const fingerprints = group.map(({ source }) => {
          if (typeof source !== "string" || cache?.knownContentHash === undefined) return undefined
          // Node's stat rather than FileSystem's: synchronous (a microsecond system call, cheaper than a thread-pool
          // round trip), and with the change time in nanoseconds that the fingerprint needs (see `EmbeddingCache.FileStat`).
          try {
            return fileFingerprint(source, fs.statSync(source, { bigint: true }))
          } catch {
            return undefined
          }
        })
        const asked = fingerprints.filter((f) => f !== undefined)
        const hashOf = new Map(cache === undefined ? [] : (yield* knownContentHashes(cache, asked)).map((hash, k) => [asked[k]!, hash]))
        const files = fingerprints.map((fingerprint) => (fingerprint === undefined ? undefined : { fingerprint, hash: hashOf.get(fingerprint) }))
        const known = files.flatMap((file) => (file?.hash === undefined ? [] : [file.hash]))
        const hitsOf = new Map((yield* lookupMany(known)).map((hits, k) => [known[k]!, hits]))
        return group.map((sample, i): Prepared | Pending => {
          const file = files[i]
          if (file === undefined) return { _tag: "Pending", sample }
          const hits = file.hash === undefined ? [] : hitsOf.get(file.hash)!
          return file.hash !== undefined && hits.every((hit) => hit !== undefined)
            ? { _tag: "Ready", sample, hash: file.hash, hits, rgb: new Map() }
            : { _tag: "Pending", sample, file: { fingerprint: file.fingerprint, hash: file.hash, hits } }
        })
      })

    const skip = (sample: Sample) => (error: { readonly message: string }) =>
      Effect.succeed({ _tag: "Skipped", sample, reason: error.message } as const)

    /** Read and hash a sample the first look could not finish; the hits are known when its file's hash was right. */
    const read = ({ file, sample }: Pending) =>
      Effect.gen(function*() {
        const bytes = yield* readSource(sample.source)
        const hash = contentHash(bytes)
        if (file !== undefined && file.hash !== hash) yield* cache!.rememberContentHash!(file.fingerprint, hash)
        return { _tag: "Read", sample, bytes, hash, hits: file !== undefined && hash === file.hash ? file.hits : undefined } as const
      }).pipe(Effect.catchAll(skip(sample)), decodePermits.withPermits(1))

    /** Decode an image once per decoding among the lanes that must embed it. */
    const decode = (sample: Sample, bytes: Uint8Array, hash: string, hits: ReadonlyArray<Hit | undefined>): Effect.Effect<Prepared> =>
      Effect.gen(function*() {
        const rgb = new Map<string, Uint8Array>()
        for (const [l, lane] of lanes.entries()) {
          if (hits[l] !== undefined || rgb.has(lane.decodeKey)) continue
          rgb.set(lane.decodeKey, yield* decodeRgb(bytes, lane.spec, describeSource(sample.source)))
        }
        return { _tag: "Ready", sample, hash, hits, rgb } as const
      }).pipe(Effect.catchAll(skip(sample)), decodePermits.withPermits(1))

    /**
     * Prepare one batch: recall every sample, read and hash the rest (`decodeConcurrency` at a time), look up the
     * new hashes in one go, decode what is missing, and normalise the decoded images per lane.
     */
    const prepare = (group: ReadonlyArray<Sample>) =>
      Effect.gen(function*() {
        const prepared = yield* recall(group)
        const pending = prepared.flatMap((p, i) => (p._tag === "Pending" ? [i] : []))
        const reads = yield* Effect.forEach(pending, (i) => read(prepared[i] as Pending), { concurrency: "unbounded" })
        const unknown = [...new Set(reads.flatMap((r) => (r._tag === "Read" && r.hits === undefined ? [r.hash] : [])))]
        const hitsOf = new Map((yield* lookupMany(unknown)).map((hits, k) => [unknown[k]!, hits]))
        const loaded = yield* Effect.forEach(reads, (r) =>
          r._tag === "Skipped" ? Effect.succeed(r) : decode(r.sample, r.bytes, r.hash, r.hits ?? hitsOf.get(r.hash)!), { concurrency: "unbounded" })
        loaded.forEach((p, j) => (prepared[pending[j]!] = p))
        return assemble(prepared as Array<Prepared>)
      })

    const assemble = (group: ReadonlyArray<Prepared>): Assembled => ({
      group,
      inputs: lanes.map((lane, l) => {
        const rgb = group.flatMap((p) => (p._tag === "Ready" && p.hits[l] === undefined ? [p.rgb.get(lane.decodeKey)!] : []))
        return rgb.length === 0 ? undefined : { tensor: toTensor(rgb, lane.spec, mirror, batchTensor(l)), count: rgb.length }
      })
    })

    /** Lane `l`'s vectors for the group's images, new ones stored in the cache. */
    const inferLane = (group: ReadonlyArray<Prepared>, l: number, input: Assembled["inputs"][number]) =>
      Effect.gen(function*() {
        const lane = lanes[l]!
        const { dim } = lane
        const output = input === undefined ? new Float32Array(0) : yield* embedTensor(lane.backbone, input.tensor, (mirror ? 2 : 1) * input.count)
        // `embedTensor` copied the vectors out, so the batch tensor is free for a later batch.
        if (input !== undefined) spareTensors[l]!.push(input.tensor)
        const mirrorOffset = (input?.count ?? 0) * dim
        const vectors = new Map<Prepared, Hit & { readonly cached: boolean }>()
        const fresh: Array<CacheEntry> = []
        const freshMirrored: Array<CacheEntry> = []
        let k = 0
        for (const p of group) {
          if (p._tag !== "Ready") continue
          const hit = p.hits[l]
          if (hit !== undefined) {
            vectors.set(p, { ...hit, cached: true })
            continue
          }
          const vector = output.subarray(k * dim, (k + 1) * dim)
          const mirrored = mirror ? output.subarray(mirrorOffset + k * dim, mirrorOffset + (k + 1) * dim) : undefined
          k++
          fresh.push({ contentHash: p.hash, vector })
          if (mirrored) freshMirrored.push({ contentHash: p.hash, vector: mirrored })
          vectors.set(p, { vector, mirrored, cached: false })
        }
        if (cache) {
          yield* setMany(cache, lane.namespace, fresh)
          yield* setMany(cache, lane.mirrorNamespace, freshMirrored)
        }
        return vectors
      })

    const infer = ({ group, inputs }: Assembled) =>
      Effect.gen(function*() {
        const perLane = yield* Effect.forEach(inputs, (input, l) => inferLane(group, l, input))
        return group.map((p): MultiResult =>
          p._tag === "Skipped"
            ? p
            : { _tag: "Embedded", sample: p.sample, contentHash: p.hash, vectors: perLane.map((vectors) => vectors.get(p)!) }
        )
      })

    return samples.pipe(
      Stream.grouped(batchSize),
      // Two batches in preparation at once, so decoding never waits for a batch's slowest image.
      Stream.mapEffect((chunk) => prepare(Chunk.toReadonlyArray(chunk)), { concurrency: 2 }),
      // One prepared batch waits while the backbones work on the current one.
      Stream.buffer({ capacity: 1 }),
      Stream.mapEffect(infer)
    )
  }))

/**
 * Embed a stream of samples, emitting one result per sample in input order. Memory stays bounded whatever the
 * stream's length.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embedStream = <E, R>(
  backbone: LoadedBackbone,
  samples: Stream.Stream<Sample, E, R>,
  options: EmbedOptions = {}
): Stream.Stream<EmbedResult, CoreError | E, R> =>
  Stream.flattenIterables(embedGroups([backbone], samples, options)).pipe(
    Stream.map((r): EmbedResult => r._tag === "Skipped" ? r : { ...r.vectors[0]!, _tag: "Embedded", sample: r.sample, contentHash: r.contentHash })
  )

/**
 * Embed samples with several backbones at once, one `Embeddings` per backbone in the order given (each as
 * `embedSamples` would return it). Each image is read and hashed once, and decoded once per distinct decoding
 * (size, resize) among the backbones that need it, however many backbones there are. Reports progress per batch.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embedSamplesMany = Effect.fn("Embedder.embedSamplesMany")(function*(
  backbones: ReadonlyArray<LoadedBackbone>,
  samples: ReadonlyArray<Sample>,
  options: EmbedOptions = {}
) {
  const total = samples.length
  const dims = backbones.map((b) => b.info.embeddingSize)
  const data = dims.map((dim) => new Float32Array(total * dim))
  const mirroredData = options.mirror === true ? dims.map((dim) => new Float32Array(total * dim)) : undefined
  const embedded: Array<Sample> = []
  const contentHashes: Array<string> = []
  const skipped: Array<SkippedSample> = []
  const cacheHits = dims.map(() => 0)
  let done = 0
  const detail = backbones.map((b) => b.info.id).join(" + ")
  yield* Stream.runForEach(embedGroups(backbones, Stream.fromIterable(samples), options), (group) => {
    for (const r of group) {
      if (r._tag === "Skipped") {
        skipped.push({ sample: r.sample, reason: r.reason })
        continue
      }
      r.vectors.forEach((v, l) => {
        data[l]!.set(v.vector, embedded.length * dims[l]!)
        if (mirroredData && v.mirrored) mirroredData[l]!.set(v.mirrored, embedded.length * dims[l]!)
        if (v.cached) cacheHits[l]!++
      })
      embedded.push(r.sample)
      contentHashes.push(r.contentHash)
    }
    done += group.length
    return report({ stage: "embed", done, total, detail })
  })
  const rows = embedded.length
  const matrix = (values: Float32Array, dim: number) => Matrix.make(rows, dim, rows === total ? values : values.slice(0, rows * dim))
  return backbones.map((backbone, l): Embeddings => ({
    backboneId: backbone.info.id,
    vectors: matrix(data[l]!, dims[l]!),
    ...(mirroredData ? { mirrored: matrix(mirroredData[l]!, dims[l]!) } : {}),
    samples: embedded,
    contentHashes,
    skipped,
    cacheHits: cacheHits[l]!
  }))
})

/**
 * Embed samples into a matrix (one row per embedded sample), reporting progress per batch.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embedSamples = (
  backbone: LoadedBackbone,
  samples: ReadonlyArray<Sample>,
  options: EmbedOptions = {}
): Effect.Effect<Embeddings, CoreError> => Effect.map(embedSamplesMany([backbone], samples, options), (all) => all[0]!)
