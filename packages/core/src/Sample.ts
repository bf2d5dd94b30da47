/**
 * A labelled (or unlabelled) image. The source is a path on disk or the image bytes themselves.
 *
 * @since 0.1.0
 */

/**
 * Where an image comes from: a file path, or the encoded image bytes (JPEG, PNG, WebP, ...).
 *
 * @since 0.1.0
 * @category models
 */
export type ImageSource = string | Uint8Array

/**
 * One image of a dataset: a stable id, its source, and its label (or, for multi-label data, its tags) when it has one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sample {
  /** Stable within a dataset: the relative path for folder datasets, the index for in-memory lists. */
  readonly id: string
  readonly source: ImageSource
  readonly label?: string
  /**
   * The sample's tags, for multi-label (image tags) training: zero or more, each an independent yes. A tagged sample
   * carries `tags` instead of `label`; `[]` is a sample known to have none of the tags.
   *
   * @since 0.2.0
   */
  readonly tags?: ReadonlyArray<string>
}

/**
 * A human-readable name for a source, for progress lines and error messages.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeSource = (source: ImageSource): string =>
  typeof source === "string" ? source : `<${source.byteLength} bytes in memory>`

/**
 * The image behind a sample that could not be used, and why.
 *
 * @since 0.1.0
 * @category models
 */
export interface SkippedSample {
  readonly sample: Sample
  readonly reason: string
}
