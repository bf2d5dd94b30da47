/**
 * The HTTP API of Loupe functions, modelled on Nyckel's: functions, labels, samples (with their annotation),
 * invoke (with invoke capture), metrics, the review queue of captured invocations, and health probes. This module
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

// ---------------------------------------------------------------------------------------------------------------
// Errors

const errorFields = {
  reason: Schema.String,
  message: Schema.String,
  field: Schema.optional(Schema.String)
}

/** @since 0.1.0 @category errors */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", errorFields, HttpApiSchema.annotations({ status: 400 })) {}
/** @since 0.1.0 @category errors */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", errorFields, HttpApiSchema.annotations({ status: 401 })) {}
/** @since 0.1.0 @category errors */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", errorFields, HttpApiSchema.annotations({ status: 404 })) {}
/** @since 0.1.0 @category errors */
export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()(
  "MethodNotAllowed",
  errorFields,
  HttpApiSchema.annotations({ status: 405 })
) {}
/** @since 0.1.0 @category errors */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", errorFields, HttpApiSchema.annotations({ status: 409 })) {}
/** @since 0.1.0 @category errors */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  errorFields,
  HttpApiSchema.annotations({ status: 413 })
) {}
/** @since 0.1.0 @category errors */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  errorFields,
  HttpApiSchema.annotations({ status: 415 })
) {}
/** @since 0.1.0 @category errors */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()(
  "TooManyRequests",
  errorFields,
  HttpApiSchema.annotations({ status: 429 })
) {}
/** @since 0.1.0 @category errors */
export class InternalServerError extends Schema.TaggedError<InternalServerError>()(
  "InternalServerError",
  errorFields,
  HttpApiSchema.annotations({ status: 500 })
) {}
/** @since 0.1.0 @category errors */
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
 * The API key a request was made with.
 *
 * @since 0.1.0
 * @category auth
 */
export class CurrentKey extends Context.Tag("@loupe/deploy/CurrentKey")<CurrentKey, ApiKeys.KeyInfo>() {}

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
      HttpApiSecurity.annotate(OpenApi.Description, "An API key made with `loupe keys create`")
    )
  }
}) {}

// ---------------------------------------------------------------------------------------------------------------
// Schemas

const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100))
const Name = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200))
const Int = (min: number, max: number) => Schema.NumberFromString.pipe(Schema.int(), Schema.between(min, max))

/** @since 0.1.0 @category schemas */
export const FunctionView = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  preset: Schema.String,
  createdAt: Schema.String
}).annotations({ identifier: "Function" })
export type FunctionView = typeof FunctionView.Type

/** @since 0.1.0 @category schemas */
export const FunctionDetail = Schema.Struct({
  ...FunctionView.fields,
  labels: Schema.Array(Schema.Struct({ id: Schema.String, name: Schema.String, sampleCount: Schema.Number })),
  model: Schema.NullOr(Schema.Struct({
    id: Schema.String,
    createdAt: Schema.String,
    /** Cross-validated accuracy, when the model was cross-validated. */
    cvAccuracy: Schema.NullOr(Schema.Number),
    upToDate: Schema.Boolean
  })),
  training: Schema.Struct({ phase: Schema.String, pending: Schema.Boolean }),
  trainError: Schema.NullOr(Schema.String)
}).annotations({ identifier: "FunctionDetail" })
export type FunctionDetail = typeof FunctionDetail.Type

/** @since 0.1.0 @category schemas */
export const CreateFunction = Schema.Struct({
  name: Name,
  preset: Schema.optional(Name),
  overrides: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}).annotations({ identifier: "CreateFunction" })
export type CreateFunction = typeof CreateFunction.Type

/** @since 0.1.0 @category schemas */
export const LabelView = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  description: Schema.NullOr(Schema.String),
  metadata: Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String }))
}).annotations({ identifier: "Label" })
export type LabelView = typeof LabelView.Type

/** @since 0.1.0 @category schemas */
export const CreateLabel = Schema.Struct({
  name: Name,
  description: Schema.optional(Schema.String.pipe(Schema.maxLength(2000))),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
}).annotations({ identifier: "CreateLabel" })
export type CreateLabel = typeof CreateLabel.Type

/** @since 0.1.0 @category schemas */
export const Annotation = Schema.Struct({ labelId: Schema.String, labelName: Schema.String }).annotations({
  identifier: "Annotation"
})

/** @since 0.1.0 @category schemas */
export const SampleView = Schema.Struct({
  id: Schema.String,
  externalId: Schema.NullOr(Schema.String),
  annotation: Schema.NullOr(Annotation),
  createdAt: Schema.String
}).annotations({ identifier: "Sample" })
export type SampleView = typeof SampleView.Type

/** @since 0.1.0 @category schemas */
export const ImageData = Schema.String.annotations({
  description: "The image as a data URI (`data:image/jpeg;base64,...`). URLs are refused unless the server fetches URLs."
})

/** @since 0.1.0 @category schemas */
export const CreateSample = Schema.Struct({
  data: ImageData,
  annotation: Schema.optional(Schema.Struct({ labelName: Name })),
  externalId: Schema.optional(Id)
}).annotations({ identifier: "CreateSample" })
export type CreateSample = typeof CreateSample.Type

/** The multipart form of a sample upload: the image file as `data`, the annotation as `labelName`. */
const SampleForm = HttpApiSchema.Multipart(Schema.Struct({
  data: Schema.Unknown.annotations({ description: "The image file" }),
  labelName: Schema.optional(Name),
  externalId: Schema.optional(Id)
})).annotations({ identifier: "SampleForm" })

/** @since 0.1.0 @category schemas */
export const AnnotationInput = Schema.Union(Schema.Struct({ labelName: Name }), Schema.Struct({ labelId: Id })).annotations({
  identifier: "AnnotationInput"
})
export type AnnotationInput = typeof AnnotationInput.Type

/** @since 0.1.0 @category schemas */
export const InvokeRequest = Schema.Struct({
  data: ImageData,
  externalId: Schema.optional(Id)
}).annotations({ identifier: "InvokeRequest" })
export type InvokeRequest = typeof InvokeRequest.Type

const InvokeForm = HttpApiSchema.Multipart(Schema.Struct({
  data: Schema.Unknown.annotations({ description: "The image file" }),
  externalId: Schema.optional(Id)
})).annotations({ identifier: "InvokeForm" })

/** A raw image body (`Content-Type: image/jpeg`, `image/png`, `image/gif` or `image/webp`). */
const RawImage = HttpApiSchema.Uint8Array({ contentType: "image/jpeg" })

/** @since 0.1.0 @category schemas */
export const LabelConfidence = Schema.Struct({
  labelName: Schema.String,
  labelId: Schema.String,
  confidence: Schema.Number
}).annotations({ identifier: "LabelConfidence" })

/** @since 0.1.0 @category schemas */
export const InvokeResult = Schema.Struct({
  labelName: Schema.String,
  labelId: Schema.String,
  confidence: Schema.Number,
  labelConfidences: Schema.Array(LabelConfidence),
  /** The model version that answered. */
  modelId: Schema.String,
  /** The captured sample, when the invocation was captured for review. */
  sampleId: Schema.NullOr(Schema.String),
  externalId: Schema.optional(Schema.String)
}).annotations({ identifier: "InvokeResult" })
export type InvokeResult = typeof InvokeResult.Type

/** @since 0.1.0 @category schemas */
export const Metrics = Schema.Struct({
  functionId: Schema.String,
  modelId: Schema.String,
  createdAt: Schema.String,
  upToDate: Schema.Boolean,
  sampleCount: Schema.Number,
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
export type Metrics = typeof Metrics.Type

/** @since 0.1.0 @category schemas */
export const CaptureReason = Schema.Literal("low-confidence", "rare-class", "random")

/** @since 0.1.0 @category schemas */
export const CaptureView = Schema.Struct({
  sampleId: Schema.String,
  capturedAt: Schema.String,
  reason: CaptureReason,
  labelName: Schema.String,
  confidence: Schema.Number,
  modelId: Schema.String,
  externalId: Schema.NullOr(Schema.String)
}).annotations({ identifier: "Capture" })
export type CaptureView = typeof CaptureView.Type

/** @since 0.1.0 @category schemas */
export const Health = Schema.Struct({ status: Schema.String }).annotations({ identifier: "Health" })

/** @since 0.1.0 @category schemas */
export const Paging = Schema.Struct({
  limit: Schema.optional(Int(1, 1000)),
  offset: Schema.optional(Int(0, Number.MAX_SAFE_INTEGER))
})
export type Paging = typeof Paging.Type

/** @since 0.1.0 @category schemas */
export const InvokeParams = Schema.Struct({
  capture: Schema.optional(Schema.BooleanFromString.annotations({ description: "Capture for review when the policy says so (default true)" })),
  labelCount: Schema.optional(Int(1, 1000).annotations({ description: "Return only the top n label confidences" })),
  modelId: Schema.optional(Id.annotations({ description: "Answer with this model version instead of the promoted one" }))
})
export type InvokeParams = typeof InvokeParams.Type

// ---------------------------------------------------------------------------------------------------------------
// Endpoints

const functionId = HttpApiSchema.param("functionId", Id)
const sampleId = HttpApiSchema.param("sampleId", Id)

/** @since 0.1.0 @category groups */
export const HealthGroup = HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("healthz", "/healthz").addSuccess(Health))
  .add(HttpApiEndpoint.get("readyz", "/readyz").addSuccess(Health))
  .annotate(OpenApi.Description, "Liveness and readiness probes (no key needed)")

/** @since 0.1.0 @category groups */
export const FunctionsGroup = HttpApiGroup.make("functions")
  .add(HttpApiEndpoint.post("create", "/v1/functions").setPayload(CreateFunction).addSuccess(FunctionView, { status: 201 }))
  .add(HttpApiEndpoint.get("list", "/v1/functions").addSuccess(Schema.Array(FunctionView)))
  .add(HttpApiEndpoint.get("get")`/v1/functions/${functionId}`.addSuccess(FunctionDetail))
  .add(HttpApiEndpoint.del("delete")`/v1/functions/${functionId}`)
  .middleware(Authorization)

/** @since 0.1.0 @category groups */
export const LabelsGroup = HttpApiGroup.make("labels")
  .add(
    HttpApiEndpoint.post("create")`/v1/functions/${functionId}/labels`.setPayload(CreateLabel).addSuccess(LabelView, {
      status: 201
    })
  )
  .add(HttpApiEndpoint.get("list")`/v1/functions/${functionId}/labels`.addSuccess(Schema.Array(LabelView)))
  .middleware(Authorization)

/** @since 0.1.0 @category groups */
export const SamplesGroup = HttpApiGroup.make("samples")
  .add(
    HttpApiEndpoint.post("create")`/v1/functions/${functionId}/samples`
      .setPayload(Schema.Union(CreateSample, SampleForm))
      .addSuccess(SampleView, { status: 201 })
  )
  .add(HttpApiEndpoint.get("list")`/v1/functions/${functionId}/samples`.setUrlParams(Paging).addSuccess(Schema.Array(SampleView)))
  .add(HttpApiEndpoint.get("get")`/v1/functions/${functionId}/samples/${sampleId}`.addSuccess(SampleView))
  .add(HttpApiEndpoint.del("delete")`/v1/functions/${functionId}/samples/${sampleId}`)
  .add(
    HttpApiEndpoint.put("annotate")`/v1/functions/${functionId}/samples/${sampleId}/annotation`
      .setPayload(AnnotationInput)
      .addSuccess(SampleView)
  )
  .add(HttpApiEndpoint.del("unannotate")`/v1/functions/${functionId}/samples/${sampleId}/annotation`.addSuccess(SampleView))
  .middleware(Authorization)

/** @since 0.1.0 @category groups */
export const InvokeGroup = HttpApiGroup.make("invoke")
  .add(
    HttpApiEndpoint.post("invoke")`/v1/functions/${functionId}/invoke`
      .setUrlParams(InvokeParams)
      .setPayload(Schema.Union(InvokeRequest, InvokeForm, RawImage))
      .addSuccess(InvokeResult)
  )
  .add(HttpApiEndpoint.get("metrics")`/v1/functions/${functionId}/metrics`.addSuccess(Metrics))
  .add(
    HttpApiEndpoint.get("captures")`/v1/functions/${functionId}/captures`
      .setUrlParams(Paging)
      .addSuccess(Schema.Array(CaptureView))
      .annotate(OpenApi.Description, "The review queue: captured invocations not annotated yet, newest first")
  )
  .middleware(Authorization)

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
  .addError(BadRequest)
  .addError(NotFound)
  .addError(MethodNotAllowed)
  .addError(Conflict)
  .addError(PayloadTooLarge)
  .addError(UnsupportedMediaType)
  .addError(InternalServerError)
  .addError(ServiceUnavailable)
  .annotate(OpenApi.Title, "Loupe")
  .annotate(OpenApi.Version, "0.1.0")
  .annotate(OpenApi.Description, "Image classification functions: labels, samples, invoke with capture for review, metrics")
{}
