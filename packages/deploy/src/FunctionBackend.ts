/**
 * What the HTTP server needs from whatever keeps functions: a small service in the API's own terms, so the server
 * does not depend on how functions are stored or trained. `@loupe/functions` implements it over its function store
 * and retrainer (`loupe serve`); `BundleBackend` implements it read-only over one model bundle (the Docker entry).
 *
 * Images reach the backend already checked (format, bytes and pixel limits); errors are `DeployError`s, whose
 * reason decides the HTTP status.
 *
 * @since 0.1.0
 */
import { Context } from "effect"
import type { Effect } from "effect"
import type { DeployError } from "./DeployError.js"
import type * as FunctionApi from "./FunctionApi.js"
import type { Pipeline } from "@loupe/core"

/**
 * An invocation as the backend answers it (the server adds capture).
 *
 * @since 0.1.0
 * @category models
 */
export type Invocation = Omit<FunctionApi.InvokeResult, "sampleId" | "externalId">

/**
 * A Tags function's invocation as the backend answers it: every tag with its probability, threshold and whether it
 * is present.
 *
 * @since 0.2.0
 * @category models
 */
export type TagsInvocation = Omit<FunctionApi.TagsInvokeResult, "sampleId" | "externalId">

/**
 * A prediction as an invocation: label ids from `labelIds` (label name -> id), at most `labelCount` label
 * confidences.
 *
 * @since 0.1.0
 * @category constructors
 */
export const invocation = (
  prediction: Pipeline.Prediction,
  labelIds: ReadonlyMap<string, string>,
  modelId: string,
  labelCount: number | undefined
): Invocation => ({
  labelName: prediction.labelName,
  labelId: labelIds.get(prediction.labelName)!,
  confidence: prediction.confidence,
  labelConfidences: prediction.labelConfidences.slice(0, labelCount ?? Infinity).map((c) => ({
    labelName: c.labelName,
    labelId: labelIds.get(c.labelName)!,
    confidence: c.confidence
  })),
  modelId
})

/**
 * A captured invocation to store for review.
 *
 * @since 0.1.0
 * @category models
 */
export interface NewCapture {
  readonly reason: FunctionApi.CaptureView["reason"]
  readonly labelName: string
  readonly confidence: number
  readonly modelId: string
  readonly externalId?: string | undefined
}

/**
 * A sample to add: the image bytes (already checked), an optional label name to annotate it with, and the
 * caller's `externalId`.
 *
 * @since 0.1.0
 * @category models
 */
export interface NewSample {
  readonly image: Uint8Array
  readonly labelName?: string | undefined
  /** A Tags function's sample: its tags by label name (new in 0.2.0). */
  readonly tags?: ReadonlyArray<string> | undefined
  readonly externalId?: string | undefined
}

/**
 * The operations the server calls, one per route, in the API's own types. Each fails with a `DeployError`
 * whose reason picks the status: `NotFound` for an unknown function, sample or label, `NotTrained` before the first
 * model, `ReadOnly` where the backend does not change data.
 *
 * @since 0.1.0
 * @category models
 */
export interface FunctionBackendShape {
  readonly createFunction: (input: FunctionApi.CreateFunction) => Effect.Effect<FunctionApi.FunctionView, DeployError>
  readonly listFunctions: Effect.Effect<ReadonlyArray<FunctionApi.FunctionView>, DeployError>
  readonly getFunction: (functionId: string) => Effect.Effect<FunctionApi.FunctionDetail, DeployError>
  readonly deleteFunction: (functionId: string) => Effect.Effect<void, DeployError>
  readonly createLabel: (functionId: string, label: FunctionApi.CreateLabel) => Effect.Effect<FunctionApi.LabelView, DeployError>
  readonly listLabels: (functionId: string) => Effect.Effect<ReadonlyArray<FunctionApi.LabelView>, DeployError>
  /**
   * Delete a label (`NotFound` for an unknown one); its samples stay, unlabelled.
   *
   * @since 0.2.0
   */
  readonly deleteLabel: (functionId: string, labelId: string) => Effect.Effect<FunctionApi.DeletedLabel, DeployError>
  /**
   * One label (`NotFound` naming `labelId`).
   *
   * @since 0.2.0
   */
  readonly getLabel: (functionId: string, labelId: string) => Effect.Effect<FunctionApi.LabelView, DeployError>
  /**
   * Rename a label and set its description and metadata.
   *
   * @since 0.2.0
   */
  readonly updateLabel: (
    functionId: string,
    labelId: string,
    label: FunctionApi.CreateLabel
  ) => Effect.Effect<FunctionApi.LabelView, DeployError>
  /**
   * Add a sample; an image the function already holds returns the existing sample, with the post's label and
   * `externalId` applied where they differ and named in `updated` (0.2.0).
   */
  readonly createSample: (functionId: string, sample: NewSample) => Effect.Effect<FunctionApi.CreatedSample, DeployError>
  /** A page of samples, oldest first, or newest first with `descending` (0.2.0). */
  readonly listSamples: (
    functionId: string,
    paging: FunctionApi.Paging & { readonly descending?: boolean | undefined }
  ) => Effect.Effect<ReadonlyArray<FunctionApi.SampleView>, DeployError>
  readonly getSample: (functionId: string, sampleId: string) => Effect.Effect<FunctionApi.SampleView, DeployError>
  readonly deleteSample: (functionId: string, sampleId: string) => Effect.Effect<void, DeployError>
  /**
   * A sample's image as a data URI, transparency flattened onto white (what Nyckel's clients read back).
   *
   * @since 0.2.0
   */
  readonly sampleData: (functionId: string, sampleId: string) => Effect.Effect<string, DeployError>
  /** Set (or, with `null`, remove) a sample's annotation; a change to the training data schedules a retrain. */
  readonly setAnnotation: (
    functionId: string,
    sampleId: string,
    annotation: FunctionApi.AnnotationInput | null
  ) => Effect.Effect<FunctionApi.SampleView, DeployError>
  /**
   * Set (or, with `null`, remove) a Tags function sample's tag set; `[]` tags it with none. A change schedules a
   * retrain.
   *
   * @since 0.2.0
   */
  readonly setTags: (
    functionId: string,
    sampleId: string,
    tags: ReadonlyArray<{ readonly labelName: string } | { readonly labelId: string }> | null
  ) => Effect.Effect<FunctionApi.SampleView, DeployError>
  /** Classify an image; a Tags function answers a `TagsInvocation` (0.2.0). */
  readonly invoke: (
    functionId: string,
    image: Uint8Array,
    options: { readonly labelCount?: number | undefined; readonly modelId?: string | undefined }
  ) => Effect.Effect<Invocation | TagsInvocation, DeployError>
  /** The serving model's metrics; a Tags function's are `TagsMetrics` (0.2.0). */
  readonly metrics: (functionId: string) => Effect.Effect<FunctionApi.Metrics | FunctionApi.TagsMetrics, DeployError>
  /**
   * The function's data insights; `TooFewSamples` when it has too few annotated samples to cross-validate.
   *
   * @since 0.2.0
   */
  readonly insights: (functionId: string) => Effect.Effect<FunctionApi.InsightsView, DeployError>
  /** Store an invoked image as an unlabelled sample in the review queue; its sample id, or `null` when not kept. */
  readonly capture: (functionId: string, image: Uint8Array, capture: NewCapture) => Effect.Effect<string | null, DeployError>
  /** The review queue: captured samples not annotated yet, newest first. */
  readonly listCaptures: (
    functionId: string,
    paging: FunctionApi.Paging
  ) => Effect.Effect<ReadonlyArray<FunctionApi.CaptureView>, DeployError>
  /**
   * The function's model versions, newest first.
   *
   * @since 0.2.0
   */
  readonly listModels: (functionId: string) => Effect.Effect<ReadonlyArray<FunctionApi.ModelView>, DeployError>
  /**
   * Serve `modelId` from the next invocation on; `NotFound` (field `modelId`) for a version the function does not have.
   *
   * @since 0.2.0
   */
  readonly promoteModel: (functionId: string, modelId: string) => Effect.Effect<FunctionApi.ModelView, DeployError>
}

/**
 * The service the server runs over; provide `BundleBackend.layer`, or `@loupe/functions`' implementation.
 *
 * @since 0.1.0
 * @category tags
 */
export class FunctionBackend extends Context.Tag("@loupe/deploy/FunctionBackend")<FunctionBackend, FunctionBackendShape>() {}
