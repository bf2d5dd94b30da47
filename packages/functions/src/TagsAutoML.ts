/**
 * Fit an image-tags (multi-label) model: every image carries zero or more tags, and the model answers every tag with
 * its probability and whether it passes that tag's threshold.
 *
 * Like `AutoML.fit`, it embeds every image with each backbone (their concatenation competing too), cross-validates
 * candidates on the embeddings and refits the winner on every image; as there, `search`, `evaluate` and `refit` are
 * its steps apart (what a durable retrain runs as separate activities). The candidates are one-vs-rest heads
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
import type { Calibration } from "@loupe/trainers"
import type * as AutoML from "./AutoML.js"
import { FunctionsError } from "./FunctionsError.js"
import { combinedId } from "./internal/Candidates.js"
import { alignRows, backboneIds as resolveBackboneIds, embeddedByAll, failed, repeatsFor, since, withCombination } from "./internal/Features.js"

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
  // The three steps on one embedding: `search`, `evaluate` and `refit` as a durable retrain runs them apart.
  const embedded = yield* embed(dataset, options)
  const trainStart = performance.now()
  const searched = yield* searchEmbedded(embedded, options)
  const cv = yield* evaluate(searched)
  const fitted = yield* refitEmbedded(embedded, searched)
  return {
    fitted,
    cv,
    thresholds: searched.thresholds,
    selected: searched.selected,
    leaderboard: searched.leaderboard,
    outOfFold: { samples: embedded.samples, proba: Matrix.make(embedded.samples.length, embedded.tags.length, Float32Array.from(searched.outOfFold.proba)) },
    skipped: searched.skipped,
    timings: { embedMs: embedded.embedMs, trainMs: since(trainStart) }
  } satisfies FitResult
})

/** Check the options, embed the dataset with every backbone and lay out the feature sets and the tags' truth. */
const embed = Effect.fnUntraced(function*(dataset: Dataset.Dataset, options: FitOptions) {
  yield* Dataset.validateForTags(dataset)
  const tags = dataset.labels
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
  const hashOf = new Map(embeddings[0]!.samples.map((s, i) => [s.id, embeddings[0]!.contentHashes[i]!]))
  return {
    tags,
    grid,
    minPositives,
    seed: options.seed ?? 0,
    ids,
    loaded,
    samples,
    skipped,
    features,
    truth: truthOf(samples, tags),
    groups: keep.map((id) => hashOf.get(id)!),
    embedMs: since(embedStart)
  }
})

type Embedded = Effect.Effect.Success<ReturnType<typeof embed>>

/**
 * What `search` returns, plain data that survives JSON (a durable retrain stores it between its steps): the
 * selected candidate with its calibrators and thresholds (what the refit head carries), the leaderboard, the
 * selected candidate's calibrated out-of-fold probabilities (`proba`, and the tags the samples carry, `truth`: one
 * row per sample in `sampleIds`, one column per tag), the folds, the images skipped and the time spent embedding
 * and searching.
 *
 * @since 0.2.0
 * @category models
 */
export interface Searched {
  readonly tags: ReadonlyArray<string>
  readonly selected: FitResult["selected"]
  readonly calibrators: ReadonlyArray<Calibration.Calibrator>
  readonly thresholds: ReadonlyArray<TagThreshold>
  readonly leaderboard: ReadonlyArray<LeaderboardRow>
  readonly outOfFold: {
    readonly sampleIds: ReadonlyArray<string>
    readonly truth: ReadonlyArray<number>
    readonly proba: ReadonlyArray<number>
  }
  readonly folds: number
  readonly repeats: number
  readonly skipped: FitResult["skipped"]
  readonly timings: FitResult["timings"]
}

/** Cross-validate every backbone and L2 strength on the embedded rows and rank them. */
const searchEmbedded = (embedded: Embedded, options: FitOptions) =>
  Effect.gen(function*() {
    const { features, grid, minPositives, samples, seed, tags, truth } = embedded
    const trainStart = performance.now()
    const plan = yield* MultiLabelFolds.plan(truth, {
      folds: options.folds ?? 5,
      repeats: repeatsFor(samples.length),
      seed,
      groups: embedded.groups
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
        return { row, calibrated, calibrators, thresholds }
      }).pipe(Effect.mapError(failed)))
    const key = (r: LeaderboardRow) => (options.score === "microF1" ? r.microF1 : r.meanAveragePrecision ?? 0)
    // Stable: equal scores keep the grid's order (each backbone, then its strengths from weakest).
    const ranked = [...scored].sort((a, b) => key(b.row) - key(a.row))
    const best = ranked[0]!
    return {
      tags,
      selected: { backbone: best.row.backbone, l2: best.row.l2 },
      calibrators: best.calibrators,
      thresholds: best.thresholds.map((t, i) => ({ tag: tags[i]!, ...t })),
      leaderboard: ranked.map((r) => r.row),
      outOfFold: { sampleIds: samples.map((s) => s.id), truth: Array.from(truth.data), proba: Array.from(best.calibrated.data) },
      folds: plan.k,
      repeats: plan.repeats,
      skipped: embedded.skipped,
      timings: { embedMs: embedded.embedMs, trainMs: since(trainStart) }
    } satisfies Searched
  })

/** Refit the selected candidate's per-tag heads on every embedded row, with the search's calibrators and thresholds. */
const refitEmbedded = (embedded: Embedded, searched: Pick<Searched, "selected" | "calibrators" | "thresholds">) =>
  Effect.gen(function*() {
    const { backbone, l2 } = searched.selected
    const x = embedded.features.get(backbone)
    if (x === undefined) {
      return yield* new FunctionsError({
        reason: "InvalidOptions",
        field: "selected.backbone",
        message: `"${backbone}" is neither one of the backbones [${embedded.ids.join(", ")}] nor their concatenation`
      })
    }
    const tagHeads = yield* OneVsRest.fitTagHeads(x, embedded.truth, { l2 }, embedded.seed).pipe(Effect.mapError(failed))
    const thresholds = searched.thresholds.map(({ tag: _tag, ...threshold }) => threshold)
    const head = yield* OneVsRest.make({ dim: x.cols, tags: tagHeads, calibrators: searched.calibrators, thresholds }, { l2 })
      .pipe(Effect.mapError(failed))
    const { ids, loaded } = embedded
    const chosen = backbone === combinedId(ids) ? loaded : [loaded[ids.indexOf(backbone)]!]
    const extraBackbones = chosen.slice(1).map((b) => ({ backbone: b, options: {} }))
    return {
      labels: embedded.tags,
      backbone: chosen[0]!,
      backboneOptions: {},
      head,
      embed: {},
      ...(extraBackbones.length > 0 ? { extraBackbones } : {})
    } satisfies Pipeline.FittedPipeline
  })

/**
 * The search of `fit` alone: embeds the images (through the `EmbeddingCache` when one is provided), cross-validates
 * every candidate, calibrates the selected one's out-of-fold probabilities and chooses its thresholds, without
 * refitting it (`refit` does, `evaluate` scores it). Fails as `fit` does.
 *
 * @since 0.2.0
 * @category constructors
 */
export const search: (
  dataset: Dataset.Dataset,
  options?: FitOptions
) => Effect.Effect<Searched, FunctionsError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> = Effect.fn(
  "TagsAutoML.search"
)(function*(dataset: Dataset.Dataset, options: FitOptions = {}) {
  return yield* searchEmbedded(yield* embed(dataset, options), options)
})

/**
 * `search`, keeping the rows it embedded for the refit: `refit` fits the selected candidate's heads on them, as `fit`
 * does, without reading the images and the embedding cache again (see `AutoML.searchWithRefit`). Fails as `fit` does.
 *
 * @since 0.2.0
 * @category constructors
 */
export const searchWithRefit: (
  dataset: Dataset.Dataset,
  options?: FitOptions
) => Effect.Effect<
  AutoML.SearchedWithRefit<Searched>,
  FunctionsError | CoreError.CoreError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope
> = Effect.fn("TagsAutoML.searchWithRefit")(function*(dataset: Dataset.Dataset, options: FitOptions = {}) {
  const embedded = yield* embed(dataset, options)
  const searched = yield* searchEmbedded(embedded, options)
  return { searched, refit: refitEmbedded(embedded, searched) }
})

/**
 * The selected candidate's cross-validated evaluation at its thresholds, from the search's calibrated out-of-fold
 * probabilities (what `FitResult.cv` holds). Fails with `FunctionsError` `TrainingFailed` when they cannot be
 * evaluated.
 *
 * @since 0.2.0
 * @category constructors
 */
export const evaluate = (searched: Searched): Effect.Effect<FitResult["cv"], FunctionsError> =>
  Effect.gen(function*() {
    const rows = searched.outOfFold.sampleIds.length
    const cols = searched.tags.length
    const truth = Matrix.make(rows, cols, Float32Array.from(searched.outOfFold.truth))
    const proba = Matrix.make(rows, cols, Float32Array.from(searched.outOfFold.proba))
    const evaluation = yield* MultiLabel.evaluate(truth, proba, searched.thresholds.map((t) => t.threshold), searched.tags).pipe(
      Effect.mapError(failed)
    )
    return { ...evaluation, folds: searched.folds, repeats: searched.repeats }
  })

/**
 * Refit the candidate `search` selected on every image every backbone embeds (through the `EmbeddingCache` when one
 * is provided, where the search left them), with the search's calibrators and thresholds: the pipeline `fit`
 * returns. Fails as `fit` does, and with `FunctionsError` `InvalidOptions` (field `selected.backbone`) when the
 * selected backbone is not among `options.backbones`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const refit: (
  dataset: Dataset.Dataset,
  options: FitOptions,
  searched: Pick<Searched, "selected" | "calibrators" | "thresholds">
) => Effect.Effect<Pipeline.FittedPipeline, FunctionsError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> =
  Effect.fn("TagsAutoML.refit")(function*(dataset: Dataset.Dataset, options: FitOptions, searched: Pick<Searched, "selected" | "calibrators" | "thresholds">) {
    return yield* refitEmbedded(yield* embed(dataset, options), searched)
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
