/**
 * The augmented probe: a head fitted on the embeddings of each training image and of `views` augmented views of it
 * (random resized crop, horizontal flip, optional colour jitter; `Augment`), with optional test-time augmentation
 * (the probabilities of an image averaged over its original and augmented views).
 *
 * Each image is decoded once; its views are cut from that decode and embedded in batches. Rows are laid out
 * originals first, then the views image by image, and every row carries its image's index as its group, so
 * cross-validation keeps an image and its views in one fold (`crossValidate` passes the groups to
 * `CrossValidation`) and scores held-out images on their originals, with and without TTA, in one run.
 *
 * @since 0.1.0
 */
import { Augment, Embedder, Matrix, Pipeline, Registry } from "@loupe/core"
import type { Backbone, CoreError, Head, LoupeConfig, Sample } from "@loupe/core"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as CrossValidation from "./CrossValidation.js"
import * as Views from "./internal/Views.js"
import { TrainerError } from "./TrainerError.js"

/**
 * How views are made.
 *
 * @since 0.1.0
 * @category models
 */
export interface ViewSpec {
  /** Augmented views per image. */
  readonly views: number
  readonly augment: Augment.AugmentOptions
  /** View `v` of an image uses seed `Augment.deriveSeed(seed, key, v)`, `key` taken from its content hash. */
  readonly seed?: number
}

/**
 * The default training views: 4 per image, random resized crop of 25-100 % of the area, flip, light colour jitter.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultViews: ViewSpec = {
  views: 4,
  augment: { scale: [0.25, 1], flipProbability: 0.5, brightness: 0.2, contrast: 0.2, saturation: 0.2 }
}

/**
 * The default test-time views: the mirror image and 3 crops of 50-100 % of the area (flipped or not).
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultTta: ViewSpec = { views: 4, augment: { scale: [0.5, 1], flipProbability: 0.5 } }

/**
 * Embedded originals and views, ready for a head, cross-validation or a search.
 *
 * @since 0.1.0
 * @category models
 */
export interface AugmentedSet {
  /** `images x (1 + views)` rows: the originals (`images` rows), then `views` rows per image, image by image. */
  readonly x: Matrix.Matrix
  /** The image index of every row: pass as `CrossValidation.Options.groups`. */
  readonly groups: Int32Array
  readonly images: number
  readonly views: number
  /** The images embedded (input order); row `i < images` is `samples[i]`. */
  readonly samples: ReadonlyArray<Sample.Sample>
  readonly skipped: ReadonlyArray<Sample.SkippedSample>
}

/** What `Views.embedViews` takes for a view spec and embedding options. */
const viewOptions = (spec: ViewSpec, options: Embedder.EmbedOptions): Views.ViewOptions => ({
  views: spec.views,
  augment: spec.augment,
  seed: spec.seed ?? 0,
  ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize })
})

/**
 * Embed every sample with the backbone's standard preprocessing and `spec.views` augmented views of it. A sample
 * that cannot be read is skipped.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embed = (
  backbone: Backbone.LoadedBackbone,
  samples: ReadonlyArray<Sample.Sample>,
  spec: ViewSpec,
  options: Embedder.EmbedOptions = {}
): Effect.Effect<AugmentedSet, CoreError.CoreError> =>
  Effect.gen(function*() {
    const originals = yield* Embedder.embedSamples(backbone, samples, options)
    const views = yield* Views.embedViews(backbone, originals.samples, viewOptions(spec, options))
    // An image whose original embedded but whose views failed is dropped (rare: the same bytes decoded once before).
    const kept = views.kept
    const images = kept.length
    const x = Matrix.make(images * (1 + spec.views), backbone.info.embeddingSize)
    x.data.set(Matrix.takeRows(originals.vectors, kept).data, 0)
    x.data.set(views.vectors.data, images * backbone.info.embeddingSize)
    const groups = new Int32Array(x.rows)
    for (let i = 0; i < images; i++) {
      groups[i] = i
      groups.fill(i, images + i * spec.views, images + (i + 1) * spec.views)
    }
    return {
      x,
      groups,
      images,
      views: spec.views,
      samples: kept.map((i) => originals.samples[i]!),
      skipped: [...originals.skipped, ...views.skipped]
    }
  })

/**
 * Only the augmented views of `samples`, as extra training rows for data whose row `i` is `samples[i]`
 * (`CrossValidation.Views`, `Search.Data.views`): for a caller that has the originals' embeddings already. An
 * image whose views cannot be made has none.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embedTrainingViews = (
  backbone: Backbone.LoadedBackbone,
  samples: ReadonlyArray<Sample.Sample>,
  spec: ViewSpec,
  options: Embedder.EmbedOptions = {}
): Effect.Effect<CrossValidation.Views, CoreError.CoreError> =>
  Effect.map(
    Views.embedViews(backbone, samples, viewOptions(spec, options)),
    (embedded) => ({ x: embedded.vectors, image: Int32Array.from(embedded.kept.flatMap((row) => Array<number>(spec.views).fill(row))) })
  )

/** Labels of every row of an augmented set. */
const rowLabels = (set: AugmentedSet, y: Int32Array): Int32Array => Int32Array.from(set.groups, (g) => y[g]!)

/**
 * What `fit` trains: a registered backbone id and its options, a registered head kind and its params (decoded with the
 * head's defaults), the training views (default `defaultViews`), the seed (default 0), and the embedding batching.
 *
 * @since 0.1.0
 * @category models
 */
export interface Spec {
  readonly backbone: string
  readonly backboneOptions?: unknown
  readonly head: { readonly kind: string; readonly params?: unknown }
  readonly views?: ViewSpec
  readonly seed?: number
  readonly embed?: Embedder.EmbedOptions
}

const headOf = (spec: Spec) =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const plugin = yield* registry.head(spec.head.kind)
    const params = yield* Pipeline.decodeHeadParams(plugin, spec.head.params)
    return { plugin, params }
  })

/**
 * Fit a head on originals and augmented views. The result predicts like any pipeline; use `predictMany` for TTA.
 *
 * @since 0.1.0
 * @category training
 */
export const fit = (
  spec: Spec,
  dataset: Pipeline.LabelledSamples
): Effect.Effect<
  { readonly fitted: Pipeline.FittedPipeline; readonly skipped: ReadonlyArray<Sample.SkippedSample> },
  CoreError.CoreError | TrainerError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope
> =>
  Effect.gen(function*() {
    const { plugin, params } = yield* headOf(spec)
    const backbone = yield* Registry.loadBackbone(spec.backbone, spec.backboneOptions ?? {})
    const embedOptions = spec.embed ?? {}
    const set = yield* embed(backbone, dataset.samples, spec.views ?? defaultViews, embedOptions)
    const y = yield* Pipeline.labelIndices(dataset.labels, set.samples)
    const head = yield* CrossValidation.refit(
      plugin,
      params,
      { x: set.x, y: rowLabels(set, y), numClasses: dataset.labels.length, groups: set.groups },
      spec.seed ?? 0
    )
    return {
      fitted: { labels: dataset.labels, backbone, backboneOptions: spec.backboneOptions ?? {}, head, embed: embedOptions },
      skipped: set.skipped
    }
  })

/**
 * Out-of-fold results of an augmented probe.
 *
 * @since 0.1.0
 * @category models
 */
export interface CvResult {
  /** Per image (`set.samples` order): out-of-fold probabilities of its original. */
  readonly proba: Matrix.Matrix
  /** Per image: out-of-fold probabilities averaged over its original and its views (test-time augmentation). */
  readonly probaTta: Matrix.Matrix
  /** Class index per image. */
  readonly y: Int32Array
  readonly cv: CrossValidation.Result
}

/** Mean of the probability rows of each image's group. */
const groupMean = (proba: Matrix.Matrix, set: AugmentedSet): Matrix.Matrix => {
  const out = new Float32Array(set.images * proba.cols)
  const counts = new Float64Array(set.images)
  for (let r = 0; r < proba.rows; r++) {
    const g = set.groups[r]!
    counts[g]++
    for (let c = 0; c < proba.cols; c++) out[g * proba.cols + c] += proba.data[r * proba.cols + c]!
  }
  for (let i = 0; i < out.length; i++) out[i] /= counts[Math.floor(i / proba.cols)]!
  return Matrix.make(set.images, proba.cols, out)
}

/**
 * Cross-validate a head on an augmented set: folds split images (with their views), each fold's head trains on
 * its images' originals and views, and held-out images are scored on their originals alone and with TTA (their
 * views are held out with them).
 *
 * @since 0.1.0
 * @category training
 */
export const crossValidate = <P>(
  head: Head.HeadPlugin<P>,
  params: P,
  set: AugmentedSet,
  y: Int32Array,
  numClasses: number,
  options: Omit<CrossValidation.Options, "groups"> = {}
): Effect.Effect<CvResult, TrainerError> =>
  Effect.gen(function*() {
    if (y.length !== set.images) {
      return yield* new TrainerError({ reason: "InvalidData", field: "data.y", message: `${y.length} labels for ${set.images} images` })
    }
    const cv = yield* CrossValidation.crossValidate(head, params, { x: set.x, y: rowLabels(set, y), numClasses, groups: set.groups }, {
      ...options,
      groups: Array.from(set.groups)
    })
    return {
      proba: Matrix.make(set.images, numClasses, cv.proba.data.slice(0, set.images * numClasses)),
      probaTta: groupMean(cv.proba, set),
      y,
      cv
    }
  })

/**
 * Predict with test-time augmentation: each image's probabilities are the mean over its standard view and
 * `tta.views` augmented views (for every backbone of the pipeline, the same crops). Unreadable images are skipped.
 *
 * @since 0.1.0
 * @category prediction
 */
export const predictMany = (
  fitted: Pipeline.FittedPipeline,
  samples: ReadonlyArray<Sample.Sample>,
  tta: ViewSpec = defaultTta
): Effect.Effect<Pipeline.PredictResults, CoreError.CoreError> =>
  Effect.gen(function*() {
    const backbones = Pipeline.backbonesOf(fitted).map((b) => b.backbone)
    const originals = yield* Pipeline.embedFeatures(backbones, samples, fitted.embed)
    const parts: Array<Views.EmbeddedViews> = []
    for (const backbone of backbones) {
      parts.push(yield* Views.embedViews(backbone, originals.samples, viewOptions(tta, fitted.embed)))
    }
    // keep the images every backbone made views of (the same bytes decoded for the originals: normally all)
    const keptEverywhere = parts.reduce((kept, p) => {
      const has = new Set(p.kept)
      return kept.filter((i) => has.has(i))
    }, originals.samples.map((_, i) => i))
    const viewRows = parts.map((p) => {
      const position = new Map(p.kept.map((image, k) => [image, k]))
      return Matrix.takeRows(p.vectors, keptEverywhere.flatMap((image) => {
        const k = position.get(image)!
        return Array.from({ length: tta.views }, (_, v) => k * tta.views + v)
      }))
    })
    const viewProba = fitted.head.predictProba(Matrix.concatColumns(viewRows))
    const originalProba = fitted.head.predictProba(Matrix.takeRows(originals.vectors, keptEverywhere))
    const k = originalProba.cols
    const proba = new Float32Array(keptEverywhere.length * k)
    for (let i = 0; i < keptEverywhere.length; i++) {
      for (let c = 0; c < k; c++) {
        let sum = originalProba.data[i * k + c]!
        for (let v = 0; v < tta.views; v++) sum += viewProba.data[(i * tta.views + v) * k + c]!
        proba[i * k + c] = sum / (1 + tta.views)
      }
    }
    const matrix = Matrix.make(keptEverywhere.length, k, proba)
    const predictions = Pipeline.toPredictions(fitted.labels, matrix)
    const viewSkips = parts.flatMap((p) => p.skipped)
    return {
      predictions: keptEverywhere.map((i, r) => ({ sample: originals.samples[i]!, prediction: predictions[r]! })),
      proba: matrix,
      skipped: [...originals.skipped, ...viewSkips]
    }
  })
