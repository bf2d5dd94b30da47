/**
 * The one error type of `@loupe/backbones`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

export type BackboneErrorReason =
  | "WeightsNotFound"
  | "ChecksumMismatch"
  | "DownloadFailed"
  | "LoadFailed"
  | "InferenceFailed"
  | "InvalidInput"
  | "Offline"

export class BackboneError extends Data.TaggedError("BackboneError")<{
  readonly reason: BackboneErrorReason
  readonly message: string
  readonly file?: string
  readonly field?: string
  readonly cause?: unknown
}> {}
