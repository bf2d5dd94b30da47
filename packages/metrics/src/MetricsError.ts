/**
 * The one error type of `@loupe/metrics`. `reason` says what went wrong; `field` names the offending argument or
 * option, `file` the offending image or output path.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * What went wrong, one of a closed set so a caller can match on it.
 *
 * @since 0.1.0
 * @category errors
 */
export type MetricsErrorReason =
  /** Arrays or matrices whose sizes do not agree (e.g. `proba.rows !== yTrue.length`). */
  | "ShapeMismatch"
  /** A class index outside `0..labels.length-1`, or an unusable label list. */
  | "InvalidLabel"
  /** A probability that is negative or not finite. */
  | "InvalidProbability"
  /** No samples to evaluate. */
  | "EmptyInput"
  /** An option outside its allowed range. */
  | "InvalidOption"
  /** An image (SVG to PNG, or a thumbnail) that could not be rendered. */
  | "RenderFailed"
  /** A report that could not be written. */
  | "Io"

/**
 * The failure of every metric and report in this package: the synchronous metric functions throw it, the effectful
 * ones fail with it. `message` is a full sentence naming the problem; `field` names the offending argument or option
 * (e.g. `proba`, `bootstrap.level`), `file` the offending image or output path, `cause` the underlying error if any.
 *
 * @since 0.1.0
 * @category errors
 */
export class MetricsError extends Data.TaggedError("MetricsError")<{
  readonly reason: MetricsErrorReason
  readonly message: string
  readonly field?: string
  readonly file?: string
  readonly cause?: unknown
}> {}
