/**
 * A pipeline composes the stages in code: dataset -> preprocess -> backbone -> head. `fit` trains it on a labelled
 * dataset and returns a `FittedPipeline`, which predicts on images and saves to and loads from a bundle directory
 * (see `Bundle`).
 *
 * With `mirror`, every image also counts as its mirror image (flipped left to right): the head trains on the
 * vectors of both, and a prediction is the mean of the head's probabilities for both (test-time augmentation).
 * Both vectors come from one decode, in the same backbone calls.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import type { Scope } from "effect"
import type { LoadedBackbone } from "./Backbone.js"
import { CoreError } from "./CoreError.js"
import { embedSamples, embedSamplesMany, type EmbedOptions } from "./Embedder.js"
import { type FittedHead, type HeadPlugin, withMirrorRows } from "./Head.js"
import type { LoupeConfig } from "./LoupeConfig.js"
import * as Matrix from "./Matrix.js"
import { loadBackbone, Registry } from "./Registry.js"
import type { ImageSource, Sample, SkippedSample } from "./Sample.js"

/**
 * What to fit, as data: a backbone id and its options, a head kind and its params, the seed (default 0), embedding
 * options and `mirror`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PipelineSpec {
  /** A registered backbone id, e.g. `onnx:mobilenetv2-int8`. */
  readonly backbone: string
  readonly backboneOptions?: unknown
  /** A registered head kind and its parameters (validated by the head's schema). */
  readonly head: { readonly kind: string; readonly params?: unknown }
  readonly seed?: number
  readonly embed?: EmbedOptions
  /** Train and predict on each image and its mirror image (see above). Default false. */
  readonly mirror?: boolean
}

/**
 * What `fit` needs of a dataset: its labels (class order) and labelled samples.
 *
 * @since 0.1.0
 * @category models
 */
export interface LabelledSamples {
  readonly labels: ReadonlyArray<string>
  readonly samples: ReadonlyArray<Sample>
}

/**
 * A fitted pipeline: the labels in class-index order, the loaded backbone(s) and their options, the fitted head and
 * the embedding options it predicts with. Save it with `Bundle.save`; `Bundle.load` gives it back.
 *
 * @since 0.1.0
 * @category models
 */
export interface FittedPipeline {
  readonly labels: ReadonlyArray<string>
  readonly backbone: LoadedBackbone
  readonly backboneOptions: unknown
  readonly head: FittedHead
  readonly embed: EmbedOptions
  /**
   * The further backbones of a multi-backbone pipeline: each image is embedded by `backbone`, then by each of these,
   * and the head reads the vectors concatenated in that order. Absent (or empty) for one backbone.
   */
  readonly extraBackbones?: ReadonlyArray<BackboneUse>
  /** Predictions average the image and its mirror image (see above). */
  readonly mirror?: boolean
}

/**
 * A loaded backbone and the plugin options it was loaded with.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackboneUse {
  readonly backbone: LoadedBackbone
  readonly options: unknown
}

/**
 * Every backbone of a fitted pipeline, in the order their embeddings are concatenated.
 *
 * @since 0.1.0
 * @category getters
 */
export const backbonesOf = (fitted: FittedPipeline): ReadonlyArray<BackboneUse> => [
  { backbone: fitted.backbone, options: fitted.backboneOptions },
  ...(fitted.extraBackbones ?? [])
]

/**
 * Rows of the head's input: one per sample that every backbone embedded, in input order.
 *
 * @since 0.1.0
 * @category models
 */
export interface Features {
  readonly vectors: Matrix.Matrix
  /** With the `mirror` option: the features of the mirror images, rows aligned with `vectors`. */
  readonly mirrored?: Matrix.Matrix
  readonly samples: ReadonlyArray<Sample>
  readonly skipped: ReadonlyArray<SkippedSample>
}

/**
 * Embed samples with every backbone (one pass over the images, `Embedder.embedSamplesMany`) and concatenate the
 * vectors per sample, in backbone order. A sample that cannot be read or decoded is skipped with its reason.
 *
 * Fails with `CoreError` when a backbone fails.
 *
 * @since 0.1.0
 * @category embedding
 */
export const embedFeatures = (
  backbones: ReadonlyArray<LoadedBackbone>,
  samples: ReadonlyArray<Sample>,
  options: EmbedOptions = {}
): Effect.Effect<Features, CoreError> =>
  Effect.map(embedSamplesMany(backbones, samples, options), (parts) => {
    const vectors = Matrix.concatColumns(parts.map((p) => p.vectors))
    const mirrored = options.mirror === true ? Matrix.concatColumns(parts.map((p) => p.mirrored!)) : undefined
    const { samples: embedded, skipped } = parts[0]!
    return { vectors, ...(mirrored ? { mirrored } : {}), samples: embedded, skipped }
  })

/**
 * One label and its probability, in `[0, 1]`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LabelConfidence {
  readonly labelName: string
  readonly confidence: number
}

/**
 * A prediction for one image: the most likely label and its probability, and every label's probability, most likely
 * first.
 *
 * @since 0.1.0
 * @category models
 */
export interface Prediction {
  readonly labelName: string
  readonly confidence: number
  /** Every label, most likely first. */
  readonly labelConfidences: ReadonlyArray<LabelConfidence>
}

/**
 * A pipeline spec, typed (the identity: it only checks the spec's type).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (spec: PipelineSpec): PipelineSpec => spec

/**
 * Decode a head's params with its schema; unknown keys are errors naming the field.
 *
 * Fails with `CoreError` `InvalidConfig`, field `head.<kind>`.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeHeadParams = (plugin: HeadPlugin, params: unknown): Effect.Effect<unknown, CoreError> =>
  Schema.decodeUnknown(plugin.paramsSchema, { onExcessProperty: "error" })(params ?? {}).pipe(
    Effect.mapError((e) =>
      new CoreError({ reason: "InvalidConfig", field: `head.${plugin.kind}`, message: `Invalid params for head ${plugin.kind}: ${e.message}` })
    )
  )

/**
 * Class index of each sample's label; an unlabelled sample or unknown label is an error naming the sample.
 *
 * Fails with `CoreError` `InvalidDataset`, file the sample id and field `label`.
 *
 * @since 0.1.0
 * @category utils
 */
export const labelIndices = (
  labels: ReadonlyArray<string>,
  samples: ReadonlyArray<Sample>
): Effect.Effect<Int32Array, CoreError> =>
  Effect.gen(function*() {
    const index = new Map(labels.map((l, i) => [l, i]))
    const y = new Int32Array(samples.length)
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i]!
      const k = s.label === undefined ? undefined : index.get(s.label)
      if (k === undefined) {
        return yield* new CoreError({
          reason: "InvalidDataset",
          file: s.id,
          field: "label",
          message: s.label === undefined ? `Sample ${s.id} has no label` : `Sample ${s.id} has unknown label "${s.label}"`
        })
      }
      y[i] = k
    }
    return y
  })

/**
 * Embed a labelled dataset and fit the head on all of it.
 *
 * Requires `Registry`, `LoupeConfig` and a `Scope` (the backbone session lives as long as it). Returns the fitted
 * pipeline and the samples skipped as unreadable. Fails with `CoreError`: `UnknownPlugin`, `InvalidConfig` for bad
 * head params or backbone options, `BackboneFailed`, `InvalidDataset` for an unlabelled sample or unknown label,
 * `HeadFailed` naming the head kind when its `fit` fails.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fit = Effect.fn("Pipeline.fit")(function*(spec: PipelineSpec, dataset: LabelledSamples) {
  const registry = yield* Registry
  const headPlugin = yield* registry.head(spec.head.kind)
  const params = yield* decodeHeadParams(headPlugin, spec.head.params)
  const backbone = yield* loadBackbone(spec.backbone, spec.backboneOptions ?? {})
  const embedOptions = spec.embed ?? {}
  const mirror = spec.mirror === true
  const embeddings = yield* embedSamples(backbone, dataset.samples, { ...embedOptions, mirror })
  const y = yield* labelIndices(dataset.labels, embeddings.samples)
  const images = { x: embeddings.vectors, y, numClasses: dataset.labels.length }
  const training = mirror ? withMirrorRows(images, embeddings.mirrored!) : images
  const head = yield* headPlugin.fit(training, params, spec.seed ?? 0).pipe(
    Effect.mapError((e) => new CoreError({ reason: "HeadFailed", field: spec.head.kind, message: e.message, cause: e }))
  )
  const fitted: FittedPipeline = {
    labels: dataset.labels,
    backbone,
    backboneOptions: spec.backboneOptions ?? {},
    head,
    embed: embedOptions,
    ...(mirror ? { mirror } : {})
  }
  return { fitted, skipped: embeddings.skipped }
})

/**
 * Turn a row of probabilities into a prediction.
 *
 * `probabilities` holds one value per label, in `labels` order.
 *
 * @since 0.1.0
 * @category predicting
 */
export const toPrediction = (labels: ReadonlyArray<string>, probabilities: ArrayLike<number>): Prediction => {
  const labelConfidences = labels
    .map((labelName, i) => ({ labelName, confidence: probabilities[i]! }))
    .sort((a, b) => b.confidence - a.confidence)
  return { labelName: labelConfidences[0]!.labelName, confidence: labelConfidences[0]!.confidence, labelConfidences }
}

/**
 * One prediction per row of a probability matrix (columns in `labels` order).
 *
 * @since 0.1.0
 * @category predicting
 */
export const toPredictions = (labels: ReadonlyArray<string>, proba: Matrix.Matrix): ReadonlyArray<Prediction> =>
  Array.from({ length: proba.rows }, (_, i) => toPrediction(labels, Matrix.row(proba, i)))

/**
 * What `predictMany` returns: a prediction per readable input, the probabilities behind them, and the inputs skipped
 * with their reasons.
 *
 * @since 0.1.0
 * @category models
 */
export interface PredictResults {
  /** One entry per input that could be read, in input order. */
  readonly predictions: ReadonlyArray<{ readonly sample: Sample; readonly prediction: Prediction }>
  /** The head's probabilities, one row per prediction (columns in `labels` order). */
  readonly proba: Matrix.Matrix
  readonly skipped: ReadonlyArray<SkippedSample>
}

/**
 * The head's probabilities for features (rows of `vectors`); with mirror images, the mean of the probabilities of
 * each image and of its mirror image.
 *
 * @since 0.1.0
 * @category predicting
 */
export const predictProba = (head: FittedHead, features: Pick<Features, "vectors" | "mirrored">): Matrix.Matrix => {
  const proba = head.predictProba(features.vectors)
  if (features.mirrored === undefined) return proba
  const mirrored = head.predictProba(features.mirrored)
  const mean = new Float32Array(proba.data.length)
  for (let i = 0; i < mean.length; i++) mean[i] = (proba.data[i]! + mirrored.data[i]!) / 2
  return Matrix.make(proba.rows, proba.cols, mean)
}

/**
 * Predict many images at once (batched); unreadable images are listed in `skipped` with the reason.
 *
 * Fails with `CoreError` when a backbone fails.
 *
 * @since 0.1.0
 * @category predicting
 */
export const predictMany = (
  fitted: FittedPipeline,
  samples: ReadonlyArray<Sample>
): Effect.Effect<PredictResults, CoreError> =>
  Effect.map(embedFeatures(backbonesOf(fitted).map((b) => b.backbone), samples, { ...fitted.embed, mirror: fitted.mirror === true }), (embeddings) => {
    const proba = predictProba(fitted.head, embeddings)
    const predictions = toPredictions(fitted.labels, proba)
    return {
      predictions: embeddings.samples.map((sample, i) => ({ sample, prediction: predictions[i]! })),
      proba,
      skipped: embeddings.skipped
    }
  })

/**
 * Predict one image; an unreadable image is an error naming it.
 *
 * Fails with `CoreError` `InvalidImage` when the image cannot be read or decoded.
 *
 * @since 0.1.0
 * @category predicting
 */
export const predict = (fitted: FittedPipeline, source: ImageSource): Effect.Effect<Prediction, CoreError> =>
  Effect.flatMap(predictMany(fitted, [{ id: "0", source }]), ({ predictions, skipped }) =>
    predictions[0]
      ? Effect.succeed(predictions[0].prediction)
      : Effect.fail(new CoreError({ reason: "InvalidImage", message: skipped[0]?.reason ?? "The image could not be read" })))
