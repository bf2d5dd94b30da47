/**
 * The steps of one retrain, shared by the in-process `Retrainer` and the durable `RetrainWorkflow`: `prepare` (read a
 * snapshot of the function's data into a plan), `embed` (the plan's images, into the embedding cache), `search` (the
 * AutoML search, without the refit: the selected candidate and its out-of-fold predictions), `evaluate` (the
 * winner's cross-validated metrics), `refit` (the winner fit on every sample, written as a bundle with its metrics),
 * `promote` (record the version under the promotion rule) and `prune`. Every input and output except the fitted
 * pipeline is plain JSON, so the workflow engine can persist it between steps and a resumed workflow skips the steps
 * that finished. In one process, `train` runs search, evaluate and refit on one embedding of the samples.
 *
 * @internal
 */
import type { FileSystem } from "@effect/platform"
import { Bundle, Dataset, Embedder, Matrix, Registry } from "@loupe/core"
import type { EmbeddingCache, LoupeConfig, Pipeline } from "@loupe/core"
import { Effect, Option } from "effect"
import { Classification } from "@loupe/metrics"
import * as AutoML from "../AutoML.js"
import { BlobStore } from "../BlobStore.js"
import { FunctionsError } from "../FunctionsError.js"
import * as Preset from "../Preset.js"
import * as TagsAutoML from "../TagsAutoML.js"
import type { LeftOutLabel, ModelMetrics, TagsModelMetrics } from "../Retrainer.js"
import { bundlesPrefix, imageKey, Store } from "../Store.js"
import type { FunctionOutput, ModelVersionRecord, TrainingSnapshot } from "../Store.js"
import * as Candidates from "./Candidates.js"
import * as Ids from "./Ids.js"
import * as PromotionRule from "./PromotionRule.js"
import * as Trainable from "./Trainable.js"

/**
 * A sample a retrain trains on, by content hash: a Classification function's with its label, a Tags function's with
 * its tags (those trained on; possibly none).
 */
export interface PlanSample {
  readonly id: string
  readonly contentHash: string
  readonly label?: string | undefined
  readonly tags?: ReadonlyArray<string> | undefined
}

/**
 * What a retrain trains on: the function's annotated (Classification) or tagged (Tags) samples at `revision`, with
 * its labels.
 */
export interface Plan {
  readonly functionId: string
  readonly revision: number
  readonly output: FunctionOutput
  readonly preset: string
  readonly overrides: unknown
  readonly samples: ReadonlyArray<PlanSample>
  /** Every label of the function, to map the model's label names back to ids. */
  readonly labels: ReadonlyArray<{ readonly id: string; readonly name: string }>
  /** The labels (Tags: the tags) trained on. */
  readonly trained: ReadonlyArray<string>
  readonly leftOut: ReadonlyArray<LeftOutLabel>
}

/** What `prepare` finds: a plan, a function that cannot be trained (and why), or one whose model is up to date. */
export type Prepared =
  | { readonly _tag: "Trainable"; readonly plan: Plan }
  | { readonly _tag: "Untrainable"; readonly revision: number; readonly reason: string }
  | { readonly _tag: "UpToDate" }

/** A trained version, written to the blob store, not yet recorded: what `promote` records. */
export interface Trained {
  readonly functionId: string
  readonly versionId: string
  readonly bundle: string
  readonly labels: ReadonlyArray<{ readonly id: string; readonly name: string }>
  readonly metrics: ModelMetrics | TagsModelMetrics
  readonly revision: number
  readonly sampleCount: number
  readonly promote: Preset.Resolved["settings"]["promote"]
  readonly keepVersions: number
}

/** What the steps together need: the store, the blob store, the registry, config, the embedding cache, files. */
export type Requirements =
  | Store
  | BlobStore
  | Registry.Registry
  | LoupeConfig.LoupeConfig
  | EmbeddingCache.EmbeddingCache
  | FileSystem.FileSystem

/** Where a retrain writes a version's bundle in the blob store. */
export const bundleKey = (functionId: string, versionId: string) => `${bundlesPrefix(functionId)}/${versionId}`

const since = (start: number) => Math.round(performance.now() - start)

const trainingFailed = (e: { readonly message: string }) =>
  e instanceof FunctionsError ? e : new FunctionsError({ reason: "TrainingFailed", message: e.message, cause: e })

/** The samples (of a snapshot's) whose image is in the blob store; a retrain trains on those only. */
const withImages = <S extends { readonly contentHash: string }>(functionId: string, samples: ReadonlyArray<S>) =>
  Effect.gen(function*() {
    const blobs = yield* BlobStore
    const present = yield* Effect.forEach(samples, (s) => blobs.localFile(imageKey(functionId, s.contentHash)).pipe(Effect.option))
    return samples.filter((_, i) => Option.isSome(present[i]!))
  })

/** Samples per name, for every label of the snapshot (zero included). */
const countPerLabel = (snapshot: TrainingSnapshot, names: ReadonlyArray<string>) => {
  const counts = new Map<string, number>()
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1)
  return snapshot.labels.map((l) => ({ id: l.id, name: l.name, sampleCount: counts.get(l.name) ?? 0 }))
}

/** A Classification function's plan: its annotated samples, labels with too few left out (`Trainable.split`). */
const classificationPlan = (snapshot: TrainingSnapshot) =>
  Effect.gen(function*() {
    const usable = (yield* withImages(snapshot.function.id, snapshot.samples)).map((s) => ({
      id: s.id,
      contentHash: s.contentHash,
      label: s.annotation.labelName
    }))
    const counted = countPerLabel(snapshot, usable.map((s) => s.label))
    const { leftOut, trainable } = Trainable.split(counted)
    const trained = new Set(trainable.map((l) => l.name))
    return {
      samples: usable.filter((s) => trained.has(s.label)),
      trained: [...trained],
      leftOut,
      why: Trainable.tooFewLabels(counted)
    }
  })

/**
 * A Tags function's plan: its tagged samples (every one, an empty tag set included: the negatives), each with the
 * tags trained on; tags with too few samples with or without them are left out (`Trainable.splitTags`).
 */
const tagsPlan = (snapshot: TrainingSnapshot) =>
  Effect.gen(function*() {
    const usable = yield* withImages(snapshot.function.id, snapshot.taggedSamples)
    const counted = countPerLabel(snapshot, usable.flatMap((s) => s.tags.map((t) => t.labelName)))
    const { leftOut, trainable } = Trainable.splitTags(counted, usable.length)
    const trained = new Set(trainable.map((l) => l.name))
    return {
      samples: usable.map((s) => ({
        id: s.id,
        contentHash: s.contentHash,
        tags: s.tags.map((t) => t.labelName).filter((name) => trained.has(name))
      })),
      trained: [...trained].sort(),
      leftOut,
      why: Trainable.tooFewTags(counted, usable.length)
    }
  })

/** The snapshot of the function's data a retrain trains on; labels with too few samples are left out, not fatal. */
export const prepare = (functionId: string): Effect.Effect<Prepared, FunctionsError, Store | BlobStore> =>
  Effect.gen(function*() {
    const store = yield* Store
    const snapshot = yield* store.trainingSnapshot(functionId)
    const fn = snapshot.function
    if (fn.revision <= fn.trainedRevision) return { _tag: "UpToDate" } as const
    const { leftOut, samples, trained, why } = yield* (fn.output === "Tags" ? tagsPlan(snapshot) : classificationPlan(snapshot))
    const plan: Plan = {
      functionId,
      revision: fn.revision,
      output: fn.output,
      preset: fn.preset,
      overrides: fn.overrides,
      samples,
      labels: snapshot.labels.map((l) => ({ id: l.id, name: l.name })),
      trained,
      leftOut
    }
    // Classification data is checked as any training dataset is; the tags rule (`Trainable.splitTags`) is the check of tags.
    const valid = yield* Effect.either(
      why !== undefined
        ? Effect.fail({ message: `Not trained: ${why}` })
        : fn.output === "Tags"
        ? Effect.void
        : Effect.flatMap(dataset(plan), Dataset.validateForTraining)
    )
    return valid._tag === "Left"
      ? { _tag: "Untrainable", revision: fn.revision, reason: valid.left.message } as const
      : { _tag: "Trainable", plan } as const
  })

/** The plan's samples as a dataset of local files (a blob store elsewhere downloads them). */
const dataset = (plan: Plan) =>
  Effect.gen(function*() {
    const blobs = yield* BlobStore
    const samples = yield* Effect.forEach(plan.samples, (s) =>
      Effect.map(blobs.localFile(imageKey(plan.functionId, s.contentHash)), (source) => ({
        id: s.id,
        source,
        ...(s.label === undefined ? {} : { label: s.label }),
        ...(s.tags === undefined ? {} : { tags: s.tags })
      })))
    return Dataset.make(samples, { labels: new Set(plan.trained) })
  })

/**
 * The plan's preset resolved and its fit options, backbone choice included. A retrain resolves them once and gives
 * them to both the embed step and the search: resolved again after embedding, the choice would see weights that
 * embedding has just pulled and explain itself by them.
 */
export const fitOptions = (plan: Pick<Plan, "preset" | "overrides">) =>
  Effect.gen(function*() {
    const resolved = yield* Preset.resolve(plan.preset, plan.overrides)
    return { resolved, full: yield* Preset.fitOptions(resolved) }
  })

/** The backbones and mirroring a retrain with these fit options embeds with. */
export const embedOptions = (full: AutoML.FitOptions) => ({ backbones: full.backbones ?? [], mirror: full.mirror === true })

/**
 * Embed these of a function's images (by content hash) with these backbones into the embedding cache, so that the
 * search only reads the cache. Returns how many images were embedded (or already cached).
 */
export const embedImages = (
  functionId: string,
  images: ReadonlyArray<{ readonly id: string; readonly contentHash: string }>,
  options: { readonly backbones: ReadonlyArray<string>; readonly mirror: boolean }
): Effect.Effect<
  number,
  FunctionsError,
  BlobStore | Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem
> =>
  Effect.scoped(Effect.gen(function*() {
    const blobs = yield* BlobStore
    const samples = yield* Effect.forEach(images, (s) =>
      Effect.map(blobs.localFile(imageKey(functionId, s.contentHash)), (source) => ({ id: s.id, source })))
    const loaded = yield* Effect.forEach(options.backbones, (id) => Registry.loadBackbone(id))
    const embeddings = yield* Embedder.embedSamplesMany(loaded, samples, { mirror: options.mirror })
    return embeddings[0]?.samples.length ?? 0
  })).pipe(Effect.mapError(trainingFailed))

/** The previous model's choice when a retrain may search only it (see `RetrainerConfig.fullSearchGrowth`). */
const narrowing = (
  previous: ModelVersionRecord | undefined,
  resolved: Preset.Resolved,
  full: AutoML.FitOptions,
  data: Dataset.Dataset,
  growth: number
): (AutoML.Candidate & { readonly fullSearchSamples: number }) | undefined => {
  const metrics = previous?.metrics as ModelMetrics | undefined
  if (previous === undefined || metrics?.search === undefined || growth === 0) return undefined
  const selected = metrics.selected as AutoML.Candidate
  // Only a choice the full space can still make (backbones the preset selects today).
  if (!Candidates.membersOf(selected.backbone).every((id) => full.backbones?.includes(id))) return undefined
  const sameLabels = previous.labels.length === data.labels.length &&
    previous.labels.every((l, i) => l.name === data.labels[i])
  const samePreset = metrics.preset.name === resolved.preset.name && metrics.preset.version === resolved.preset.version
  const small = data.samples.length <= metrics.search.fullSearchSamples * (1 + growth)
  return sameLabels && samePreset && small ? { ...selected, fullSearchSamples: metrics.search.fullSearchSamples } : undefined
}

/**
 * What `search` found, plain JSON (the workflow engine stores it): the AutoML search's outcome (Tags: the
 * multi-label search's), with what `evaluate` and `refit` need of the preset it ran under, so that neither resolves
 * the preset again: the fit options searched (narrowed, for a narrowed retrain), the preset, the backbone choice and
 * the promotion settings.
 */
export type Searched = {
  readonly preset: Preset.Resolved["preset"]
  readonly backboneChoice: Preset.BackboneChoice
  readonly promote: Preset.Resolved["settings"]["promote"]
  readonly keepVersions: number
} & (
  | {
    readonly output: "Classification"
    readonly options: AutoML.FitOptions
    readonly scope: ModelMetrics["search"]
    readonly result: AutoML.Searched
  }
  | { readonly output: "Tags"; readonly options: TagsAutoML.FitOptions; readonly result: TagsAutoML.Searched }
)

/** The selected candidate's out-of-fold prediction of each training sample (`ModelMetrics.cv.outOfFold`). */
const outOfFoldPredictions = (searched: AutoML.Searched): NonNullable<ModelMetrics["cv"]["outOfFold"]> => {
  const { given, proba, sampleIds } = searched.outOfFold
  const cols = searched.labels.length
  const predicted = Classification.predictions(Matrix.make(sampleIds.length, cols, Float32Array.from(proba)))
  return {
    sampleIds: [...sampleIds],
    given: [...given],
    predicted: Array.from(predicted),
    confidence: Array.from(predicted, (p, i) => proba[i * cols + p]!)
  }
}

/** A Classification model's metrics (`ModelMetrics`) from the search and its evaluation. */
const toMetrics = (plan: Plan, searched: Extract<Searched, { output: "Classification" }>, cv: AutoML.FitResult["cv"]): ModelMetrics => {
  const { result } = searched
  return {
    preset: searched.preset,
    sampleCount: plan.samples.length,
    search: searched.scope,
    leftOutLabels: plan.leftOut,
    backboneChoice: searched.backboneChoice,
    cv: {
      folds: cv.folds,
      total: cv.total,
      correct: cv.correct,
      accuracy: cv.accuracy,
      macroF1: cv.macroF1,
      logLoss: cv.logLoss,
      foldMacroF1: cv.foldMacroF1,
      macroF1StandardError: cv.macroF1StandardError,
      labels: cv.labels,
      confusionMatrix: cv.confusionMatrix,
      perClass: cv.perClass.map((c) => ({
        labelName: c.label,
        accuracy: c.support === 0 ? 0 : c.correct / c.support,
        precision: c.precision,
        recall: c.recall,
        f1: c.f1,
        support: c.support
      })),
      calibration: { ece: cv.ece, bins: cv.calibration },
      outOfFold: outOfFoldPredictions(result)
    },
    selected: result.selected,
    leaderboard: result.leaderboard.slice(0, 10),
    skipped: result.skipped.map((s) => ({ sampleId: s.file, reason: s.reason })),
    timings: { ...result.timings, totalMs: result.timings.embedMs + result.timings.trainMs }
  }
}

/** A Tags model's metrics (`TagsModelMetrics`) from the multi-label search and its evaluation. */
const toTagsMetrics = (plan: Plan, searched: Extract<Searched, { output: "Tags" }>, cv: TagsAutoML.FitResult["cv"]): TagsModelMetrics => {
  const { result } = searched
  const thresholds = new Map(result.thresholds.map((t) => [t.tag, t.threshold]))
  const sampleCount = plan.samples.length
  return {
    output: "Tags",
    preset: searched.preset,
    sampleCount,
    // Every tags retrain searches the whole space (the multi-label fit has no narrowed search).
    search: { scope: "full", fullSearchSamples: sampleCount },
    leftOutLabels: plan.leftOut,
    backboneChoice: searched.backboneChoice,
    cv: {
      folds: cv.folds,
      total: cv.total,
      tags: cv.tags,
      perTag: cv.perTag.map((t) => ({
        labelName: t.tag,
        precision: t.precision,
        recall: t.recall,
        f1: t.f1,
        averagePrecision: t.averagePrecision,
        support: t.support,
        threshold: thresholds.get(t.tag)!
      })),
      micro: cv.micro,
      macro: cv.macro,
      meanAveragePrecision: cv.meanAveragePrecision,
      exactMatch: cv.exactMatch
    },
    selected: result.selected,
    leaderboard: result.leaderboard.slice(0, 10),
    skipped: result.skipped.map((s) => ({ sampleId: s.file, reason: s.reason })),
    timings: { ...result.timings, totalMs: result.timings.embedMs + result.timings.trainMs }
  }
}

/** The multi-label fit's options from the preset's: its backbones, folds and seed. */
const tagsOptions = (full: AutoML.FitOptions): TagsAutoML.FitOptions => ({
  ...(full.backbones === undefined ? {} : { backbones: full.backbones }),
  ...(full.folds === undefined ? {} : { folds: full.folds }),
  ...(full.seed === undefined ? {} : { seed: full.seed })
})

/**
 * The search on the plan's samples, keeping the rows it embedded for `refit` in this process: for a Classification
 * function AutoML's (with `growth`, only the promoted model's candidate until the data has grown that much), for a
 * Tags function the multi-label one (`TagsAutoML`). `fit`: the fit options the embed step used (`fitOptions`), else
 * they are resolved here.
 */
const searchKeepingRows = (
  plan: Plan,
  growth: number,
  fit?: Effect.Effect.Success<ReturnType<typeof fitOptions>>
) =>
  Effect.gen(function*() {
    const data = yield* dataset(plan)
    const { full, resolved } = fit ?? (yield* fitOptions(plan))
    const common = {
      preset: resolved.preset,
      backboneChoice: full.backboneChoice,
      promote: resolved.settings.promote,
      keepVersions: resolved.settings.keepVersions
    }
    if (plan.output === "Tags") {
      const options = tagsOptions(full)
      const { refit, searched } = yield* TagsAutoML.searchWithRefit(data, options)
      return { searched: { ...common, output: "Tags", options, result: searched } as Searched, refit }
    }
    const store = yield* Store
    const narrowTo = narrowing(yield* store.promotedVersion(plan.functionId), resolved, full, data, growth)
    // Stored without the backbone choice's explanation, which `common` carries once.
    const { backboneChoice: _, ...searchable } = full
    const options = narrowTo ? Candidates.narrowedTo(searchable, narrowTo) : searchable
    const scope: ModelMetrics["search"] = narrowTo
      ? { scope: "selected", fullSearchSamples: narrowTo.fullSearchSamples }
      : { scope: "full", fullSearchSamples: plan.samples.length }
    const { refit, searched } = yield* AutoML.searchWithRefit(data, options)
    return { searched: { ...common, output: "Classification", options, scope, result: searched } as Searched, refit }
  }).pipe(Effect.mapError(trainingFailed))

/**
 * The search on the plan's samples (read from the embedding cache the embed step filled), without refitting (see
 * `searchKeepingRows`): the durable workflow's search activity.
 */
export const search = (
  plan: Plan,
  growth: number,
  fit?: Effect.Effect.Success<ReturnType<typeof fitOptions>>
): Effect.Effect<Searched, FunctionsError, Requirements> =>
  Effect.scoped(Effect.map(searchKeepingRows(plan, growth, fit), ({ searched }) => searched))

/** The selected candidate's metrics (`ModelMetrics`; Tags: `TagsModelMetrics`), from the search's out-of-fold predictions. */
export const evaluate = (plan: Plan, searched: Searched): Effect.Effect<ModelMetrics | TagsModelMetrics, FunctionsError> =>
  searched.output === "Tags"
    ? Effect.map(TagsAutoML.evaluate(searched.result), (cv) => toTagsMetrics(plan, searched, cv))
    : Effect.map(AutoML.evaluate(searched.result), (cv) => toMetrics(plan, searched, cv))

/** What the refit steps return: the version written (for `promote`) and its pipeline (for this process to serve). */
export interface Refit {
  readonly trained: Trained
  readonly fitted: Pipeline.FittedPipeline
}

/**
 * Write a refit pipeline as a new version's bundle, with its metrics (their times now counting the refit's
 * `refitMs`), to the version's folder in the blob store: the version `promote` records.
 */
const writeVersion = (
  plan: Plan,
  searched: Searched,
  metrics: ModelMetrics | TagsModelMetrics,
  fitted: Pipeline.FittedPipeline,
  refitMs: number
): Effect.Effect<Refit, FunctionsError, BlobStore | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const blobs = yield* BlobStore
    const timings = { ...metrics.timings, trainMs: metrics.timings.trainMs + refitMs, totalMs: metrics.timings.totalMs + refitMs }
    const withRefit = { ...metrics, timings }
    const versionId = Ids.make("model")
    const bundle = bundleKey(plan.functionId, versionId)
    const labelIds = new Map(plan.labels.map((l) => [l.name, l.id]))
    const labels = fitted.labels.map((name) => ({ id: labelIds.get(name)!, name }))
    yield* blobs.putDirectory(bundle, (dir) =>
      Bundle.save(fitted, dir, { functionId: plan.functionId, versionId, revision: plan.revision, labels, metrics: withRefit }).pipe(
        Effect.mapError(trainingFailed)
      ))
    const trained: Trained = {
      functionId: plan.functionId,
      versionId,
      bundle,
      labels,
      metrics: withRefit,
      revision: plan.revision,
      sampleCount: plan.samples.length,
      promote: searched.promote,
      keepVersions: searched.keepVersions
    }
    return { trained, fitted }
  })

/**
 * Refit the selected candidate on the plan's samples (read from the embedding cache) and write the version
 * (`writeVersion`): the durable workflow's refit activity, which may run in another process than the search.
 */
export const refit = (
  plan: Plan,
  searched: Searched,
  metrics: ModelMetrics | TagsModelMetrics
): Effect.Effect<Refit, FunctionsError, Requirements> =>
  Effect.gen(function*() {
    const started = performance.now()
    const data = yield* dataset(plan)
    const fitted = yield* Effect.scoped(
      searched.output === "Tags"
        ? TagsAutoML.refit(data, searched.options, searched.result)
        : AutoML.refit(data, searched.options, searched.result.selected)
    ).pipe(Effect.mapError(trainingFailed))
    return yield* writeVersion(plan, searched, metrics, fitted, since(started))
  })

/**
 * Search, evaluate and refit in this process on one embedding of the plan's samples, then write the version: the
 * in-process retrain's steps, which the durable workflow runs as separate activities (there the refit reads the
 * rows from the embedding cache again, since it may run on another runner).
 */
export const train = (
  plan: Plan,
  growth: number,
  fit?: Effect.Effect.Success<ReturnType<typeof fitOptions>>
): Effect.Effect<Refit, FunctionsError, Requirements> =>
  Effect.scoped(Effect.gen(function*() {
    const kept = yield* searchKeepingRows(plan, growth, fit)
    const metrics = yield* evaluate(plan, kept.searched)
    const started = performance.now()
    const fitted = yield* kept.refit
    return yield* writeVersion(plan, kept.searched, metrics, fitted, since(started))
  }))

/** The candidate a search selected, in words (for the logs). */
export const describeSelected = (searched: Searched): string => {
  if (searched.output === "Classification") return AutoML.describeCandidate(searched.result.selected)
  const { backbone, l2 } = searched.result.selected
  return `${backbone} + one-vs-rest logistic regressions l2=${l2}`
}

/**
 * Record the trained version and promote it under its promotion rule. Recording a version twice (a step retried
 * after it committed) returns the recorded one.
 */
export const promote = (trained: Trained): Effect.Effect<ModelVersionRecord, FunctionsError, Store> =>
  Effect.gen(function*() {
    const store = yield* Store
    const recorded = yield* Effect.option(store.getModelVersion(trained.functionId, trained.versionId))
    if (Option.isSome(recorded)) return recorded.value
    return yield* store.addModelVersion({
      functionId: trained.functionId,
      id: trained.versionId,
      bundle: trained.bundle,
      labels: trained.labels,
      metrics: trained.metrics,
      revision: trained.revision,
      sampleCount: trained.sampleCount,
      holdBack: trained.promote === "if-not-worse" ? PromotionRule.ifNotWorse(trained.metrics) : undefined
    })
  })

/**
 * Keep the newest `keep` versions (and the promoted one): the others' records go, then their bundles, each only
 * from the folder a retrain wrote it to. A bundle recorded anywhere else was not written here and stays. Returns the
 * versions removed.
 */
export const prune = (functionId: string, keep: number): Effect.Effect<ReadonlyArray<ModelVersionRecord>, FunctionsError, Store | BlobStore> =>
  Effect.gen(function*() {
    const store = yield* Store
    const blobs = yield* BlobStore
    const pruned = yield* store.pruneModelVersions(functionId, keep)
    const ours = pruned.filter((v) => v.bundle === bundleKey(functionId, v.id))
    yield* Effect.forEach(ours, (v) => blobs.remove(v.bundle), { discard: true })
    if (pruned.length > 0) {
      yield* Effect.logInfo(`Function ${functionId}: removed ${pruned.length} old model version(s), keeping the newest ${keep}`)
    }
    return pruned
  })
