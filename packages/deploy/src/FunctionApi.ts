/**
 * The HTTP API of Loupe functions, modelled on Nyckel's: functions, labels, samples (with their annotation),
 * invoke (with invoke capture), metrics, the review queue of captured invocations, model versions (list and
 * promote), and health probes. This module
 * is the contract only (schemas, errors, endpoints; `/openapi.json` is generated from it); `Server` implements it
 * over a `FunctionBackend`.
 *
 * Every `/v1` route needs an API key sent as `Authorization: Bearer <key>`. Errors are JSON objects
 * `{ _tag, reason, message, field? }`: `_tag` names the HTTP status class, `reason` what went wrong, `field` the
 * offending input.
 *
 * @since 0.1.0
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, HttpApiSecurity, OpenApi } from "@effect/platform"
import { Context, Schema } from "effect"
import type * as ApiKeys from "./ApiKeys.js"
import * as ImagePayload from "./ImagePayload.js"
import * as Payload from "./internal/Payload.js"

// ---------------------------------------------------------------------------------------------------------------
// Errors

const errorFields = {
  reason: Schema.String,
  message: Schema.String,
  field: Schema.optional(Schema.String)
}

/**
 * 400: a request that does not match its schema, an invalid image, or image data given as a URL while
 * fetching URLs is off. `reason` says which, `field` names the input.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", errorFields, HttpApiSchema.annotations({ status: 400 })) {}
/**
 * 401: a missing, malformed, unknown or revoked API key.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", errorFields, HttpApiSchema.annotations({ status: 401 })) {}
/**
 * 404: a function, label, sample or model version that does not exist.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", errorFields, HttpApiSchema.annotations({ status: 404 })) {}
/**
 * 405: a change a read-only server does not make (the bundle server asked to add samples).
 *
 * @since 0.1.0
 * @category errors
 */
export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()(
  "MethodNotAllowed",
  errorFields,
  HttpApiSchema.annotations({ status: 405 })
) {}
/**
 * 409: a function with no trained model yet, asked to invoke or for metrics.
 *
 * @since 0.1.0
 * @category errors
 */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", errorFields, HttpApiSchema.annotations({ status: 409 })) {}
/**
 * 413: a request body or image over the byte limit, or an image over the pixel limit.
 *
 * @since 0.1.0
 * @category errors
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  errorFields,
  HttpApiSchema.annotations({ status: 413 })
) {}
/**
 * 415: a content type the route does not take, or an image that is not JPEG, PNG, GIF or WebP.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  errorFields,
  HttpApiSchema.annotations({ status: 415 })
) {}
/**
 * 429: more requests for one API key than its rate limit allows.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()(
  "TooManyRequests",
  errorFields,
  HttpApiSchema.annotations({ status: 429 })
) {}
/**
 * 500: a failure that is the server's fault (key store, bundle, or a bug); the message says which.
 *
 * @since 0.1.0
 * @category errors
 */
export class InternalServerError extends Schema.TaggedError<InternalServerError>()(
  "InternalServerError",
  errorFields,
  HttpApiSchema.annotations({ status: 500 })
) {}
/**
 * 503: the server is starting or shutting down.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()(
  "ServiceUnavailable",
  errorFields,
  HttpApiSchema.annotations({ status: 503 })
) {}

/**
 * Every error the API answers with.
 *
 * @since 0.1.0
 * @category errors
 */
export type ApiError =
  | BadRequest
  | Unauthorized
  | NotFound
  | MethodNotAllowed
  | Conflict
  | PayloadTooLarge
  | UnsupportedMediaType
  | TooManyRequests
  | InternalServerError
  | ServiceUnavailable

// ---------------------------------------------------------------------------------------------------------------
// Auth

/**
 * The API key a request was made with, and whether it came as the key itself or as an OAuth2 access token (0.2.0).
 *
 * @since 0.1.0
 * @category auth
 */
export class CurrentKey extends Context.Tag("@loupe/deploy/CurrentKey")<CurrentKey, ApiKeys.Caller>() {}

/**
 * Bearer-token auth and the per-key rate limit, on every `/v1` route.
 *
 * @since 0.1.0
 * @category auth
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("@loupe/deploy/Authorization", {
  failure: Schema.Union(Unauthorized, TooManyRequests, InternalServerError),
  provides: CurrentKey,
  security: {
    bearer: HttpApiSecurity.bearer.pipe(
      HttpApiSecurity.annotate(
        OpenApi.Description,
        "An API key made with `loupe keys create`, or an access token from `POST /connect/token`. A request with an " +
          "access token (as Nyckel's clients send) is answered as Nyckel answers: 200 for creates and deletes, samples " +
          "with their image as `data` and without a null `annotation`"
      )
    )
  }
}) {}

/**
 * On routes that take a body: a request whose `Content-Type` is not one the route documents (or that has none) is
 * answered 415 naming `content-type` before anything reads the body, and a multipart form that cannot be read
 * (malformed, or over its limits) 400 or 413 naming `body`.
 *
 * @since 0.2.0
 * @category middleware
 */
export class ContentTypes extends HttpApiMiddleware.Tag<ContentTypes>()("@loupe/deploy/ContentTypes", {
  failure: Schema.Union(UnsupportedMediaType, BadRequest, PayloadTooLarge)
}) {}

// ---------------------------------------------------------------------------------------------------------------
// Schemas

const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100))
const Name = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200))
const Int = (min: number, max: number) => Schema.NumberFromString.pipe(Schema.int(), Schema.between(min, max))

/**
 * A function as listed: id, name, the preset it trains with, and when it was created (ISO 8601).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FunctionView = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  preset: Schema.String,
  createdAt: Schema.String,
  /** Always `Image` (new in 0.2.0, as Nyckel names a function's input). */
  input: Schema.Literal("Image"),
  /** What the function answers (new in 0.2.0, as Nyckel names it). */
  output: Schema.Literal("Classification", "Tags")
}).annotations({ identifier: "Function" })
/**
 * A function as listed.
 *
 * @since 0.1.0
 * @category schemas
 */
export type FunctionView = typeof FunctionView.Type

/**
 * A label that training leaves out, with its annotated sample count and why: a label needs at least 2 annotated
 * samples to be trained on. The function trains on its other labels meanwhile.
 *
 * @since 0.2.0
 * @category schemas
 */
export const LeftOutLabel = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  sampleCount: Schema.Number,
  reason: Schema.String
}).annotations({ identifier: "LeftOutLabel" })

/**
 * One function in full: its labels with their annotated sample counts, the labels the next training leaves out
 * (and why), the promoted model (with its cross-validated accuracy, and whether it saw every current sample), the
 * retraining state, the last training error, if any (such as fewer than 2 labels with 2 samples each), and the newest
 * model when the promotion rule held it back (with why).
 *
 * @since 0.1.0
 * @category schemas
 */
export const FunctionDetail = Schema.Struct({
  ...FunctionView.fields,
  /** Every sample, annotated or not (new in 0.2.0). */
  sampleCount: Schema.Number,
  labels: Schema.Array(Schema.Struct({ id: Schema.String, name: Schema.String, sampleCount: Schema.Number })),
  leftOutLabels: Schema.Array(LeftOutLabel),
  model: Schema.NullOr(Schema.Struct({
    id: Schema.String,
    createdAt: Schema.String,
    /** Cross-validated accuracy, when the model was cross-validated. */
    cvAccuracy: Schema.NullOr(Schema.Number),
    upToDate: Schema.Boolean
  })),
  training: Schema.Struct({ phase: Schema.String, pending: Schema.Boolean }),
  trainError: Schema.NullOr(Schema.String),
  /** The newest model when it does not serve because it was held back, and why (new in 0.2.0). */
  heldBack: Schema.NullOr(Schema.Struct({ id: Schema.String, createdAt: Schema.String, reason: Schema.String }))
}).annotations({ identifier: "FunctionDetail" })
/**
 * One function in full.
 *
 * @since 0.1.0
 * @category schemas
 */
export type FunctionDetail = typeof FunctionDetail.Type

/**
 * The body of `POST /v1/functions`: a name (1 to 200 characters, trimmed), the preset to train with (the
 * server's default when left out), and preset option overrides.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CreateFunction = Schema.Struct({
  name: Name,
  preset: Schema.optional(Name),
  overrides: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  /** Nyckel's function kind (0.2.0): `Image` is the only input Loupe takes; `Text` or `Tabular` is a 400 naming it. */
  input: Schema.optional(Schema.String),
  /** Nyckel's function kind (0.2.0): `Classification` (the default) or `Tags`. */
  output: Schema.optional(Schema.String)
}).annotations({ identifier: "CreateFunction" })
/**
 * The body of `POST /v1/functions`.
 *
 * @since 0.1.0
 * @category schemas
 */
export type CreateFunction = typeof CreateFunction.Type

/**
 * A label of a function, with its optional description and string metadata.
 *
 * @since 0.1.0
 * @category schemas
 */
export const LabelView = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  description: Schema.NullOr(Schema.String),
  metadata: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String }))
}).annotations({ identifier: "Label" })
/**
 * A label of a function.
 *
 * @since 0.1.0
 * @category schemas
 */
export type LabelView = typeof LabelView.Type

/**
 * The answer to `DELETE /v1/functions/{functionId}/labels/{labelId}`: the deleted label, and how many samples it
 * annotated. Those samples are kept, unlabelled.
 *
 * @since 0.2.0
 * @category schemas
 */
export const DeletedLabel = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  unannotatedSamples: Schema.Number
}).annotations({ identifier: "DeletedLabel" })
/**
 * The answer to the label delete route.
 *
 * @since 0.2.0
 * @category schemas
 */
export type DeletedLabel = typeof DeletedLabel.Type

/**
 * The body of `POST /v1/functions/{functionId}/labels`: a name (1 to 200 characters), an optional
 * description (at most 2000 characters) and string metadata.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CreateLabel = Schema.Struct({
  name: Name,
  // null is taken as left out (0.2.0), as Nyckel's clients send it.
  description: Schema.optional(Schema.NullOr(Schema.String.pipe(Schema.maxLength(2000)))),
  metadata: Schema.optional(Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String })))
}).annotations({ identifier: "CreateLabel" })
/**
 * The body of the label create route.
 *
 * @since 0.1.0
 * @category schemas
 */
export type CreateLabel = typeof CreateLabel.Type

/**
 * The label a sample is annotated with, by id and name.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Annotation = Schema.Struct({ labelId: Schema.String, labelName: Schema.String }).annotations({
  identifier: "Annotation"
})

/**
 * A sample of a function: its id, the caller's `externalId`, its annotation (`null` while unlabelled, as for
 * captured invocations) and when it was added.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SampleView = Schema.Struct({
  id: Schema.String,
  externalId: Schema.NullOr(Schema.String),
  /** `null` while unlabelled; left out instead for a Nyckel client (a request with an access token). */
  annotation: Schema.optional(Schema.NullOr(Annotation)),
  /**
   * A tagged sample of a Tags function: its tags, by id and name (an empty list: tagged with none, a negative of
   * every tag); absent while untagged, and for a Classification function's sample (new in 0.2.0).
   */
  tags: Schema.optional(Schema.Array(Annotation)),
  createdAt: Schema.String,
  /**
   * The image as a data URI, transparency flattened onto white: sent to Nyckel clients (requests with an access
   * token), as Nyckel sends each sample's image (new in 0.2.0).
   */
  data: Schema.optional(Schema.String)
}).annotations({ identifier: "Sample" })
/**
 * A sample of a function.
 *
 * @since 0.1.0
 * @category schemas
 */
export type SampleView = typeof SampleView.Type

/**
 * The answer to `POST /v1/functions/{functionId}/samples`: the sample, and `updated`, the fields of an existing
 * sample this post changed. Posting an image the function already holds returns that sample (its id, as Nyckel
 * does); an `annotation` or `externalId` the post carries that differs from the sample's is applied, and named in
 * `updated` (`["annotation"]`, `["externalId"]` or both). Empty for a new sample, or when nothing differed.
 *
 * @since 0.2.0
 * @category schemas
 */
export const CreatedSample = Schema.Struct({
  ...SampleView.fields,
  updated: Schema.Array(Schema.Literal("annotation", "externalId"))
}).annotations({ identifier: "CreatedSample" })
/**
 * The answer to the sample create route.
 *
 * @since 0.2.0
 * @category schemas
 */
export type CreatedSample = typeof CreatedSample.Type

/**
 * An image in a JSON body: a data URI (`data:image/jpeg;base64,...`), or an http(s) URL when the server
 * fetches URLs (`UrlFetch`). It decodes to the image checked by `ImageGuard` (see `ImagePayload`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ImageData = ImagePayload.FromDataString

/**
 * The JSON body of `POST /v1/functions/{functionId}/samples`: the image, an optional annotation by label
 * name, and an optional `externalId` (1 to 100 characters). The same
 * route takes a multipart form. A sample whose bytes are already in the function is not added twice.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CreateSample = Schema.Struct({
  data: ImageData,
  annotation: Schema.optional(Schema.NullOr(Schema.Struct({ labelName: Name }))),
  // null is taken as left out (0.2.0), as Nyckel's clients send it.
  externalId: Schema.optional(Schema.NullOr(Id)),
  /** Nyckel's sample sets: Loupe has none, so only an empty list is taken (0.2.0). */
  sampleSets: Schema.optional(Schema.Array(Schema.Unknown).pipe(
    Schema.filter((sets) => sets.length === 0 || "Loupe has no sample sets: send an empty list, or leave sampleSets out")
  ))
}).annotations({ identifier: "CreateSample" })
/**
 * The JSON body of the sample create route.
 *
 * @since 0.1.0
 * @category schemas
 */
export type CreateSample = typeof CreateSample.Type

/** The multipart form of a sample upload: the image file as `data`, the annotation as `labelName`. */
const SampleForm = HttpApiSchema.Multipart(Schema.Struct({
  data: ImagePayload.FromFile,
  labelName: Schema.optional(Name),
  externalId: Schema.optional(Id)
})).annotations({ identifier: "SampleForm", parseOptions: { onExcessProperty: "error" } })

/**
 * The body of `PUT .../samples/{sampleId}/annotation`: the label by name or by id.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AnnotationInput = Schema.Union(Schema.Struct({ labelName: Name }), Schema.Struct({ labelId: Id })).annotations({
  identifier: "AnnotationInput"
})
/**
 * The body of the annotate route.
 *
 * @since 0.1.0
 * @category schemas
 */
export type AnnotationInput = typeof AnnotationInput.Type

/**
 * The body of `PUT .../samples/{sampleId}/annotation` on a Tags function: its whole tag set, each tag by name (created
 * on demand) or by id; Nyckel's `present: false` tags are left out, and `[]` tags it with none.
 *
 * @since 0.2.0
 * @category schemas
 */
export const TagsAnnotationInput = Schema.Array(Schema.Union(
  Schema.Struct({ labelName: Name, present: Schema.optional(Schema.Boolean) }),
  Schema.Struct({ labelId: Id, present: Schema.optional(Schema.Boolean) })
)).annotations({ identifier: "TagsAnnotationInput" })
/**
 * The body of the annotate route on a Tags function.
 *
 * @since 0.2.0
 * @category schemas
 */
export type TagsAnnotationInput = typeof TagsAnnotationInput.Type

/**
 * The JSON body of `POST /v1/functions/{functionId}/invoke`: the image and an optional `externalId`, echoed
 * back. The same route takes a multipart form or a raw image body.
 *
 * @since 0.1.0
 * @category schemas
 */
export const InvokeRequest = Schema.Struct({
  data: ImageData,
  externalId: Schema.optional(Id)
}).annotations({ identifier: "InvokeRequest" })
/**
 * The JSON body of the invoke route.
 *
 * @since 0.1.0
 * @category schemas
 */
export type InvokeRequest = typeof InvokeRequest.Type

const InvokeForm = HttpApiSchema.Multipart(Schema.Struct({
  data: ImagePayload.FromFile,
  externalId: Schema.optional(Id)
})).annotations({ identifier: "InvokeForm", parseOptions: { onExcessProperty: "error" } })

/** Raw image bodies: `Content-Type` `image/jpeg`, `image/png`, `image/gif`, `image/webp` or `application/octet-stream`. */
const RawImages = ImagePayload.rawContentTypes.map((type) => Payload.strict(ImagePayload.FromBody(type), type))

/**
 * One label's probability in an invoke result, in [0, 1].
 *
 * @since 0.1.0
 * @category schemas
 */
export const LabelConfidence = Schema.Struct({
  labelName: Schema.String,
  labelId: Schema.String,
  confidence: Schema.Number
}).annotations({ identifier: "LabelConfidence" })

/**
 * The answer to an invoke: the top label and its confidence in [0, 1], every label's confidence (highest
 * first, or the top `labelCount`), the model version that answered, the sample id when the invocation was
 * captured for review, and `mode: "zero-shot"` for an answer from the label names before the first model.
 *
 * @since 0.1.0
 * @category schemas
 */
export const InvokeResult = Schema.Struct({
  labelName: Schema.String,
  labelId: Schema.String,
  confidence: Schema.Number,
  labelConfidences: Schema.Array(LabelConfidence),
  /** The model version that answered. */
  modelId: Schema.String,
  /** The captured sample, when the invocation was captured for review. */
  sampleId: Schema.NullOr(Schema.String),
  externalId: Schema.optional(Schema.String),
  /**
   * `zero-shot` when the function has no model yet and answered from its label names with its backbone's text tower
   * (CLIP, SigLIP); absent for a trained model's answer. New in 0.2.0.
   */
  mode: Schema.optional(Schema.Literal("zero-shot"))
}).annotations({ identifier: "InvokeResult" })
/**
 * The answer to an invoke.
 *
 * @since 0.1.0
 * @category schemas
 */
export type InvokeResult = typeof InvokeResult.Type

/**
 * One tag in a Tags function's invoke result: its probability in [0, 1], its threshold (chosen by cross-validation)
 * and whether the probability reaches it (`present`: the image has the tag).
 *
 * @since 0.2.0
 * @category schemas
 */
export const TagConfidence = Schema.Struct({
  ...LabelConfidence.fields,
  threshold: Schema.Number,
  present: Schema.Boolean
}).annotations({ identifier: "TagConfidence" })

/**
 * The answer to an invoke of a Tags function: every tag the model knows, most likely first, and the model version
 * that answered, and the sample id when the invocation was captured for review (the capture policy judges it by its
 * least sure tag, `CapturePolicy.leastSureTag`), else `null`.
 *
 * @since 0.2.0
 * @category schemas
 */
export const TagsInvokeResult = Schema.Struct({
  tags: Schema.Array(TagConfidence),
  modelId: Schema.String,
  sampleId: Schema.NullOr(Schema.String),
  externalId: Schema.optional(Schema.String)
}).annotations({ identifier: "TagsInvokeResult" })
/**
 * The answer to an invoke of a Tags function.
 *
 * @since 0.2.0
 * @category schemas
 */
export type TagsInvokeResult = typeof TagsInvokeResult.Type

/** What both metrics answers (`Metrics`, `TagsMetrics`) start with: whose, which model, and how current. */
const metricsHeader = {
  functionId: Schema.String,
  modelId: Schema.String,
  createdAt: Schema.String,
  upToDate: Schema.Boolean,
  sampleCount: Schema.Number,
  leftOutLabels: Schema.Array(LeftOutLabel)
}

/**
 * The promoted model's cross-validated metrics: accuracy, macro F1, log loss, the confusion matrix (rows are
 * true labels, columns predicted, in `labels` order) and per-label precision, recall and F1, over `total`
 * out-of-fold predictions; and the function's labels the model was not trained on, with why (`leftOutLabels`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Metrics = Schema.Struct({
  ...metricsHeader,
  cv: Schema.Struct({
    folds: Schema.Number,
    total: Schema.Number,
    correct: Schema.Number,
    accuracy: Schema.Number,
    macroF1: Schema.Number,
    logLoss: Schema.Number,
    labels: Schema.Array(Schema.String),
    confusionMatrix: Schema.Array(Schema.Array(Schema.Number)),
    perClass: Schema.Array(Schema.Struct({
      labelName: Schema.String,
      accuracy: Schema.Number,
      precision: Schema.Number,
      recall: Schema.Number,
      f1: Schema.Number,
      support: Schema.Number
    }))
  })
}).annotations({ identifier: "Metrics" })
/**
 * The promoted model's cross-validated metrics.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Metrics = typeof Metrics.Type

const PrecisionRecall = Schema.Struct({ precision: Schema.Number, recall: Schema.Number, f1: Schema.Number })

/**
 * A Tags function's promoted model's cross-validated multi-label metrics, out of fold, each tag at its own
 * threshold: per tag precision, recall, F1, average precision (`null` when no sample has it), support and threshold;
 * micro (pooled) and macro (mean over tags) precision, recall and F1; mAP; and the exact-match ratio (the share of
 * samples whose whole tag set was right).
 *
 * @since 0.2.0
 * @category schemas
 */
export const TagsMetrics = Schema.Struct({
  ...metricsHeader,
  output: Schema.Literal("Tags"),
  cv: Schema.Struct({
    folds: Schema.Number,
    total: Schema.Number,
    tags: Schema.Array(Schema.String),
    perTag: Schema.Array(Schema.Struct({
      labelName: Schema.String,
      ...PrecisionRecall.fields,
      averagePrecision: Schema.NullOr(Schema.Number),
      support: Schema.Number,
      threshold: Schema.Number
    })),
    micro: PrecisionRecall,
    macro: PrecisionRecall,
    meanAveragePrecision: Schema.NullOr(Schema.Number),
    exactMatch: Schema.Number
  })
}).annotations({ identifier: "TagsMetrics" })
/**
 * A Tags function's cross-validated multi-label metrics.
 *
 * @since 0.2.0
 * @category schemas
 */
export type TagsMetrics = typeof TagsMetrics.Type

/**
 * A trained model version of a function: when it trained, on how many samples (and which data revision), its
 * classes, its cross-validated scores (`macroF1StandardError` across folds, `null` for models trained before
 * 0.2.0), whether it serves, and why it was held back when it does not (`null` otherwise).
 *
 * @since 0.2.0
 * @category schemas
 */
export const ModelView = Schema.Struct({
  id: Schema.String,
  createdAt: Schema.String,
  sampleCount: Schema.Number,
  revision: Schema.Number,
  labels: Schema.Array(Schema.String),
  preset: Schema.NullOr(Schema.String),
  cv: Schema.NullOr(Schema.Struct({
    folds: Schema.Number,
    accuracy: Schema.Number,
    macroF1: Schema.Number,
    macroF1StandardError: Schema.NullOr(Schema.Number),
    logLoss: Schema.Number
  })),
  serving: Schema.Boolean,
  heldBack: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Model" })
/**
 * A trained model version of a function.
 *
 * @since 0.2.0
 * @category schemas
 */
export type ModelView = typeof ModelView.Type

/**
 * A function's data insights (`GET /v1/functions/:id/insights`): the analyses of `@loupe/metrics`' `Insights` over
 * its samples, each image named by its sample id. `health` counts each label (with its cross-validated recall),
 * `suspects` are the samples whose label looks wrong, with the label they suggest (lowest self-confidence first),
 * `duplicates` the pairs of copies (`exact`: same bytes, `near`: embeddings at or above the near-duplicate cosine),
 * with `leak: "fold"` when the copies sat in different cross-validation folds and `conflict` when their labels
 * differ, and `outliers` the samples far from every label's centre. `backbone` embedded them; `modelId` is the
 * promoted model whose backbone it is (`null` before the first model).
 *
 * @since 0.2.0
 * @category schemas
 */
export const InsightsView = Schema.Struct({
  functionId: Schema.String,
  backbone: Schema.String,
  modelId: Schema.NullOr(Schema.String),
  images: Schema.Number,
  labels: Schema.Array(Schema.String),
  health: Schema.Struct({
    perLabel: Schema.Array(Schema.Struct({ label: Schema.String, count: Schema.Number, recall: Schema.NullOr(Schema.Number) })),
    unlabelled: Schema.Number,
    imbalanceRatio: Schema.Number,
    warnings: Schema.Array(Schema.Struct({
      kind: Schema.Literal("Empty", "TooFew", "Imbalance"),
      label: Schema.NullOr(Schema.String),
      message: Schema.String
    }))
  }),
  suspects: Schema.Array(Schema.Struct({
    sampleId: Schema.String,
    given: Schema.String,
    suggested: Schema.String,
    selfConfidence: Schema.Number,
    suggestedConfidence: Schema.Number
  })),
  duplicates: Schema.Array(Schema.Struct({
    sampleIdA: Schema.String,
    sampleIdB: Schema.String,
    labelA: Schema.NullOr(Schema.String),
    labelB: Schema.NullOr(Schema.String),
    kind: Schema.Literal("exact", "near"),
    similarity: Schema.Number,
    leak: Schema.NullOr(Schema.Literal("split", "fold")),
    conflict: Schema.Boolean
  })),
  outliers: Schema.Array(Schema.Struct({
    sampleId: Schema.String,
    label: Schema.NullOr(Schema.String),
    nearest: Schema.String,
    similarity: Schema.Number,
    score: Schema.Number
  })),
  skipped: Schema.Array(Schema.Struct({ sampleId: Schema.String, reason: Schema.String }))
}).annotations({ identifier: "Insights" })
/**
 * A function's data insights.
 *
 * @since 0.2.0
 * @category schemas
 */
export type InsightsView = typeof InsightsView.Type

/**
 * Why an invocation was captured for review (see `CapturePolicy`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const CaptureReason = Schema.Literal("low-confidence", "rare-class", "random")

/**
 * An entry of the review queue: the captured sample, when and why it was captured, and what the model said.
 *
 * @since 0.1.0
 * @category schemas
 */
export const CaptureView = Schema.Struct({
  sampleId: Schema.String,
  capturedAt: Schema.String,
  reason: CaptureReason,
  labelName: Schema.String,
  confidence: Schema.Number,
  modelId: Schema.String,
  externalId: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Capture" })
/**
 * An entry of the review queue.
 *
 * @since 0.1.0
 * @category schemas
 */
export type CaptureView = typeof CaptureView.Type

/**
 * The answer of the health probes: `{ status: "ok" }` from `/healthz`, `{ status: "ready" }` from `/readyz`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Health = Schema.Struct({ status: Schema.String }).annotations({ identifier: "Health" })

/**
 * The paging URL parameters of list routes: `limit` (1 to 1000) and `offset` (from 0).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Paging = Schema.Struct({
  limit: Schema.optional(Int(1, 1000)),
  offset: Schema.optional(Int(0, Number.MAX_SAFE_INTEGER))
})
/**
 * The paging URL parameters of list routes.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Paging = typeof Paging.Type

/**
 * The invoke route's URL parameters: `capture` (default true) lets the capture policy store the image for
 * review, `labelCount` returns only the top n confidences, `modelId` answers with an older model version.
 *
 * @since 0.1.0
 * @category schemas
 */
export const InvokeParams = Schema.Struct({
  capture: Schema.optional(Schema.BooleanFromString.annotations({ description: "Capture for review when the policy says so (default true)" })),
  labelCount: Schema.optional(Int(1, 1000).annotations({ description: "Return only the top n label confidences" })),
  modelId: Schema.optional(
    Schema.Union(Schema.Literal(""), Id).annotations({
      description: "Answer with this model version instead of the promoted one (empty: the promoted one, as Nyckel's clients send)"
    })
  )
})
/**
 * The invoke route's URL parameters.
 *
 * @since 0.1.0
 * @category schemas
 */
export type InvokeParams = typeof InvokeParams.Type

/**
 * The URL parameters of the sample list: `limit` and `offset` as every list, or Nyckel's `batchSize` (the same as
 * `limit`), `sortBy=creation` and `sortOrder` (`ascending`, the default, or `descending`: newest first). A full page
 * is answered with a `Link: <...>; rel="next"` header to the next one.
 *
 * @since 0.2.0
 * @category schemas
 */
export const SampleListParams = Schema.Struct({
  ...Paging.fields,
  batchSize: Schema.optional(Int(1, 1000)),
  sortBy: Schema.optional(Schema.Literal("creation")),
  sortOrder: Schema.optional(Schema.Literal("ascending", "descending"))
})
/**
 * The URL parameters of the sample list.
 *
 * @since 0.2.0
 * @category schemas
 */
export type SampleListParams = typeof SampleListParams.Type

/**
 * The form of `POST /connect/token` (OAuth2 client credentials, RFC 6749 section 4.4): the key's client id and
 * secret, and `grant_type=client_credentials`. Fields are checked by the route, so that a missing one is answered
 * as OAuth2 says.
 *
 * @since 0.2.0
 * @category schemas
 */
export const TokenRequest = HttpApiSchema.withEncoding(
  Schema.Struct({
    grant_type: Schema.optional(Schema.String),
    client_id: Schema.optional(Schema.String),
    client_secret: Schema.optional(Schema.String),
    scope: Schema.optional(Schema.String)
  }),
  { kind: "UrlParams" }
).annotations({ identifier: "TokenRequest" })

/**
 * An OAuth2 access token: send it as `Authorization: Bearer <access_token>` until it expires (`expires_in` seconds).
 *
 * @since 0.2.0
 * @category schemas
 */
export const TokenResponse = Schema.Struct({
  access_token: Schema.String,
  token_type: Schema.Literal("Bearer"),
  expires_in: Schema.Number
}).annotations({ identifier: "TokenResponse" })

const oauthErrorFields = {
  error: Schema.String,
  error_description: Schema.String,
  field: Schema.String
}

/**
 * 400 from `/connect/token`, as OAuth2 words it: `invalid_request` (a field missing) or `unsupported_grant_type`;
 * `field` names the form field.
 *
 * @since 0.2.0
 * @category errors
 */
export class OAuthBadRequest extends Schema.TaggedError<OAuthBadRequest>()("OAuthBadRequest", oauthErrorFields, HttpApiSchema.annotations({ status: 400 })) {}
/**
 * 401 from `/connect/token`: `invalid_client`, an unknown client id or a wrong secret (`field` says which).
 *
 * @since 0.2.0
 * @category errors
 */
export class OAuthUnauthorized extends Schema.TaggedError<OAuthUnauthorized>()("OAuthUnauthorized", oauthErrorFields, HttpApiSchema.annotations({ status: 401 })) {}

/**
 * A function as Nyckel's `/v0.9` API shows it: its kind and its `state`, `Annotating` until a model serves, then
 * `Tuning`.
 *
 * @since 0.2.0
 * @category schemas
 */
export const NyckelFunction = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  input: Schema.Literal("Image"),
  output: Schema.Literal("Classification", "Tags"),
  state: Schema.Literal("Annotating", "Tuning"),
  createdAt: Schema.String
}).annotations({ identifier: "NyckelFunction" })

/**
 * A function's counts as Nyckel's `/v0.9` metrics route gives them: whether it trains now, how many samples it has,
 * how many of them the serving model answers for (all of them once a model trained on the current data serves, else
 * none), and its annotated samples per label id (labels with at least one).
 *
 * @since 0.2.0
 * @category schemas
 */
export const NyckelMetrics = Schema.Struct({
  functionId: Schema.String,
  isTraining: Schema.Boolean,
  sampleCount: Schema.Number,
  predictionCount: Schema.Number,
  annotatedLabelCounts: Schema.Record({ key: Schema.String, value: Schema.Number }),
  /** A Tags function's tagged samples per label id (labels with at least one), as Nyckel's tags clients count labels. */
  positiveAnnotatedLabelCounts: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number }))
}).annotations({ identifier: "NyckelMetrics" })

/**
 * The body of `POST /v0.9/functions/{functionId}/samples`, Nyckel's sample of a Tags function: the image, its tags
 * by label name (`present: false` ones are left out), and an optional `externalId`.
 *
 * @since 0.2.0
 * @category schemas
 */
export const CreateTagsSample = Schema.Struct({
  data: ImageData,
  annotation: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({ labelName: Name, present: Schema.optional(Schema.Boolean) })))),
  externalId: Schema.optional(Schema.NullOr(Id)),
  sampleSets: CreateSample.fields.sampleSets
}).annotations({ identifier: "CreateTagsSample" })

/**
 * A Tags function's sample as Nyckel's `/v0.9` routes show it: its image as a data URI (transparency flattened onto
 * white), and its tags as `annotation`, each `present: true` (absent while untagged).
 *
 * @since 0.2.0
 * @category schemas
 */
export const NyckelTagsSample = Schema.Struct({
  id: Schema.String,
  externalId: Schema.NullOr(Schema.String),
  createdAt: Schema.String,
  data: Schema.String,
  /** The sample's tags, each `present` (the tags it does not have are not listed). */
  annotation: Schema.optional(Schema.Array(Schema.Struct({ ...Annotation.fields, present: Schema.Literal(true) })))
}).annotations({ identifier: "NyckelTagsSample" })
/**
 * A Tags function's sample as Nyckel's `/v0.9` routes show it.
 *
 * @since 0.2.0
 * @category schemas
 */
export type NyckelTagsSample = typeof NyckelTagsSample.Type

/**
 * A Nyckel project. Loupe has one per server, `project_default`, which holds every function.
 *
 * @since 0.2.0
 * @category schemas
 */
export const Project = Schema.Struct({ id: Schema.String, name: Schema.String }).annotations({ identifier: "Project" })

// ---------------------------------------------------------------------------------------------------------------
// Endpoints

const functionId = HttpApiSchema.param("functionId", Id)
const sampleId = HttpApiSchema.param("sampleId", Id)
const labelId = HttpApiSchema.param("labelId", Id)

/**
 * `GET /healthz` (the process is up) and `GET /readyz` (it serves); no API key needed.
 *
 * @since 0.1.0
 * @category groups
 */
export const HealthGroup = HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("healthz", "/healthz").addSuccess(Health))
  .add(HttpApiEndpoint.get("readyz", "/readyz").addSuccess(Health))
  .annotate(OpenApi.Description, "Liveness and readiness probes (no key needed)")

/**
 * Create, list, get and delete functions (`/v1/functions`).
 *
 * @since 0.1.0
 * @category groups
 */
export const FunctionsGroup = HttpApiGroup.make("functions")
  .add(HttpApiEndpoint.post("create", "/v1/functions")
      .setPayload(Payload.strict(CreateFunction, "application/json"))
      .addSuccess(FunctionView, { status: 201 }))
  .add(HttpApiEndpoint.get("list", "/v1/functions").addSuccess(Schema.Array(FunctionView)))
  .add(HttpApiEndpoint.get("get")`/v1/functions/${functionId}`.addSuccess(FunctionDetail))
  .add(HttpApiEndpoint.del("delete")`/v1/functions/${functionId}`)
  // The middleware added last runs first, endpoint middleware before group middleware: so both are set here, the key
  // check last, and a request without a valid key is refused before its content type is looked at or a form is read.
  .middleware(ContentTypes)
  .middleware(Authorization)

/**
 * Create, list and delete a function's labels.
 *
 * @since 0.1.0
 * @category groups
 */
export const LabelsGroup = HttpApiGroup.make("labels")
  .add(
    HttpApiEndpoint.post("create")`/v1/functions/${functionId}/labels`
      .setPayload(Payload.strict(CreateLabel, "application/json"))
      .addSuccess(LabelView, { status: 201 })
  )
  .add(HttpApiEndpoint.get("list")`/v1/functions/${functionId}/labels`.addSuccess(Schema.Array(LabelView)))
  .add(HttpApiEndpoint.get("get")`/v1/functions/${functionId}/labels/${labelId}`.addSuccess(LabelView).addError(NotFound))
  .add(
    HttpApiEndpoint.put("update")`/v1/functions/${functionId}/labels/${labelId}`
      .setPayload(Payload.strict(CreateLabel, "application/json"))
      .addSuccess(LabelView)
      .addError(NotFound)
      .annotate(
        OpenApi.Description,
        "Rename a label and set its description and metadata (left out: none). A rename of a label with samples " +
          "schedules a retrain, so that the model answers with the new name."
      )
  )
  .add(
    HttpApiEndpoint.del("delete")`/v1/functions/${functionId}/labels/${labelId}`
      .addSuccess(DeletedLabel)
      .addError(NotFound)
      .annotate(
        OpenApi.Description,
        "Delete a label. Its samples are not deleted: they become unlabelled (annotate them again, or delete them), " +
          "and a retrain follows when there were any. 404 for an unknown function or label."
      )
  )
  .middleware(ContentTypes)
  .middleware(Authorization)

/**
 * Add (JSON or multipart), list, get and delete a function's samples, and set or clear their annotation.
 * Adding samples schedules a retraining.
 *
 * @since 0.1.0
 * @category groups
 */
export const SamplesGroup = HttpApiGroup.make("samples")
  .add(
    HttpApiEndpoint.post("create")`/v1/functions/${functionId}/samples`
      .setPayload(Schema.Union(Payload.strict(CreateSample, "application/json"), Payload.strict(SampleForm, "multipart/form-data"), ...RawImages))
      .addSuccess(CreatedSample, { status: 201 })
      .annotate(
        OpenApi.Description,
        "Add a sample (JSON or multipart). An image the function already holds is not added twice: the answer is " +
          "the existing sample (its id), with this post's annotation and externalId applied where they differ, " +
          "and `updated` naming what changed (e.g. `[\"annotation\"]`). A change to the training data schedules a retrain."
      )
  )
  .add(HttpApiEndpoint.get("list")`/v1/functions/${functionId}/samples`.setUrlParams(SampleListParams).addSuccess(Schema.Array(SampleView)))
  .add(HttpApiEndpoint.get("get")`/v1/functions/${functionId}/samples/${sampleId}`.addSuccess(SampleView))
  .add(HttpApiEndpoint.del("delete")`/v1/functions/${functionId}/samples/${sampleId}`)
  .add(
    HttpApiEndpoint.put("annotate")`/v1/functions/${functionId}/samples/${sampleId}/annotation`
      .setPayload(Payload.strict(Schema.Union(AnnotationInput, TagsAnnotationInput), "application/json"))
      .addSuccess(SampleView)
      .annotate(
        OpenApi.Description,
        "Set a sample's annotation: a label (by name or id) for a Classification function, the whole tag set (a list) " +
          "for a Tags function. A change schedules a retrain."
      )
  )
  .add(
    HttpApiEndpoint.del("unannotate")`/v1/functions/${functionId}/samples/${sampleId}/annotation`
      .addSuccess(SampleView)
      .annotate(OpenApi.Description, "Remove a sample's annotation (a Tags function's: its tags); a change schedules a retrain.")
  )
  .middleware(ContentTypes)
  .middleware(Authorization)

/**
 * Invoke a function on an image (JSON, multipart or raw body), read its model's metrics and its data insights, and
 * list its review queue of captured invocations.
 *
 * @since 0.1.0
 * @category groups
 */
export const InvokeGroup = HttpApiGroup.make("invoke")
  .add(
    HttpApiEndpoint.post("invoke")`/v1/functions/${functionId}/invoke`
      .setUrlParams(InvokeParams)
      // Raw bodies first: the union tries its members in order, and a raw JPEG is the common (and cheapest) invoke.
      .setPayload(Schema.Union(...RawImages, Payload.strict(InvokeRequest, "application/json"), Payload.strict(InvokeForm, "multipart/form-data")))
      .addSuccess(Schema.Union(InvokeResult, TagsInvokeResult))
      .annotate(
        OpenApi.Description,
        "Classify an image (`InvokeResult`), or, for a Tags function, tag it: every tag with its probability, " +
          "threshold and whether it is present (`TagsInvokeResult`)."
      )
  )
  .add(
    HttpApiEndpoint.get("metrics")`/v1/functions/${functionId}/metrics`
      .addSuccess(Schema.Union(Metrics, TagsMetrics))
      .annotate(OpenApi.Description, "The serving model's cross-validated metrics: `Metrics` for a Classification function, `TagsMetrics` for a Tags function.")
  )
  .add(
    HttpApiEndpoint.get("insights")`/v1/functions/${functionId}/insights`
      .addSuccess(InsightsView)
      .annotate(
        OpenApi.Description,
        "What to fix in the function's data: label-noise suspects with the label they suggest, exact and near " +
          "duplicates (with leaks across cross-validation folds and conflicting labels), outliers, and class health. " +
          "Computed on request from every sample (annotated or not) with the serving model's backbone; 409 " +
          "`TooFewSamples` until 2 labels have 2 annotated samples each."
      )
  )
  .add(
    HttpApiEndpoint.get("captures")`/v1/functions/${functionId}/captures`
      .setUrlParams(Paging)
      .addSuccess(Schema.Array(CaptureView))
      .annotate(OpenApi.Description, "The review queue: captured invocations not annotated yet, newest first")
  )
  .middleware(ContentTypes)
  .middleware(Authorization)

const modelId = HttpApiSchema.param("modelId", Id)

/**
 * List a function's model versions and promote one (a rollback, or serving a version the promotion rule held back).
 *
 * @since 0.2.0
 * @category groups
 */
export const ModelsGroup = HttpApiGroup.make("models")
  .add(
    HttpApiEndpoint.get("list")`/v1/functions/${functionId}/models`
      .addSuccess(Schema.Array(ModelView))
      .annotate(
        OpenApi.Description,
        "Every kept model version, newest first: when it trained, on how many samples, its cross-validated scores, " +
          "whether it serves and, when it does not, why it was held back. A function keeps its newest `keepVersions` " +
          "versions (an override, default 10) and the serving one."
      )
  )
  .add(
    HttpApiEndpoint.post("promote")`/v1/functions/${functionId}/models/${modelId}/promote`
      .addSuccess(ModelView)
      .annotate(
        OpenApi.Description,
        "Serve this version from the next invocation on, with no restart: a rollback to an earlier version, or a " +
          "version the `if-not-worse` promotion rule held back. The next retrain is promoted by the function's rule " +
          "as usual."
      )
  )
  .middleware(ContentTypes)
  .middleware(Authorization)

/**
 * `POST /connect/token`: OAuth2 client credentials for an access token (no API key needed), as Nyckel's clients ask.
 *
 * @since 0.2.0
 * @category groups
 */
export const TokenGroup = HttpApiGroup.make("token")
  .add(
    HttpApiEndpoint.post("token", "/connect/token")
      .setPayload(TokenRequest)
      .addSuccess(TokenResponse)
      .addError(OAuthBadRequest)
      .addError(OAuthUnauthorized)
      .annotate(
        OpenApi.Description,
        "The OAuth2 client credentials grant: an API key's client id (its `--client-id`, else its id) and secret (the " +
          "key) for an access token valid for an hour. Revoking the key revokes its tokens."
      )
  )
  .middleware(ContentTypes)

/**
 * The routes of Nyckel's `/v0.9` API that its clients call: a function with its `state`, its counts (`metrics`),
 * a Tags function's samples (add, list, read, retag, delete) and invoke, and the projects (Loupe has one).
 *
 * @since 0.2.0
 * @category groups
 */
export const NyckelGroup = HttpApiGroup.make("nyckel")
  .add(HttpApiEndpoint.get("function")`/v0.9/functions/${functionId}`.addSuccess(NyckelFunction))
  .add(HttpApiEndpoint.get("metrics")`/v0.9/functions/${functionId}/metrics`.addSuccess(NyckelMetrics))
  .add(
    HttpApiEndpoint.post("createSample")`/v0.9/functions/${functionId}/samples`
      .setPayload(Payload.strict(CreateTagsSample, "application/json"))
      .addSuccess(CreatedSample, { status: 201 })
      .annotate(OpenApi.Description, "Add a sample to a Tags function, with its tags (those `present`); as the /v1 route, an image it holds is not added twice")
  )
  .add(
    HttpApiEndpoint.post("invoke")`/v0.9/functions/${functionId}/invoke`
      .setPayload(Payload.strict(InvokeRequest, "application/json"))
      .addSuccess(Schema.Array(LabelConfidence))
      .annotate(OpenApi.Description, "Tag an image, as Nyckel answers a Tags function: every tag with its probability, most likely first (not captured)")
  )
  .add(
    HttpApiEndpoint.get("listSamples")`/v0.9/functions/${functionId}/samples`
      .setUrlParams(SampleListParams)
      .addSuccess(Schema.Array(NyckelTagsSample))
      .annotate(OpenApi.Description, "A page of a Tags function's samples with their images and tags; a full page links the next one")
  )
  .add(HttpApiEndpoint.get("getSample")`/v0.9/functions/${functionId}/samples/${sampleId}`.addSuccess(NyckelTagsSample))
  .add(
    HttpApiEndpoint.put("annotate")`/v0.9/functions/${functionId}/samples/${sampleId}/annotation`
      .setPayload(Payload.strict(TagsAnnotationInput, "application/json"))
      .addSuccess(NyckelTagsSample)
      .annotate(OpenApi.Description, "Set a Tags function sample's tag set (those `present`); a change schedules a retrain")
  )
  .add(HttpApiEndpoint.del("deleteSample")`/v0.9/functions/${functionId}/samples/${sampleId}`)
  .add(HttpApiEndpoint.get("projects", "/v0.9/projects").addSuccess(Schema.Array(Project)))
  .add(
    HttpApiEndpoint.post("createProject", "/v0.9/projects")
      .setPayload(Payload.strict(Schema.Struct({ name: Schema.optional(Schema.String) }), "application/json"))
      .addSuccess(Project)
      .annotate(OpenApi.Description, "Loupe has one project, which holds every function: this answers it")
  )
  .annotate(OpenApi.Description, "Nyckel's /v0.9 routes, for Nyckel's clients")
  .middleware(ContentTypes)
  .middleware(Authorization)

/**
 * The generated document without the platform's `HttpApiDecodeError`: the server answers every decoding failure as a
 * `BadRequest` naming the field, so a 400 never has that shape.
 */
const withoutDecodeError = (spec: Record<string, any>): Record<string, any> => {
  const ref = "#/components/schemas/HttpApiDecodeError"
  for (const operations of Object.values<Record<string, any>>(spec.paths ?? {})) {
    for (const operation of Object.values<Record<string, any>>(operations)) {
      const content = operation.responses?.["400"]?.content?.["application/json"]
      const anyOf: Array<{ readonly $ref?: string }> | undefined = content?.schema?.anyOf
      if (anyOf === undefined) continue
      const kept = anyOf.filter((s) => s.$ref !== ref)
      content.schema = kept.length === 1 ? kept[0] : { ...content.schema, anyOf: kept }
      operation.responses["400"].description = "A request that does not match its schema, or an invalid image"
    }
  }
  const { HttpApiDecodeError: _, Issue: __, PropertyKey: ___, ...schemas } = spec.components?.schemas ?? {}
  return { ...spec, components: { ...spec.components, schemas } }
}

/**
 * The whole API.
 *
 * @since 0.1.0
 * @category api
 */
export class FunctionApi extends HttpApi.make("loupe")
  .add(HealthGroup)
  .add(FunctionsGroup)
  .add(LabelsGroup)
  .add(SamplesGroup)
  .add(InvokeGroup)
  .add(ModelsGroup)
  .add(TokenGroup)
  .add(NyckelGroup)
  .addError(BadRequest)
  .addError(NotFound)
  .addError(MethodNotAllowed)
  .addError(Conflict)
  .addError(PayloadTooLarge)
  .addError(UnsupportedMediaType)
  .addError(InternalServerError)
  .addError(ServiceUnavailable)
  .annotate(OpenApi.Transform, withoutDecodeError)
  .annotate(OpenApi.Title, "Loupe")
  .annotate(OpenApi.Version, "0.1.0")
  .annotate(OpenApi.Description, "Image classification functions: labels, samples, invoke with capture for review, metrics")
{}
