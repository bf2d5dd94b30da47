/**
 * @loupe/core: samples and datasets, image preprocessing, the plugin contracts, the registry, the embedder and its
 * cache, fitted pipelines and model bundles.
 *
 * @since 0.1.0
 */
export * as Augment from "./Augment.js"
export * as Backbone from "./Backbone.js"
export * as Bundle from "./Bundle.js"
export * as CoreError from "./CoreError.js"
export * as Dataset from "./Dataset.js"
export * as DiskEmbeddingCache from "./DiskEmbeddingCache.js"
export * as Embedder from "./Embedder.js"
export * as EmbeddingCache from "./EmbeddingCache.js"
export * as Head from "./Head.js"
export * as ImageCheck from "./ImageCheck.js"
export * as Leftovers from "./Leftovers.js"
export * as LoupeConfig from "./LoupeConfig.js"
export * as Matrix from "./Matrix.js"
export * as Metric from "./Metric.js"
export * as OutputFolder from "./OutputFolder.js"
export * as Pipeline from "./Pipeline.js"
export * as Preprocess from "./Preprocess.js"
export * as Prng from "./Prng.js"
export * as Progress from "./Progress.js"
export * as Registry from "./Registry.js"
export * as Sample from "./Sample.js"
export * as TextTower from "./TextTower.js"
export * as TrainableTail from "./TrainableTail.js"
