/**
 * The one error type of `@loupe/backbones`.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * Why a backbone operation failed: `WeightsNotFound` (no readable weights where the source says),
 * `ChecksumMismatch` (downloaded bytes differ from the declared sha256), `DownloadFailed` (network or server error),
 * `LoadFailed` (the model or its options could not be read or started), `InferenceFailed` (a batch failed, a
 * killed worker included, or a tail could not be trained), `InvalidInput` (a request the backbone refuses: bad
 * options, a batch of the wrong size), `Offline` (the weights must be fetched but the config is offline).
 *
 * @since 0.1.0
 * @category errors
 */
export type BackboneErrorReason =
  | "WeightsNotFound"
  | "ChecksumMismatch"
  | "DownloadFailed"
  | "LoadFailed"
  | "InferenceFailed"
  | "InvalidInput"
  | "Offline"

/**
 * The error every `@loupe/backbones` operation fails with: its `reason`, a message in words, and, where they apply,
 * the `file` and the option or config `field` at fault, and the underlying `cause`.
 *
 * @since 0.1.0
 * @category errors
 */
export class BackboneError extends Data.TaggedError("BackboneError")<{
  readonly reason: BackboneErrorReason
  readonly message: string
  readonly file?: string
  readonly field?: string
  readonly cause?: unknown
}> {}
