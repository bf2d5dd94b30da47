/**
 * The one error type of `@loupe/functions`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"
import type { ConfigError } from "effect"

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

/**
 * A malformed environment variable (`LoupeConfig.layerConfig`'s `ConfigError`) as an `InvalidOptions` error; the
 * message names the variable.
 *
 * @since 0.1.0
 */
export const fromConfigError = (error: ConfigError.ConfigError): FunctionsError =>
  new FunctionsError({ reason: "InvalidOptions", message: `Invalid environment: ${String(error)}`, cause: error })
