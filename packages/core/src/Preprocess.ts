/**
 * Image preprocessing with sharp: decode (honouring EXIF orientation), convert to 8-bit RGB, resize and crop, then
 * normalise into the float32 layout a backbone expects.
 *
 * @since 0.1.0
 */

/** How a backbone wants its pixels. Normalised value = (x / scale - mean[c]) / std[c] for x in 0..255. */
export interface PreprocessSpec {
  /** Side of the square input, e.g. 224. */
  readonly size: number
  /**
   * `shorter-side-center-crop`: resize so the shorter side is `resizeShorter` (default `size`), then centre-crop
   * `size` x `size` (torchvision's Resize + CenterCrop). `squash`: resize to `size` x `size`, ignoring aspect.
   */
  readonly resize: "shorter-side-center-crop" | "squash"
  readonly resizeShorter?: number
  readonly layout: "NCHW" | "NHWC"
  readonly scale: number
  readonly mean: readonly [number, number, number]
  readonly std: readonly [number, number, number]
}

export const imagenet = (overrides: Partial<PreprocessSpec> = {}): PreprocessSpec => ({
  size: 224,
  resize: "shorter-side-center-crop",
  resizeShorter: 256,
  layout: "NCHW",
  scale: 255,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  ...overrides
})
