/**
 * The one error type of `@loupe/functions` (named `AutomlError` before 0.2.0).
 *
 * @since 0.2.0
 */
import { Data } from "effect"
import type { ConfigError } from "effect"

/**
 * Why a `FunctionsError` was raised; callers branch on it, and `Server` maps it to the HTTP status it answers with
 * (`NotFound` to 404, `InvalidInput` and `InvalidOptions` to 400, ...).
 *
 * @since 0.2.0
 * @category errors
 */
export type FunctionsErrorReason =
  | "InvalidPlugin"
  | "InvalidOptions"
  | "NoBackbone"
  | "TrainingFailed"
  /** A function, label, sample or model version that does not exist. */
  | "NotFound"
  /** `invoke` or `metrics` on a function that has no trained model yet. */
  | "NotTrained"
  /** `insights` on a function without enough annotated samples to cross-validate (the message says what is missing). */
  | "TooFewSamples"
  /** Image input that cannot be read or decoded (the field names which one). */
  | "InvalidImage"
  /** Other bad input to the function API (an empty name, an unknown label id, ...). */
  | "InvalidInput"
  /** The store or blob store failed (I/O, SQL). */
  | "StoreFailed"

/**
 * The error every operation of `@loupe/functions` fails with (besides `@loupe/core`'s `CoreError` where core does the
 * work): a `reason`, a message for people, and the `file` or `field` at fault when there is one. Renamed from
 * `AutomlError` in 0.2.0.
 *
 * @since 0.2.0
 * @category errors
 */
export class FunctionsError extends Data.TaggedError("FunctionsError")<{
  readonly reason: FunctionsErrorReason
  readonly message: string
  readonly file?: string
  readonly field?: string
  readonly cause?: unknown
}> {}

/**
 * A malformed environment variable (`LoupeConfig.layerConfig`'s `ConfigError`) as an `InvalidOptions` error; the
 * message names the variable.
 *
 * @since 0.2.0
 * @category errors
 */
export const fromConfigError = (error: ConfigError.ConfigError): FunctionsError =>
  new FunctionsError({ reason: "InvalidOptions", message: `Invalid environment: ${String(error)}`, cause: error })
