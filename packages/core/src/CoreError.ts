/**
 * The one error type of `@loupe/core`. `reason` says what went wrong; `file` or `field` names the offending input.
 *
 * @since 0.1.0
 */
import { Data } from "effect"

/**
 * What went wrong, for `CoreError`: an unreadable image, dataset, manifest or bundle, a bad configuration value, an
 * unknown or duplicate plugin, a backbone or head that failed, a shape mismatch between a backbone and its batch, a
 * cache failure, a file-system error, or a capability the plugin does not offer (`Unsupported`, new in 0.2.0).
 *
 * @since 0.1.0
 * @category errors
 */
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
  | "Unsupported"

/**
 * The error every `@loupe/core` operation fails with: `reason` says what went wrong, `message` says it for people,
 * `file` or `field` names the offending input and `cause` keeps the underlying error.
 *
 * @since 0.1.0
 * @category errors
 */
export class CoreError extends Data.TaggedError("CoreError")<{
  readonly reason: CoreErrorReason
  readonly message: string
  readonly file?: string
  readonly field?: string
  readonly cause?: unknown
}> {}

/**
 * Any tagged, yieldable error a plugin may fail with. Plugins keep their own package's error type.
 *
 * @since 0.1.0
 * @category errors
 */
export interface PluginFailure {
  readonly _tag: string
  readonly message: string
  /** The offending input, when the plugin names one. */
  readonly field?: string
}
