/**
 * The head contract, after scikit-learn's estimator: parameters are declared up front as a Schema, `fit` is a pure
 * function of (data, params, seed) returning a new fitted value, and fitted heads serialise to JSON and load back
 * exactly. Heads take raw backbone embeddings; any normalisation they need is part of their fitted state.
 *
 * Fitted heads are built with `make`, which checks the width of what they predict on, once, for every head. A head
 * plugin may offer capabilities beside the contract: `toOnnx`, its ONNX form, which `@loupe/deploy`'s exporter asks
 * for.
 *
 * @since 0.1.0
 */
import type { Effect, Schema } from "effect"
import type { BackbonePlugin } from "./Backbone.js"
import { CoreError } from "./CoreError.js"
import type { PluginFailure } from "./CoreError.js"
import * as M from "./Matrix.js"
import type { Matrix } from "./Matrix.js"
import type { ZeroShotPrior } from "./TextTower.js"

/**
 * What a head fits on: embeddings, a class index per row, and optional per-row weights and groups.
 *
 * @since 0.1.0
 * @category models
 */
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
  /**
   * Optional: the zero-shot classifier of the labels, when the backbone has a text tower (`TextTower`). Heads built
   * on it (zero-shot, Tip-Adapter) need it; the others ignore it.
   *
   * @since 0.2.0
   */
  readonly zeroShot?: ZeroShotPrior
}

/**
 * The rows a head trains on when each image also has a mirror image (`mirrored`, rows aligned with `set.x`): the
 * images, then their mirror images, each mirror image in its image's group (its own index when `set` has none).
 *
 * @since 0.1.0
 * @category utils
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

/**
 * A fitted head as JSON: its kind (the plugin that loads it), its params and its fitted state.
 *
 * @since 0.1.0
 * @category models
 */
export interface SerializedHead {
  readonly kind: string
  readonly params: unknown
  readonly state: unknown
}

/**
 * A fitted head: it predicts class probabilities from `dim`-wide embeddings and serialises to JSON. Build one with
 * `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface FittedHead {
  readonly kind: string
  readonly numClasses: number
  readonly dim: number
  /**
   * `rows x numClasses` probabilities; each row sums to 1. Synchronous, as it runs on the serving hot path; a head
   * built with `make` throws a `CoreError` (`ShapeMismatch`, field `x`) when `x` is not `dim` wide.
   */
  readonly predictProba: (x: Matrix) => Matrix
  readonly toJSON: () => SerializedHead
}

/**
 * A fitted head from what it computes: `predict` is only ever called with rows `head.dim` wide, since the returned
 * `predictProba` checks the width first. Every head is built this way, so the check lives here once.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <A extends Omit<FittedHead, "predictProba">>(head: A, predict: (x: Matrix) => Matrix): A & FittedHead => ({
  ...head,
  predictProba: (x) => {
    if (x.cols !== head.dim) {
      throw new CoreError({ reason: "ShapeMismatch", field: "x", message: `${head.kind}: fitted on ${head.dim}-d features, got ${x.cols}-d` })
    }
    return predict(x)
  }
})

/**
 * The tensors a head's ONNX nodes read and write: `embedding` (`[batch, dim]`, the backbone's pooled output) and
 * `probabilities` (`[batch, classes]`).
 *
 * @since 0.2.0
 * @category capabilities
 */
export interface OnnxIo {
  readonly embedding: string
  readonly probabilities: string
  readonly dim: number
}

/**
 * A head as ONNX: GraphProto node and initializer fields (written with `@loupe/core/onnx`'s `OnnxGraph`).
 *
 * @since 0.2.0
 * @category capabilities
 */
export interface HeadGraph {
  readonly nodes: ReadonlyArray<Uint8Array>
  readonly initializers: ReadonlyArray<Uint8Array>
}

/**
 * What loading a head may use besides its JSON: the plugin of the backbone it was fitted on (a bundle's backbone),
 * for heads that run part of that backbone (a fine-tuned tail).
 *
 * @since 0.2.0
 * @category models
 */
export interface LoadContext {
  readonly backbone?: BackbonePlugin
}

/**
 * What a head plugin provides: its kind, its params schema, `fit` and `load`, and optionally `toOnnx`. Register it
 * explicitly with `Registry.layer`. Both `fit` and `load` fail with the plugin's own tagged error (`PluginFailure`).
 *
 * @since 0.1.0
 * @category models
 */
export interface HeadPlugin<P = any> {
  readonly kind: string
  /** Decodes user params (with defaults); unknown keys are errors. */
  readonly paramsSchema: Schema.Schema<P, any>
  readonly fit: (data: TrainingSet, params: P, seed: number) => Effect.Effect<FittedHead, PluginFailure>
  readonly load: (serialized: SerializedHead, context?: LoadContext) => Effect.Effect<FittedHead, PluginFailure>
  /**
   * Capability: the head's ONNX form, computing the same probabilities as `predictProba` from a serialised head of
   * this kind. Heads without it (kNN keeps every training row) do not export to ONNX.
   */
  readonly toOnnx?: (head: SerializedHead, io: OnnxIo) => Effect.Effect<HeadGraph, PluginFailure>
}
