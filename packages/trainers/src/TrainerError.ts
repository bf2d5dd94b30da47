/**
 * The one error type of `@loupe/trainers`. `reason` says what went wrong; `field` names the offending parameter,
 * state entry or input (`params.l2`, `state.weights`, `data.y`, `space.head.kind`, ...).
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * What went wrong in a `TrainerError`; each member is described where it is declared.
 *
 * @since 0.1.0
 * @category errors
 */
export type TrainerErrorReason =
  /** Head or search parameters that do not decode against their Schema (unknown key, wrong type, out of range). */
  | "InvalidParams"
  /** Training data that cannot be used: shape mismatch, label out of range, a class without samples, NaN values. */
  | "InvalidData"
  /** A serialised head or calibrator whose state does not decode or does not fit its own dimensions. */
  | "InvalidState"
  /** Features at predict time whose width differs from the fitted head's. */
  | "ShapeMismatch"
  /** A head kind, backbone id or metric name that is not known to the search. */
  | "Unknown"
  /** A fit or search that could not finish (numerical failure, nothing evaluated within the time budget). */
  | "TrainingFailed"

/**
 * The error of every fallible operation in `@loupe/trainers`: a `reason`, a readable `message`, the `field` it
 * concerns when there is one (`params.l2`, `data.y`, `fold 0.3`, ...), and the underlying `cause` when it wraps
 * another error.
 *
 * @since 0.1.0
 * @category errors
 */
export class TrainerError extends Data.TaggedError("TrainerError")<{
  readonly reason: TrainerErrorReason
  readonly message: string
  readonly field?: string
  readonly cause?: unknown
}> {}
