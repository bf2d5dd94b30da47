/**
 * Retraining as a durable job on `@effect/cluster` and `@effect/workflow`, for stores that several processes share.
 * The `Retrain` workflow takes the in-process `Retrainer`'s steps, plus a sharded embed step, each an activity whose
 * result the engine persists (in Postgres, through `SqlMessageStorage`): `embed` (a snapshot of the function's data,
 * its images embedded into the shared embedding cache), `search` (the AutoML search on the cached embeddings: the
 * selected candidate, the leaderboard and the winner's out-of-fold predictions, as plain JSON), `evaluate` (the
 * winner's cross-validated metrics, from those predictions), `refit` (the winner fit on every sample, written as a
 * bundle with its metrics), then `promote` (record the version under the promotion rule, prune old ones). A runner that
 * dies mid-retrain loses its shards; the runner that takes them over resumes the workflow, and the activities that had
 * finished return their stored results instead of running again: a refit cut off is run again, the search it follows is
 * not.
 *
 * The idempotency key is the function id and the store revision: two retrain requests for the same function at the
 * same revision, from any process, are one workflow.
 *
 * Embedding is sharded: the `embed` activity splits the images into ranges (`embedRangeSize`) and sends each to an
 * `Embedding` entity (id `<functionId>/<hash of the range's images and embedding options>`), which the cluster places
 * on any runner; each range writes its vectors into the embedding cache every process reads. Two retrains of one
 * function at different revisions send the ranges they share to the same entity, which embeds them once.
 *
 * `layerRunner` (over any `SqlClient`) and `layerRunnerPostgres` (over a Postgres store's database) run both: a
 * runner, what `loupe worker` is. `layerJobs` and `layerJobsFor` give the `Retrainer` a `RetrainJobs` that submits
 * retrains as workflows and waits for their outcome, from a cluster client that runs no entities itself: what
 * `loupe serve` on a Postgres store is, so that HTTP processes never train. A server on a folder store (SQLite)
 * retrains in its own process, as before.
 *
 * ```ts
 * // A runner on a Postgres store, with the store and blobs as the servers open them.
 * const location = StoreLocation.postgres("postgres://loupe@db/loupe")
 * const runner = RetrainWorkflow.layerRunnerPostgres(location.url, { host: "10.0.0.5", port: 34431 }).pipe(
 *   Layer.provide(Functions.layerStorage(location))
 * )
 * // A client: the function API whose retrains run on the runners.
 * const api = Functions.layerStore(location).pipe(Layer.provide(RetrainWorkflow.layerJobsFor(location)))
 * ```
 *
 * @since 0.2.0
 */
import { ClusterWorkflowEngine, Entity, RunnerAddress, ShardingConfig } from "@effect/cluster"
import type { MessageStorage, Runners, Sharding } from "@effect/cluster"
import { NodeClusterSocket } from "@effect/platform-node"
import { Rpc } from "@effect/rpc"
import type { SqlClient } from "@effect/sql"
import { Activity, Workflow, WorkflowEngine } from "@effect/workflow"
import { Registry } from "@loupe/core"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { createHash } from "node:crypto"
import type { ConfigError } from "effect/ConfigError"
import type { EmbeddingCache } from "@loupe/core"
import { type FunctionsError, fromConfigError } from "./FunctionsError.js"
import * as RetrainSteps from "./internal/RetrainSteps.js"
import * as SharedBackbones from "./internal/SharedBackbones.js"
import type { ModelMetrics, TagsModelMetrics } from "./Retrainer.js"
import * as SharedState from "./SharedState.js"
import { layerPostgres as storeOnPostgres, Store } from "./Store.js"
import type * as StoreLocation from "./StoreLocation.js"

/**
 * How a retrain job ended: a version trained (`promoted` false, with the reason, when the promotion rule held it
 * back), the function could not be trained (and why), or its model was already up to date.
 *
 * @since 0.2.0
 * @category models
 */
export const Outcome = Schema.Union(
  Schema.TaggedStruct("Trained", { versionId: Schema.String, promoted: Schema.Boolean, heldBack: Schema.optional(Schema.String) }),
  Schema.TaggedStruct("Failed", { revision: Schema.Number, error: Schema.String }),
  Schema.TaggedStruct("UpToDate", {})
)

/**
 * How a retrain job ended (the type of `Outcome`).
 *
 * @since 0.2.0
 * @category models
 */
export type Outcome = typeof Outcome.Type

/**
 * The retrain workflow: payload the function id and the store revision that asked for it, which together are the
 * idempotency key.
 *
 * @since 0.2.0
 * @category workflows
 */
export const Retrain = Workflow.make({
  name: "loupe/Retrain",
  payload: { functionId: Schema.String, revision: Schema.Number },
  success: Outcome,
  idempotencyKey: ({ functionId, revision }) => `${functionId}@${revision}`
})

const Plan = Schema.Struct({
  functionId: Schema.String,
  revision: Schema.Number,
  output: Schema.Literal("Classification", "Tags"),
  preset: Schema.String,
  overrides: Schema.Unknown,
  samples: Schema.Array(Schema.Struct({
    id: Schema.String,
    contentHash: Schema.String,
    label: Schema.optional(Schema.String),
    tags: Schema.optional(Schema.Array(Schema.String))
  })),
  labels: Schema.Array(Schema.Struct({ id: Schema.String, name: Schema.String })),
  trained: Schema.Array(Schema.String),
  leftOut: Schema.Array(Schema.Struct({ id: Schema.String, name: Schema.String, sampleCount: Schema.Number, reason: Schema.String }))
})

const Prepared = Schema.Union(
  Schema.TaggedStruct("Trainable", { plan: Plan }),
  Schema.TaggedStruct("Untrainable", { revision: Schema.Number, reason: Schema.String }),
  Schema.TaggedStruct("UpToDate", {})
)

// The store keeps metrics as JSON; they are the `ModelMetrics` (Tags: `TagsModelMetrics`) `evaluate` computed.
const Metrics = Schema.Unknown as Schema.Schema<ModelMetrics | TagsModelMetrics>

// The search's outcome is plain JSON too (`RetrainSteps.Searched`: candidates, scores, out-of-fold probabilities).
const Searched = Schema.Unknown as Schema.Schema<RetrainSteps.Searched>

const Trained = Schema.Struct({
  functionId: Schema.String,
  versionId: Schema.String,
  bundle: Schema.String,
  labels: Schema.Array(Schema.Struct({ id: Schema.String, name: Schema.String })),
  metrics: Metrics,
  revision: Schema.Number,
  sampleCount: Schema.Number,
  promote: Schema.Literal("always", "if-not-worse"),
  keepVersions: Schema.Number
})

/** A step's failure, as the engine stores it: the message of the `FunctionsError`. */
const StepFailed = Schema.TaggedStruct("Failed", { error: Schema.String })

const orFailed = <A, R>(step: Effect.Effect<A, FunctionsError, R>) =>
  Effect.catchAll(step, (e) => Effect.succeed({ _tag: "Failed" as const, error: e.message }))

/**
 * One range of a function's images to embed into the embedding cache, with the backbones (and mirroring) of the
 * function's preset; answers the number of images embedded or already cached.
 *
 * @since 0.2.0
 * @category entities
 */
export const EmbedRange = Rpc.make("EmbedRange", {
  payload: {
    functionId: Schema.String,
    backbones: Schema.Array(Schema.String),
    mirror: Schema.Boolean,
    images: Schema.Array(Schema.Struct({ id: Schema.String, contentHash: Schema.String }))
  },
  success: Schema.Number,
  error: Schema.String
})

/**
 * The embedding entity: one per function and range of images (named by their content), placed on any runner.
 *
 * @since 0.2.0
 * @category entities
 */
export const Embedding = Entity.make("loupe/Embedding", [EmbedRange])

/**
 * Where retrains run when not in this process: `retrain` submits (or joins) the workflow for the function at this
 * revision and waits for its outcome; `submit` only hands it to the cluster, returning once the cluster has it (for
 * a command that exits at once). The `Retrainer` uses it when it is in its context.
 *
 * @since 0.2.0
 * @category tags
 */
export class RetrainJobs extends Context.Tag("@loupe/functions/RetrainWorkflow/RetrainJobs")<RetrainJobs, {
  readonly retrain: (functionId: string, revision: number) => Effect.Effect<Outcome, FunctionsError>
  readonly submit: (functionId: string, revision: number) => Effect.Effect<void>
}>() {}

/**
 * Options of a retrain runner: `fullSearchGrowth` as in `RetrainerConfig`; `embedRangeSize` images per `Embedding`
 * entity (default 64).
 *
 * @since 0.2.0
 * @category models
 */
export interface WorkflowOptions {
  readonly fullSearchGrowth?: number
  readonly embedRangeSize?: number
}

/**
 * Ranges a runner embeds at once. Two keep the backbone busy while the next range's first images decode; the rest
 * wait. A retrain sends all its ranges at once, and each range embedding runs its own pipeline with its own batch
 * tensors: 32 ranges at once (2,000 images) spent 16 % more CPU than one pipeline, in allocating and collecting
 * tensors (bench/scale, bench/RESULTS.md).
 */
const EMBEDDING_RANGES_AT_ONCE = 2

/** Log that an activity runs, with the process: how the logs (and the crash test) count executions. */
const running = (activity: string, functionId: string, revision: number) =>
  Effect.logInfo(`Retrain ${functionId}@${revision}: activity ${activity} running in process ${process.pid}`)

/**
 * The `Embedding` entity of a range: named by what it embeds (the images' content and the embedding options), not by
 * revision, so that retrains of one function at different revisions (two servers each submitting the revision it
 * saw) send a range they share to one entity. An entity takes its messages one at a time, so the second finds the
 * first's vectors in the cache instead of embedding the same images beside it. Samples are listed in the order they
 * were added, so adding samples leaves the earlier ranges as they were.
 */
const rangeEntityId = (
  functionId: string,
  embed: { readonly backbones: ReadonlyArray<string>; readonly mirror: boolean },
  images: ReadonlyArray<{ readonly contentHash: string }>
) => {
  const hash = createHash("sha256").update(JSON.stringify([embed.backbones, embed.mirror]))
  for (const image of images) hash.update(image.contentHash)
  return `${functionId}/${hash.digest("hex").slice(0, 32)}`
}

const chunks = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

/**
 * The workflow and the embedding entity, registered with the cluster: what a runner executes. Backbones are loaded
 * once per runner (not once per activity).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWorkflows = (
  options: WorkflowOptions = {}
): Layer.Layer<never, never, RetrainSteps.Requirements | WorkflowEngine.WorkflowEngine | Sharding.Sharding> => {
  const growth = Math.max(0, options.fullSearchGrowth ?? 0.25)
  const rangeSize = Math.max(1, options.embedRangeSize ?? 64)

  // The workflow runs in the Sharding's context too: it (and its activities) gets the shared backbones explicitly.
  const workflow = Layer.unwrapEffect(Effect.map(Registry.Registry, (registry) =>
    Retrain.toLayer(({ functionId, revision }) =>
        Effect.gen(function*() {
        const prepared = yield* Activity.make({
          name: "embed",
          success: Schema.Union(Prepared, StepFailed),
          execute: Effect.gen(function*() {
            yield* running("embed", functionId, revision)
            const prepared = yield* RetrainSteps.prepare(functionId)
            if (prepared._tag !== "Trainable") return prepared
            const { plan } = prepared
            // The search activity resolves the preset again (it may run on another runner, later).
            const embed = RetrainSteps.embedOptions((yield* RetrainSteps.fitOptions(plan)).full)
            const client = (yield* Embedding.client)
            const ranges = chunks(plan.samples, rangeSize)
            yield* Effect.forEach(ranges, (images) =>
              client(rangeEntityId(functionId, embed, images)).EmbedRange({ functionId, ...embed, images }).pipe(
                Effect.catchAll((e) => Effect.fail(typeof e === "string" ? e : String(e)))
              ), { concurrency: "unbounded", discard: true })
            yield* Effect.logInfo(`Retrain ${functionId}@${revision}: embedded ${plan.samples.length} images in ${ranges.length} range(s)`)
            return prepared
          }).pipe(
            Effect.catchAll((e) => Effect.succeed({ _tag: "Failed" as const, error: typeof e === "string" ? e : e.message }))
          )
        })
        if (prepared._tag === "UpToDate") return prepared
        const failed = (revision: number, error: string) =>
          Activity.make({
            name: "fail",
            execute: Effect.flatMap(Store, (store) => store.markTrainingFailed(functionId, revision, error)).pipe(Effect.orDie)
          }).pipe(Effect.as({ _tag: "Failed" as const, revision, error }))
        if (prepared._tag === "Untrainable") return yield* failed(prepared.revision, prepared.reason)
        if (prepared._tag === "Failed") return yield* failed(revision, prepared.error)
        const { plan } = prepared
        // Each step's result is stored: a runner that takes the workflow over runs only the steps after the last one
        // stored (a refit resumed does not search again).
        /** A step: logged as it runs, its `FunctionsError` stored as `Failed`. */
        const step = <S extends Schema.Schema.Any, R>(
          name: string,
          success: S,
          execute: Effect.Effect<Schema.Schema.Type<S>, FunctionsError, R>
        ) =>
          Activity.make({
            name,
            success: Schema.Union(success, StepFailed),
            execute: Effect.zipRight(running(name, functionId, revision), execute).pipe(orFailed)
          })
        const searched = yield* step(
          "search",
          Schema.TaggedStruct("Searched", { searched: Searched }),
          Effect.gen(function*() {
            const searched = yield* RetrainSteps.search(plan, growth)
            yield* Effect.logInfo(`Retrain ${functionId}@${revision}: search selected ${RetrainSteps.describeSelected(searched)}`)
            return { _tag: "Searched" as const, searched }
          })
        )
        if (searched._tag === "Failed") return yield* failed(plan.revision, searched.error)
        const evaluated = yield* step(
          "evaluate",
          Schema.TaggedStruct("Evaluated", { metrics: Metrics }),
          Effect.map(RetrainSteps.evaluate(plan, searched.searched), (metrics) => ({ _tag: "Evaluated" as const, metrics }))
        )
        if (evaluated._tag === "Failed") return yield* failed(plan.revision, evaluated.error)
        const refit = yield* step(
          "refit",
          Schema.TaggedStruct("Refit", { trained: Trained }),
          Effect.gen(function*() {
            const { trained } = yield* RetrainSteps.refit(plan, searched.searched, evaluated.metrics)
            yield* Effect.logInfo(`Retrain ${functionId}@${revision}: refit written to ${trained.bundle}`)
            return { _tag: "Refit" as const, trained }
          })
        )
        if (refit._tag === "Failed") return yield* failed(plan.revision, refit.error)
        const { trained } = refit
        const version = yield* step(
          "promote",
          Schema.TaggedStruct("Promoted", { promoted: Schema.Boolean, heldBack: Schema.optional(Schema.String) }),
          Effect.gen(function*() {
            const version = yield* RetrainSteps.promote(trained)
            yield* RetrainSteps.prune(functionId, trained.keepVersions).pipe(
              Effect.catchAll((e) => Effect.logWarning(`Removing old models of function ${functionId} failed: ${e.message}`))
            )
            yield* Effect.logInfo(
              `Retrain ${functionId}@${revision}: model ${version.id} ${version.promoted ? "promoted" : `not promoted: ${version.heldBack}`}`
            )
            return { _tag: "Promoted" as const, promoted: version.promoted, ...(version.heldBack ? { heldBack: version.heldBack } : {}) }
          })
        )
        if (version._tag === "Failed") return yield* failed(plan.revision, version.error)
        const { _tag, ...rest } = version
        return { _tag: "Trained" as const, versionId: trained.versionId, ...rest }
      }).pipe(Effect.provideService(Registry.Registry, registry))
    )
  ))

  // The handlers close over this layer's context, with the shared backbones: an entity's own build effect runs in
  // the Sharding's context, whose Registry would load the backbone again (a new worker thread and session) per range.
  const embedding = Layer.unwrapEffect(Effect.gen(function*() {
    const context = yield* Effect.context<RetrainSteps.Requirements>()
    const permits = yield* Effect.makeSemaphore(EMBEDDING_RANGES_AT_ONCE)
    return Embedding.toLayer({
      EmbedRange: ({ payload }) =>
        Effect.gen(function*() {
          yield* Effect.logInfo(`Embedding ${payload.images.length} images of function ${payload.functionId} in process ${process.pid}`)
          return yield* RetrainSteps.embedImages(payload.functionId, payload.images, payload)
        }).pipe(permits.withPermits(1), Effect.mapError((e) => e.message), Effect.provide(context))
    })
  }))

  const sharedBackbones = Layer.scoped(
    Registry.Registry,
    Effect.flatMap(Registry.Registry, (registry) => Effect.flatMap(Effect.scope, (scope) => SharedBackbones.make(registry, scope))).pipe(
      Effect.orDie
    )
  )
  return Layer.mergeAll(workflow, embedding).pipe(Layer.provide(sharedBackbones))
}

/**
 * Options of the cluster a process joins: the runner's `host` and `port` (other runners connect there; a client
 * listens nowhere), and `shardingConfig` for anything else (`@effect/cluster`'s `ShardingConfig`, e.g. shorter
 * shard lock timeouts).
 *
 * @since 0.2.0
 * @category models
 */
export interface ClusterOptions {
  readonly host?: string
  readonly port?: number
  readonly shardingConfig?: Partial<ShardingConfig.ShardingConfig["Type"]>
}

type ClusterServices = Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage | WorkflowEngine.WorkflowEngine

/**
 * A runner (what `loupe worker` runs): joins the cluster whose state lives in the `SqlClient`'s database (Postgres),
 * listens for other runners on `host:port` (default `localhost:34431`), and executes retrain workflows and embedding
 * ranges.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerRunner = (
  cluster: ClusterOptions = {},
  options: WorkflowOptions = {}
): Layer.Layer<ClusterServices, ConfigError, RetrainSteps.Requirements | SqlClient.SqlClient> => {
  const address = RunnerAddress.make(cluster.host ?? "localhost", cluster.port ?? 34431)
  return layerWorkflows(options).pipe(
    Layer.provideMerge(ClusterWorkflowEngine.layer),
    Layer.provideMerge(
      Layer.orDie(NodeClusterSocket.layer({
        storage: "sql",
        shardingConfig: { runnerAddress: Option.some(address), ...cluster.shardingConfig }
      }))
    )
  )
}

/**
 * `RetrainJobs` through the cluster, from a client that runs no entities (what `loupe serve` uses on a shared
 * store): each retrain is submitted as the `Retrain` workflow and awaited.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerJobs = (
  cluster: Pick<ClusterOptions, "shardingConfig"> = {}
): Layer.Layer<RetrainJobs, ConfigError, SqlClient.SqlClient> =>
  Layer.effect(
    RetrainJobs,
    Effect.map(Effect.context<WorkflowEngine.WorkflowEngine>(), (context) => ({
      retrain: (functionId: string, revision: number) => Effect.provide(Retrain.execute({ functionId, revision }), context),
      submit: (functionId: string, revision: number) =>
        Effect.provide(Retrain.execute({ functionId, revision }, { discard: true }), context).pipe(Effect.asVoid)
    }))
  ).pipe(
    Layer.provide(ClusterWorkflowEngine.layer),
    Layer.provide(NodeClusterSocket.layer({ clientOnly: true, storage: "sql", shardingConfig: cluster.shardingConfig ?? {} }))
  )

/**
 * A runner on a Postgres store (what `loupe worker` runs): `layerRunner` over the store (`Store.layerPostgres`, a
 * connection pool of its own), with the embedding cache in that database (`SharedState.embeddingCacheSql`), so every
 * runner reuses the vectors any of them computed. The blob store comes from the caller (`Functions.layerStorage`),
 * as the servers' does.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerRunnerPostgres = (
  url: Redacted.Redacted<string>,
  cluster: ClusterOptions = {},
  options: WorkflowOptions = {}
): Layer.Layer<
  ClusterServices,
  FunctionsError,
  Exclude<RetrainSteps.Requirements, EmbeddingCache.EmbeddingCache | Store>
> =>
  layerRunner(cluster, options).pipe(
    Layer.mapError(fromConfigError),
    Layer.provide(SharedState.embeddingCacheSql),
    Layer.provide(storeOnPostgres(url))
  )

/**
 * `RetrainJobs` for a store location: through the cluster in a Postgres store's database (`layerJobs` over a pool of
 * its own), so that retrains run on the workers; nothing for a folder store, whose retrains stay in the process.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerJobsFor = (location: StoreLocation.StoreLocation): Layer.Layer<never, FunctionsError> =>
  location._tag === "Directory"
    ? Layer.empty
    : layerJobs().pipe(Layer.mapError(fromConfigError), Layer.provide(storeOnPostgres(location.url)))
