/**
 * Augmented views of images, embedded through a backbone. Each image is read and decoded once and all of its views
 * are cut from that decode (`Augment.augmentViews`); views are normalised in batches and embedded while the next
 * images are decoded (sharp works in libuv's pool, the ONNX session in its worker thread). An image that cannot be
 * read or decoded is skipped with its reason; the run goes on.
 *
 * View `v` of an image is drawn from `Augment.deriveSeed(seed, key, v)`, where `key` comes from the image's content
 * hash: the same seed, image and options give the same pixels wherever the image sits in the dataset, and the same
 * view of an image is the same crop for every backbone. With an `EmbeddingCache` in context the vectors are cached
 * under the backbone, the options, the seed and the view, so a retrain embeds only the views of new images.
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
  /** Images decoded at once. Default 4. */
  readonly decodeConcurrency?: number
}

export interface EmbeddedViews {
  /** `views` rows per kept image, image-major: row `k * views + v` is view `v` of `kept[k]`. */
  readonly vectors: Matrix.Matrix
  /** Indices (into the input samples) of the images that were embedded, in input order. */
  readonly kept: ReadonlyArray<number>
  readonly skipped: ReadonlyArray<Sample.SkippedSample>
}

type Decoded =
  | { readonly _tag: "Views"; readonly index: number; readonly hash: string; readonly rgb: ReadonlyArray<Uint8Array> }
  | { readonly _tag: "Cached"; readonly index: number; readonly vectors: ReadonlyArray<Float32Array> }
  | { readonly _tag: "Skipped"; readonly sample: Sample.Sample; readonly reason: string }

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

    /** The cached vectors of every view of an image, or undefined when one is missing. */
    const cached = (contentHash: string) =>
      Effect.gen(function*() {
        if (cache === undefined) return undefined
        const vectors: Array<Float32Array> = []
        for (let v = 0; v < views; v++) {
          const hit = yield* cache.get(namespace(v), contentHash)
          if (hit?.length !== dim) return undefined
          vectors.push(hit)
        }
        return vectors
      })

    const decode = (index: number): Effect.Effect<Decoded> => {
      const sample = samples[index]!
      return Effect.gen(function*() {
        const bytes = yield* Preprocess.readSource(sample.source)
        const contentHash = EmbeddingCache.contentHash(bytes)
        const vectors = yield* cached(contentHash)
        if (vectors !== undefined) return { _tag: "Cached", index, vectors } as const
        const rgb = yield* Augment.augmentViews(bytes, spec, options.augment, seeds(contentHash), Sample.describeSource(sample.source))
        return { _tag: "Views", index, hash: contentHash, rgb } as const
      }).pipe(Effect.catchAll((e) => Effect.succeed<Decoded>({ _tag: "Skipped", sample, reason: e.message })))
    }

    // Rows by input image (`index * views + view`), compacted to the kept images at the end.
    const data = new Float32Array(samples.length * views * dim)
    const place = (index: number, view: number, vector: Float32Array) => data.set(vector, (index * views + view) * dim)
    const keptSet = new Set<number>()
    const skipped: Array<Sample.SkippedSample> = []
    let done = 0
    yield* Stream.fromIterable(samples.map((_, index) => index)).pipe(
      Stream.mapEffect(decode, { concurrency: Math.max(1, options.decodeConcurrency ?? 4) }),
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
        Effect.flatMap(embedTensor(backbone, tensor, pending.length), (out) =>
          Effect.forEach(pending, (p, k) => {
            const vector = out.subarray(k * dim, (k + 1) * dim)
            place(p.index, p.view, vector)
            return cache ? cache.set(namespace(p.view), p.hash, vector) : Effect.void
          }, { discard: true }))
      ),
      Stream.runDrain
    )
    const kept = [...keptSet].sort((a, b) => a - b)
    const vectors = Matrix.make(kept.length * views, dim)
    kept.forEach((index, k) => vectors.data.set(data.subarray(index * views * dim, (index + 1) * views * dim), k * views * dim))
    return { vectors, kept, skipped }
  })
