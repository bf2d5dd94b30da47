/**
 * The training rules. A Classification function's, as Nyckel has it: a label is trained on when it has at least 2
 * annotated samples; labels below that are left out (and say why) instead of blocking the function, and a model needs
 * at least 2 trainable labels. A Tags function's (`splitTags`): a tag needs at least 2 tagged samples with it and 2
 * without it, and a model at least 1 such tag.
 *
 * @internal
 */
import type { LeftOutLabel } from "../Retrainer.js"

/** Annotated samples a label needs to be trained on. */
export const minSamples = 2

const samplesText = (n: number) => `${n} annotated sample${n === 1 ? "" : "s"}`

/** A label with its annotated sample count. */
export interface Counted {
  readonly id: string
  readonly name: string
  readonly sampleCount: number
}

/** The labels a training run uses, and those it leaves out with the reason. */
export const split = (labels: ReadonlyArray<Counted>): {
  readonly trainable: ReadonlyArray<Counted>
  readonly leftOut: ReadonlyArray<LeftOutLabel>
} => ({
  trainable: labels.filter((l) => l.sampleCount >= minSamples),
  leftOut: labels.filter((l) => l.sampleCount < minSamples).map((l) => ({
    id: l.id,
    name: l.name,
    sampleCount: l.sampleCount,
    reason: `${samplesText(l.sampleCount)}; a label needs at least ${minSamples} to be trained on`
  }))
})

/** Why there is no model to train, or `undefined` when there are enough trainable labels. */
export const tooFewLabels = (labels: ReadonlyArray<Counted>): string | undefined => {
  const { leftOut, trainable } = split(labels)
  if (trainable.length >= 2) return undefined
  const has = trainable.length === 0
    ? "it has none"
    : `it has 1 (${trainable.map((l) => `"${l.name}": ${samplesText(l.sampleCount)}`).join("")})`
  const out = leftOut.length === 0
    ? ""
    : `; left out: ${leftOut.map((l) => `"${l.name}" (${samplesText(l.sampleCount)})`).join(", ")}`
  return `training needs at least 2 labels with at least ${minSamples} annotated samples each; ${has}${out}`
}

/**
 * The training rule of a Tags function: a tag is trained on when at least 2 tagged samples have it and at least 2
 * tagged samples do not (its one-vs-rest head needs both kinds); the others are left out, with why. `taggedCount`:
 * the function's tagged samples, an empty tag set included; `sampleCount`: those with the tag.
 */
export const splitTags = (tags: ReadonlyArray<Counted>, taggedCount: number): {
  readonly trainable: ReadonlyArray<Counted>
  readonly leftOut: ReadonlyArray<LeftOutLabel>
} => {
  const enough = (t: Counted) => t.sampleCount >= minSamples && taggedCount - t.sampleCount >= minSamples
  return {
    trainable: tags.filter(enough),
    leftOut: tags.filter((t) => !enough(t)).map((t) => ({
      id: t.id,
      name: t.name,
      sampleCount: t.sampleCount,
      reason: `${t.sampleCount} tagged sample${t.sampleCount === 1 ? "" : "s"} with it and ${taggedCount - t.sampleCount} ` +
        `without it; a tag needs at least ${minSamples} of each to be trained on`
    }))
  }
}

/** Why a Tags function has no model to train (no tag passes `splitTags`), or `undefined` when one does. */
export const tooFewTags = (tags: ReadonlyArray<Counted>, taggedCount: number): string | undefined =>
  splitTags(tags, taggedCount).trainable.length > 0
    ? undefined
    : `training needs at least 1 tag that at least ${minSamples} tagged samples have and at least ${minSamples} do not; ` +
      `it has ${taggedCount} tagged sample${taggedCount === 1 ? "" : "s"}` +
      (tags.length === 0 ? " and no tag" : `: ${tags.map((t) => `"${t.name}" on ${t.sampleCount}`).join(", ")}`)
