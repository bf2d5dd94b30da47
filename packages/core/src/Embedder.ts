/**
 * Turns samples into embeddings with a loaded backbone. Around the plugin's single `embedBatch` call it adds:
 * reading and hashing, the embedding cache, decoding with bounded concurrency, batching, shape checks, progress
 * events, and tolerance of bad images (each is skipped with its reason; the run goes on).
 *
 * The work is a pipeline of stages that run at the same time, each holding a bounded number of items, so memory
 * does not grow with the dataset:
 *
 * 1. prepare a batch (two batches at a time): look each sample up in the cache (with a cache that remembers file
 *    fingerprints, an unchanged file whose vector is cached is not even read), then read, hash and decode the rest,
 *    up to `decodeConcurrency` images at once, and normalise them into one float tensor;
 * 2. run the backbone on a batch while stage 1 prepares the next ones; store the new vectors in the cache.
 *
 * With `mirror`, each image is also embedded flipped left to right, from the same decode and in the same backbone
 * calls; heads train on both vectors and predict the mean of both (see `Pipeline`).
 *
 * @since 0.1.0
 */
import { Chunk, Effect, Option, Stream } from "effect"
import * as fs from "node:fs"
import type { LoadedBackbone } from "./Backbone.js"
import { CoreError } from "./CoreError.js"
import { contentHash, EmbeddingCache, fileFingerprint, namespaceOf } from "./EmbeddingCache.js"
import * as Matrix from "./Matrix.js"
import { decodeRgb, readSource, toTensor } from "./Preprocess.js"
import { report } from "./Progress.js"
import { describeSource, type Sample, type SkippedSample } from "./Sample.js"

/**
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

type Prepared =
  | {
    readonly _tag: "Cached"
    readonly sample: Sample
    readonly hash: string
    readonly vector: Float32Array
    readonly mirrored: Float32Array | undefined
  }
  | { readonly _tag: "Decoded"; readonly sample: Sample; readonly hash: string; readonly rgb: Uint8Array }
  | { readonly _tag: "Skipped"; readonly sample: Sample; readonly reason: string }

/** A sample the first look could not finish; `file` holds what the cache knew about its file. */
interface Pending {
  readonly _tag: "Pending"
  readonly sample: Sample
  readonly file?: { readonly fingerprint: string; readonly hash: string | undefined }
}

interface Assembled {
  readonly group: ReadonlyArray<Prepared>
  /**
   * The decoded images of the group, normalised, in group order (then their mirror images, with `mirror`);
   * undefined when all were cached or skipped.
   */
  readonly input: { readonly tensor: Float32Array; readonly count: number } | undefined
}

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

/** The pipeline, one array of results per batch. */
const embedGroups = <E, R>(
  backbone: LoadedBackbone,
  samples: Stream.Stream<Sample, E, R>,
  options: EmbedOptions
): Stream.Stream<ReadonlyArray<EmbedResult>, CoreError | E, R> =>
  Stream.unwrap(Effect.gen(function*() {
    const { info } = backbone
    const dim = info.embeddingSize
    const spec = info.preprocess
    const batchSize = Math.max(1, Math.min(options.batchSize ?? 16, backbone.maxBatchSize))
    const mirror = options.mirror === true
    const cache = Option.getOrUndefined(yield* Effect.serviceOption(EmbeddingCache))
    const namespace = namespaceOf(backbone)
    const mirrorNamespace = namespaceOf(backbone, "mirror")

    const decodePermits = yield* Effect.makeSemaphore(Math.max(1, options.decodeConcurrency ?? 4))

    const lookupIn = (ns: string, hash: string) =>
      Effect.map(cache ? cache.get(ns, hash) : Effect.succeed(undefined), (hit) => (hit?.length === dim ? hit : undefined))
    /** The cached vectors of an image: a hit needs the mirror image's vector too when `mirror` is on. */
    const lookup = (hash: string) =>
      Effect.gen(function*() {
        const vector = yield* lookupIn(namespace, hash)
        if (vector === undefined || !mirror) return vector && { vector, mirrored: undefined }
        const mirrored = yield* lookupIn(mirrorNamespace, hash)
        return mirrored && { vector, mirrored }
      })

    /**
     * The cheap first look, one sample after another: for a file, its fingerprint and the content hash the cache
     * remembers for it; when that hash has a cached vector, the sample is done without reading the file.
     */
    const recall = (sample: Sample): Effect.Effect<Prepared | Pending> =>
      Effect.gen(function*() {
        const { source } = sample
        if (typeof source !== "string" || cache?.knownContentHash === undefined) return { _tag: "Pending", sample } as const
        // Synchronous: a stat is a microsecond system call, cheaper than a thread-pool round trip.
        const stat = yield* Effect.try(() => fs.statSync(source, { bigint: true })).pipe(Effect.orElseSucceed(() => undefined))
        if (stat === undefined) return { _tag: "Pending", sample } as const
        const fingerprint = fileFingerprint(source, stat)
        const hash = yield* cache.knownContentHash(fingerprint)
        const hit = hash === undefined ? undefined : yield* lookup(hash)
        return hit === undefined || hash === undefined
          ? { _tag: "Pending", sample, file: { fingerprint, hash } } as const
          : { _tag: "Cached", sample, hash, ...hit } as const
      })

    /** The expensive part, run `decodeConcurrency` at a time: read, hash, look up again, decode. */
    const load = ({ file, sample }: Pending): Effect.Effect<Prepared> =>
      Effect.gen(function*() {
        const bytes = yield* readSource(sample.source)
        const hash = contentHash(bytes)
        if (file !== undefined && file.hash !== hash) yield* cache!.rememberContentHash!(file.fingerprint, hash)
        const hit = hash === file?.hash ? undefined : yield* lookup(hash)
        if (hit) return { _tag: "Cached", sample, hash, ...hit } as const
        const rgb = yield* decodeRgb(bytes, spec, describeSource(sample.source))
        return { _tag: "Decoded", sample, hash, rgb } as const
      }).pipe(
        Effect.catchAll((error) => Effect.succeed({ _tag: "Skipped", sample, reason: error.message } as const)),
        decodePermits.withPermits(1)
      )

    /** Prepare one batch: recall every sample, load the rest concurrently, normalise the decoded images. */
    const prepare = (group: ReadonlyArray<Sample>) =>
      Effect.gen(function*() {
        const prepared = yield* Effect.forEach(group, recall)
        const pending = prepared.flatMap((p, i) => (p._tag === "Pending" ? [i] : []))
        const loaded = yield* Effect.forEach(pending, (i) => load(prepared[i] as Pending), { concurrency: "unbounded" })
        loaded.forEach((p, j) => (prepared[pending[j]!] = p))
        return assemble(prepared as Array<Prepared>)
      })

    const assemble = (group: ReadonlyArray<Prepared>): Assembled => {
      const decoded = group.filter((p) => p._tag === "Decoded")
      if (decoded.length === 0) return { group, input: undefined }
      return { group, input: { tensor: toTensor(decoded.map((p) => p.rgb), spec, mirror), count: decoded.length } }
    }

    const infer = ({ group, input }: Assembled) =>
      Effect.gen(function*() {
        const output = input === undefined
          ? new Float32Array(0)
          : yield* embedTensor(backbone, input.tensor, (mirror ? 2 : 1) * input.count)
        const mirrorOffset = (input?.count ?? 0) * dim
        const results: Array<EmbedResult> = []
        let k = 0
        for (const p of group) {
          if (p._tag === "Skipped") {
            results.push(p)
          } else if (p._tag === "Cached") {
            results.push({ _tag: "Embedded", sample: p.sample, contentHash: p.hash, vector: p.vector, mirrored: p.mirrored, cached: true })
          } else {
            const vector = output.subarray(k * dim, (k + 1) * dim)
            const mirrored = mirror ? output.subarray(mirrorOffset + k * dim, mirrorOffset + (k + 1) * dim) : undefined
            k++
            if (cache) {
              yield* cache.set(namespace, p.hash, vector)
              if (mirrored) yield* cache.set(mirrorNamespace, p.hash, mirrored)
            }
            results.push({ _tag: "Embedded", sample: p.sample, contentHash: p.hash, vector, mirrored, cached: false })
          }
        }
        return results
      })

    return samples.pipe(
      Stream.grouped(batchSize),
      // Two batches in preparation at once, so decoding never waits for a batch's slowest image.
      Stream.mapEffect((chunk) => prepare(Chunk.toReadonlyArray(chunk)), { concurrency: 2 }),
      // One prepared batch waits while the backbone works on the current one.
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
): Stream.Stream<EmbedResult, CoreError | E, R> => Stream.flattenIterables(embedGroups(backbone, samples, options))

/**
 * Embed samples into a matrix (one row per embedded sample), reporting progress per batch.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embedSamples = Effect.fn("Embedder.embedSamples")(function*(
  backbone: LoadedBackbone,
  samples: ReadonlyArray<Sample>,
  options: EmbedOptions = {}
) {
  const { info } = backbone
  const dim = info.embeddingSize
  const total = samples.length
  const data = new Float32Array(total * dim)
  const mirroredData = options.mirror === true ? new Float32Array(total * dim) : undefined
  const embedded: Array<Sample> = []
  const contentHashes: Array<string> = []
  const skipped: Array<SkippedSample> = []
  let cacheHits = 0
  let done = 0
  yield* Stream.runForEach(embedGroups(backbone, Stream.fromIterable(samples), options), (group) => {
    for (const r of group) {
      if (r._tag === "Skipped") {
        skipped.push({ sample: r.sample, reason: r.reason })
      } else {
        data.set(r.vector, embedded.length * dim)
        if (mirroredData && r.mirrored) mirroredData.set(r.mirrored, embedded.length * dim)
        embedded.push(r.sample)
        contentHashes.push(r.contentHash)
        if (r.cached) cacheHits++
      }
    }
    done += group.length
    return report({ stage: "embed", done, total, detail: info.id })
  })
  const rows = embedded.length
  const matrix = (values: Float32Array) => Matrix.make(rows, dim, rows === total ? values : values.slice(0, rows * dim))
  return {
    backboneId: info.id,
    vectors: matrix(data),
    ...(mirroredData ? { mirrored: matrix(mirroredData) } : {}),
    samples: embedded,
    contentHashes,
    skipped,
    cacheHits
  } satisfies Embeddings
})
