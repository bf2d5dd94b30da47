/**
 * The one error type of `@loupe/functions`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

export type FunctionsErrorReason =
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

export class FunctionsError extends Data.TaggedError("FunctionsError")<{
  readonly reason: FunctionsErrorReason
  readonly message: string
  readonly file?: string
  readonly field?: string
  readonly cause?: unknown
}> {}
