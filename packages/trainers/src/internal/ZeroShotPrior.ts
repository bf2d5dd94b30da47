/**
 * What the heads built on a text tower's zero-shot classifier share (the zero-shot and Tip-Adapter heads): the
 * prior's check against a training set, its fields in their fitted state, and its cosine logits.
 */
import type { Head } from "@loupe/core"
import { Schema } from "effect"
import { TrainerError } from "../TrainerError.js"
import * as Codec from "./Codec.js"
import { dotRows } from "./Linalg.js"

/** The state fields that hold the prior: `numClasses x dim` unit text embeddings and the logit scale. */
export const fields = {
  numClasses: Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)),
  /** `numClasses x dim` unit text embeddings, one per class. */
  classifier: Codec.Float64,
  logitScale: Schema.Number.pipe(Schema.positive(), Schema.finite())
}

/** The prior of `data`, checked against its classes and width; throws a `TrainerError` (`InvalidData`) when unusable. */
export const of = (kind: string, data: Head.TrainingSet) => {
  const prior = data.zeroShot
  const { numClasses } = data
  const dim = data.x.cols
  if (prior === undefined) {
    throw new TrainerError({
      reason: "InvalidData",
      field: "data.zeroShot",
      message: `${kind}: needs the labels' zero-shot classifier (a backbone with a text tower, such as CLIP or SigLIP)`
    })
  }
  const { classifier, logitScale } = prior
  if (classifier.rows !== numClasses || classifier.cols !== dim) {
    throw new TrainerError({
      reason: "InvalidData",
      field: "data.zeroShot",
      message: `${kind}: the zero-shot classifier is ${classifier.rows} x ${classifier.cols}; the data has ${numClasses} classes of ${dim}-d embeddings`
    })
  }
  if (!(logitScale > 0 && Number.isFinite(logitScale))) {
    throw new TrainerError({ reason: "InvalidData", field: "data.zeroShot.logitScale", message: `${kind}: logit scale ${logitScale} is not a positive number` })
  }
  return { numClasses, classifier: Float64Array.from(classifier.data), logitScale }
}

/** `numClasses` and the width the prior fields encode, or what is wrong with them. */
export const shape = (state: { readonly numClasses: number; readonly classifier: Float64Array }) => {
  const dim = state.classifier.length / state.numClasses
  return Number.isInteger(dim) && dim >= 1 ? { numClasses: state.numClasses, dim } : `classifier holds ${state.classifier.length} values for ${state.numClasses} classes`
}

/** `out[i * k + c] = logitScale * <z row i, classifier row c>` for unit rows `z` (`rows x dim`). */
export const logits = (
  state: { readonly numClasses: number; readonly classifier: Float64Array; readonly logitScale: number },
  z: Float64Array,
  rows: number,
  dim: number
): Float64Array => {
  const k = state.numClasses
  const out = new Float64Array(rows * k)
  for (let i = 0; i < rows; i++) {
    dotRows(state.classifier, 0, k, dim, z, i * dim, out, i * k)
    for (let c = 0; c < k; c++) out[i * k + c] *= state.logitScale
  }
  return out
}
