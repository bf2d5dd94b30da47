/**
 * A labelled (or unlabelled) image. The source is a path on disk or the image bytes themselves.
 *
 * @since 0.1.0
 */
export type ImageSource = string | Uint8Array

export interface Sample {
  /** Stable within a dataset: the relative path for folder datasets, the index for in-memory lists. */
  readonly id: string
  readonly source: ImageSource
  readonly label?: string
}

/** A human-readable name for a source, for progress lines and error messages. */
export const describeSource = (source: ImageSource): string =>
  typeof source === "string" ? source : `<${source.byteLength} bytes in memory>`

/** The image behind a sample that could not be used, and why. */
export interface SkippedSample {
  readonly sample: Sample
  readonly reason: string
}
