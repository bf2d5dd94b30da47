/**
 * The data analyses of `@loupe/metrics` (`Insights`) on a set of images, from the images alone: embed them with one
 * backbone (through the embedding cache, so images a training run has seen embed for free), cross-validate a default
 * logistic regression on the labelled training images for their out-of-fold probabilities and folds, and run
 * `Insights.analyse`. `loupe inspect <dir>` runs it on a folder, `Functions.insights` on a function's samples.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { Embedder, Matrix, Registry } from "@loupe/core"
import type { CoreError, EmbeddingCache, LoupeConfig, Sample } from "@loupe/core"
import { Insights } from "@loupe/metrics"
import type { MetricsError } from "@loupe/metrics"
import { CrossValidation, Heads, LogisticRegression } from "@loupe/trainers"
import { FunctionsError } from "./FunctionsError.js"

/**
 * One image to analyse: its id (how the results name it), where its bytes are, its label (none for an unlabelled
 * image) and its split (`train`, the default, or `test`: only training images are cross-validated, and copies across
 * splits leak).
 *
 * @since 0.2.0
 * @category models
 */
export interface Image {
  readonly id: string
  readonly source: Sample.ImageSource
  readonly label?: string | undefined
  readonly split?: "train" | "test" | undefined
}

/**
 * Settings of `inspect`: the backbone to embed with (an id the registry knows), the label names (default: those the
 * images carry, sorted), and the cross-validation's folds (default 5) and seed (default 0).
 *
 * @since 0.2.0
 * @category options
 */
export interface Options {
  readonly backbone: string
  readonly labels?: ReadonlyArray<string>
  readonly folds?: number
  readonly seed?: number
}

/**
 * What `inspect` found: the backbone used, the insights (images named by their `Image.id`), the images that could
 * not be read, and each analysed image's source by id (for a report's thumbnails).
 *
 * @since 0.2.0
 * @category models
 */
export interface Inspection {
  readonly backbone: string
  readonly insights: Insights.Insights
  readonly skipped: ReadonlyArray<{ readonly id: string; readonly reason: string }>
  readonly sources: ReadonlyMap<string, Sample.ImageSource>
}

/** Training images a label needs to take part in the cross-validation (one to fit on and one to hold out). */
const minimumPerLabel = 2

/**
 * Embeds `images` with `options.backbone` and runs every analysis of `Insights`. Labels with fewer than two labelled
 * training images are left out of the cross-validation (their images are still counted, and checked for duplicates
 * and outliers); with fewer than two labels left there is no cross-validation, so no suspects and no recall. Images
 * with the same bytes share a fold. Fails with `CoreError` when the backbone cannot load or embed, `FunctionsError`
 * `TrainingFailed` when cross-validation fails, `InvalidInput` for an image label not among `options.labels`, and
 * `MetricsError` when the analyses reject their input.
 *
 * @example
 * const { insights } = yield* Inspection.inspect(images, { backbone: "mobilenet_v2" })
 * insights.suspects?.[0] // { id: "cats/cat.17.jpg", given: "cats", suggested: "dogs", ... }
 *
 * @since 0.2.0
 * @category inspection
 */
export const inspect = (
  images: ReadonlyArray<Image>,
  options: Options
): Effect.Effect<
  Inspection,
  CoreError.CoreError | FunctionsError | MetricsError.MetricsError,
  Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | Scope.Scope
> =>
    Effect.gen(function*() {
    const labels = options.labels ?? [...new Set(images.flatMap((image) => (image.label === undefined ? [] : [image.label])))].sort()
    const unknown = images.find((image) => image.label !== undefined && !labels.includes(image.label))
    if (unknown !== undefined) {
      return yield* new FunctionsError({ reason: "InvalidInput", field: "labels", message: `Image ${unknown.id} has the label "${unknown.label}", which is not among the labels` })
    }
    const byId = new Map(images.map((image) => [image.id, image]))
    const backbone = yield* Registry.loadBackbone(options.backbone)
    const embedded = yield* Embedder.embedSamples(backbone, images.map((image) => ({ id: image.id, source: image.source, ...(image.label === undefined ? {} : { label: image.label }) })))
    const kept = embedded.samples.map((s) => byId.get(s.id)!)
    const y = Int32Array.from(kept, (image) => (image.label === undefined ? -1 : labels.indexOf(image.label)))
    const trainRows = kept.flatMap((image, i) => ((image.split ?? "train") === "train" && y[i]! >= 0 ? [i] : []))
    const perLabel = labels.map((_, c) => trainRows.filter((i) => y[i] === c).length)
    // The labels that can be cross-validated, and the rows that carry them; the others get no out-of-fold probabilities.
    const cvLabels = labels.flatMap((_, c) => (perLabel[c]! >= minimumPerLabel ? [c] : []))
    const cvRows = trainRows.filter((i) => cvLabels.includes(y[i]!))
    const crossValidated = Effect.gen(function*() {
      const params = yield* Heads.decodeParams(LogisticRegression.plugin, {})
      const cv = yield* CrossValidation.crossValidate(LogisticRegression.plugin, params, {
        x: Matrix.takeRows(embedded.vectors, cvRows),
        y: Int32Array.from(cvRows, (i) => cvLabels.indexOf(y[i]!)),
        numClasses: cvLabels.length
      }, { folds: options.folds ?? 5, seed: options.seed ?? 0, groups: cvRows.map((i) => embedded.contentHashes[i]!) })
      // Back to one column per label: a label left out of the cross-validation gets probability 0.
      const proba = Matrix.make(cvRows.length, labels.length)
      for (let r = 0; r < cvRows.length; r++) {
        cvLabels.forEach((c, k) => (proba.data[r * labels.length + c] = cv.proba.data[r * cvLabels.length + k]!))
      }
      // The fold that held each image out (leave-one-out plans have one fold per image, which is as good a key).
      const folds = new Int32Array(cvRows.length).fill(-1)
      for (const fold of cv.plan.folds) if (fold.repeat === 0) for (const row of fold.test) folds[row] = fold.index
      return { rows: cvRows, proba, folds }
    }).pipe(
      Effect.mapError((e) => new FunctionsError({ reason: "TrainingFailed", message: `cross-validation: ${e.message}`, cause: e }))
    )
    const outOfFold = cvLabels.length >= 2 ? yield* crossValidated : undefined
    const hasTest = kept.some((image) => image.split === "test")
    const insights = yield* Insights.analyse({
      labels,
      ids: kept.map((image) => image.id),
      y,
      embeddings: embedded.vectors,
      contentHashes: embedded.contentHashes,
      ...(hasTest ? { splits: kept.map((image) => image.split ?? "train") } : {}),
      ...(outOfFold ? { outOfFold } : {})
    })
    return {
      backbone: options.backbone,
      insights,
      skipped: embedded.skipped.map((s) => ({ id: s.sample.id, reason: s.reason })),
      sources: new Map(kept.map((image) => [image.id, image.source]))
    } satisfies Inspection
  }).pipe(Effect.withSpan("Inspection.inspect"))
