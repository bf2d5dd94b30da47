/**
 * The trainable-tail capability a backbone plugin may offer (`BackbonePlugin.trainableTail`): its network cut into
 * a frozen trunk and a tail whose weights train, end to end, with a dense head on top. Partial fine-tuning
 * (`@loupe/trainers`' `FineTune`) asks for it through this contract and never touches the runtime that runs the
 * tail: it keeps the head layers, the optimiser (Float64 master weights) and the epoch loop, and hands the tail
 * each step's batch and head weights.
 *
 * @since 0.2.0
 */
import type { Effect, Scope } from "effect"
import type { LoadContext } from "./Backbone.js"
import type { PluginFailure } from "./CoreError.js"
import type { Matrix } from "./Matrix.js"

/**
 * One dense head layer: `outputs x inputs` weights, row-major, and `outputs` biases. ReLU between layers; the last
 * layer's outputs are the logits.
 *
 * @since 0.2.0
 * @category models
 */
export interface DenseLayer {
  readonly inputs: number
  readonly outputs: number
  readonly weights: ArrayLike<number>
  readonly bias: ArrayLike<number>
}

/**
 * A training batch: `rows` flattened activation maps at the cut, their labels and their weights (summing to 1).
 *
 * @since 0.2.0
 * @category models
 */
export interface Batch {
  readonly x: Float32Array
  readonly rows: number
  readonly y: Int32Array
  readonly weights: ArrayLike<number>
}

/**
 * The training settings of one step: the class count, the label smoothing (0 for none), the dropout rate on the
 * head's hidden layers (0 for none) and its seeds.
 *
 * @since 0.2.0
 * @category models
 */
export interface StepOptions {
  readonly numClasses: number
  readonly labelSmoothing: number
  readonly dropout: number
  /** One seed per hidden head layer for its dropout mask (empty without dropout). */
  readonly dropoutSeeds: ReadonlyArray<number>
}

/**
 * The weighted, label-smoothed softmax cross-entropy of one batch, the rows it classified right, and the gradients:
 * one per tail weight (in `Tail.pretrained` order), then each head layer's weights and bias.
 *
 * @since 0.2.0
 * @category models
 */
export interface Step {
  readonly loss: number
  readonly correct: number
  readonly gradients: ReadonlyArray<Float32Array>
}

/**
 * A tail ready to train or predict.
 *
 * @since 0.2.0
 * @category models
 */
export interface Tail {
  /** The last trunk layer: its output is the tail's input. */
  readonly cut: string
  /** The tail's layers whose weights train. */
  readonly trainable: ReadonlyArray<string>
  /** The activation map at the cut, height x width x channels. */
  readonly inputShape: readonly [number, number, number]
  /** The width of the tail's (pooled) output, the head's input. */
  readonly featureDim: number
  /** The tail's trainable weights as cut: where every training starts. */
  readonly pretrained: ReadonlyArray<Float32Array>
  /** Overwrite the trainable weights (in `pretrained` order). */
  readonly write: (weights: ReadonlyArray<ArrayLike<number>>) => void
  /** The tail's output for rows of flattened activation maps, in inference mode. */
  readonly features: (x: Matrix) => Matrix
  /** Forward and backward through tail and `head` for one batch (dropout on the head's hidden layers). */
  readonly step: (batch: Batch, head: ReadonlyArray<DenseLayer>, options: StepOptions) => Step
  /** The tail's topology and current weights as JSON fields, which `TrainableTail.restore` reads back. */
  readonly save: () => Effect.Effect<Readonly<Record<string, unknown>>, PluginFailure>
}

/**
 * What `cut` gives: the tail, and the plugin options that load the trunk (the frozen part, embedding each image
 * into its flattened activation map at the cut).
 *
 * @since 0.2.0
 * @category models
 */
export interface Cut {
  readonly tail: Tail
  readonly trunkOptions: Readonly<Record<string, unknown>>
}

/**
 * The capability. `cut` fails with a `PluginFailure` whose `field` names the offending input (`backboneOptions`,
 * `backboneOptions.output`, `trainableLayers`) when the request does not fit the model.
 *
 * @since 0.2.0
 * @category capabilities
 */
export interface TrainableTail {
  /**
   * Cut the network (loaded with the user's `options`, not yet decoded) at the latest point that leaves at least
   * `trainableLayers` layers with weights after it. The tail lives as long as the scope.
   */
  readonly cut: (
    context: { readonly config: LoadContext["config"]; readonly options: unknown },
    trainableLayers: number
  ) => Effect.Effect<Cut, PluginFailure, Scope.Scope>
  /** A tail from what `Tail.save` wrote. */
  readonly restore: (saved: Readonly<Record<string, unknown>>) => Effect.Effect<Tail, PluginFailure>
}
