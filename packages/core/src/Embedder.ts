/**
 * Turns samples into embeddings with a loaded backbone. Around the plugin's single `embedBatch` call it adds:
 * reading and hashing, decoding with bounded concurrency that overlaps inference (the next batch is decoded while
 * the current one runs), batching, shape checks, the embedding cache, progress events, and tolerance of bad images
 * (each is skipped with its reason; the run goes on).
 *
 * @since 0.1.0
 */
import { Chunk, Effect, Option, Stream } from "effect"
import type { LoadedBackbone } from "./Backbone.js"
import { CoreError } from "./CoreError.js"
import { contentHash, EmbeddingCache, namespaceOf } from "./EmbeddingCache.js"
import * as Matrix from "./Matrix.js"
import { decodeRgb, readSource, writeNormalized } from "./Preprocess.js"
import { report } from "./Progress.js"
import { describeSource, type Sample, type SkippedSample } from "./Sample.js"

export interface EmbedOptions {
  /** Images per `embedBatch` call; capped by the backbone's `maxBatchSize`. Default 16. */
  readonly batchSize?: number
  /** Images read and decoded at once. Default 4. */
  readonly decodeConcurrency?: number
}

export interface Embeddings {
  readonly backboneId: string
  /** One row per embedded sample, in input order. */
  readonly vectors: Matrix.Matrix
  /** The samples that were embedded (input order, skipped ones left out). */
  readonly samples: ReadonlyArray<Sample>
  /** sha256 of each embedded sample's bytes, aligned with `samples`. */
  readonly contentHashes: ReadonlyArray<string>
  readonly skipped: ReadonlyArray<SkippedSample>
  /** How many vectors came from the cache. */
  readonly cacheHits: number
}

type Prepared =
  | { readonly _tag: "Cached"; readonly sample: Sample; readonly hash: string; readonly vector: Float32Array }
  | { readonly _tag: "Decoded"; readonly sample: Sample; readonly hash: string; readonly rgb: Uint8Array }
  | { readonly _tag: "Skipped"; readonly sample: Sample; readonly reason: string }

interface Embedded {
  readonly sample: Sample
  readonly hash: string
  readonly vector: Float32Array
  readonly cached: boolean
}

export const embedSamples = Effect.fn("Embedder.embedSamples")(function*(
  backbone: LoadedBackbone,
  samples: ReadonlyArray<Sample>,
  options: EmbedOptions = {}
) {
  const { info } = backbone
  const dim = info.embeddingSize
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 16, backbone.maxBatchSize))
  const cache = Option.getOrUndefined(yield* Effect.serviceOption(EmbeddingCache))
  const namespace = namespaceOf(backbone)
  const total = samples.length
  let done = 0

  const prepare = (sample: Sample): Effect.Effect<Prepared> =>
    Effect.gen(function*() {
      const bytes = yield* readSource(sample.source)
      const hash = contentHash(bytes)
      const hit = cache ? yield* cache.get(namespace, hash) : undefined
      if (hit && hit.length === dim) return { _tag: "Cached", sample, hash, vector: hit } as const
      const rgb = yield* decodeRgb(bytes, info.preprocess, describeSource(sample.source))
      return { _tag: "Decoded", sample, hash, rgb } as const
    }).pipe(Effect.catchAll((error) => Effect.succeed({ _tag: "Skipped", sample, reason: error.message } as const)))

  const embedGroup = (group: ReadonlyArray<Prepared>) =>
    Effect.gen(function*() {
      const toRun = group.filter((p): p is Extract<Prepared, { _tag: "Decoded" }> => p._tag === "Decoded")
      const pixels = info.preprocess.size * info.preprocess.size * 3
      let output: Float32Array = new Float32Array(0)
      if (toRun.length > 0) {
        const input = new Float32Array(toRun.length * pixels)
        toRun.forEach((p, i) => writeNormalized(p.rgb, info.preprocess, input, i))
        output = yield* backbone.embedBatch(input, toRun.length).pipe(
          Effect.mapError((e) =>
            new CoreError({ reason: "BackboneFailed", field: info.id, message: `${info.id} failed: ${e.message}`, cause: e })
          )
        )
        if (output.length !== toRun.length * dim) {
          return yield* new CoreError({
            reason: "ShapeMismatch",
            field: info.id,
            message: `${info.id} returned ${output.length} values for ${toRun.length} images; expected ${dim} per image`
          })
        }
      }
      const results: Array<Embedded | SkippedSample> = []
      let k = 0
      for (const p of group) {
        if (p._tag === "Skipped") {
          results.push({ sample: p.sample, reason: p.reason })
        } else if (p._tag === "Cached") {
          results.push({ sample: p.sample, hash: p.hash, vector: p.vector, cached: true })
        } else {
          const vector = output.slice(k * dim, (k + 1) * dim)
          k++
          if (cache) yield* cache.set(namespace, p.hash, vector)
          results.push({ sample: p.sample, hash: p.hash, vector, cached: false })
        }
      }
      done += group.length
      yield* report({ stage: "embed", done, total, detail: info.id })
      return results
    })

  const results = yield* Stream.fromIterable(samples).pipe(
    Stream.mapEffect(prepare, { concurrency: options.decodeConcurrency ?? 4 }),
    Stream.grouped(batchSize),
    // Keep one decoded batch ready while the backbone works on the current one.
    Stream.buffer({ capacity: 1 }),
    Stream.mapEffect((chunk) => embedGroup(Chunk.toReadonlyArray(chunk))),
    Stream.runCollect
  )

  const embedded: Array<Embedded> = []
  const skipped: Array<SkippedSample> = []
  for (const group of results) {
    for (const r of group) {
      if ("vector" in r) embedded.push(r)
      else skipped.push(r)
    }
  }
  const vectors = Matrix.make(embedded.length, dim)
  embedded.forEach((e, i) => vectors.data.set(e.vector, i * dim))
  return {
    backboneId: info.id,
    vectors,
    samples: embedded.map((e) => e.sample),
    contentHashes: embedded.map((e) => e.hash),
    skipped,
    cacheHits: embedded.filter((e) => e.cached).length
  } satisfies Embeddings
})
