/**
 * The function API, after the Nyckel SDK: a function owns labels, samples and a model history behind one id. Post
 * samples and it trains by itself, in the background, once at least 2 labels have at least 2 annotated samples
 * each; a label with fewer is left out of training (`FunctionStatus.leftOutLabels` says which, and why) rather than
 * holding the others back. `invoke` answers with the promoted model meanwhile. Before the first model exists, a
 * function whose preset selects a backbone with a text tower (CLIP, SigLIP) answers zero-shot from its label names
 * (`mode: "zero-shot"`, see `Retrainer.zeroShot`); any other answers with a typed `NotTrained` error saying what is
 * missing.
 *
 * ```ts
 * const functions = yield* Functions.Functions
 * const fn = yield* functions.create("IsCatOrDog")
 * yield* functions.createSamples(fn.id, [{ data: "cats/1.jpg", label: "cats" }, ...])
 * yield* functions.awaitTrained(fn.id)
 * const { labelName, confidence } = yield* functions.invoke(fn.id, "some.jpg")
 * ```
 *
 * A function answers `Classification` (one label per image, the default) or `Tags` (any number of its labels per image,
 * multi-label; `create(name, { output: "Tags" })`). A Tags function's samples carry tag sets (`SampleInput.tags`,
 * `updateTags`; a tagged sample with no tag is a negative of every tag), it trains one-vs-rest heads with per-tag
 * thresholds chosen by cross-validation (once a tag has at least 2 tagged samples with it and 2 without it), and it
 * answers with `invokeTags` (every tag's probability, and whether it reaches the tag's threshold) and `tagsMetrics`.
 * The classification-only operations (`invoke`, `metrics`, `updateAnnotation`, `insights`) refuse a Tags function
 * with `InvalidInput`, and the tags ones a Classification function.
 *
 * Samples are deduplicated by content (sha256) within a function, and their bytes are kept in the `BlobStore`, so a
 * function never depends on the original files staying where they were. Posting an image the function already
 * holds returns the existing sample, with the post's label and `externalId` applied (`createSamples` says which
 * fields changed).
 *
 * @since 0.1.0
 */
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { Cause, Context, Effect, Either, Exit, Layer, ManagedRuntime } from "effect"
import { DiskEmbeddingCache, EmbeddingCache, LoupeConfig, Pipeline, Registry } from "@loupe/core"
import type { UrlFetch } from "@loupe/deploy"
import type { Insights } from "@loupe/metrics"
import * as crypto from "node:crypto"
import * as path from "node:path"
import { FunctionsError, fromConfigError } from "./FunctionsError.js"
import { BlobStore, layerFileSystem } from "./BlobStore.js"
import type * as AutoML from "./AutoML.js"
import * as Candidates from "./internal/Candidates.js"
import * as ImageInput from "./internal/ImageInput.js"
import * as Inspection from "./Inspection.js"
import * as Trainable from "./internal/Trainable.js"
import * as Preset from "./Preset.js"
import * as Retrainer from "./Retrainer.js"
import * as TagsAutoML from "./TagsAutoML.js"
import { bundlesPrefix, imageKey, imagesPrefix, layerSqlite, Store } from "./Store.js"
import type * as StoreTypes from "./Store.js"
import * as SharedState from "./SharedState.js"
import * as StoreLocation from "./StoreLocation.js"

/**
 * An image as the function API takes it: a file path, its bytes (a Buffer is a Uint8Array), a `data:` URI, or an
 * `http(s):` URL (fetched only with `allowUrlFetch`).
 *
 * @since 0.1.0
 * @category models
 */
export type ImageData = ImageInput.ImageData

/**
 * How `readImage` reads image input: URL fetching (off by default), private addresses, the size cap in bytes
 * (default 32 MiB) and the fetch timeout in milliseconds (default 10 s).
 *
 * @since 0.1.0
 * @category models
 */
export type ReadOptions = ImageInput.ReadOptions

/**
 * Configuration of the function API: the retrainer's (debounce, shared backbones) and how image input is read.
 *
 * @since 0.1.0
 * @category models
 */
export interface FunctionsConfig extends Retrainer.RetrainerConfig {
  /** Fetch `http(s):` image URLs given as sample or invoke data. Default false (a service should not fetch URLs it is handed). */
  readonly allowUrlFetch?: boolean
  /**
   * With `allowUrlFetch`: fetch from private addresses too (loopback, RFC 1918, link-local, unique-local, ...; see
   * `UrlFetch` in `@loupe/deploy`): `true` for all, or a function deciding per address. Default false: only public
   * addresses are fetched.
   */
  readonly allowPrivateUrls?: UrlFetch.AddressPolicy
  /** Largest image accepted, in bytes. Default `ImageCheck.defaultLimits`' in `@loupe/core` (16 MiB), as the server. */
  readonly maxImageBytes?: number
  /**
   * Largest image accepted, in pixels (width x height, read from the header before decoding). Default
   * `ImageCheck.defaultLimits`' in `@loupe/core` (40 megapixels), as the server.
   */
  readonly maxImagePixels?: number
  /**
   * The preset of functions created without one (as Nyckel's clients create them). Default `balanced`.
   *
   * @since 0.2.0
   */
  readonly defaultPreset?: string
}

/**
 * What a function answers: `Classification` (one label per image) or `Tags` (multi-label).
 *
 * @since 0.2.0
 * @category models
 */
export type FunctionOutput = StoreTypes.FunctionOutput

/**
 * A function: its id (`function_<hex>`), name, output kind, preset name and creation time (ISO 8601).
 *
 * @since 0.1.0
 * @category models
 */
export interface FunctionInfo {
  readonly id: string
  readonly name: string
  /** @since 0.2.0 */
  readonly output: FunctionOutput
  readonly preset: string
  readonly createdAt: string
}

/**
 * A label of a function, with how many annotated samples it has.
 *
 * @since 0.1.0
 * @category models
 */
export interface LabelStatus {
  readonly id: string
  readonly name: string
  /** Annotated samples with this label. */
  readonly sampleCount: number
}

/**
 * What `get` and `awaitTrained` return: the function, its labels, the labels training leaves out, its promoted model
 * (with its cross-validated accuracy, 0 to 1; for a Tags model its exact-match ratio) and its training state.
 *
 * @since 0.1.0
 * @category models
 */
export interface FunctionStatus extends FunctionInfo {
  readonly labels: ReadonlyArray<LabelStatus>
  /**
   * Labels the next training run leaves out, with why (fewer than 2 annotated samples); the others train without
   * them.
   *
   * @since 0.2.0
   */
  readonly leftOutLabels: ReadonlyArray<Retrainer.LeftOutLabel>
  /** The promoted model, or `null` before the first one. */
  readonly model: {
    readonly id: string
    readonly createdAt: string
    readonly cvAccuracy: number
    /** Trained on the current data (no change since). */
    readonly upToDate: boolean
  } | null
  readonly training: Retrainer.TrainingStatus
  /** Why the last training run produced no model, or `null`. */
  readonly trainError: string | null
  /**
   * The newest model when it does not serve because it was held back (the `if-not-worse` promotion rule judged it
   * worse, or a model of newer data was serving), with the reason; else `null`. `rollback` to it serves it anyway.
   *
   * @since 0.2.0
   */
  readonly heldBack: { readonly id: string; readonly createdAt: string; readonly reason: string } | null
}

/**
 * A label to create, with an optional description and string metadata.
 *
 * @since 0.1.0
 * @category models
 */
export interface NewLabel {
  readonly name: string
  readonly description?: string
  readonly metadata?: Readonly<Record<string, string>>
}

/**
 * A sample to add: its image and, optionally, its annotation (a Classification function's: a label name, created
 * when missing) or tags (a Tags function's) and an id of your own (`externalId`).
 *
 * @since 0.1.0
 * @category models
 */
export interface SampleInput {
  readonly data: ImageData
  /** The annotation of a Classification function's sample: a label name (created on demand). */
  readonly label?: string
  /**
   * The tags of a Tags function's sample: label names (created on demand); `[]` tags it with none (a negative of
   * every tag). Left out, the sample is untagged and not trained on.
   *
   * @since 0.2.0
   */
  readonly tags?: ReadonlyArray<string>
  readonly externalId?: string
}

/**
 * One label's probability (0 to 1) in an invocation's answer.
 *
 * @since 0.1.0
 * @category models
 */
export interface LabelConfidence {
  readonly labelName: string
  readonly labelId: string
  readonly confidence: number
}

/**
 * Options of `invoke`: how many label confidences to return and which model version answers.
 *
 * @since 0.1.0
 * @category models
 */
export interface InvokeOptions {
  /** Return only the top `labelCount` label confidences. Default: all. */
  readonly labelCount?: number
  /** Answer with this model version instead of the promoted one. */
  readonly modelId?: string
}

/**
 * What `invoke` answers: the most likely label with its confidence (0 to 1), every (or the top `labelCount`)
 * label's confidence, and the model version that answered.
 *
 * @since 0.1.0
 * @category models
 */
export interface InvokeResult {
  readonly labelName: string
  readonly labelId: string
  readonly confidence: number
  /** Most likely first. */
  readonly labelConfidences: ReadonlyArray<LabelConfidence>
  /** The model version that answered; `zero-shot:<backbone id>` for a zero-shot answer. */
  readonly modelId: string
  /**
   * `zero-shot` when the function has no model yet and answered from its label names with a text tower; absent for
   * a trained model's answer.
   *
   * @since 0.2.0
   */
  readonly mode?: "zero-shot"
}

/**
 * One tag's probability (0 to 1) in `invokeTags`' answer, the tag's threshold (chosen by cross-validation) and
 * whether the probability reaches it (`present`: the image has the tag).
 *
 * @since 0.2.0
 * @category models
 */
export interface TagConfidence {
  readonly labelName: string
  readonly labelId: string
  readonly confidence: number
  readonly threshold: number
  readonly present: boolean
}

/**
 * Options of `invokeTags`: which model version answers (default: the promoted one).
 *
 * @since 0.2.0
 * @category models
 */
export interface InvokeTagsOptions {
  readonly modelId?: string
}

/**
 * What `invokeTags` answers: every tag the model knows with its probability and threshold, most likely first, and the
 * model version that answered.
 *
 * @since 0.2.0
 * @category models
 */
export interface TagsInvokeResult {
  readonly tags: ReadonlyArray<TagConfidence>
  readonly modelId: string
}

/**
 * What `tagsMetrics` returns: the promoted Tags model's cross-validated multi-label metrics
 * (`Retrainer.TagsModelMetrics`), its id and creation time, and whether it was trained on the current data.
 *
 * @since 0.2.0
 * @category models
 */
export interface TagsFunctionMetrics extends Retrainer.TagsModelMetrics {
  readonly functionId: string
  readonly modelId: string
  readonly createdAt: string
  /** Trained on the current data (no change since). */
  readonly upToDate: boolean
}

/**
 * What `metrics` returns: the promoted model's cross-validated metrics (`Retrainer.ModelMetrics`, with the labels it
 * left out), its id and creation time, and whether it was trained on the current data.
 *
 * @since 0.1.0
 * @category models
 */
export interface FunctionMetrics extends Retrainer.ModelMetrics {
  readonly functionId: string
  readonly modelId: string
  readonly createdAt: string
  /** Trained on the current data (no change since). */
  readonly upToDate: boolean
}

/**
 * What `insights` returns: `Insights.Insights` of `@loupe/metrics` over the function's samples, each image named by
 * its sample id (suspects with the suggested label name, duplicate pairs with both sample ids, exact or near, the
 * leaks across cross-validation folds and the conflicting labels, outliers), and how they were computed: the
 * backbone, the model whose backbone it is (`null`: the preset's default backbone, before the first model), and the
 * samples whose image could not be used.
 *
 * @since 0.2.0
 * @category models
 */
export interface FunctionInsights extends Insights.Insights {
  readonly functionId: string
  /** The backbone the samples were embedded with. */
  readonly backbone: string
  /** The promoted model whose backbone that is, or `null` when there is none yet (the preset's default backbone). */
  readonly modelId: string | null
  /** Samples left out of the analyses, with why (an image that cannot be read). */
  readonly skipped: ReadonlyArray<{ readonly sampleId: string; readonly reason: string }>
}

/**
 * The operations of the function API. Every one fails with `FunctionsError`: `NotFound` for an unknown function,
 * label, sample or model version, `InvalidInput` / `InvalidImage` naming the field at fault, `NotTrained` from
 * `invoke` and `metrics` before the first model, `StoreFailed` when the store or blob store fails.
 *
 * @since 0.1.0
 * @category models
 */
export interface FunctionsShape {
  /**
   * Create a function; `preset` (default `balanced`) and `overrides` are validated now (unknown keys fail). `output`
   * (new in 0.2.0): `Classification` (default) or `Tags`; anything else is `InvalidInput` naming `output`.
   */
  readonly create: (
    name: string,
    options?: { readonly preset?: string; readonly overrides?: unknown; readonly output?: FunctionOutput }
  ) => Effect.Effect<FunctionInfo, FunctionsError>
  readonly get: (functionId: string) => Effect.Effect<FunctionStatus, FunctionsError>
  readonly list: Effect.Effect<ReadonlyArray<FunctionInfo>, FunctionsError>
  /** Delete a function with its samples, images and models. */
  readonly delete: (functionId: string) => Effect.Effect<void, FunctionsError>
  /** Create labels (a name alone, or with a description and metadata); existing names return the existing label. */
  readonly createLabels: (
    functionId: string,
    labels: ReadonlyArray<string | NewLabel>
  ) => Effect.Effect<ReadonlyArray<StoreTypes.LabelRecord>, FunctionsError>
  readonly listLabels: (functionId: string) => Effect.Effect<ReadonlyArray<StoreTypes.LabelRecord>, FunctionsError>
  /**
   * Delete a label (`NotFound` naming `labelId` for an unknown one). Its samples are not deleted: they become
   * unlabelled (re-annotate them, or delete them with `deleteSamples`). A retrain follows when there were any.
   *
   * @since 0.2.0
   */
  readonly deleteLabel: (functionId: string, labelId: string) => Effect.Effect<StoreTypes.DeletedLabel, FunctionsError>
  /**
   * Rename a label and set its description and metadata (see `Store.updateLabel`); a rename of a label with samples
   * schedules a retrain, so that the model answers with the new name.
   *
   * @since 0.2.0
   */
  readonly updateLabel: (functionId: string, labelId: string, label: NewLabel) => Effect.Effect<StoreTypes.LabelRecord, FunctionsError>
  /**
   * Add samples; returns each one's sample, in input order (0.2.0: the sample, whether it is new, and what changed,
   * where 0.1 returned ids). An image the function already holds returns the existing sample; the post's `label`
   * (Tags: `tags`) and `externalId` are applied to it where they differ, and listed in `updated` (a changed tag set as
   * `annotation`; `options.updateExisting: false` leaves it unchanged). `InvalidInput` naming `samples[i].tags` for
   * tags in a Classification function, `samples[i].labelName` for a label in a Tags function. All or nothing: an unreadable image fails the call with `InvalidImage` naming
   * `samples[i].data`, and nothing is added. A change to the training data schedules a retrain.
   */
  readonly createSamples: (
    functionId: string,
    samples: ReadonlyArray<SampleInput>,
    options?: StoreTypes.AddSamplesOptions
  ) => Effect.Effect<ReadonlyArray<StoreTypes.AddedSample>, FunctionsError>
  readonly listSamples: (
    functionId: string,
    options?: { readonly limit?: number; readonly offset?: number }
  ) => Effect.Effect<ReadonlyArray<StoreTypes.SampleRecord>, FunctionsError>
  readonly getSample: (functionId: string, sampleId: string) => Effect.Effect<StoreTypes.SampleRecord, FunctionsError>
  /**
   * Set (`{ labelName }` or `{ labelId }`) or remove (`null`) a Classification function sample's annotation
   * (`InvalidInput` naming `annotation` in a Tags function).
   */
  readonly updateAnnotation: (
    functionId: string,
    sampleId: string,
    annotation: StoreTypes.AnnotationInput
  ) => Effect.Effect<StoreTypes.SampleRecord, FunctionsError>
  /**
   * Set a Tags function sample's tag set, each tag by `{ labelName }` (created on demand) or `{ labelId }`; `[]` tags
   * it with none, `null` untags it. A change schedules a retrain. `InvalidInput` naming `tags` in a Classification
   * function, `NotFound` naming `tags[i].labelId` for an unknown label.
   *
   * @since 0.2.0
   */
  readonly updateTags: (
    functionId: string,
    sampleId: string,
    tags: StoreTypes.TagsInput
  ) => Effect.Effect<StoreTypes.SampleRecord, FunctionsError>
  readonly deleteSamples: (functionId: string, sampleIds: ReadonlyArray<string>) => Effect.Effect<void, FunctionsError>
  /**
   * Classify an image with the promoted model; before there is one, zero-shot when the function's backbone has a text
   * tower (`mode: "zero-shot"`), else `NotTrained`; `InvalidImage` naming `data`.
   */
  readonly invoke: (functionId: string, data: ImageData, options?: InvokeOptions) => Effect.Effect<InvokeResult, FunctionsError>
  /**
   * Tag an image with a Tags function's promoted model (or `options.modelId`): every tag with its probability and
   * threshold. `NotTrained` before the first model, `InvalidImage` naming `data`, `InvalidInput` naming `functionId`
   * for a Classification function.
   *
   * @since 0.2.0
   */
  readonly invokeTags: (
    functionId: string,
    data: ImageData,
    options?: InvokeTagsOptions
  ) => Effect.Effect<TagsInvokeResult, FunctionsError>
  /** The promoted model's cross-validated metrics; `NotTrained` before there is one. */
  readonly metrics: (functionId: string) => Effect.Effect<FunctionMetrics, FunctionsError>
  /**
   * A Tags function's promoted model's cross-validated multi-label metrics (per-tag precision, recall, F1, average
   * precision and threshold; micro, macro, mAP); `NotTrained` before there is one, `InvalidInput` naming
   * `functionId` for a Classification function.
   *
   * @since 0.2.0
   */
  readonly tagsMetrics: (functionId: string) => Effect.Effect<TagsFunctionMetrics, FunctionsError>
  /**
   * The model history, newest first: each version with its metrics, sample count, creation time, whether it is the
   * promoted (serving) one and why it was held back. Only the newest `keepVersions` (and the promoted one) are kept.
   */
  readonly models: (functionId: string) => Effect.Effect<ReadonlyArray<StoreTypes.ModelVersionRecord>, FunctionsError>
  /**
   * Promote any version of the history (an earlier one, or one the promotion rule held back): invocations answer with
   * it from the next one on, in this process and in every server on the store.
   */
  readonly rollback: (functionId: string, versionId: string) => Effect.Effect<StoreTypes.ModelVersionRecord, FunctionsError>
  /**
   * The data analyses of the function's samples (`FunctionInsights`): every sample, annotated or not (captured
   * invocations included), embedded through the embedding cache with the promoted model's backbone (else the preset's
   * first), and a logistic regression cross-validated on the annotated ones, with the preset's folds and seed, for
   * label-noise suspects and per-label recall. Unannotated samples are checked for duplicates and outliers.
   * `TooFewSamples` when the function does not have 2 labels with 2 annotated samples each.
   *
   * @since 0.2.0
   */
  readonly insights: (functionId: string) => Effect.Effect<FunctionInsights, FunctionsError>
  /** Wait until no retrain is scheduled or running, then return the function's status. */
  readonly awaitTrained: (functionId: string) => Effect.Effect<FunctionStatus, FunctionsError>
  /**
   * On a store whose retrains run on workers (`RetrainWorkflow.layerJobsFor`), submit the function's pending retrain
   * to them now and return once they have it, without waiting for it to run: for a process about to exit (`loupe
   * function add --no-wait`). In process, the retrain is scheduled as any change schedules it.
   *
   * @since 0.2.0
   */
  readonly submitRetrain: (functionId: string) => Effect.Effect<void, FunctionsError>
}

/**
 * The function API service. Provide it with `layer` or `layerDirectory`; from plain JavaScript, use `open`.
 *
 * @since 0.1.0
 * @category tags
 */
export class Functions extends Context.Tag("@loupe/functions/Functions")<Functions, FunctionsShape>() {}

const invalidInput = (field: string, message: string) => new FunctionsError({ reason: "InvalidInput", field, message })

const checkName = (value: unknown, field: string): Effect.Effect<string, FunctionsError> =>
  typeof value === "string" && value.trim() !== ""
    ? Effect.succeed(value)
    : Effect.fail(invalidInput(field, `${field} must be a non-empty string`))

const checkOptionalString = (value: unknown, field: string): Effect.Effect<string | undefined, FunctionsError> =>
  value === undefined ? Effect.succeed(undefined) : checkName(value, field)

const toInfo = (fn: StoreTypes.FunctionRecord): FunctionInfo => ({
  id: fn.id,
  name: fn.name,
  output: fn.output,
  preset: fn.preset,
  createdAt: fn.createdAt
})

const cvAccuracy = (metrics: unknown): number =>
  (metrics as { readonly output?: string }).output === "Tags"
    ? (metrics as Retrainer.TagsModelMetrics).cv.exactMatch
    : (metrics as Retrainer.ModelMetrics).cv.accuracy

const outputs: ReadonlyArray<FunctionOutput> = ["Classification", "Tags"]

/** Fails unless the function answers `output`: `operation` is not for the other kind. */
const expectOutput = (fn: StoreTypes.FunctionRecord, output: FunctionOutput, operation: string) =>
  fn.output === output ? Effect.void : Effect.fail(
    invalidInput(
      "functionId",
      `Function ${fn.name} (${fn.id}) outputs ${fn.output}: ${operation} is for ${output} functions` +
        (fn.output === "Tags" ? " (a Tags function has invokeTags, tagsMetrics and updateTags)" : "")
    )
  )

/**
 * Build the function API over the store, blob store and retrainer in context. Never fails itself; its operations
 * fail as `FunctionsShape` says.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: FunctionsConfig = {}
): Effect.Effect<FunctionsShape, never, Store | BlobStore | Retrainer.Retrainer | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fileSystem = yield* FileSystem.FileSystem
    const store = yield* Store
    const blobs = yield* BlobStore
    const retrainer = yield* Retrainer.Retrainer
    const imageOptions: ImageInput.ReadOptions = {
      allowUrlFetch: config.allowUrlFetch,
      allowPrivateUrls: config.allowPrivateUrls,
      maxBytes: config.maxImageBytes,
      maxPixels: config.maxImagePixels
    }

    // Sample writes and deletes of one function run one at a time, so an image's blob and its row never race.
    const locks = new Map<string, Effect.Semaphore>()
    const exclusive = (functionId: string) => {
      let lock = locks.get(functionId)
      if (!lock) {
        lock = Effect.unsafeMakeSemaphore(1)
        locks.set(functionId, lock)
      }
      return lock.withPermits(1)
    }

    /** The function's labels with their sample counts, and why it cannot train yet (`undefined`: it can). */
    const trainability = (fn: StoreTypes.FunctionRecord) =>
      Effect.gen(function*() {
        const counts = yield* store.labelCounts(fn.id)
        const labels = counts.map((c) => ({ id: c.label.id, name: c.label.name, sampleCount: c.count }))
        if (fn.output === "Classification") {
          return { labels, leftOut: Trainable.split(labels).leftOut, tooFew: Trainable.tooFewLabels(labels) }
        }
        const tagged = (yield* store.countSamples(fn.id)) - (yield* store.countSamples(fn.id, { labelId: null }))
        return { labels, leftOut: Trainable.splitTags(labels, tagged).leftOut, tooFew: Trainable.tooFewTags(labels, tagged) }
      })

    const status = (functionId: string) =>
      Effect.gen(function*() {
        const fn = yield* store.getFunction(functionId)
        const { labels, leftOut } = yield* trainability(fn)
        const promoted = yield* store.promotedVersion(functionId)
        const [newest] = yield* store.listModelVersions(functionId)
        return {
          ...toInfo(fn),
          labels,
          leftOutLabels: leftOut,
          model: promoted
            ? {
              id: promoted.id,
              createdAt: promoted.createdAt,
              cvAccuracy: cvAccuracy(promoted.metrics),
              upToDate: promoted.revision === fn.revision
            }
            : null,
          training: yield* retrainer.status(functionId),
          trainError: fn.trainError,
          heldBack: newest !== undefined && !newest.promoted && newest.heldBack !== null
            ? { id: newest.id, createdAt: newest.createdAt, reason: newest.heldBack }
            : null
        } satisfies FunctionStatus
      })

    /** Why a function has no model yet, in words. */
    const notTrained = (functionId: string) =>
      Effect.gen(function*() {
        const s = yield* status(functionId)
        const { tooFew } = yield* trainability(yield* store.getFunction(functionId))
        const why = s.training.phase === "training"
          ? "training is in progress"
          : tooFew !== undefined
          ? tooFew
          : s.trainError !== null
          ? `the last training run failed: ${s.trainError}`
          : "training has not finished yet"
        return new FunctionsError({
          reason: "NotTrained",
          field: "functionId",
          message: `Function ${s.name} (${functionId}) is not trained yet: ${why}`
        })
      })

    const create: FunctionsShape["create"] = (name, options = {}) =>
      Effect.gen(function*() {
        const checked = yield* checkName(name, "name")
        const output = options.output ?? "Classification"
        if (!outputs.includes(output)) {
          return yield* invalidInput("output", `output must be one of ${outputs.join(", ")}, got ${JSON.stringify(output)}`)
        }
        const preset = options.preset ?? config.defaultPreset ?? Preset.defaultPreset
        // Validates the preset name and the overrides now, so a typo fails at creation, not at the first retrain.
        yield* Preset.resolve(preset, options.overrides ?? {})
        return toInfo(yield* store.createFunction({ name: checked, preset, overrides: options.overrides ?? {}, output }))
      })

    const createLabels: FunctionsShape["createLabels"] = (functionId, labels) =>
      Effect.gen(function*() {
        const checked = yield* Effect.forEach(labels, (label, i) =>
          typeof label === "string"
            ? Effect.map(checkName(label, `labels[${i}]`), (name) => ({ name }))
            : Effect.map(checkName(label?.name, `labels[${i}].name`), (name) => ({ ...label, name })))
        return yield* store.createLabels(functionId, checked)
      })

    const createSamples: FunctionsShape["createSamples"] = (functionId, samples, options) =>
      Effect.gen(function*() {
        yield* store.getFunction(functionId)
        const checked = yield* Effect.forEach(samples, (sample, i) =>
          Effect.all({
            label: checkOptionalString(sample?.label, `samples[${i}].label`),
            tags: sample?.tags === undefined
              ? Effect.succeed(undefined)
              : Array.isArray(sample.tags)
              ? Effect.forEach(sample.tags, (tag, j) => checkName(tag, `samples[${i}].tags[${j}]`))
              : Effect.fail(invalidInput(`samples[${i}].tags`, `samples[${i}].tags must be an array of label names`)),
            externalId: checkOptionalString(sample?.externalId, `samples[${i}].externalId`)
          }))
        // Read and decode-check every image before anything is written.
        const images = yield* Effect.forEach(
          samples,
          (sample, i) =>
            ImageInput.read(sample.data, `samples[${i}].data`, imageOptions).pipe(
              Effect.map((bytes) => ({ bytes, contentHash: EmbeddingCache.contentHash(bytes) })),
              Effect.provideService(FileSystem.FileSystem, fileSystem)
            ),
          { concurrency: 4 }
        )
        const added = yield* exclusive(functionId)(
          Effect.gen(function*() {
            const unique = new Map(images.map((img) => [img.contentHash, img.bytes]))
            yield* Effect.forEach(
              unique,
              ([hash, bytes]) => {
                const key = imageKey(functionId, hash)
                return Effect.flatMap(blobs.has(key), (present) => (present ? Effect.void : blobs.put(key, bytes)))
              },
              { concurrency: 8, discard: true }
            )
            return yield* store.addSamples(
              functionId,
              images.map((img, i) => ({
                contentHash: img.contentHash,
                externalId: checked[i]!.externalId,
                labelName: checked[i]!.label,
                tags: checked[i]!.tags
              })),
              options
            )
          })
        )
        yield* retrainer.schedule(functionId)
        return added
      })

    const predict = (fitted: Pipeline.FittedPipeline, bytes: Uint8Array) =>
      Pipeline.predict(fitted, bytes).pipe(
        Effect.mapError((e) =>
          new FunctionsError({
            reason: "InvalidImage",
            field: "data",
            message: `data: ${e.message.replace("Cannot decode <", "not a decodable image <")}`,
            cause: e
          })
        )
      )

    const invoke: FunctionsShape["invoke"] = (functionId, data, options = {}) =>
      Effect.gen(function*() {
        if (options.labelCount !== undefined && !(Number.isInteger(options.labelCount) && options.labelCount > 0)) {
          return yield* invalidInput("labelCount", `labelCount must be a positive integer, got ${options.labelCount}`)
        }
        yield* expectOutput(yield* store.getFunction(functionId), "Classification", "invoke")
        const bytes = yield* ImageInput.readBytes(data, "data", imageOptions).pipe(
          Effect.provideService(FileSystem.FileSystem, fileSystem)
        )
        const trained = yield* retrainer.model(functionId, options.modelId)
        const zeroShot = trained === undefined && options.modelId === undefined ? yield* retrainer.zeroShot(functionId) : undefined
        const model = trained !== undefined
          ? { fitted: trained.fitted, labels: trained.version.labels, modelId: trained.version.id }
          : zeroShot && { fitted: zeroShot.fitted, labels: zeroShot.labels, modelId: `zero-shot:${zeroShot.backbone}` }
        if (model === undefined) return yield* Effect.flatMap(notTrained(functionId), Effect.fail)
        const prediction = yield* predict(model.fitted, bytes)
        const ids = new Map(model.labels.map((l) => [l.name, l.id]))
        const labelConfidences = prediction.labelConfidences
          .slice(0, options.labelCount ?? Infinity)
          .map((c) => ({ labelName: c.labelName, labelId: ids.get(c.labelName)!, confidence: c.confidence }))
        return {
          labelName: prediction.labelName,
          labelId: ids.get(prediction.labelName)!,
          confidence: prediction.confidence,
          labelConfidences,
          modelId: model.modelId,
          ...(zeroShot === undefined ? {} : { mode: "zero-shot" as const })
        } satisfies InvokeResult
      })

    const invokeTags: FunctionsShape["invokeTags"] = (functionId, data, options = {}) =>
      Effect.gen(function*() {
        yield* expectOutput(yield* store.getFunction(functionId), "Tags", "invokeTags")
        const bytes = yield* ImageInput.readBytes(data, "data", imageOptions).pipe(
          Effect.provideService(FileSystem.FileSystem, fileSystem)
        )
        const trained = yield* retrainer.model(functionId, options.modelId)
        if (trained === undefined) return yield* Effect.flatMap(notTrained(functionId), Effect.fail)
        const predicted = yield* TagsAutoML.predict(trained.fitted, bytes).pipe(
          Effect.mapError((e) =>
            e._tag === "FunctionsError" && e.reason !== "InvalidImage"
              ? e
              : new FunctionsError({
                reason: "InvalidImage",
                field: "data",
                message: `data: ${e.message.replace("Cannot decode <", "not a decodable image <")}`,
                cause: e
              })
          )
        )
        const ids = new Map(trained.version.labels.map((l) => [l.name, l.id]))
        const tags = predicted
          .map((t): TagConfidence => ({
            labelName: t.tag,
            labelId: ids.get(t.tag)!,
            confidence: t.probability,
            threshold: t.threshold,
            present: t.passes
          }))
          .sort((a, b) => b.confidence - a.confidence)
        return { tags, modelId: trained.version.id } satisfies TagsInvokeResult
      })

    /** The promoted version of a function that answers `output`, and the function; `NotTrained` without one. */
    const promotedOf = (functionId: string, output: FunctionOutput, operation: string) =>
      Effect.gen(function*() {
        const fn = yield* store.getFunction(functionId)
        yield* expectOutput(fn, output, operation)
        const promoted = yield* store.promotedVersion(functionId)
        if (promoted === undefined) return yield* Effect.flatMap(notTrained(functionId), Effect.fail)
        return { fn, promoted }
      })

    const tagsMetrics: FunctionsShape["tagsMetrics"] = (functionId) =>
      Effect.map(promotedOf(functionId, "Tags", "tagsMetrics"), ({ fn, promoted }) => ({
        ...(promoted.metrics as Retrainer.TagsModelMetrics),
        functionId,
        modelId: promoted.id,
        createdAt: promoted.createdAt,
        upToDate: promoted.revision === fn.revision
      } satisfies TagsFunctionMetrics))

    const metrics: FunctionsShape["metrics"] = (functionId) =>
      Effect.gen(function*() {
        const { fn, promoted } = yield* promotedOf(functionId, "Classification", "metrics")
        const modelMetrics = promoted.metrics as Retrainer.ModelMetrics
        return {
          ...modelMetrics,
          leftOutLabels: modelMetrics.leftOutLabels ?? [],
          functionId,
          modelId: promoted.id,
          createdAt: promoted.createdAt,
          upToDate: promoted.revision === fn.revision
        } satisfies FunctionMetrics
      })

    /**
     * The backbone of a model: the first of its feature set (a backbone, a concatenation `a+b`, or a fine-tuned trunk
     * `a@cut`, whose backbone is `a`).
     */
    const backboneOf = (version: StoreTypes.ModelVersionRecord) =>
      Effect.gen(function*() {
        const registry = yield* Registry.Registry
        const first = Candidates.membersOf(((version.metrics as Retrainer.ModelMetrics).selected as AutoML.Candidate).backbone)[0]!
        const trunkOf = first.lastIndexOf("@") > 0 ? first.slice(0, first.lastIndexOf("@")) : first
        return yield* registry.backbone(first).pipe(Effect.as(first), Effect.orElseSucceed(() => trunkOf))
      })

    const insights: FunctionsShape["insights"] = (functionId) =>
      Effect.gen(function*() {
        const fn = yield* store.getFunction(functionId)
        yield* expectOutput(fn, "Classification", "insights")
        const counts = yield* store.labelCounts(functionId)
        const tooFew = Trainable.tooFewLabels(counts.map((c) => ({ id: c.label.id, name: c.label.name, sampleCount: c.count })))
        if (tooFew !== undefined) {
          return yield* new FunctionsError({
            reason: "TooFewSamples",
            field: "functionId",
            message: `Function ${fn.name} (${functionId}) has too few samples for insights: cross-validation ${tooFew.replace(/^training /, "")}`
          })
        }
        const samples = yield* store.listSamples(functionId)
        const files = yield* Effect.forEach(samples, (s) => Effect.either(blobs.localFile(imageKey(functionId, s.contentHash))), {
          concurrency: 8
        })
        const promoted = yield* store.promotedVersion(functionId)
        const resolved = yield* Preset.resolve(fn.preset, fn.overrides)
        const missing = samples.flatMap((s, i) => (files[i]!._tag === "Left" ? [{ sampleId: s.id, reason: "its image is missing from the blob store" }] : []))
        const images = samples.flatMap((s, i) => {
          const file = files[i]!
          return file._tag === "Left" ? [] : [{ id: s.id, source: file.right, label: s.annotation?.labelName }]
        })
        return yield* retrainer.withEnvironment(Effect.gen(function*() {
          const backbone = promoted === undefined ? (yield* Preset.chooseBackbones(resolved)).backbones[0]! : yield* backboneOf(promoted)
          const found = yield* Effect.scoped(Inspection.inspect(images, {
            backbone,
            labels: counts.map((c) => c.label.name),
            folds: resolved.settings.folds,
            seed: resolved.settings.seed
          }))
          return {
            ...found.insights,
            functionId,
            backbone,
            modelId: promoted?.id ?? null,
            skipped: [...missing, ...found.skipped.map((s) => ({ sampleId: s.id, reason: s.reason }))]
          } satisfies FunctionInsights
        })).pipe(
          Effect.mapError((e) =>
            e._tag === "FunctionsError"
              ? e
              : new FunctionsError({ reason: "TrainingFailed", message: `Insights of function ${functionId}: ${e.message}`, cause: e })
          )
        )
      })

    return {
      create,
      get: status,
      list: Effect.map(store.listFunctions, (fns) => fns.map(toInfo)),
      delete: (functionId) =>
        exclusive(functionId)(
          Effect.gen(function*() {
            yield* store.getFunction(functionId)
            yield* retrainer.forget(functionId)
            yield* store.deleteFunction(functionId)
            yield* blobs.remove(imagesPrefix(functionId))
            yield* blobs.remove(bundlesPrefix(functionId))
          })
        ).pipe(Effect.ensuring(Effect.sync(() => locks.delete(functionId)))),
      createLabels,
      listLabels: store.listLabels,
      deleteLabel: (functionId, labelId) =>
        Effect.tap(store.deleteLabel(functionId, labelId), (deleted) =>
          deleted.unannotatedSamples > 0 ? retrainer.schedule(functionId) : Effect.void),
      updateLabel: (functionId, labelId, label) =>
        Effect.gen(function*() {
          const name = (yield* checkName(label.name, "name")).trim()
          const revision = (yield* store.getFunction(functionId)).revision
          const updated = yield* store.updateLabel(functionId, labelId, { ...label, name })
          if ((yield* store.getFunction(functionId)).revision !== revision) yield* retrainer.schedule(functionId)
          return updated
        }),
      createSamples,
      listSamples: (functionId, options) => store.listSamples(functionId, options),
      getSample: store.getSample,
      updateAnnotation: (functionId, sampleId, annotation) =>
        Effect.tap(store.setAnnotation(functionId, sampleId, annotation), () => retrainer.schedule(functionId)),
      updateTags: (functionId, sampleId, tags) =>
        Effect.tap(store.setTags(functionId, sampleId, tags), () => retrainer.schedule(functionId)),
      deleteSamples: (functionId, sampleIds) =>
        exclusive(functionId)(
          Effect.gen(function*() {
            const deleted = yield* store.deleteSamples(functionId, sampleIds)
            yield* Effect.forEach(deleted, (s) => blobs.remove(imageKey(functionId, s.contentHash)), { discard: true })
          })
        ).pipe(Effect.zipLeft(retrainer.schedule(functionId))),
      invoke,
      invokeTags,
      metrics,
      tagsMetrics,
      models: store.listModelVersions,
      rollback: retrainer.rollback,
      insights,
      awaitTrained: (functionId) => Effect.zipRight(retrainer.awaitIdle(functionId), status(functionId)),
      submitRetrain: retrainer.submit
    } satisfies FunctionsShape
  })

/**
 * The function API over a provided store, blob store, registry, config and embedding cache (the retrainer is built
 * in, and provided too). Fails with `FunctionsError` when the retrainer cannot start.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: FunctionsConfig = {}
): Layer.Layer<
  Functions | Retrainer.Retrainer,
  FunctionsError,
  Store | BlobStore | Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem
> => Layer.effect(Functions, make(config)).pipe(Layer.provideMerge(Retrainer.layer(config)))

/**
 * Everything in one folder: the SQLite store (`<dir>/loupe.db`) and the blob store (`<dir>/blobs`), both created
 * when missing. Needs the registry, config and an embedding cache (e.g. `DiskEmbeddingCache.layer()`). Fails with
 * `FunctionsError` `StoreFailed` when the folder or the database cannot be opened or migrated.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDirectory = (
  dir: string,
  config: FunctionsConfig = {}
): Layer.Layer<
  Functions | Retrainer.Retrainer | Store | BlobStore,
  FunctionsError,
  Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem
> => layerStore(StoreLocation.directory(dir), config)

/**
 * The local folder that holds a store's files that are not in its database: for a folder store, the folder itself,
 * with its blobs (`blobs/`), API keys (`keys.json`) and capture log (`captures.db`). A Postgres store keeps all of
 * those in its database (`SharedState`); its local folder, `<cacheDir>/postgres-stores/<hash of the URL without its
 * password>`, only holds the key file of `loupe serve --bundle`.
 *
 * @since 0.2.0
 * @category layers
 */
export const localFolder = (
  location: StoreLocation.StoreLocation
): Effect.Effect<string, never, LoupeConfig.LoupeConfig> =>
  location._tag === "Directory"
    ? Effect.succeed(location.path)
    : Effect.map(LoupeConfig.LoupeConfig, ({ cacheDir }) =>
      path.join(
        cacheDir,
        "postgres-stores",
        crypto.createHash("sha256").update(StoreLocation.describe(location)).digest("hex").slice(0, 16)
      ))

/**
 * The records and blobs of a store location, without the function API: for a folder, the SQLite store and the blob
 * store in its `blobs/`; for Postgres, `SharedState.layerPostgres` (store, blobs in the database, and the shared
 * embedding cache, which the function API then uses in place of the one it is given). What `layerStore` runs the
 * function API on; for tools that read a store (export, inspection).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerStorage = (
  location: StoreLocation.StoreLocation
): Layer.Layer<Store | BlobStore, FunctionsError, LoupeConfig.LoupeConfig | FileSystem.FileSystem> =>
  location._tag === "Directory"
    ? Layer.merge(layerSqlite(location.path), layerFileSystem(path.join(location.path, "blobs")))
    : SharedState.layerPostgres(location.url)

/**
 * The function API on a store location (`StoreLocation.parse` reads one from `--store` or `LOUPE_STORE_URL`): a
 * folder is the SQLite store with its blobs beside it (as `layerDirectory`); a `postgres://` database holds the
 * store, shared by every process given the same URL. Needs the registry, config and an embedding cache. Fails with
 * `FunctionsError` `StoreFailed` when the store cannot be opened or migrated.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerStore = (
  location: StoreLocation.StoreLocation,
  config: FunctionsConfig = {}
): Layer.Layer<
  Functions | Retrainer.Retrainer | Store | BlobStore,
  FunctionsError,
  Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem
> => layer(config).pipe(Layer.provideMerge(layerStorage(location)))

/**
 * Read an image input as the function API does (a path, bytes, a data URI or a URL), checking that it decodes.
 * Fails with `FunctionsError` `InvalidImage` naming `field` when it cannot be read, is empty, is over the size cap
 * or does not decode, or is a URL while fetching is off.
 *
 * @since 0.1.0
 * @category utils
 */
export const readImage = (
  data: unknown,
  field: string,
  options: ReadOptions = {}
): Effect.Effect<Uint8Array, FunctionsError, FileSystem.FileSystem> =>
  ImageInput.read(data, field, options)

// ---------------------------------------------------------------------------------------------------------------
// Promises

/**
 * The function API with Promises instead of Effects (what `open` returns): each method resolves with its result or
 * rejects with the `FunctionsError`.
 *
 * @since 0.1.0
 * @category models
 */
export type Client =
  & {
    readonly [K in keyof FunctionsShape]: FunctionsShape[K] extends (...args: infer Args) => Effect.Effect<infer A, any>
      ? (...args: Args) => Promise<A>
      : FunctionsShape[K] extends Effect.Effect<infer A, any> ? () => Promise<A>
      : never
  }
  & {
    /** Stop background training and close the store. */
    readonly close: () => Promise<void>
  }

/**
 * Options of `open`: the store folder, where models and the embedding cache are, the plugins to register (new in
 * 0.2.0: nothing is registered otherwise), and the `FunctionsConfig`.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenOptions extends FunctionsConfig {
  /**
   * The store: a folder, or a `postgres://` URL (`StoreLocation.parse`; any other `scheme:` is an `InvalidInput`
   * error, never a folder).
   */
  readonly store: string
  /** Where the offline model folders are (default `$LOUPE_MODELS_DIR`). */
  readonly modelsDir?: string
  /** Where the embedding cache lives (default `$LOUPE_CACHE_DIR` or `~/.cache/loupe`). */
  readonly cacheDir?: string
  /**
   * The backbones and heads to train and load models with: `Plugins.builtins` from `@loupe/cli`, plus your own.
   * Nothing is registered unless it is passed here.
   *
   * @since 0.2.0
   */
  readonly plugins: Registry.Plugins
}

/**
 * Open a store (a folder, or a `postgres://` URL) for use from plain JavaScript (no Effect code needed).
 *
 * ```js
 * const loupe = await Functions.open({ store: "./loupe-store", modelsDir: "../shared/models", plugins: Plugins.builtins })
 * const fn = await loupe.create("IsCatOrDog")
 * await loupe.createSamples(fn.id, [{ data: "cats/1.jpg", label: "cats" }, ...])
 * await loupe.awaitTrained(fn.id)
 * const { labelName } = await loupe.invoke(fn.id, "some.jpg")
 * await loupe.close()
 * ```
 *
 * Rejects with `FunctionsError`: `InvalidPlugin` (field `plugins` or the plugin's) when the plugins cannot be
 * registered, `InvalidOptions` for a malformed `LOUPE_*` environment variable, `InvalidInput` (field `store`) for a
 * store that is neither a folder nor a `postgres://` URL, `StoreFailed` when the store cannot be opened. Call
 * `close` when done.
 *
 * @since 0.1.0
 * @category constructors
 */
export const open = async (options: OpenOptions): Promise<Client> => {
  const { cacheDir, modelsDir, plugins, store, ...config } = options
  const location = StoreLocation.parse(store, "store")
  if (Either.isLeft(location)) throw location.left
  const loupeConfig = LoupeConfig.LoupeConfig.layerConfig({
    ...(modelsDir === undefined ? {} : { modelsDir: path.resolve(modelsDir) }),
    ...(cacheDir === undefined ? {} : { cacheDir: path.resolve(cacheDir) })
  }).pipe(Layer.mapError(fromConfigError))
  const environment = Layer.mergeAll(
    loupeConfig,
    DiskEmbeddingCache.layer().pipe(Layer.provide(loupeConfig)),
    Registry.Registry.layer(plugins).pipe(
      Layer.mapError((e) => new FunctionsError({ reason: "InvalidPlugin", field: e.field ?? "plugins", message: e.message, cause: e }))
    )
  )
  const runtime = ManagedRuntime.make(
    layerStore(location.right, config).pipe(Layer.provide(environment), Layer.provide(NodeFileSystem.layer))
  )
  const run = async <A>(effect: Effect.Effect<A, FunctionsError, Functions>): Promise<A> => {
    const exit = await runtime.runPromiseExit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }
  const service = await run(Functions)
  const client: Record<string, unknown> = { close: () => runtime.dispose() }
  for (const [name, member] of Object.entries(service)) {
    client[name] = Effect.isEffect(member)
      ? () => run(member as Effect.Effect<unknown, FunctionsError>)
      : (...args: Array<unknown>) => run((member as (...a: Array<unknown>) => Effect.Effect<unknown, FunctionsError>)(...args))
  }
  return client as Client
}
