/**
 * The text-tower capability a backbone plugin may offer (`BackbonePlugin.textTower`): an encoder that embeds text
 * into the same space as the backbone's image embeddings, as CLIP and SigLIP do. Zero-shot classification
 * (`@loupe/trainers`' `ZeroShot`) asks for it through this contract and never touches the runtime behind it: it
 * embeds prompts built from label names and compares them with image embeddings by cosine similarity.
 *
 * What crosses into training is plain data, `ZeroShotPrior` (a training set's `zeroShot`): one unit text embedding
 * per class and the model's logit scale. Heads that use it (the zero-shot head, the Tip-Adapter head) keep it in
 * their fitted state, so a saved model needs no text tower to predict.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import type * as Backbone from "./Backbone.js"
import { CoreError } from "./CoreError.js"
import type { PluginFailure } from "./CoreError.js"
import type { LoupeConfig } from "./LoupeConfig.js"
import type { Matrix } from "./Matrix.js"
import * as LoadContext from "./internal/LoadContext.js"
import { Registry } from "./Registry.js"

/**
 * A loaded text encoder.
 *
 * @since 0.2.0
 * @category models
 */
export interface TextEncoder {
  /** The width of its text embeddings: the backbone's image embedding size (one space). */
  readonly embeddingSize: number
  /**
   * What cosine similarities are multiplied by before the softmax: the model's learned inverse temperature (CLIP's
   * is 100).
   */
  readonly logitScale: number
  /** sha256 of the text weights and tokenizer actually loaded. */
  readonly weightsHash: string
  /** One row per text, `embeddingSize` wide, not normalised. */
  readonly embedTexts: (texts: ReadonlyArray<string>) => Effect.Effect<Matrix, PluginFailure>
}

/**
 * The capability. `load` receives the plugin's decoded options, as `BackbonePlugin.load` does; the encoder lives as
 * long as the scope.
 *
 * @since 0.2.0
 * @category capabilities
 */
export interface TextTower {
  readonly load: (context: Backbone.LoadContext) => Effect.Effect<TextEncoder, PluginFailure, Scope.Scope>
}

/**
 * The zero-shot classifier of a label set, as data: `classifier` holds one unit-length text embedding per class
 * (`numClasses x dim`, in class order), and `logitScale` is the text encoder's. Probabilities are
 * `softmax(logitScale * cos(image, classifier row))`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ZeroShotPrior {
  readonly classifier: Matrix
  readonly logitScale: number
}

/**
 * Load the text tower of a registered backbone within the current scope, validating `options` with the plugin's
 * schema. Fails with `CoreError`: `UnknownPlugin` when the id is not registered, `InvalidConfig` when the options do
 * not decode, `Unsupported` (field: the id) when the backbone has no text tower, `BackboneFailed` when it fails to
 * load.
 *
 * @since 0.2.0
 * @category constructors
 */
export const load = (
  backboneId: string,
  options: unknown = {}
): Effect.Effect<TextEncoder, CoreError, Registry | LoupeConfig | Scope.Scope> =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const plugin = yield* registry.backbone(backboneId)
    if (plugin.textTower === undefined) {
      return yield* new CoreError({
        reason: "Unsupported",
        field: backboneId,
        message: `Backbone ${backboneId} has no text tower; zero-shot classification needs one (CLIP, SigLIP)`
      })
    }
    const context = yield* LoadContext.make(plugin, options)
    return yield* plugin.textTower.load(context).pipe(
      Effect.mapError((e) =>
        new CoreError({
          reason: "BackboneFailed",
          field: backboneId,
          message: `Could not load the text tower of ${backboneId}: ${e.message}`,
          cause: e
        })
      )
    )
  })
