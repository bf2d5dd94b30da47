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
import { Bundle, EmbeddingCache, LoupeConfig, Registry } from "@loupe/core"
import type { Pipeline } from "@loupe/core"
import type { Classification } from "@loupe/metrics"
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
import { FunctionsError } from "./FunctionsError.js"
import { BlobStore } from "./BlobStore.js"
import * as SharedBackbones from "./internal/SharedBackbones.js"
import * as ZeroShotModels from "./internal/ZeroShotModels.js"
import * as Preset from "./Preset.js"
import * as RetrainSteps from "./internal/RetrainSteps.js"
import { RetrainJobs } from "./RetrainWorkflow.js"
import { Store } from "./Store.js"
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
 * One tag's cross-validated scores in a Tags model (`TagsModelMetrics.cv.perTag`): out-of-fold precision, recall and
 * F1 at its threshold, its average precision over every threshold (`null` when no sample has it), its support
 * (samples with it) and the threshold itself, chosen by cross-validation.
 *
 * @since 0.2.0
 * @category models
 */
export interface TagScore {
  readonly labelName: string
  readonly precision: number
  readonly recall: number
  readonly f1: number
  readonly averagePrecision: number | null
  readonly support: number
  /** A probability at or above it says the image has the tag. */
  readonly threshold: number
}

/**
 * Cross-validated facts about a Tags (multi-label) model, stored with its version: what `ModelMetrics` says of a
 * classifier but `cv`, which holds the multi-label metrics (out of fold, each tag at its own threshold): per-tag
 * scores, micro (pooled) and macro (mean over tags) precision, recall and F1, mAP (mean average precision, `null`
 * when no tag has a sample) and the exact-match ratio (the share of samples whose whole tag set was right).
 *
 * @since 0.2.0
 * @category models
 */
export interface TagsModelMetrics extends Omit<ModelMetrics, "cv"> {
  readonly output: "Tags"
  readonly cv: {
    readonly folds: number
    readonly total: number
    /** The tags, in the model's output order. */
    readonly tags: ReadonlyArray<string>
    readonly perTag: ReadonlyArray<TagScore>
    readonly micro: { readonly precision: number; readonly recall: number; readonly f1: number }
    readonly macro: { readonly precision: number; readonly recall: number; readonly f1: number }
    readonly meanAveragePrecision: number | null
    readonly exactMatch: number
  }
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
  /**
   * Where retrains run as jobs (`RetrainJobs`): submit the function's pending retrain now, without the debounce and
   * without waiting for it, returning once the cluster has it. In this process: `schedule`.
   *
   * @since 0.2.0
   */
  readonly submit: (functionId: string) => Effect.Effect<void, FunctionsError>
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

const since = (start: number) => Math.round(performance.now() - start)

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

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
  RetrainSteps.Requirements | Scope.Scope
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
      yield* Effect.context<LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem | Store | BlobStore>(),
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
    const jobs = yield* Effect.serviceOption(RetrainJobs)

    /** Old versions go from the store and the blob store (`RetrainSteps.prune`), and from the loaded models. */
    const prune = (functionId: string, keep: number) =>
      Effect.flatMap(RetrainSteps.prune(functionId, keep), (pruned) =>
        Ref.update(models, (map) => {
          const next = new Map(map)
          for (const v of pruned) next.delete(v.id)
          return next
        }))

    const failed = (functionId: string, revision: number, error: string) =>
      Effect.zipRight(
        store.markTrainingFailed(functionId, revision, error),
        PubSub.publish(events, { _tag: "Failed", functionId, revision, error })
      ).pipe(Effect.asVoid)

    /** One run in this process, through the steps the durable workflow also takes (`RetrainSteps`). */
    const trainHere = (functionId: string) =>
      Effect.gen(function*() {
        const started = performance.now()
        const prepared = yield* RetrainSteps.prepare(functionId)
        if (prepared._tag === "UpToDate") return
        if (prepared._tag === "Untrainable") return yield* failed(functionId, prepared.revision, prepared.reason)
        const { plan } = prepared
        yield* PubSub.publish(events, { _tag: "Started", functionId, revision: plan.revision, samples: plan.samples.length })
        yield* Effect.logInfo(`Training function ${functionId} started: ${plan.samples.length} samples, revision ${plan.revision}`)
        const outcome = yield* Effect.either(
          Effect.gen(function*() {
            const options = yield* RetrainSteps.fitOptions(plan)
            // No separate embed step, and the refit reuses the search's rows: in one process either would be another
            // pass over the images and the cache. The durable workflow has both, its embedding sharded over the
            // runners and its refit possibly on another one.
            const { fitted, trained } = yield* RetrainSteps.train(plan, growth, options)
            // Cached first, promoted second: an invocation finds whichever version the store names.
            return yield* Effect.uninterruptible(
              Effect.gen(function*() {
                yield* Ref.update(models, (map) => new Map(map).set(trained.versionId, fitted))
                const version = yield* RetrainSteps.promote(trained)
                const promoted = yield* store.promotedVersion(functionId)
                yield* evict(functionId, new Set(promoted ? [promoted.id] : []))
                return { version, keepVersions: trained.keepVersions }
              })
            )
          }).pipe(Effect.provide(context))
        )
        if (outcome._tag === "Left") {
          yield* failed(functionId, plan.revision, outcome.left.message)
          yield* Effect.logWarning(`Training function ${functionId} failed after ${seconds(since(started))}: ${outcome.left.message}`)
          return
        }
        const { keepVersions, version } = outcome.right
        yield* prune(functionId, keepVersions).pipe(
          Effect.catchAll((e) => Effect.logWarning(`Removing old models of function ${functionId} failed: ${e.message}`))
        )
        yield* trainedEvent(functionId, version, started)
      }).pipe(Effect.provide(context))

    const trainedEvent = (functionId: string, version: StoreTypes.ModelVersionRecord, started: number) =>
      Effect.zipRight(
        PubSub.publish(events, { _tag: "Trained", functionId, version, durationMs: since(started) }),
        Effect.logInfo(
          `Training function ${functionId} finished in ${seconds(since(started))}: model ${version.id} on ${version.sampleCount} samples, ` +
            (version.promoted ? "promoted" : `not promoted: ${version.heldBack}`)
        )
      )

    /** One run as a durable job (`RetrainJobs`): this process waits for its outcome and reports it. */
    const trainAsJob = (functionId: string, submit: RetrainJobs["Type"]) =>
      Effect.gen(function*() {
        const started = performance.now()
        const fn = yield* store.getFunction(functionId)
        if (fn.revision <= fn.trainedRevision) return
        yield* Effect.logInfo(`Training function ${functionId} at revision ${fn.revision} submitted as a job`)
        const outcome = yield* submit.retrain(functionId, fn.revision)
        if (outcome._tag === "Failed") {
          yield* PubSub.publish(events, { _tag: "Failed", functionId, revision: outcome.revision, error: outcome.error })
        } else if (outcome._tag === "Trained") {
          yield* trainedEvent(functionId, yield* store.getModelVersion(functionId, outcome.versionId), started)
        }
      })

    const trainOnce = (functionId: string) =>
      Option.match(jobs, { onNone: () => trainHere(functionId), onSome: (submit) => trainAsJob(functionId, submit) })

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

    const submit = (functionId: string) =>
      Option.match(jobs, {
        onNone: () => schedule(functionId),
        onSome: (submitter) =>
          Effect.gen(function*() {
            const fn = yield* store.getFunction(functionId)
            if (fn.revision <= fn.trainedRevision) return
            yield* submitter.submit(functionId, fn.revision)
            yield* Effect.logInfo(`Training function ${functionId} at revision ${fn.revision} submitted as a job`)
          })
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
      submit,
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
