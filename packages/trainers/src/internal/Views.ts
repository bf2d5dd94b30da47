/**
 * Augmented views of images, embedded through a backbone. Each image is read and decoded once and all of its views
 * are cut from that decode (`Augment.augmentViews`); views are normalised in batches and embedded while the next
 * images are decoded (sharp works in libuv's pool, the ONNX session in its worker thread). An image that cannot be
 * read or decoded is skipped with its reason; the run goes on.
 *
 * View `v` of sample `i` is drawn from `Augment.deriveSeed(seed, i, v)`, so the same seed, samples and options give
 * the same pixels, and the same view of an image is the same crop for every backbone.
 */
import { Augment, CoreError, Matrix, Preprocess, Progress, Sample } from "@loupe/core"
import type { Backbone } from "@loupe/core"
import { Chunk, Effect, Stream } from "effect"

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
  | { readonly _tag: "Views"; readonly index: number; readonly rgb: ReadonlyArray<Uint8Array> }
  | { readonly _tag: "Skipped"; readonly sample: Sample.Sample; readonly reason: string }

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
    yield* Augment.resolveOptions(options.augment)
    const seeds = (index: number) => Array.from({ length: views }, (_, v) => Augment.deriveSeed(options.seed, index, v))

    const decode = (index: number): Effect.Effect<Decoded> => {
      const sample = samples[index]!
      return Preprocess.readSource(sample.source).pipe(
        Effect.flatMap((bytes) =>
          Augment.augmentViews(bytes, spec, options.augment, seeds(index), Sample.describeSource(sample.source))
        ),
        Effect.map((rgb): Decoded => ({ _tag: "Views", index, rgb })),
        Effect.catchAll((e) => Effect.succeed<Decoded>({ _tag: "Skipped", sample, reason: e.message }))
      )
    }

    const data = new Float32Array(samples.length * views * dim)
    const kept: Array<number> = []
    const skipped: Array<Sample.SkippedSample> = []
    let rows = 0
    let done = 0
    yield* Stream.fromIterable(samples.map((_, index) => index)).pipe(
      Stream.mapEffect(decode, { concurrency: Math.max(1, options.decodeConcurrency ?? 4) }),
      Stream.tap((d) =>
        Effect.suspend(() => {
          if (d._tag === "Skipped") skipped.push({ sample: d.sample, reason: d.reason })
          else kept.push(d.index)
          done++
          return Progress.report({ stage: "augment", done, total: samples.length, detail: info.id })
        })
      ),
      Stream.flatMap((d) => Stream.fromIterable(d._tag === "Views" ? d.rgb : [])),
      Stream.grouped(batchSize),
      Stream.map((chunk) => {
        const images = Chunk.toReadonlyArray(chunk)
        return { count: images.length, tensor: Preprocess.toTensor(images, spec) }
      }),
      Stream.buffer({ capacity: 1 }),
      Stream.mapEffect(({ count, tensor }) => embedTensor(backbone, tensor, count)),
      Stream.runForEach((out) =>
        Effect.sync(() => {
          data.set(out, rows * dim)
          rows += out.length / dim
        })
      )
    )
    return {
      vectors: Matrix.make(rows, dim, rows * dim === data.length ? data : data.slice(0, rows * dim)),
      kept,
      skipped
    }
  })
