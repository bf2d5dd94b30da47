/**
 * The one error type of `@loupe/automl`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

export type AutomlErrorReason =
  | "InvalidPlugin"
  | "InvalidOptions"
  | "NoBackbone"
  | "TrainingFailed"
  /** A function, label, sample or model version that does not exist. */
  | "NotFound"
  /** `invoke` or `metrics` on a function that has no trained model yet. */
  | "NotTrained"
  /** Image input that cannot be read or decoded (the field names which one). */
  | "InvalidImage"
  /** Other bad input to the function API (an empty name, an unknown label id, ...). */
  | "InvalidInput"
  /** The store or blob store failed (I/O, SQL). */
  | "StoreFailed"

export class AutomlError extends Data.TaggedError("AutomlError")<{
  readonly reason: AutomlErrorReason
  readonly message: string
  readonly file?: string
  readonly field?: string
  readonly cause?: unknown
}> {}
