/**
 * @loupe/cli: the `loupe` command, and the one place that registers the built-in backbones and heads
 * (`Plugins.builtins`). Its library modules are the command runs themselves, for use from code: train on a folder,
 * train image tags on a manifest, evaluate a bundle on a folder, predict files, evaluate the zero-shot classifier on a
 * folder.
 *
 * @since 0.1.0
 */
export * as Evaluate from "./Evaluate.js"
export * as Plugins from "./Plugins.js"
export * as Predict from "./Predict.js"
export * as ProgressBar from "./ProgressBar.js"
export * as TagsTrain from "./TagsTrain.js"
export * as Train from "./Train.js"
export * as ZeroShotTrain from "./ZeroShotTrain.js"
