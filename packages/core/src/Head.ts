/**
 * The head contract, after scikit-learn's estimator: parameters are declared up front as a Schema, `fit` is a pure
 * function of (data, params, seed) returning a new fitted value, and fitted heads serialise to JSON and load back
 * exactly. Heads take raw backbone embeddings; any normalisation they need is part of their fitted state.
 *
 * @since 0.1.0
 */
import type { Effect, Schema } from "effect"
import * as M from "./Matrix.js"
import type { Matrix } from "./Matrix.js"
import type { PluginFailure } from "./CoreError.js"

export interface TrainingSet {
  /** `n x d` embeddings. */
  readonly x: Matrix
  /** Class index per row, in `0..numClasses-1`. */
  readonly y: Int32Array
  readonly numClasses: number
  /** Optional per-row weights (class weighting). */
  readonly weights?: Float32Array
  /**
   * Optional group per row: rows of one group are views of one image (an image and its mirror image). A head that
   * splits its rows internally (held-out calibration, early stopping) keeps each group on one side.
   */
  readonly groups?: Int32Array
}

/**
 * The rows a head trains on when each image also has a mirror image (`mirrored`, rows aligned with `set.x`): the
 * images, then their mirror images, each mirror image in its image's group (its own index when `set` has none).
 */
export const withMirrorRows = (set: TrainingSet, mirrored: Matrix): TrainingSet => {
  const groups = set.groups ?? Int32Array.from(set.y, (_, i) => i)
  return {
    ...set,
    x: M.concatRows([set.x, mirrored]),
    y: Int32Array.from([...set.y, ...set.y]),
    ...(set.weights ? { weights: Float32Array.from([...set.weights, ...set.weights]) } : {}),
    groups: Int32Array.from([...groups, ...groups])
  }
}

export interface SerializedHead {
  readonly kind: string
  readonly params: unknown
  readonly state: unknown
}

export interface FittedHead {
  readonly kind: string
  readonly numClasses: number
  readonly dim: number
  /** `rows x numClasses` probabilities; each row sums to 1. */
  readonly predictProba: (x: Matrix) => Matrix
  readonly toJSON: () => SerializedHead
}

export interface HeadPlugin<P = any> {
  readonly kind: string
  /** Decodes user params (with defaults); unknown keys are errors. */
  readonly paramsSchema: Schema.Schema<P, any>
  readonly fit: (data: TrainingSet, params: P, seed: number) => Effect.Effect<FittedHead, PluginFailure>
  readonly load: (serialized: SerializedHead) => Effect.Effect<FittedHead, PluginFailure>
}
