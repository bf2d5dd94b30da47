/**
 * Invoke capture: which invocations are worth a human look. An invocation is captured (its image stored as an
 * unlabelled sample in the function's review queue) when
 *
 * - its confidence is below `lowConfidence` (the model is unsure: the most informative samples to label);
 * - its predicted label is rare in the training data, holding less than `rareClassShare` of the annotated samples
 *   (rare classes are where a model is weakest and where more examples help most);
 * - or it falls in a random `randomFraction` (an unbiased sample of traffic: an honest accuracy estimate and a
 *   watch on drift).
 *
 * Captures are rate-limited per function (`perMinute`), so a burst of hard images cannot flood the queue or slow
 * invocations down.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The schema of a capture policy, with its defaults: `lowConfidence` 0.6, `rareClassShare` 0.1 and
 * `randomFraction` 0.01 (each in [0, 1]; 0 turns that rule off), and `perMinute` 60 (most captures per function per
 * minute, above 0). Decoding fails with a `ParseError` naming the field that is out of range.
 *
 * @since 0.1.0
 * @category models
 */
export const CapturePolicy = Schema.Struct({
  /** Capture when the confidence is below this. 0 turns it off. */
  lowConfidence: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.6 }),
  /** Capture when the predicted label holds less than this share of the annotated samples. 0 turns it off. */
  rareClassShare: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.1 }),
  /** Capture this fraction of all invocations at random. 0 turns it off. */
  randomFraction: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.01 }),
  /** Most captures per function per minute. */
  perMinute: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThan(0)), { default: () => 60 })
})
/**
 * A decoded capture policy, every field set.
 *
 * @since 0.1.0
 * @category models
 */
export type CapturePolicy = typeof CapturePolicy.Type

/**
 * The default policy: capture below 0.6 confidence, labels under 10% of the annotated samples, and 1% of
 * invocations at random, at most 60 a minute per function.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults: CapturePolicy = Schema.decodeSync(CapturePolicy)({})

/**
 * Which rule captured an invocation: below the confidence threshold, a rare predicted label, or the random share.
 *
 * @since 0.1.0
 * @category models
 */
export type CaptureReason = "low-confidence" | "rare-class" | "random"

/**
 * What `decide` looks at: the predicted label, its confidence in [0, 1], and the function's annotated sample
 * count per label (without it the rare-class rule does not apply).
 *
 * @since 0.1.0
 * @category models
 */
export interface Invocation {
  readonly labelName: string
  readonly confidence: number
  /** Annotated samples per label in the function, when known. */
  readonly labelCounts?: ReadonlyMap<string, number>
}

/**
 * Why this invocation should be captured, or `undefined`. `random` is a uniform draw in [0, 1).
 *
 * @since 0.1.0
 * @category decisions
 */
export const decide = (policy: CapturePolicy, invocation: Invocation, random: number): CaptureReason | undefined => {
  if (invocation.confidence < policy.lowConfidence) return "low-confidence"
  if (policy.rareClassShare > 0 && invocation.labelCounts !== undefined) {
    let total = 0
    for (const n of invocation.labelCounts.values()) total += n
    const share = total === 0 ? 0 : (invocation.labelCounts.get(invocation.labelName) ?? 0) / total
    if (total > 0 && share < policy.rareClassShare) return "rare-class"
  }
  if (random < policy.randomFraction) return "random"
  return undefined
}

/**
 * What the capture policy judges a tags answer by: its least sure tag, the one whose decision (present at or above
 * its threshold, absent below) has the lowest probability of being right, `p` for a present tag and `1 - p` for an
 * absent one. A tag near its threshold makes the whole answer worth a review.
 *
 * @since 0.2.0
 * @category decisions
 */
export const leastSureTag = (
  tags: ReadonlyArray<{ readonly labelName: string; readonly confidence: number; readonly present: boolean }>
): { readonly labelName: string; readonly confidence: number } | undefined =>
  tags.reduce<{ readonly labelName: string; readonly confidence: number } | undefined>((least, tag) => {
    const sure = tag.present ? tag.confidence : 1 - tag.confidence
    return least === undefined || sure < least.confidence ? { labelName: tag.labelName, confidence: sure } : least
  }, undefined)
