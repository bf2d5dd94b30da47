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
 * One image of a dataset: a stable id, its source, and its label when it has one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sample {
  /** Stable within a dataset: the relative path for folder datasets, the index for in-memory lists. */
  readonly id: string
  readonly source: ImageSource
  readonly label?: string
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
