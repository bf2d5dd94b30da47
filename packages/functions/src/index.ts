/**
 * @loupe/functions: AutoML presets and fitting, the Nyckel-style function API with its store, blob store and
 * background retraining, and the HTTP adapter that serves functions through `@loupe/deploy`'s server.
 *
 * @since 0.1.0
 */
export * as AutoML from "./AutoML.js"
export * as BlobStore from "./BlobStore.js"
export * as CaptureLog from "./CaptureLog.js"
export * as Functions from "./Functions.js"
export * as FunctionsError from "./FunctionsError.js"
export * as Inspection from "./Inspection.js"
export * as Preset from "./Preset.js"
export * as Retrainer from "./Retrainer.js"
export * as Server from "./Server.js"
export * as SharedState from "./SharedState.js"
export * as Store from "./Store.js"
export * as TagsAutoML from "./TagsAutoML.js"
export * as RetrainWorkflow from "./RetrainWorkflow.js"
export * as StoreLocation from "./StoreLocation.js"
export * as WebConsole from "./WebConsole.js"
