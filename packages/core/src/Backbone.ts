/**
 * The backbone contract: a plugin describes itself with data (`BackboneInfo`) and loads into a `LoadedBackbone`
 * that implements one method, `embedBatch`. Batching, decoding, pipelining, shape checks and caching are added
 * around it by the framework (see `Embedder`).
 *
 * @since 0.1.0
 */
import type { Effect, Schema, Scope } from "effect"
import { Context } from "effect"
import type { LoupeConfigShape } from "./LoupeConfig.js"
import type { PluginFailure } from "./CoreError.js"
import type { PreprocessSpec } from "./Preprocess.js"
import type { TextTower } from "./TextTower.js"
import type { TrainableTail } from "./TrainableTail.js"

/**
 * Where a backbone's weights come from.
 *
 * @since 0.1.0
 * @category models
 */
export type WeightsSource =
  /** A path relative to the models directory (`--models-dir` / `LOUPE_MODELS_DIR`). */
  | { readonly _tag: "ModelsDir"; readonly path: string; readonly sha256?: string }
  /** An absolute or working-directory-relative path. */
  | { readonly _tag: "Path"; readonly path: string }
  /** A Hugging Face hub repository (or a local folder with the same layout). */
  | { readonly _tag: "Hub"; readonly repo: string; readonly revision?: string }
  /** A URL, verified with sha256 after download; stored in the cache directory as `file`. */
  | { readonly _tag: "Url"; readonly url: string; readonly sha256: string; readonly file: string }

/**
 * What a backbone plugin says about itself, as data: its id, runtime, embedding size, preprocessing, tags, licence
 * and where its weights come from.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackboneInfo {
  /** `runtime:name`, e.g. `onnx:mobilenetv2-int8`. */
  readonly id: string
  readonly runtime: "onnx" | "tfjs" | "transformers" | (string & {})
  readonly description: string
  readonly embeddingSize: number
  readonly preprocess: PreprocessSpec
  /** Used by presets to select backbones: `fast`, `offline`, `imagenet`, `clip`, ... */
  readonly tags: ReadonlyArray<string>
  readonly license: string
  readonly weights: WeightsSource
}

/**
 * A backbone ready to embed. Acquired in a Scope; its runtime session is released with the scope.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadedBackbone {
  readonly info: BackboneInfo
  /** sha256 of the weights actually loaded; part of embedding-cache keys and bundle references. */
  readonly weightsHash: string
  /** The largest batch `embedBatch` accepts. */
  readonly maxBatchSize: number
  /**
   * Embed `count` preprocessed images laid out per `info.preprocess` (`count x 3 x H x W` or `count x H x W x 3`).
   * Returns `count x embeddingSize` values, row-major.
   */
  readonly embedBatch: (batch: Float32Array, count: number) => Effect.Effect<Float32Array, PluginFailure>
}

/**
 * What a backbone plugin's `load` receives: the Loupe configuration (models and cache directories) and its decoded
 * options.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadContext {
  readonly config: LoupeConfigShape
  /** Plugin options, already decoded with the plugin's `optionsSchema`. */
  readonly options: unknown
}

/**
 * What a backbone plugin provides. Register it explicitly with `Registry.layer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackbonePlugin {
  readonly info: BackboneInfo
  /** Validates user options; unknown keys are errors. */
  readonly optionsSchema?: Schema.Schema<any, any>
  readonly load: (context: LoadContext) => Effect.Effect<LoadedBackbone, PluginFailure, Scope.Scope>
  /** Capability: a frozen trunk and a trainable tail, for partial fine-tuning. */
  readonly trainableTail?: TrainableTail
  /** Capability: a text encoder into the image embeddings' space, for zero-shot classification (since 0.2.0). */
  readonly textTower?: TextTower
}

/**
 * The backbone in use, as a service.
 *
 * @since 0.1.0
 * @category services
 */
export class Backbone extends Context.Tag("@loupe/core/Backbone")<Backbone, LoadedBackbone>() {}
