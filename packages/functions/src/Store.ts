/**
 * The function store: functions, labels, samples (content hash, external id, annotation), model versions (bundle
 * location, labels, metrics, promoted flag) and the data revision each model was trained on. It sits behind
 * `@effect/sql`'s `SqlClient`: `layerSqlite` gives the embedded default, a SQLite file in WAL mode, and
 * `layerPostgres` a Postgres database that several processes share. Image bytes and bundles are not in here: they
 * live in the `BlobStore`.
 *
 * Every write that changes training data (an annotated sample added, an annotation changed, a sample deleted) bumps
 * the function's `revision`; a training run records the revision it saw, so "is the model up to date" is
 * `trainedRevision === revision`, across restarts and across processes.
 *
 * Write transactions start with a write to the function's row, so a second process waits for the lock (SQLite's
 * busy timeout, Postgres' row lock) instead of failing on a stale snapshot.
 *
 * @since 0.1.0
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import type { FileSystem } from "@effect/platform"
import { Context, Effect, Layer, Redacted, Schedule } from "effect"
import * as path from "node:path"
import { FunctionsError } from "./FunctionsError.js"
import * as PrivateFiles from "./internal/PrivateFiles.js"
import * as SqlStore from "./internal/SqlStore.js"
import * as StoreLocation from "./StoreLocation.js"

/**
 * What a function answers: `Classification`, one label per image (a sample's `annotation`), or `Tags`, any number of
 * its labels per image (a sample's `tags`; multi-label).
 *
 * @since 0.2.0
 * @category models
 */
export type FunctionOutput = "Classification" | "Tags"

/**
 * A stored function: its id, name, output kind, preset and overrides, creation time (ISO 8601), data revision and
 * training state.
 *
 * @since 0.1.0
 * @category models
 */
export interface FunctionRecord {
  readonly id: string
  readonly name: string
  /**
   * What it answers (functions created before 0.2.0 are `Classification`).
   *
   * @since 0.2.0
   */
  readonly output: FunctionOutput
  /** The preset name the function trains with. */
  readonly preset: string
  /** User overrides on top of the preset (validated by `Preset.resolve` when the function is created). */
  readonly overrides: unknown
  readonly createdAt: string
  /** Bumped by every change to the training data. */
  readonly revision: number
  /** The revision the last finished training run saw (successful or not). */
  readonly trainedRevision: number
  /** Why the last training run did not produce a model, or `null`. */
  readonly trainError: string | null
}

/**
 * A stored label of a function, with its optional description and string metadata.
 *
 * @since 0.1.0
 * @category models
 */
export interface LabelRecord {
  readonly id: string
  readonly functionId: string
  readonly name: string
  readonly description: string | null
  readonly metadata: Readonly<Record<string, string>> | null
  readonly createdAt: string
}

/**
 * A sample's label, by id and name.
 *
 * @since 0.1.0
 * @category models
 */
export interface Annotation {
  readonly labelId: string
  readonly labelName: string
}

/**
 * A stored sample: its image's content hash (the bytes are in the blob store), external id, annotation (a
 * Classification function's) or tags (a Tags function's) and times (ISO 8601).
 *
 * @since 0.1.0
 * @category models
 */
export interface SampleRecord {
  readonly id: string
  readonly functionId: string
  /** sha256 of the image bytes, hex; the bytes are in the blob store under `imageKey(functionId, contentHash)`. */
  readonly contentHash: string
  readonly externalId: string | null
  /** A Classification function's sample: its label, or `null` when unlabelled. Always `null` in a Tags function. */
  readonly annotation: Annotation | null
  /**
   * A Tags function's sample: its tags, by label name (an empty list tags it with none: a negative example of every
   * tag), or `null` when it is not tagged yet. Always `null` in a Classification function.
   *
   * @since 0.2.0
   */
  readonly tags: ReadonlyArray<Annotation> | null
  readonly createdAt: string
  readonly updatedAt: string
}

/**
 * A label by id and name, as a model version lists its classes.
 *
 * @since 0.1.0
 * @category models
 */
export interface LabelRef {
  readonly id: string
  readonly name: string
}

/**
 * A stored model version: where its bundle is in the blob store, its classes, its training facts, the data revision
 * it was trained on and whether it is the promoted one.
 *
 * @since 0.1.0
 * @category models
 */
export interface ModelVersionRecord {
  readonly id: string
  readonly functionId: string
  /** Blob-store prefix of the model bundle. */
  readonly bundle: string
  /** The model's classes, in its output order. */
  readonly labels: ReadonlyArray<LabelRef>
  /** Training facts (`Retrainer.ModelMetrics`). */
  readonly metrics: unknown
  /** The data revision it was trained on. */
  readonly revision: number
  readonly sampleCount: number
  readonly createdAt: string
  readonly promoted: boolean
  /**
   * Why it was not promoted when it was trained (the promotion rule judged it worse, or a model of newer data was
   * serving), or `null`. Cleared when it is promoted.
   *
   * @since 0.2.0
   */
  readonly heldBack: string | null
}

/**
 * A label to create in the store.
 *
 * @since 0.1.0
 * @category models
 */
export interface NewLabel {
  readonly name: string
  readonly description?: string | undefined
  readonly metadata?: Readonly<Record<string, string>> | undefined
}

/**
 * A sample to add to the store: the content hash of its image (already in the blob store), an optional external id
 * and an optional label name (a Classification function) or tag names (a Tags function).
 *
 * @since 0.1.0
 * @category models
 */
export interface NewSample {
  readonly contentHash: string
  readonly externalId?: string | undefined
  /** A Classification function's sample: annotate with this label, created on demand. */
  readonly labelName?: string | undefined
  /**
   * A Tags function's sample: tag it with these labels, created on demand (`[]`: tagged with none). Left out, the
   * sample is not tagged.
   *
   * @since 0.2.0
   */
  readonly tags?: ReadonlyArray<string> | undefined
}

/**
 * An annotation given by label name or label id; `null` removes it.
 *
 * @since 0.1.0
 * @category models
 */
export type AnnotationInput = { readonly labelName: string } | { readonly labelId: string } | null

/**
 * A Tags function sample's tag set, each tag by label name (created on demand) or label id; `[]` tags it with none,
 * `null` removes its tags (it is not tagged any more).
 *
 * @since 0.2.0
 * @category models
 */
export type TagsInput = ReadonlyArray<{ readonly labelName: string } | { readonly labelId: string }> | null

/**
 * A field of an existing sample that a post of the same image changed.
 *
 * @since 0.2.0
 * @category models
 */
export type SampleUpdate = "annotation" | "externalId"

/**
 * A sample `addSamples` added, or the existing one with the same content (as it is after the call).
 *
 * @since 0.1.0
 * @category models
 */
export interface AddedSample {
  readonly sample: SampleRecord
  /** `false` when a sample with the same content already existed (its id is returned). */
  readonly created: boolean
  /**
   * The fields of the existing sample this post changed: its annotation (the post named another label) and its
   * external id (the post carried another one). Empty for a new sample, or when nothing differed.
   *
   * @since 0.2.0
   */
  readonly updated: ReadonlyArray<SampleUpdate>
}

/**
 * Options of `addSamples`. `updateExisting` (default true): a post of an image the function already holds applies
 * its annotation and external id to that sample; `false` returns the existing sample unchanged (invoke capture,
 * which must not rewrite a sample it happens to see again).
 *
 * @since 0.2.0
 * @category models
 */
export interface AddSamplesOptions {
  readonly updateExisting?: boolean | undefined
}

/**
 * A deleted label, and how many samples lost their annotation (or, in a Tags function, that tag) with it; they stay.
 *
 * @since 0.2.0
 * @category models
 */
export interface DeletedLabel {
  readonly label: LabelRecord
  /** Samples that were annotated with the label and are now unlabelled (Tags: that had the tag and lost it). */
  readonly unannotatedSamples: number
}

/**
 * A label with its number of annotated samples (Tags: of samples tagged with it).
 *
 * @since 0.1.0
 * @category models
 */
export interface LabelCount {
  readonly label: LabelRecord
  /** Annotated samples with this label. */
  readonly count: number
}

/**
 * What a training run reads, in one consistent snapshot: the function, its labels and its annotated samples (a
 * Classification function's) or tagged samples (a Tags function's).
 *
 * @since 0.1.0
 * @category models
 */
export interface TrainingSnapshot {
  readonly function: FunctionRecord
  readonly labels: ReadonlyArray<LabelRecord>
  /** Annotated samples only, in insertion order (none in a Tags function). */
  readonly samples: ReadonlyArray<SampleRecord & { readonly annotation: Annotation }>
  /**
   * Tagged samples only (an empty tag set included), in insertion order (none in a Classification function).
   *
   * @since 0.2.0
   */
  readonly taggedSamples: ReadonlyArray<SampleRecord & { readonly tags: ReadonlyArray<Annotation> }>
}

/**
 * A trained model version to record: its id, bundle prefix, classes, metrics, and the revision and sample count it
 * was trained on.
 *
 * @since 0.1.0
 * @category models
 */
export interface NewModelVersion {
  readonly functionId: string
  readonly id: string
  readonly bundle: string
  readonly labels: ReadonlyArray<LabelRef>
  readonly metrics: unknown
  readonly revision: number
  readonly sampleCount: number
  /**
   * The promotion rule: given the serving version, why not to promote this one over it (`undefined`: promote). Asked
   * inside the recording transaction, so it sees the version that serves at that moment. Default: always promote.
   *
   * @since 0.2.0
   */
  readonly holdBack?: ((serving: ModelVersionRecord) => string | undefined) | undefined
}

/**
 * Which samples `listSamples` and `countSamples` take: those annotated (Tags: tagged) with the label `labelId`, or
 * with `labelId: null` the unlabelled (Tags: untagged) ones; all when `labelId` is left out.
 *
 * @since 0.2.0
 * @category models
 */
export interface SampleFilter {
  readonly labelId?: string | null | undefined
}

/**
 * The operations of the store. Every one fails with `FunctionsError`: `NotFound` (naming the field) for an unknown
 * function, label, sample or version, `InvalidInput` for bad input (e.g. tags for a Classification function's
 * sample, or a label for a Tags function's), `StoreFailed` when the database fails.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreShape {
  /** Create a function; `output` defaults to `Classification`. */
  readonly createFunction: (input: {
    readonly name: string
    readonly preset: string
    readonly overrides: unknown
    readonly output?: FunctionOutput | undefined
  }) => Effect.Effect<FunctionRecord, FunctionsError>
  readonly getFunction: (functionId: string) => Effect.Effect<FunctionRecord, FunctionsError>
  readonly listFunctions: Effect.Effect<ReadonlyArray<FunctionRecord>, FunctionsError>
  /** Delete a function with its labels, samples, tags and model versions (its blobs are the caller's to remove). */
  readonly deleteFunction: (functionId: string) => Effect.Effect<void, FunctionsError>
  /** Create labels; a name that exists returns the existing label. */
  readonly createLabels: (
    functionId: string,
    labels: ReadonlyArray<NewLabel>
  ) => Effect.Effect<ReadonlyArray<LabelRecord>, FunctionsError>
  readonly listLabels: (functionId: string) => Effect.Effect<ReadonlyArray<LabelRecord>, FunctionsError>
  /** Annotated samples per label (every label, zero included). */
  readonly labelCounts: (functionId: string) => Effect.Effect<ReadonlyArray<LabelCount>, FunctionsError>
  /**
   * Delete a label (`NotFound` naming `labelId` when the function has none with that id). Its samples are kept and
   * become unlabelled (Tags: lose that tag); the revision is bumped when there were any.
   *
   * @since 0.2.0
   */
  readonly deleteLabel: (functionId: string, labelId: string) => Effect.Effect<DeletedLabel, FunctionsError>
  /**
   * Rename a label and set its description and metadata (`NotFound` naming `labelId`; `InvalidInput` naming `name`
   * when another label has the name). A rename of a label with samples bumps the revision: models name their
   * classes, so the next one learns the new name.
   *
   * @since 0.2.0
   */
  readonly updateLabel: (functionId: string, labelId: string, label: NewLabel) => Effect.Effect<LabelRecord, FunctionsError>
  /**
   * Add samples in one transaction, creating labels on demand. A sample whose content hash the function already
   * holds is not added again: its existing record is returned, with the post's `labelName` (Tags: `tags`, a changed
   * tag set listed as `annotation`) and `externalId` applied where they differ (listed in `updated`; see
   * `AddSamplesOptions`). The same image twice in one call is taken as two posts in order. `InvalidInput` naming
   * `samples[i].tags` for tags in a Classification function, `samples[i].labelName` for a label in a Tags function.
   */
  readonly addSamples: (
    functionId: string,
    samples: ReadonlyArray<NewSample>,
    options?: AddSamplesOptions
  ) => Effect.Effect<ReadonlyArray<AddedSample>, FunctionsError>
  /** Samples in the order they were added, a page at a time (`limit`, `offset`), optionally filtered (`SampleFilter`). */
  readonly listSamples: (
    functionId: string,
    options?: { readonly limit?: number | undefined; readonly offset?: number | undefined } & SampleFilter
  ) => Effect.Effect<ReadonlyArray<SampleRecord>, FunctionsError>
  /**
   * How many samples the function holds, or how many pass `filter`.
   *
   * @since 0.2.0
   */
  readonly countSamples: (functionId: string, filter?: SampleFilter) => Effect.Effect<number, FunctionsError>
  readonly getSample: (functionId: string, sampleId: string) => Effect.Effect<SampleRecord, FunctionsError>
  /** Set or remove a Classification function sample's annotation (`InvalidInput` naming `annotation` in a Tags function). */
  readonly setAnnotation: (
    functionId: string,
    sampleId: string,
    annotation: AnnotationInput
  ) => Effect.Effect<SampleRecord, FunctionsError>
  /**
   * Set or remove a Tags function sample's tag set (`TagsInput`); the revision is bumped when it changed.
   * `InvalidInput` naming `tags` in a Classification function, `NotFound` naming `tags[i].labelId` for an unknown
   * label id.
   *
   * @since 0.2.0
   */
  readonly setTags: (functionId: string, sampleId: string, tags: TagsInput) => Effect.Effect<SampleRecord, FunctionsError>
  /** Delete samples; unknown ids are an error naming them (nothing is deleted then). Returns the deleted records. */
  readonly deleteSamples: (
    functionId: string,
    sampleIds: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<SampleRecord>, FunctionsError>
  readonly trainingSnapshot: (functionId: string) => Effect.Effect<TrainingSnapshot, FunctionsError>
  /**
   * Record a trained model version and promote it, unless a version trained on a newer revision is already promoted
   * or `holdBack` says why not (then it is kept in the history, unpromoted, with the reason in `heldBack`). Marks
   * `revision` as trained and clears the training error.
   */
  readonly addModelVersion: (version: NewModelVersion) => Effect.Effect<ModelVersionRecord, FunctionsError>
  /** Record a training run that produced no model (`error` says why). */
  readonly markTrainingFailed: (functionId: string, revision: number, error: string) => Effect.Effect<void, FunctionsError>
  /** Promote an existing version (a rollback, or a roll forward); clears its `heldBack`. */
  readonly promote: (functionId: string, versionId: string) => Effect.Effect<ModelVersionRecord, FunctionsError>
  /**
   * Delete the records of the function's versions beyond the newest `keep`, never the promoted one; returns them,
   * oldest first (their bundles are the caller's to remove).
   *
   * @since 0.2.0
   */
  readonly pruneModelVersions: (functionId: string, keep: number) => Effect.Effect<ReadonlyArray<ModelVersionRecord>, FunctionsError>
  readonly promotedVersion: (functionId: string) => Effect.Effect<ModelVersionRecord | undefined, FunctionsError>
  /** Model history, newest first. */
  readonly listModelVersions: (functionId: string) => Effect.Effect<ReadonlyArray<ModelVersionRecord>, FunctionsError>
  readonly getModelVersion: (functionId: string, versionId: string) => Effect.Effect<ModelVersionRecord, FunctionsError>
}

/**
 * The store service. Provide it with `layerSqlite` (the embedded default) or `layer` over any `SqlClient`.
 *
 * @since 0.1.0
 * @category tags
 */
export class Store extends Context.Tag("@loupe/functions/Store")<Store, StoreShape>() {}

/**
 * The blob-store key of a function's image with this content hash: `images/<functionId>/<contentHash>`.
 *
 * @since 0.1.0
 * @category blob keys
 */
export const imageKey = (functionId: string, contentHash: string): string => `images/${functionId}/${contentHash}`

/**
 * The blob-store prefix of a function's images: `images/<functionId>`.
 *
 * @since 0.1.0
 * @category blob keys
 */
export const imagesPrefix = (functionId: string): string => `images/${functionId}`

/**
 * The blob-store prefix of a function's model bundles: `bundles/<functionId>` (each version in a folder under it).
 *
 * @since 0.1.0
 * @category blob keys
 */
export const bundlesPrefix = (functionId: string): string => `bundles/${functionId}`

/**
 * The store over whatever `SqlClient` is provided; runs the migrations first, failing with `FunctionsError`
 * `StoreFailed` when they fail.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<StoreShape, FunctionsError, SqlClient.SqlClient> = SqlStore.make

/**
 * The store (`make`) as a layer over a provided `SqlClient` (any dialect `@effect/sql` supports).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Store, FunctionsError, SqlClient.SqlClient> = Layer.effect(Store, make)

/**
 * The embedded default: a SQLite database `loupe.db` in `dir` (created when missing), WAL mode, with a 10 s busy
 * timeout so concurrent writers from other processes wait for each other. The database and its `-wal` / `-shm`
 * files are 0600 (an older store's are tightened when opened), and `dir` is created 0700. Fails with
 * `FunctionsError` `StoreFailed` (naming `dir`) when the folder cannot be created or the database opened,
 * configured or migrated.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSqlite = (dir: string): Layer.Layer<Store, FunctionsError, FileSystem.FileSystem> => {
  const database = path.join(dir, "loupe.db")
  const createDir = Layer.effectDiscard(
    PrivateFiles.databaseIn(dir, database).pipe(
      Effect.mapError((cause) =>
        new FunctionsError({ reason: "StoreFailed", file: dir, message: `Store: cannot create ${database}: ${cause.message}`, cause })
      )
    )
  )
  // WAL is switched on below, not by the client: the switch needs a moment's exclusive lock, and when other processes
  // open the same new store at once SQLite answers SQLITE_BUSY without waiting, so the switch is retried.
  const client = SqliteClient.layer({ filename: database, disableWAL: true }).pipe(
    Layer.mapError((cause) =>
      new FunctionsError({ reason: "StoreFailed", file: dir, message: `Store: cannot open ${dir}: ${String(cause)}`, cause })
    )
  )
  const pragmas = Layer.effectDiscard(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.all([
        sql`PRAGMA busy_timeout = 10000`,
        sql`PRAGMA journal_mode = WAL`.pipe(
          Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 200, while: (e) => /SQLITE_BUSY|locked/.test(`${e.message} ${String(e.cause)}`) })
        ),
        sql`PRAGMA foreign_keys = ON`
      ], { discard: true })).pipe(Effect.mapError(SqlStore.sqlFailed("configuring SQLite")))
  )
  return layer.pipe(Layer.provide(Layer.provideMerge(pragmas, client)), Layer.provide(createDir))
}

/**
 * The store in a Postgres database, shared by every process given the same URL (`postgres://user:pass@host/db`,
 * or a unix socket folder as `postgres://user@localhost/db?host=/run/postgresql`). The schema is migrated on first
 * use (concurrent migrators wait for each other). Fails with `FunctionsError` `StoreFailed` when the database cannot
 * be reached or migrated; messages name the URL with its password masked.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerPostgres = (
  url: string | Redacted.Redacted<string>
): Layer.Layer<Store | SqlClient.SqlClient | PgClient.PgClient, FunctionsError> => {
  const location = StoreLocation.postgres(url)
  const shown = StoreLocation.describe(location)
  const client = PgClient.layer({ url: location.url, applicationName: "loupe" }).pipe(
    Layer.mapError((cause) =>
      new FunctionsError({
        reason: "StoreFailed",
        field: "store",
        message: `Store: cannot connect to ${shown}: ${cause.message}${cause.cause instanceof Error ? ` (${cause.cause.message})` : ""}`,
        cause
      })
    )
  )
  return Layer.provideMerge(layer, client)
}

/**
 * The store at a location: `layerSqlite` for a folder, `layerPostgres` for a `postgres://` URL.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerLocation = (
  location: StoreLocation.StoreLocation
): Layer.Layer<Store, FunctionsError, FileSystem.FileSystem> =>
  location._tag === "Directory" ? layerSqlite(location.path) : layerPostgres(location.url)
