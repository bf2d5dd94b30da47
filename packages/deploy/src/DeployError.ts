/**
 * The one error type of `@loupe/deploy`. `reason` says what went wrong; `field` or `file` names the offending input.
 * The HTTP server turns each reason into a status code with `DeployError.status`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * What went wrong, one word per cause; `status` maps each to its HTTP status code.
 *
 * @since 0.1.0
 * @category errors
 */
export type DeployErrorReason =
  /** A request that does not match its schema, or an argument out of range. */
  | "InvalidRequest"
  /** A request body or image over the byte limit. */
  | "BodyTooLarge"
  /** An image whose width x height is over the pixel limit (checked from its header, before decoding). */
  | "ImageTooLarge"
  /** A content type the route does not take, or an image format that is not JPEG, PNG, GIF or WebP. */
  | "UnsupportedMediaType"
  /** Bytes that claim to be an image but cannot be read as one. */
  | "InvalidImage"
  /** Image data given as a URL while fetching URLs is off. */
  | "UrlFetchDisabled"
  /** A missing, malformed, unknown or revoked API key. */
  | "Unauthorized"
  /** Too many requests for one API key. */
  | "RateLimited"
  /** A function, sample, label or model that does not exist. */
  | "NotFound"
  /** A function with no trained model yet. */
  | "NotTrained"
  /** A function without enough annotated samples for what was asked (its insights). */
  | "TooFewSamples"
  /** A change the server does not make (a read-only bundle server asked to add samples). */
  | "ReadOnly"
  /** The server is starting or shutting down. */
  | "Unavailable"
  /** The API key file cannot be read or written. */
  | "KeyStoreFailed"
  /** A model bundle that cannot be loaded or used. */
  | "BundleFailed"
  /** A backbone or head that has no ONNX form. */
  | "NotExportable"
  /** An export that could not be written or did not verify. */
  | "ExportFailed"
  /** A failure that is the server's fault. */
  | "Internal"

/**
 * The error of every `@loupe/deploy` operation: `reason` says what went wrong, `message` says it for a person,
 * `field` names the offending request field or option and `file` the offending file, when there is one.
 *
 * @since 0.1.0
 * @category errors
 */
export class DeployError extends Data.TaggedError("DeployError")<{
  readonly reason: DeployErrorReason
  readonly message: string
  readonly file?: string | undefined
  readonly field?: string | undefined
  readonly cause?: unknown
}> {}

/**
 * The HTTP status that answers an error of each reason: 400 for bad input, 401, 404, 405 (`ReadOnly`), 409
 * (`NotTrained`, `TooFewSamples`), 413 for size limits, 415, 422 (`NotExportable`), 429, 503 (`Unavailable`), else 500.
 *
 * @since 0.1.0
 * @category errors
 */
export const status = (reason: DeployErrorReason): number => {
  switch (reason) {
    case "InvalidRequest":
    case "InvalidImage":
    case "UrlFetchDisabled":
      return 400
    case "Unauthorized":
      return 401
    case "NotFound":
      return 404
    case "ReadOnly":
      return 405
    case "NotTrained":
    case "TooFewSamples":
      return 409
    case "BodyTooLarge":
    case "ImageTooLarge":
      return 413
    case "UnsupportedMediaType":
      return 415
    case "NotExportable":
      return 422
    case "RateLimited":
      return 429
    case "Unavailable":
      return 503
    case "KeyStoreFailed":
    case "BundleFailed":
    case "ExportFailed":
    case "Internal":
      return 500
  }
}

/**
 * Shorthand for an `InvalidRequest` error naming `field`; the message is prefixed with the field name.
 *
 * @since 0.1.0
 * @category constructors
 */
export const invalid = (field: string, message: string): DeployError =>
  new DeployError({ reason: "InvalidRequest", field, message: `${field}: ${message}` })
