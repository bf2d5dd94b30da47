/**
 * @loupe/automl: AutoML presets, the Nyckel-style function API with its store and background retraining, and the
 * `loupe` command line.
 *
 * @since 0.1.0
 */
export * as AutoML from "./AutoML.js"
export * as AutomlError from "./AutomlError.js"
export * as BlobStore from "./BlobStore.js"
export * as Evaluate from "./Evaluate.js"
export * as FunctionCommand from "./FunctionCommand.js"
export * as Functions from "./Functions.js"
export * as Plugins from "./Plugins.js"
export * as Predict from "./Predict.js"
export * as Preset from "./Preset.js"
export * as ProgressBar from "./ProgressBar.js"
export * as Retrainer from "./Retrainer.js"
export * as Store from "./Store.js"
export * as Train from "./Train.js"
export * as Server from "./Server.js"
