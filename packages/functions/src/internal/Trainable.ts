/**
 * The training rule, as Nyckel has it: a label is trained on when it has at least 2 annotated samples; labels below
 * that are left out (and say why) instead of blocking the function, and a model needs at least 2 trainable labels.
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
