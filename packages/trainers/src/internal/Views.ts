/**
 * Augmented views of images, embedded through a backbone. Each image is read and decoded once and all of its views
 * are cut from that decode (`Augment.augmentViews`); views are normalised in batches and embedded while the next
 * images are decoded (sharp works in libuv's pool, the ONNX session in its worker thread). An image that cannot be
 * read or decoded is skipped with its reason; the run goes on.
 *
 * View `v` of an image is drawn from `Augment.deriveSeed(seed, key, v)`, where `key` comes from the image's content
 * hash: the same seed, image and options give the same pixels wherever the image sits in the dataset, and the same
 * view of an image is the same crop for every backbone. With an `EmbeddingCache` in context the vectors are cached
 * under the backbone, the options, the seed and the view, so a retrain embeds only the views of new images; the
 * cache is asked for 16 images at a time and given a batch's vectors at once (`getMany`, `setMany`).
 */
import { Augment, CoreError, EmbeddingCache, Matrix, Preprocess, Progress, Sample } from "@loupe/core"
import type { Backbone } from "@loupe/core"
import { Chunk, Effect, Option, Stream } from "effect"
import { hash } from "node:crypto"

export interface ViewOptions {
  /** Views per image. */
  readonly views: number
  readonly augment: Augment.AugmentOptions
  readonly seed: number
  /** Images per `embedBatch` call (capped by the backbone's `maxBatchSize`). Default 32. */
  readonly batchSize?: number
  /** Images read and decoded at once. Default 4. */
  readonly decodeConcurrency?: number
}

export interface EmbeddedViews {
  /** `views` rows per kept image, image-major: row `k * views + v` is view `v` of `kept[k]`. */
  readonly vectors: Matrix.Matrix
  /** Indices (into the input samples) of the images that were embedded, in input order. */
  readonly kept: ReadonlyArray<number>
  readonly skipped: ReadonlyArray<Sample.SkippedSample>
}

/** An image that could not be read or decoded, with the reason. */
interface Skipped {
  readonly _tag: "Skipped"
  readonly sample: Sample.Sample
  readonly reason: string
}

/** An image read, with its content hash. */
interface Read {
  readonly _tag: "Read"
  readonly index: number
  readonly bytes: Uint8Array
  readonly hash: string
}

type Decoded =
  | { readonly _tag: "Views"; readonly index: number; readonly hash: string; readonly rgb: ReadonlyArray<Uint8Array> }
  | { readonly _tag: "Cached"; readonly index: number; readonly vectors: ReadonlyArray<Float32Array> }
  | Skipped

/**
 * Images whose cache lookups go together: one `getMany` per view for them all, where one `get` per view and image
 * cost a database round trip each (the Postgres cache).
 */
const lookupChunk = 16

/** One view to embed: view `view` of input image `index`. */
interface PendingView {
  readonly index: number
  readonly view: number
  readonly hash: string
  readonly rgb: Uint8Array
}

/** Embed `count` RGB images laid out in `tensor`, checking the backbone's answer. */
export const embedTensor = (
  backbone: Backbone.LoadedBackbone,
  tensor: Float32Array,
  count: number
): Effect.Effect<Float32Array, CoreError.CoreError> => {
  const { id, embeddingSize } = backbone.info
  return backbone.embedBatch(tensor, count).pipe(
    Effect.mapError((e) =>
      new CoreError.CoreError({ reason: "BackboneFailed", field: id, message: `${id} failed: ${e.message}`, cause: e })
    ),
    Effect.filterOrFail(
      (out) => out.length === count * embeddingSize,
      (out) =>
        new CoreError.CoreError({
          reason: "ShapeMismatch",
          field: id,
          message: `${id} returned ${out.length} values for ${count} images; expected ${embeddingSize} per image`
        })
    )
  )
}

/** Embed `options.views` augmented views of every sample (see the module comment). */
export const embedViews = (
  backbone: Backbone.LoadedBackbone,
  samples: ReadonlyArray<Sample.Sample>,
  options: ViewOptions
): Effect.Effect<EmbeddedViews, CoreError.CoreError> =>
  Effect.gen(function*() {
    const { info } = backbone
    const spec = info.preprocess
    const dim = info.embeddingSize
    const views = options.views
    const batchSize = Math.max(1, Math.min(options.batchSize ?? 32, backbone.maxBatchSize))
    const augment = yield* Augment.resolveOptions(options.augment)
    const cache = Option.getOrUndefined(yield* Effect.serviceOption(EmbeddingCache.EmbeddingCache))
    const base = EmbeddingCache.namespaceOf(backbone)
    const namespace = (v: number) => hash("sha256", JSON.stringify([base, "view", augment, options.seed, v])).slice(0, 32)
    const seeds = (contentHash: string) =>
      Array.from({ length: views }, (_, v) => Augment.deriveSeed(options.seed, Number.parseInt(contentHash.slice(0, 8), 16), v))

    const concurrency = Math.max(1, options.decodeConcurrency ?? 4)

    /** Read an image and hash its bytes; one that cannot be read is skipped with the reason. */
    const read = (index: number): Effect.Effect<Read | Skipped> =>
      Preprocess.readSource(samples[index]!.source).pipe(
        Effect.map((bytes): Read => ({ _tag: "Read", index, bytes, hash: EmbeddingCache.contentHash(bytes) })),
        Effect.catchAll((e) => Effect.succeed<Skipped>({ _tag: "Skipped", sample: samples[index]!, reason: e.message }))
      )

    /** The cached vectors of every view of each hash (one lookup per view for them all), or undefined where one is missing. */
    const cachedViews = (hashes: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        if (cache === undefined) return hashes.map(() => undefined)
        const perView = yield* Effect.forEach(Array.from({ length: views }, (_, v) => v), (v) => EmbeddingCache.getMany(cache, namespace(v), hashes))
        return hashes.map((_, i) => {
          const vectors = perView.map((hits) => hits[i])
          return vectors.every((hit) => hit?.length === dim) ? (vectors as Array<Float32Array>) : undefined
        })
      })

    /** Images read and hashed together, looked up in the cache together; the views of those it lacks are cut. */
    const decode = (indices: ReadonlyArray<number>): Effect.Effect<ReadonlyArray<Decoded>> =>
      Effect.gen(function*() {
        const images = yield* Effect.forEach(indices, read, { concurrency })
        const readable = images.filter((image) => image._tag === "Read")
        const hits = yield* cachedViews(readable.map((image) => image.hash))
        const cachedOf = new Map(readable.map((image, i) => [image.index, hits[i]]))
        return yield* Effect.forEach(images, (image): Effect.Effect<Decoded> => {
          if (image._tag === "Skipped") return Effect.succeed(image)
          const { hash, index } = image
          const vectors = cachedOf.get(index)
          if (vectors !== undefined) return Effect.succeed<Decoded>({ _tag: "Cached", index, vectors })
          const sample = samples[index]!
          return Augment.augmentViews(image.bytes, spec, options.augment, seeds(hash), Sample.describeSource(sample.source)).pipe(
            Effect.map((rgb): Decoded => ({ _tag: "Views", index, hash, rgb })),
            Effect.catchAll((e) => Effect.succeed<Decoded>({ _tag: "Skipped", sample, reason: e.message }))
          )
        }, { concurrency })
      })

    // Rows by input image (`index * views + view`), compacted to the kept images at the end.
    const data = new Float32Array(samples.length * views * dim)
    const place = (index: number, view: number, vector: Float32Array) => data.set(vector, (index * views + view) * dim)
    const keptSet = new Set<number>()
    const skipped: Array<Sample.SkippedSample> = []
    let done = 0
    yield* Stream.fromIterable(samples.map((_, index) => index)).pipe(
      Stream.grouped(lookupChunk),
      Stream.mapEffect((chunk) => decode(Chunk.toReadonlyArray(chunk))),
      Stream.flatMap(Stream.fromIterable),
      Stream.tap((d) =>
        Effect.suspend(() => {
          if (d._tag === "Skipped") skipped.push({ sample: d.sample, reason: d.reason })
          else keptSet.add(d.index)
          if (d._tag === "Cached") d.vectors.forEach((vector, v) => place(d.index, v, vector))
          done++
          return Progress.report({ stage: "augment", done, total: samples.length, detail: info.id })
        })
      ),
      Stream.flatMap((d) =>
        Stream.fromIterable(d._tag === "Views" ? d.rgb.map((rgb, view): PendingView => ({ index: d.index, view, hash: d.hash, rgb })) : [])
      ),
      Stream.grouped(batchSize),
      Stream.map((chunk) => {
        const pending = Chunk.toReadonlyArray(chunk)
        return { pending, tensor: Preprocess.toTensor(pending.map((p) => p.rgb), spec) }
      }),
      Stream.buffer({ capacity: 1 }),
      Stream.mapEffect(({ pending, tensor }) =>
        Effect.flatMap(embedTensor(backbone, tensor, pending.length), (out) => {
          // Stored one namespace (view) at a time, in one call each.
          const byView = new Map<number, Array<EmbeddingCache.CacheEntry>>()
          pending.forEach((p, k) => {
            const vector = out.subarray(k * dim, (k + 1) * dim)
            place(p.index, p.view, vector)
            const entries = byView.get(p.view) ?? []
            entries.push({ contentHash: p.hash, vector })
            byView.set(p.view, entries)
          })
          return cache === undefined
            ? Effect.void
            : Effect.forEach(byView, ([view, entries]) => EmbeddingCache.setMany(cache, namespace(view), entries), { discard: true })
        })
      ),
      Stream.runDrain
    )
    const kept = [...keptSet].sort((a, b) => a - b)
    const vectors = Matrix.make(kept.length * views, dim)
    kept.forEach((index, k) => vectors.data.set(data.subarray(index * views * dim, (index + 1) * views * dim), k * views * dim))
    return { vectors, kept, skipped }
  })
