/**
 * Background retraining and the models that serve. After a change to a function's training data, `schedule` wakes
 * the function's worker fiber; it waits for the changes to settle (the debounce), reads a snapshot of the data,
 * fits with AutoML, writes a bundle to a versioned folder of the blob store, and promotes it (under the function's
 * `promote` rule: `if-not-worse` keeps a worse retrain unserved). Then it removes versions beyond the function's
 * `keepVersions` (never the promoted one). One run at a time per function; changes that arrive during a run schedule
 * another.
 *
 * Serving reads the promoted version from the store and keeps loaded models in memory by version id. A new model is
 * put in that cache before the store transaction that promotes it commits, so an invocation sees either the old
 * version (still cached) or the new one (already cached): the switch is atomic and never waits for a load. Older
 * versions stay in the history and `rollback` promotes one again.
 *
 * Backbones are loaded once per service (see `internal/SharedBackbones`) and the `EmbeddingCache` keeps every
 * embedding, so a retrain embeds only images it has not seen.
 *
 * Before a function's first model, `zeroShot` gives its zero-shot model when its preset selects a backbone with a
 * text tower (CLIP, SigLIP): the labels' names, put into prompt templates, classify images (`ZeroShot` in
 * `@loupe/trainers`). It is rebuilt when the labels change.
 *
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import { Bundle, Dataset, EmbeddingCache, LoupeConfig, Registry } from "@loupe/core"
import type { Pipeline } from "@loupe/core"
import { Classification } from "@loupe/metrics"
import {
  Cause,
  Context,
  Duration,
  Effect,
  Fiber,
  Layer,
  Option,
  PubSub,
  Queue,
  Ref,
  Runtime,
  Scope,
  Stream,
  SubscriptionRef,
  SynchronizedRef
} from "effect"
import * as AutoML from "./AutoML.js"
import { FunctionsError } from "./FunctionsError.js"
import { BlobStore } from "./BlobStore.js"
import * as Candidates from "./internal/Candidates.js"
import * as Ids from "./internal/Ids.js"
import * as SharedBackbones from "./internal/SharedBackbones.js"
import * as Trainable from "./internal/Trainable.js"
import * as ZeroShotModels from "./internal/ZeroShotModels.js"
import * as Preset from "./Preset.js"
import * as PromotionRule from "./internal/PromotionRule.js"
import { bundlesPrefix, imageKey, Store } from "./Store.js"
import type * as StoreTypes from "./Store.js"

/**
 * When retrains run (debounce, longest wait, concurrency, resuming at start) and when a retrain searches the
 * preset's whole space again. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetrainerConfig {
  /** Quiet time after the last change before a retrain starts. Default 500 ms. */
  readonly debounce?: Duration.DurationInput
  /** The longest a retrain is put off while changes keep coming. Default 10 x `debounce`. */
  readonly maxWait?: Duration.DurationInput
  /** Training runs at once, across functions. Default 1. */
  readonly concurrency?: number
  /** At start, schedule every function whose data changed since its last training run. Default true. */
  readonly resumeOnStart?: boolean
  /**
   * How much the annotated samples may grow (as a fraction) since the last full search before a retrain searches the
   * preset's whole space again. Until then a retrain cross-validates and refits only the promoted model's candidate:
   * its feature set (a backbone or a concatenation), head kind and params, which keeps retrains
   * cheap with multi-backbone presets; the next full search re-tunes the params. A change of labels or of the preset's
   * version always brings a full search. Default 0.25; 0 makes every retrain a full search.
   */
  readonly fullSearchGrowth?: number
}

/**
 * Where a function's worker is: `idle`, `debouncing` (waiting for changes to settle) or `training`.
 *
 * @since 0.1.0
 * @category models
 */
export type Phase = "idle" | "debouncing" | "training"

/**
 * A function's training phase, and whether another run follows it.
 *
 * @since 0.1.0
 * @category models
 */
export interface TrainingStatus {
  readonly phase: Phase
  /** A change arrived after the current phase began: another run follows. */
  readonly pending: boolean
}

/**
 * A label a training run left out, with its annotated sample count and why (today: fewer than 2 annotated samples).
 *
 * @since 0.2.0
 * @category models
 */
export interface LeftOutLabel {
  readonly id: string
  readonly name: string
  readonly sampleCount: number
  readonly reason: string
}

/**
 * Cross-validated facts about a model, stored with its version (`ModelVersionRecord.metrics`): its preset, the
 * out-of-fold accuracy, macro-F1 (0 to 1), log loss, confusion matrix and per-label scores, the selected candidate,
 * the top of the leaderboard, the samples skipped and the time spent, in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface ModelMetrics {
  readonly preset: { readonly name: string; readonly version: number }
  readonly sampleCount: number
  readonly cv: {
    readonly folds: number
    readonly total: number
    readonly correct: number
    readonly accuracy: number
    readonly macroF1: number
    readonly logLoss: number
    /**
     * Macro-F1 on each fold alone, and its standard error across folds (`AutoML.FitResult.cv`); absent on models
     * trained before 0.2.0.
     *
     * @since 0.2.0
     */
    readonly foldMacroF1?: ReadonlyArray<number>
    /** @since 0.2.0 */
    readonly macroF1StandardError?: number
    readonly labels: ReadonlyArray<string>
    /** `confusionMatrix[t][p]`: samples of true label `t` predicted as `p`, out of fold. */
    readonly confusionMatrix: ReadonlyArray<ReadonlyArray<number>>
    readonly perClass: ReadonlyArray<{
      readonly labelName: string
      /** Share of this label's samples predicted right (its recall). */
      readonly accuracy: number
      readonly precision: number
      readonly recall: number
      readonly f1: number
      readonly support: number
    }>
    /**
     * The expected calibration error and the reliability-diagram bins it comes from (`Classification.calibration`);
     * absent on models trained before 0.2.0.
     *
     * @since 0.2.0
     */
    readonly calibration?: { readonly ece: number; readonly bins: ReadonlyArray<Classification.CalibrationBin> }
    /**
     * Each training sample's out-of-fold prediction, in parallel arrays: its id, its label when trained (`given`) and
     * the predicted one (indices into `labels`), and the predicted label's probability. A confusion-matrix cell's
     * samples are those with that `given` and `predicted`. Absent on models trained before 0.2.0.
     *
     * @since 0.2.0
     */
    readonly outOfFold?: {
      readonly sampleIds: ReadonlyArray<string>
      readonly given: ReadonlyArray<number>
      readonly predicted: ReadonlyArray<number>
      readonly confidence: ReadonlyArray<number>
    }
  }
  /** The chosen candidate (backbone, head and parameters). */
  readonly selected: unknown
  /** The best candidates of the search, best first. */
  readonly leaderboard: ReadonlyArray<unknown>
  /** Samples whose image could not be used, with the reason. */
  readonly skipped: ReadonlyArray<{ readonly sampleId: string; readonly reason: string }>
  /**
   * Labels of the function this model was not trained on (too few samples), with the reason; their samples were
   * left out too. Absent from models trained before 0.2.0.
   *
   * @since 0.2.0
   */
  readonly leftOutLabels: ReadonlyArray<LeftOutLabel>
  readonly timings: { readonly embedMs: number; readonly trainMs: number; readonly totalMs: number }
  /** `full`: the preset's whole space; `selected`: the previous model's candidate only (backbone, head and params). */
  readonly search: { readonly scope: "full" | "selected"; readonly fullSearchSamples: number }
  /**
   * Which backbones the preset chose for this run, and why (`Preset.chooseBackbones`).
   *
   * @since 0.2.0
   */
  readonly backboneChoice?: Preset.BackboneChoice
}

/**
 * A training event, as `subscribe` delivers them: a run `Started`, `Trained` (with its new version and duration in
 * milliseconds) or `Failed` (with the error's message).
 *
 * @since 0.1.0
 * @category models
 */
export type RetrainEvent =
  | { readonly _tag: "Started"; readonly functionId: string; readonly revision: number; readonly samples: number }
  | {
    readonly _tag: "Trained"
    readonly functionId: string
    /**
     * The new version; `promoted` is false, with the reason in `heldBack`, when a model of newer data was promoted
     * meanwhile or the promotion rule (`if-not-worse`) kept it back.
     */
    readonly version: StoreTypes.ModelVersionRecord
    readonly durationMs: number
  }
  | { readonly _tag: "Failed"; readonly functionId: string; readonly revision: number; readonly error: string }

/**
 * A model version with its fitted pipeline loaded, ready to predict.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadedModel {
  readonly version: StoreTypes.ModelVersionRecord
  readonly fitted: Pipeline.FittedPipeline
}

/**
 * A function's zero-shot model (what `zeroShot` gives): the backbone with a text tower that answers, the labels it
 * answers with (in class order) and the fitted pipeline (its head is the `zero-shot` head).
 *
 * @since 0.2.0
 * @category models
 */
export type ZeroShotModel = ZeroShotModels.ZeroShotModel

/**
 * The operations of the retrainer. `model` and `rollback` fail with `FunctionsError` (`NotFound` for an unknown
 * version, `StoreFailed`, or the bundle's load failure).
 *
 * @since 0.1.0
 * @category models
 */
export interface RetrainerShape {
  /** Note a change to a function's training data: a retrain follows after the debounce. */
  readonly schedule: (functionId: string) => Effect.Effect<void>
  readonly status: (functionId: string) => Effect.Effect<TrainingStatus>
  /** Wait until the function has no retrain scheduled or running. */
  readonly awaitIdle: (functionId: string) => Effect.Effect<void>
  /** Training events of every function, from the moment of subscribing. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<RetrainEvent>, never, Scope.Scope>
  /** The promoted model (or the version `versionId`), loaded; `undefined` when the function has none yet. */
  readonly model: (functionId: string, versionId?: string) => Effect.Effect<LoadedModel | undefined, FunctionsError>
  /** Promote an earlier (or later) version; it is loaded before the switch. */
  readonly rollback: (functionId: string, versionId: string) => Effect.Effect<StoreTypes.ModelVersionRecord, FunctionsError>
  /** Stop the function's worker and drop its loaded models (when the function is deleted). */
  readonly forget: (functionId: string) => Effect.Effect<void>
  /**
   * The function's zero-shot model (see the module docs); `undefined` when it has fewer than two labels or its
   * preset selects no backbone with a text tower. Fails with `FunctionsError` `TrainingFailed` when the backbone or
   * its text tower cannot load.
   *
   * @since 0.2.0
   */
  readonly zeroShot: (functionId: string) => Effect.Effect<ZeroShotModel | undefined, FunctionsError>
  /**
   * Run `effect` in the environment training runs in: the config, the embedding cache, the file system, and the
   * registry whose backbones load once for the whole service (`Functions.insights` embeds with them).
   *
   * @since 0.2.0
   */
  readonly withEnvironment: <A, E>(
    effect: Effect.Effect<A, E, Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem>
  ) => Effect.Effect<A, E>
}

/**
 * The retrainer service; `Functions.layer` builds and provides it.
 *
 * @since 0.1.0
 * @category tags
 */
export class Retrainer extends Context.Tag("@loupe/functions/Retrainer")<Retrainer, RetrainerShape>() {}

interface Worker {
  readonly status: SubscriptionRef.SubscriptionRef<TrainingStatus>
  readonly wake: Queue.Queue<void>
  readonly fiber: Fiber.RuntimeFiber<never>
}

const idle: TrainingStatus = { phase: "idle", pending: false }
const debouncing: TrainingStatus = { phase: "debouncing", pending: false }
const training: TrainingStatus = { phase: "training", pending: false }

/** Where the retrainer writes a version's bundle in the blob store. */
const bundleKey = (functionId: string, versionId: string) => `${bundlesPrefix(functionId)}/${versionId}`

const since = (start: number) => Math.round(performance.now() - start)

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

const trainingFailed = (e: { readonly message: string }) =>
  e instanceof FunctionsError ? e : new FunctionsError({ reason: "TrainingFailed", message: e.message, cause: e })

/** The selected candidate's out-of-fold prediction of each training sample (`ModelMetrics.cv.outOfFold`). */
const outOfFoldPredictions = (result: AutoML.FitResult): NonNullable<ModelMetrics["cv"]["outOfFold"]> => {
  const { proba, samples } = result.outOfFold
  const predicted = Classification.predictions(proba)
  return {
    sampleIds: samples.map((s) => s.id),
    given: samples.map((s) => result.cv.labels.indexOf(s.label!)),
    predicted: Array.from(predicted),
    confidence: Array.from(predicted, (p, i) => proba.data[i * proba.cols + p]!)
  }
}

const toMetrics = (
  result: AutoML.FitResult,
  preset: Preset.Resolved["preset"],
  sampleCount: number,
  totalMs: number,
  search: ModelMetrics["search"],
  leftOutLabels: ReadonlyArray<LeftOutLabel>,
  backboneChoice: Preset.BackboneChoice
): ModelMetrics => ({
  preset,
  sampleCount,
  search,
  leftOutLabels,
  backboneChoice,
  cv: {
    folds: result.cv.folds,
    total: result.cv.total,
    correct: result.cv.correct,
    accuracy: result.cv.accuracy,
    macroF1: result.cv.macroF1,
    logLoss: result.cv.logLoss,
    foldMacroF1: result.cv.foldMacroF1,
    macroF1StandardError: result.cv.macroF1StandardError,
    labels: result.cv.labels,
    confusionMatrix: result.cv.confusionMatrix,
    perClass: result.cv.perClass.map((c) => ({
      labelName: c.label,
      accuracy: c.support === 0 ? 0 : c.correct / c.support,
      precision: c.precision,
      recall: c.recall,
      f1: c.f1,
      support: c.support
    })),
    calibration: { ece: result.cv.ece, bins: result.cv.calibration },
    outOfFold: outOfFoldPredictions(result)
  },
  selected: result.selected,
  leaderboard: result.leaderboard.slice(0, 10),
  skipped: result.skipped.map((s) => ({ sampleId: s.file, reason: s.reason })),
  timings: { ...result.timings, totalMs }
})

/**
 * The retrainer, scoped: closing the scope stops every worker. Needs the store, the blob store, the registry,
 * config and an embedding cache; a `Progress` service in the context receives training progress. With
 * `resumeOnStart` it schedules every function whose data changed since its last run; fails with `FunctionsError`
 * `StoreFailed` when the store cannot list them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: RetrainerConfig = {}
): Effect.Effect<
  RetrainerShape,
  FunctionsError,
  | Store
  | BlobStore
  | Registry.Registry
  | LoupeConfig.LoupeConfig
  | EmbeddingCache.EmbeddingCache
  | FileSystem.FileSystem
  | Scope.Scope
> =>
  Effect.gen(function*() {
    const store = yield* Store
    const blobs = yield* BlobStore
    const scope = yield* Effect.scope
    // Workers run on the layer's runtime, not on the fiber of whoever scheduled the first retrain.
    const runtime = yield* Effect.runtime<never>()
    const registry = yield* SharedBackbones.make(yield* Registry.Registry, scope).pipe(Effect.orDie)
    // Everything the layer was given (config, cache, file system, progress), with the shared-backbone registry in front.
    const context = Context.add(
      yield* Effect.context<LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem>(),
      Registry.Registry,
      registry
    )
    const debounce = Duration.decode(config.debounce ?? Duration.millis(500))
    const maxWait = Duration.decode(config.maxWait ?? Duration.times(debounce, 10))
    const trainings = yield* Effect.makeSemaphore(Math.max(1, config.concurrency ?? 1))
    const events = yield* Effect.acquireRelease(PubSub.unbounded<RetrainEvent>(), PubSub.shutdown)
    const workers = yield* SynchronizedRef.make(new Map<string, Worker>())
    /** Loaded models by version id. */
    const models = yield* Ref.make(new Map<string, LoadedModel["fitted"]>())
    const loads = yield* Effect.makeSemaphore(1)
    const zeroShot = yield* ZeroShotModels.make(store, context)

    const loadBundle = (version: StoreTypes.ModelVersionRecord) =>
      Effect.gen(function*() {
        const dir = yield* blobs.localDirectory(version.bundle)
        const { fitted } = yield* Effect.scoped(Bundle.load(dir)).pipe(
          Effect.provide(context),
          Effect.mapError((e) =>
            new FunctionsError({ reason: "StoreFailed", file: version.bundle, message: `Cannot load model ${version.id}: ${e.message}`, cause: e })
          )
        )
        return fitted
      })

    /** Keep only `keep` among the function's loaded versions. */
    const evict = (functionId: string, keep: ReadonlySet<string>) =>
      Effect.flatMap(store.listModelVersions(functionId), (versions) =>
        Ref.update(models, (map) => {
          const next = new Map(map)
          for (const v of versions) if (!keep.has(v.id)) next.delete(v.id)
          return next
        }))

    const loaded = (version: StoreTypes.ModelVersionRecord) =>
      Effect.flatMap(Ref.get(models), (map) => {
        const hit = map.get(version.id)
        if (hit) return Effect.succeed(hit)
        return loads.withPermits(1)(
          Effect.gen(function*() {
            const again = (yield* Ref.get(models)).get(version.id)
            if (again) return again
            const fitted = yield* loadBundle(version)
            yield* Ref.update(models, (map) => new Map(map).set(version.id, fitted))
            return fitted
          })
        )
      })

    const model = (functionId: string, versionId?: string) =>
      Effect.gen(function*() {
        const version = versionId === undefined
          ? yield* store.promotedVersion(functionId)
          : yield* store.getModelVersion(functionId, versionId)
        if (version === undefined) return undefined
        return { version, fitted: yield* loaded(version) } satisfies LoadedModel
      })

    const growth = Math.max(0, config.fullSearchGrowth ?? 0.25)

    /** The previous model's choice when a retrain may search only it (see `fullSearchGrowth`), else `undefined`. */
    const narrowing = (
      previous: StoreTypes.ModelVersionRecord | undefined,
      resolved: Preset.Resolved,
      full: AutoML.FitOptions,
      dataset: Dataset.Dataset
    ): (AutoML.Candidate & { readonly fullSearchSamples: number }) | undefined => {
      const metrics = previous?.metrics as ModelMetrics | undefined
      if (previous === undefined || metrics?.search === undefined || growth === 0) return undefined
      const selected = metrics.selected as AutoML.Candidate
      // Only a choice the full space can still make (backbones the preset selects today).
      if (!Candidates.membersOf(selected.backbone).every((id) => full.backbones?.includes(id))) return undefined
      const sameLabels = previous.labels.length === dataset.labels.length &&
        previous.labels.every((l, i) => l.name === dataset.labels[i])
      const samePreset = metrics.preset.name === resolved.preset.name && metrics.preset.version === resolved.preset.version
      const small = dataset.samples.length <= metrics.search.fullSearchSamples * (1 + growth)
      return sameLabels && samePreset && small
        ? { ...selected, fullSearchSamples: metrics.search.fullSearchSamples }
        : undefined
    }

    /**
     * Keep the newest `keep` versions (and the promoted one): the others' records go, then their bundles, each only
     * from the folder the retrainer wrote it to. A bundle recorded anywhere else was not written here and stays.
     */
    const prune = (functionId: string, keep: number) =>
      Effect.gen(function*() {
        const pruned = yield* store.pruneModelVersions(functionId, keep)
        if (pruned.length === 0) return
        yield* Ref.update(models, (map) => {
          const next = new Map(map)
          for (const v of pruned) next.delete(v.id)
          return next
        })
        const ours = pruned.filter((v) => v.bundle === bundleKey(functionId, v.id))
        yield* Effect.forEach(ours, (v) => blobs.remove(v.bundle), { discard: true })
        yield* Effect.logInfo(`Function ${functionId}: removed ${pruned.length} old model version(s), keeping the newest ${keep}`)
      })

    const trainOnce = (functionId: string) =>
      Effect.gen(function*() {
        const started = performance.now()
        const snapshot = yield* store.trainingSnapshot(functionId)
        const fn = snapshot.function
        if (fn.revision <= fn.trainedRevision) return
        const files = yield* Effect.forEach(snapshot.samples, (s) =>
          blobs.localFile(imageKey(functionId, s.contentHash)).pipe(Effect.option))
        const usable = snapshot.samples.flatMap((s, i) =>
          Option.match(files[i]!, { onNone: () => [], onSome: (file) => [{ id: s.id, source: file, label: s.annotation.labelName }] })
        )
        // Labels with too few samples are left out (with their samples), not a reason to train nothing.
        const perLabel = new Map<string, number>()
        for (const s of usable) perLabel.set(s.label, (perLabel.get(s.label) ?? 0) + 1)
        const counted = snapshot.labels.map((l) => ({ id: l.id, name: l.name, sampleCount: perLabel.get(l.name) ?? 0 }))
        const { leftOut, trainable: kept } = Trainable.split(counted)
        const keptNames = new Set(kept.map((l) => l.name))
        const samples = usable.filter((s) => keptNames.has(s.label))
        const dataset = Dataset.make(samples, { labels: keptNames })
        const why = Trainable.tooFewLabels(counted)
        const trainable = yield* Effect.either(
          why === undefined ? Dataset.validateForTraining(dataset) : Effect.fail({ message: `Not trained: ${why}` })
        )
        if (trainable._tag === "Left") {
          yield* store.markTrainingFailed(functionId, fn.revision, trainable.left.message)
          yield* PubSub.publish(events, { _tag: "Failed", functionId, revision: fn.revision, error: trainable.left.message })
          return
        }
        yield* PubSub.publish(events, { _tag: "Started", functionId, revision: fn.revision, samples: samples.length })
        yield* Effect.logInfo(`Training function ${functionId} started: ${samples.length} samples, revision ${fn.revision}`)
        const outcome = yield* Effect.either(
          Effect.gen(function*() {
            const resolved = yield* Preset.resolve(fn.preset, fn.overrides)
            const full = yield* Preset.fitOptions(resolved)
            const narrowTo = narrowing(yield* store.promotedVersion(functionId), resolved, full, dataset)
            const options = narrowTo ? Candidates.narrowedTo(full, narrowTo) : full
            const search: ModelMetrics["search"] = narrowTo
              ? { scope: "selected", fullSearchSamples: narrowTo.fullSearchSamples }
              : { scope: "full", fullSearchSamples: samples.length }
            const result = yield* Effect.scoped(AutoML.fit(dataset, options)).pipe(Effect.mapError(trainingFailed))
            const versionId = Ids.make("model")
            const bundle = bundleKey(functionId, versionId)
            const labelIds = new Map(snapshot.labels.map((l) => [l.name, l.id]))
            const labels = result.fitted.labels.map((name) => ({ id: labelIds.get(name)!, name }))
            const metrics = toMetrics(result, resolved.preset, samples.length, since(started), search, leftOut, full.backboneChoice)
            yield* blobs.putDirectory(bundle, (dir) =>
              Bundle.save(result.fitted, dir, { functionId, versionId, revision: fn.revision, labels, metrics }).pipe(
                Effect.provide(context),
                Effect.mapError(trainingFailed)
              ))
            // Cached first, promoted second: an invocation finds whichever version the store names.
            return yield* Effect.uninterruptible(
              Effect.gen(function*() {
                yield* Ref.update(models, (map) => new Map(map).set(versionId, result.fitted))
                const version = yield* store.addModelVersion({
                  functionId,
                  id: versionId,
                  bundle,
                  labels,
                  metrics,
                  revision: fn.revision,
                  sampleCount: samples.length,
                  holdBack: resolved.settings.promote === "if-not-worse" ? PromotionRule.ifNotWorse(metrics.cv) : undefined
                })
                const promoted = yield* store.promotedVersion(functionId)
                yield* evict(functionId, new Set(promoted ? [promoted.id] : []))
                return { version, keepVersions: resolved.settings.keepVersions }
              })
            )
          }).pipe(Effect.provide(context))
        )
        if (outcome._tag === "Left") {
          yield* store.markTrainingFailed(functionId, fn.revision, outcome.left.message)
          yield* PubSub.publish(events, { _tag: "Failed", functionId, revision: fn.revision, error: outcome.left.message })
          yield* Effect.logWarning(`Training function ${functionId} failed after ${seconds(since(started))}: ${outcome.left.message}`)
          return
        }
        const { keepVersions, version } = outcome.right
        yield* prune(functionId, keepVersions).pipe(
          Effect.catchAll((e) => Effect.logWarning(`Removing old models of function ${functionId} failed: ${e.message}`))
        )
        yield* PubSub.publish(events, { _tag: "Trained", functionId, version, durationMs: since(started) })
        yield* Effect.logInfo(
          `Training function ${functionId} finished in ${seconds(since(started))}: model ${version.id} on ${version.sampleCount} samples, ` +
            (version.promoted ? "promoted" : `not promoted: ${version.heldBack}`)
        )
      })


    /** Wait until no change has arrived for `debounce` (at most `maxWait`). */
    const settle = (status: SubscriptionRef.SubscriptionRef<TrainingStatus>) =>
      Effect.gen(function*() {
        const start = performance.now()
        while (true) {
          yield* SubscriptionRef.set(status, debouncing)
          yield* Effect.sleep(debounce)
          const { pending } = yield* SubscriptionRef.get(status)
          if (!pending || performance.now() - start >= Duration.toMillis(maxWait)) return
        }
      })

    const runWorker = (functionId: string, status: SubscriptionRef.SubscriptionRef<TrainingStatus>, wake: Queue.Queue<void>) =>
      Effect.forever(
        Effect.gen(function*() {
          yield* Queue.take(wake)
          let again = true
          while (again) {
            yield* settle(status)
            yield* SubscriptionRef.set(status, training)
            yield* trainings.withPermits(1)(trainOnce(functionId)).pipe(
              Effect.catchAllCause((cause) =>
                Cause.isInterruptedOnly(cause)
                  ? Effect.interrupt
                  : Effect.logError(`Retraining function ${functionId} failed`, cause)
              )
            )
            again = yield* SubscriptionRef.modify(status, (s): [boolean, TrainingStatus] =>
              s.pending ? [true, { phase: "debouncing", pending: true }] : [false, idle])
          }
        })
      )

    const worker = (functionId: string) =>
      SynchronizedRef.modifyEffect(workers, (map) => {
        const existing = map.get(functionId)
        if (existing) return Effect.succeed([existing, map] as const)
        return Effect.gen(function*() {
          const status = yield* SubscriptionRef.make(idle)
          const wake = yield* Queue.sliding<void>(1)
          const fiber = Runtime.runFork(runtime)(runWorker(functionId, status, wake))
          const created: Worker = { status, wake, fiber }
          return [created, new Map(map).set(functionId, created)] as const
        })
      })

    const schedule = (functionId: string) =>
      Effect.gen(function*() {
        const w = yield* worker(functionId)
        const wake = yield* SubscriptionRef.modify(w.status, (s): [boolean, TrainingStatus] =>
          s.phase === "idle" ? [true, debouncing] : [false, { ...s, pending: true }])
        if (wake) yield* Queue.offer(w.wake, undefined)
      })

    const status = (functionId: string) =>
      Effect.flatMap(SynchronizedRef.get(workers), (map) => {
        const w = map.get(functionId)
        return w ? SubscriptionRef.get(w.status) : Effect.succeed(idle)
      })

    const awaitIdle = (functionId: string) =>
      Effect.flatMap(SynchronizedRef.get(workers), (map) => {
        const w = map.get(functionId)
        return w
          ? w.status.changes.pipe(Stream.filter((s) => s.phase === "idle"), Stream.take(1), Stream.runDrain)
          : Effect.void
      })

    const rollback = (functionId: string, versionId: string) =>
      Effect.gen(function*() {
        const version = yield* store.getModelVersion(functionId, versionId)
        yield* loaded(version)
        const promoted = yield* store.promote(functionId, versionId)
        yield* evict(functionId, new Set([versionId]))
        return promoted
      })

    const forget = (functionId: string) =>
      Effect.gen(function*() {
        const w = yield* SynchronizedRef.modify(workers, (map) => {
          const next = new Map(map)
          next.delete(functionId)
          return [map.get(functionId), next] as const
        })
        if (w) yield* Fiber.interrupt(w.fiber)
        yield* zeroShot.forget(functionId)
        const versions = yield* Effect.orElseSucceed(store.listModelVersions(functionId), () => [])
        yield* Ref.update(models, (map) => {
          const next = new Map(map)
          for (const v of versions) next.delete(v.id)
          return next
        })
      })

    yield* Effect.addFinalizer(() =>
      Effect.flatMap(SynchronizedRef.get(workers), (map) => Fiber.interruptAll([...map.values()].map((w) => w.fiber)))
    )

    if (config.resumeOnStart ?? true) {
      const functions = yield* store.listFunctions
      yield* Effect.forEach(functions.filter((f) => f.revision > f.trainedRevision), (f) => schedule(f.id), {
        discard: true
      })
    }

    return {
      schedule,
      status,
      awaitIdle,
      subscribe: PubSub.subscribe(events),
      model,
      rollback,
      forget,
      zeroShot: zeroShot.get,
      withEnvironment: (effect) => Effect.provide(effect, context)
    } satisfies RetrainerShape
  })

/**
 * The retrainer (`make`) as a scoped layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: RetrainerConfig = {}
): Layer.Layer<
  Retrainer,
  FunctionsError,
  Store | BlobStore | Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem
> => Layer.scoped(Retrainer, make(config))
