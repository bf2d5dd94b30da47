/**
 * @loupe/trainers: heads trained on embeddings, cross-validation, calibration and hyper-parameter search.
 *
 * Each module is one thing a user composes with; each name is exported once, as a namespace.
 *
 * @since 0.1.0
 */

// Heads: the built-in head plugins, one module each, and `Heads.heads`, all of them for a registry or the search.
export * as Heads from "./Heads.js"
export * as Knn from "./Knn.js"
export * as LinearSvm from "./LinearSvm.js"
export * as LogisticRegression from "./LogisticRegression.js"
export * as Mlp from "./Mlp.js"
export * as NearestPrototype from "./NearestPrototype.js"
export * as OneVsRest from "./OneVsRest.js"
export * as TipAdapter from "./TipAdapter.js"
export * as ZeroShot from "./ZeroShot.js"

// Training a head with its backbone: manual mode, partial fine-tuning, and their optimiser and schedule settings.
export * as FineTune from "./FineTune.js"
export * as LrSchedule from "./LrSchedule.js"
export * as ManualTraining from "./ManualTraining.js"
export * as Optimizer from "./Optimizer.js"

// Model selection: folds, calibration of out-of-fold probabilities, search spaces and the search.
export * as Calibration from "./Calibration.js"
export * as CrossValidation from "./CrossValidation.js"
export * as MultiLabelFolds from "./MultiLabelFolds.js"
export * as Search from "./Search.js"
export * as SearchSpace from "./SearchSpace.js"

// More than plain embeddings: augmented views of each image, and several backbones at once.
export * as AugmentedProbe from "./AugmentedProbe.js"
export * as MultiBackbone from "./MultiBackbone.js"

// Errors.
export * as TrainerError from "./TrainerError.js"
