/**
 * Fit an image-tags (multi-label) model: every image carries zero or more tags, and the model answers every tag with
 * its probability and whether it passes that tag's threshold.
 *
 * Like `AutoML.fit`, it embeds every image with each backbone (their concatenation competing too), cross-validates
 * candidates on the embeddings and refits the winner on every image. The candidates are one-vs-rest heads
 * (`OneVsRest`: one balanced logistic regression per tag) over a small grid of L2 strengths; the folds are stratified
 * for multi-label data (`MultiLabelFolds`, iterative stratification), duplicate images kept in one fold. Each
 * candidate's out-of-fold probabilities are calibrated per tag (`OneVsRest.calibrate`), per-tag thresholds are chosen
 * on them (`OneVsRest.chooseThresholds`), and the candidates are ranked by mAP (or micro-F1, `score`). The winner's
 * calibrators and thresholds go into its head, so a saved bundle (`Bundle.save`) answers the same after reloading.
 *
 * The cross-validated metrics are computed at thresholds chosen on the same out-of-fold probabilities, so its F1s lean
 * optimistic; mAP does not depend on thresholds.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { Dataset, Embedder, Matrix, Pipeline, Registry } from "@loupe/core"
import type { CoreError, LoupeConfig, Sample } from "@loupe/core"
import { MultiLabel } from "@loupe/metrics"
import { MultiLabelFolds, OneVsRest } from "@loupe/trainers"
import type * as AutoML from "./AutoML.js"
import { FunctionsError } from "./FunctionsError.js"
import { combinedId } from "./internal/Candidates.js"
import { alignRows, backboneIds as resolveBackboneIds, embeddedByAll, repeatsFor, withCombination } from "./internal/Features.js"

/**
 * What `fit` searches. The backbone, fold and seed settings are `AutoML.FitOptions`' own (so `Preset.fitOptions`'s
 * result can be passed as is; its head settings are ignored), plus the tags' own:
 *
 * @since 0.2.0
 * @category models
 */
export interface FitOptions extends Pick<AutoML.FitOptions, "backbones" | "folds" | "seed"> {
  /** The L2 strengths searched for the per-tag logistic regressions. Default `[1, 10, 100, 1000]`, classification's. */
  readonly l2?: ReadonlyArray<number>
  /** How candidates are ranked: `"mAP"` (default; threshold-free) or `"microF1"` (at each candidate's own thresholds). */
  readonly score?: "mAP" | "microF1"
  /** A tag with fewer out-of-fold positives keeps the threshold 0.5 instead of one chosen on so few. Default 3. */
  readonly minPositives?: number
}

/**
 * One cross-validated candidate: its feature set (a backbone id or a concatenation `a+b`), its L2 strength, its
 * out-of-fold scores and the milliseconds its cross-validation took.
 *
 * @since 0.2.0
 * @category models
 */
export interface LeaderboardRow {
  readonly backbone: string
  readonly l2: number
  readonly meanAveragePrecision: number | null
  readonly microF1: number
  readonly macroF1: number
  readonly fitMs: number
}

/**
 * One tag's decision threshold on its calibrated probability (`OneVsRest.Threshold`), with the tag.
 *
 * @since 0.2.0
 * @category models
 */
export interface TagThreshold extends OneVsRest.Threshold {
  readonly tag: string
}

/**
 * What `fit` returns: the fitted pipeline (its labels are the tags; save it with `Bundle.save`), its cross-validated
 * multi-label metrics, the per-tag thresholds, the selected candidate, the leaderboard, the calibrated out-of-fold
 * probabilities, the images skipped, and the time spent embedding and training, in milliseconds.
 *
 * @since 0.2.0
 * @category models
 */
export interface FitResult {
  readonly fitted: Pipeline.FittedPipeline
  readonly cv: MultiLabel.Evaluation & { readonly folds: number; readonly repeats: number }
  readonly thresholds: ReadonlyArray<TagThreshold>
  readonly selected: { readonly backbone: string; readonly l2: number }
  /** Every candidate, best first. */
  readonly leaderboard: ReadonlyArray<LeaderboardRow>
  /** The selected candidate's calibrated out-of-fold probabilities, one row per sample used, one column per tag. */
  readonly outOfFold: { readonly samples: ReadonlyArray<Sample.Sample>; readonly proba: Matrix.Matrix }
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>
  readonly timings: { readonly embedMs: number; readonly trainMs: number }
}

const since = (start: number) => Math.round(performance.now() - start)

const failed = (e: { readonly message: string }) => new FunctionsError({ reason: "TrainingFailed", message: e.message, cause: e })

/**
 * The `samples x tags` 0 / 1 matrix of which sample has which tag.
 *
 * @since 0.2.0
 * @category utils
 */
export const truthOf = (samples: ReadonlyArray<Sample.Sample>, tags: ReadonlyArray<string>): Matrix.Matrix => {
  const column = new Map(tags.map((tag, t) => [tag, t]))
  const truth = Matrix.make(samples.length, tags.length)
  samples.forEach((s, i) => {
    for (const tag of s.tags ?? []) {
      const t = column.get(tag)
      if (t !== undefined) truth.data[i * tags.length + t] = 1
    }
  })
  return truth
}

/**
 * Fit a tags model (see the module's description) on a dataset whose samples carry `tags`
 * (`Dataset.fromManifest(file, { tags: true })`, or `Dataset.make` of samples with `tags`). Images that cannot be
 * decoded are skipped and reported in `FitResult.skipped`.
 *
 * Fails with `CoreError` `InvalidDataset` when the dataset cannot be trained on (`Dataset.validateForTags`: an image
 * without a tags list, a tag on fewer than 2 images or on all of them), and when a backbone is not registered or
 * does not load; with `FunctionsError` `NoBackbone`, `InvalidOptions` (naming `l2` or `minPositives`) or
 * `TrainingFailed`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fit: (
  dataset: Dataset.Dataset,
  options?: FitOptions
) => Effect.Effect<FitResult, FunctionsError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> = Effect.fn(
  "TagsAutoML.fit"
)(function*(dataset: Dataset.Dataset, options: FitOptions = {}) {
  yield* Dataset.validateForTags(dataset)
  const tags = dataset.labels
  const seed = options.seed ?? 0
  const grid = options.l2 ?? [1, 10, 100, 1000]
  if (grid.length === 0 || grid.some((l2) => !(l2 > 0 && Number.isFinite(l2)))) {
    return yield* new FunctionsError({ reason: "InvalidOptions", field: "l2", message: `l2 must list positive finite strengths, got [${grid.join(", ")}]` })
  }
  const minPositives = options.minPositives ?? 3
  if (!Number.isInteger(minPositives) || minPositives < 1) {
    return yield* new FunctionsError({ reason: "InvalidOptions", field: "minPositives", message: `minPositives must be a positive integer, got ${minPositives}` })
  }

  const embedStart = performance.now()
  const ids = yield* resolveBackboneIds(options.backbones)
  const loaded = yield* Effect.forEach(ids, (id) => Registry.loadBackbone(id))
  const embeddings = yield* Embedder.embedSamplesMany(loaded, dataset.samples)
  const { samples, skipped } = embeddedByAll(dataset.samples, embeddings)
  yield* Dataset.validateForTags(Dataset.make(samples, { labels: tags }))
  const keep = samples.map((s) => s.id)
  const features = withCombination(new Map(ids.map((id, i) => [id, alignRows(embeddings[i]!, embeddings[i]!.vectors, keep)])))
  const embedMs = since(embedStart)

  const trainStart = performance.now()
  const truth = truthOf(samples, tags)
  const hashOf = new Map(embeddings[0]!.samples.map((s, i) => [s.id, embeddings[0]!.contentHashes[i]!]))
  const plan = yield* MultiLabelFolds.plan(truth, {
    folds: options.folds ?? 5,
    repeats: repeatsFor(samples.length),
    seed,
    groups: keep.map((id) => hashOf.get(id)!)
  }).pipe(Effect.mapError(failed))

  const scored = yield* Effect.forEach([...features].flatMap(([backbone, x]) => grid.map((l2) => ({ backbone, x, l2 }))), ({ backbone, l2, x }) =>
    Effect.gen(function*() {
      const start = performance.now()
      const oof = yield* OneVsRest.crossValidate(x, truth, { l2 }, plan, seed)
      const { calibrated, calibrators } = yield* OneVsRest.calibrate(truth, oof.proba)
      const thresholds = OneVsRest.chooseThresholds(truth, calibrated, { minPositives })
      const evaluation = yield* MultiLabel.evaluate(truth, calibrated, thresholds.map((t) => t.threshold), tags)
      const row: LeaderboardRow = {
        backbone,
        l2,
        meanAveragePrecision: evaluation.meanAveragePrecision,
        microF1: evaluation.micro.f1,
        macroF1: evaluation.macro.f1,
        fitMs: since(start)
      }
      yield* Effect.logDebug(`tags: ${backbone} l2=${l2}: mAP ${row.meanAveragePrecision?.toFixed(3)}, micro-F1 ${row.microF1.toFixed(3)}`)
      return { row, x, calibrated, calibrators, thresholds, evaluation }
    }).pipe(Effect.mapError(failed)))
  const key = (r: LeaderboardRow) => (options.score === "microF1" ? r.microF1 : r.meanAveragePrecision ?? 0)
  // Stable: equal scores keep the grid's order (each backbone, then its strengths from weakest).
  const ranked = [...scored].sort((a, b) => key(b.row) - key(a.row))
  const best = ranked[0]!

  const tagHeads = yield* OneVsRest.fitTagHeads(best.x, truth, { l2: best.row.l2 }, seed).pipe(Effect.mapError(failed))
  const head = yield* OneVsRest.make({ dim: best.x.cols, tags: tagHeads, calibrators: best.calibrators, thresholds: best.thresholds }, { l2: best.row.l2 })
    .pipe(Effect.mapError(failed))
  const trainMs = since(trainStart)
  const chosen = best.row.backbone === combinedId(ids) ? loaded : [loaded[ids.indexOf(best.row.backbone)]!]
  const extraBackbones = chosen.slice(1).map((backbone) => ({ backbone, options: {} }))
  return {
    fitted: {
      labels: tags,
      backbone: chosen[0]!,
      backboneOptions: {},
      head,
      embed: {},
      ...(extraBackbones.length > 0 ? { extraBackbones } : {})
    },
    cv: { ...best.evaluation, folds: plan.k, repeats: plan.repeats },
    thresholds: best.thresholds.map((t, i) => ({ tag: tags[i]!, ...t })),
    selected: { backbone: best.row.backbone, l2: best.row.l2 },
    leaderboard: ranked.map((r) => r.row),
    outOfFold: { samples, proba: best.calibrated },
    skipped,
    timings: { embedMs, trainMs }
  } satisfies FitResult
})

/**
 * Whether a fitted pipeline is a tags model (its head is one-vs-rest), as a loaded bundle tells.
 *
 * @since 0.2.0
 * @category utils
 */
export const isTagsModel = (fitted: Pipeline.FittedPipeline): boolean => OneVsRest.thresholdsOf(fitted.head) !== undefined

/**
 * One tag of a prediction: its calibrated probability, its threshold, and whether the probability reaches it.
 *
 * @since 0.2.0
 * @category models
 */
export interface TagPrediction {
  readonly tag: string
  readonly probability: number
  readonly threshold: number
  readonly passes: boolean
}

/**
 * Every tag for each of `samples`, in the model's tag order, from a tags model (`fit`'s, or a loaded bundle's); images
 * that cannot be read are listed in `skipped`. Fails with `FunctionsError` `InvalidOptions` (field `fitted`) when the
 * model is not a tags model, and with `CoreError` when a backbone fails.
 *
 * @since 0.2.0
 * @category predicting
 */
export const predictMany = (
  fitted: Pipeline.FittedPipeline,
  samples: ReadonlyArray<Sample.Sample>
): Effect.Effect<
  {
    readonly predictions: ReadonlyArray<{ readonly sample: Sample.Sample; readonly tags: ReadonlyArray<TagPrediction> }>
    readonly skipped: ReadonlyArray<Sample.SkippedSample>
  },
  FunctionsError | CoreError.CoreError
> =>
  Effect.gen(function*() {
    const thresholds = OneVsRest.thresholdsOf(fitted.head)
    if (thresholds === undefined) {
      return yield* new FunctionsError({
        reason: "InvalidOptions",
        field: "fitted",
        message: `Not a tags model: its head is ${fitted.head.kind}, not ${OneVsRest.kind}`
      })
    }
    const features = yield* Pipeline.embedFeatures(Pipeline.backbonesOf(fitted).map((b) => b.backbone), samples, fitted.embed)
    const proba = Pipeline.predictProba(fitted.head, features)
    return {
      predictions: features.samples.map((sample, i) => ({
        sample,
        tags: fitted.labels.map((tag, t) => {
          const probability = proba.data[i * proba.cols + t]!
          return { tag, probability, threshold: thresholds[t]!, passes: probability >= thresholds[t]! }
        })
      })),
      skipped: features.skipped
    }
  })

/**
 * Every tag for one image (see `predictMany`); an unreadable image fails with `FunctionsError` `InvalidImage`.
 *
 * @since 0.2.0
 * @category predicting
 */
export const predict = (fitted: Pipeline.FittedPipeline, source: Sample.ImageSource): Effect.Effect<ReadonlyArray<TagPrediction>, FunctionsError | CoreError.CoreError> =>
  Effect.flatMap(predictMany(fitted, [{ id: "0", source }]), ({ predictions, skipped }) =>
    predictions[0]
      ? Effect.succeed(predictions[0].tags)
      : Effect.fail(new FunctionsError({ reason: "InvalidImage", field: "image", message: skipped[0]?.reason ?? "The image could not be read" })))
