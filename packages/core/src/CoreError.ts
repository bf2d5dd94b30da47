/**
 * The one error type of `@loupe/core`. `reason` says what went wrong; `file` or `field` names the offending input.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

export type CoreErrorReason =
  | "InvalidImage"
  | "InvalidDataset"
  | "InvalidManifest"
  | "InvalidConfig"
  | "UnknownPlugin"
  | "DuplicatePlugin"
  | "BackboneFailed"
  | "HeadFailed"
  | "ShapeMismatch"
  | "InvalidBundle"
  | "CacheFailed"
  | "Io"

export class CoreError extends Data.TaggedError("CoreError")<{
  readonly reason: CoreErrorReason
  readonly message: string
  readonly file?: string
  readonly field?: string
  readonly cause?: unknown
}> {}

/** Any tagged, yieldable error a plugin may fail with. Plugins keep their own package's error type. */
export interface PluginFailure {
  readonly _tag: string
  readonly message: string
  /** The offending input, when the plugin names one. */
  readonly field?: string
}
