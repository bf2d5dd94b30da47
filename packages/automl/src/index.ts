/**
 * @loupe/automl: AutoML presets, the Nyckel-style function API with its store and background retraining, and the
 * `loupe` command line.
 *
 * @since 0.1.0
 */
export * as BlobStore from "./BlobStore.js"
export * as Preset from "./Preset.js"
export * as Store from "./Store.js"
