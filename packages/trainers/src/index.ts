/**
 * @loupe/trainers: heads trained on embeddings, cross-validation, calibration and hyper-parameter search.
 *
 * @since 0.1.0
 */
export * as AugmentedProbe from "./AugmentedProbe.js"
export * as Calibration from "./Calibration.js"
export * as CrossValidation from "./CrossValidation.js"
export * as FineTune from "./FineTune.js"
export * as Heads from "./Heads.js"
export * as Knn from "./Knn.js"
export * as LinearSvm from "./LinearSvm.js"
export * as NearestPrototype from "./NearestPrototype.js"
export * as LogisticRegression from "./LogisticRegression.js"
export * as LrSchedule from "./LrSchedule.js"
export * as ManualTraining from "./ManualTraining.js"
export * as Mlp from "./Mlp.js"
export * as MultiBackbone from "./MultiBackbone.js"
export * as Optimizer from "./Optimizer.js"
export * as Search from "./Search.js"
export * as SearchSpace from "./SearchSpace.js"
export * as TrainerError from "./TrainerError.js"
export { heads } from "./Heads.js"
