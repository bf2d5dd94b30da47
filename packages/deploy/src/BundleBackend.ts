/**
 * A read-only `FunctionBackend` over one model bundle: the bundle is served as a single function (its id from the
 * bundle's metadata, or given), so clients call the same `/v1/functions/:id/invoke` as on `loupe serve`. Listing,
 * reading and invoking work (the models route lists the one model, which promoting leaves serving); routes that
 * change data answer 405 (`ReadOnly`), and invocations are not captured (there is no sample store). This is what the exported Docker image runs.
 *
 * @since 0.1.0
 */
import type { LoupeConfig, Registry } from "@loupe/core"
import type { FileSystem } from "@effect/platform"
import { Effect, Layer, Option, Schema } from "effect"
import * as path from "node:path"
import { DeployError } from "./DeployError.js"
import * as Api from "./FunctionApi.js"
import { FunctionBackend, type FunctionBackendShape, invocation } from "./FunctionBackend.js"
import * as Predictor from "./Predictor.js"

/**
 * The function id and name the bundle is served as.
 *
 * @since 0.1.0
 * @category models
 */
export interface BundleBackendOptions {
  /** The function id to serve the bundle as. Default: the bundle's `metadata.functionId`, else the folder's name. */
  readonly functionId?: string
  /** Default: the bundle's `metadata.name`, else the function id. */
  readonly name?: string
}

/** What function bundles (written by the retrainer) say about themselves; every part is optional. */
const BundleMetadata = Schema.Struct({
  functionId: Schema.optional(Schema.String),
  versionId: Schema.optional(Schema.String),
  revision: Schema.optional(Schema.Number),
  name: Schema.optional(Schema.String),
  labels: Schema.optional(Schema.Array(Schema.Struct({ id: Schema.String, name: Schema.String }))),
  metrics: Schema.optional(Schema.Struct({
    preset: Schema.optional(Schema.Struct({ name: Schema.String })),
    sampleCount: Schema.optional(Schema.Number),
    leftOutLabels: Schema.optional(Api.Metrics.fields.leftOutLabels),
    cv: Schema.optional(Schema.Struct({ ...Api.Metrics.fields.cv.fields, macroF1StandardError: Schema.optional(Schema.Number) }))
  }))
})

const readOnly = (what: string) =>
  Effect.fail(new DeployError({ reason: "ReadOnly", message: `This server serves one exported model and cannot ${what}` }))

/**
 * A backend over a predictor (loaded from a bundle). `source` names the bundle in ids when its metadata has none.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (predictor: Predictor.PredictorShape, source: string, options: BundleBackendOptions = {}): FunctionBackendShape => {
  const manifest = predictor.manifest
  const metadata = Option.getOrElse(Schema.decodeUnknownOption(BundleMetadata)(manifest?.metadata ?? {}), () => ({}) as typeof BundleMetadata.Type)
  const id = options.functionId ?? metadata.functionId ?? path.basename(path.resolve(source))
  const modelId = metadata.versionId ?? `model_${id}`
  const createdAt = manifest?.createdAt ?? new Date(0).toISOString()
  const labelIds = new Map(predictor.fitted.labels.map((name) => [name, metadata.labels?.find((l) => l.name === name)?.id ?? name]))
  const cv = metadata.metrics?.cv
  const leftOutLabels = metadata.metrics?.leftOutLabels ?? []
  const info: Api.FunctionView = {
    id,
    name: options.name ?? metadata.name ?? id,
    preset: metadata.metrics?.preset?.name ?? "bundle",
    createdAt,
    input: "Image",
    output: "Classification"
  }
  const labels: ReadonlyArray<Api.LabelView> = predictor.fitted.labels.map((name) => ({
    id: labelIds.get(name)!,
    name,
    description: null,
    metadata: null
  }))

  const model: Api.ModelView = {
    id: modelId,
    createdAt,
    sampleCount: metadata.metrics?.sampleCount ?? cv?.total ?? 0,
    revision: metadata.revision ?? 0,
    labels: predictor.fitted.labels,
    preset: metadata.metrics?.preset?.name ?? null,
    cv: cv === undefined
      ? null
      : { folds: cv.folds, accuracy: cv.accuracy, macroF1: cv.macroF1, macroF1StandardError: cv.macroF1StandardError ?? null, logLoss: cv.logLoss },
    serving: true,
    heldBack: null
  }

  const known = (functionId: string) =>
    functionId === id
      ? Effect.void
      : Effect.fail(new DeployError({ reason: "NotFound", field: "functionId", message: `No function ${JSON.stringify(functionId)}; this server serves ${id}` }))

  return {
    createFunction: () => readOnly("create functions"),
    listFunctions: Effect.succeed([info]),
    getFunction: (functionId) =>
      Effect.as(known(functionId), {
        ...info,
        sampleCount: 0,
        labels: labels.map((l) => ({
          id: l.id,
          name: l.name,
          sampleCount: cv?.perClass.find((c) => c.labelName === l.name)?.support ?? 0
        })),
        leftOutLabels,
        model: { id: modelId, createdAt, cvAccuracy: cv?.accuracy ?? null, upToDate: true },
        training: { phase: "idle", pending: false },
        trainError: null,
        heldBack: null
      }),
    deleteFunction: () => readOnly("delete functions"),
    createLabel: () => readOnly("create labels"),
    listLabels: (functionId) => Effect.as(known(functionId), labels),
    deleteLabel: () => readOnly("delete labels"),
    getLabel: (functionId, labelId) =>
      Effect.zipRight(known(functionId), Effect.fromNullable(labels.find((l) => l.id === labelId))).pipe(
        Effect.catchTag("NoSuchElementException", () =>
          Effect.fail(new DeployError({ reason: "NotFound", field: "labelId", message: `No label ${JSON.stringify(labelId)}` })))
      ),
    updateLabel: () => readOnly("update labels"),
    createSample: () => readOnly("store samples"),
    listSamples: (functionId) => Effect.as(known(functionId), []),
    getSample: (functionId, sampleId) =>
      Effect.zipRight(
        known(functionId),
        Effect.fail(new DeployError({ reason: "NotFound", field: "sampleId", message: `No sample ${JSON.stringify(sampleId)}: this server keeps no samples` }))
      ),
    deleteSample: () => readOnly("delete samples"),
    sampleData: (functionId, sampleId) =>
      Effect.zipRight(
        known(functionId),
        Effect.fail(new DeployError({ reason: "NotFound", field: "sampleId", message: `No sample ${JSON.stringify(sampleId)}: this server keeps no samples` }))
      ),
    setAnnotation: () => readOnly("annotate samples"),
    setTags: () => readOnly("tag samples"),
    invoke: (functionId, image, options) =>
      Effect.gen(function*() {
        yield* known(functionId)
        if (options.modelId !== undefined && options.modelId !== modelId) {
          return yield* new DeployError({ reason: "NotFound", field: "modelId", message: `No model ${JSON.stringify(options.modelId)}; this server serves ${modelId}` })
        }
        const prediction = yield* predictor.predict(image)
        return invocation(prediction, labelIds, modelId, options.labelCount)
      }),
    metrics: (functionId) =>
      Effect.zipRight(
        known(functionId),
        cv === undefined
          ? Effect.fail(new DeployError({ reason: "NotFound", field: "metrics", message: `The model of ${id} carries no cross-validation metrics` }))
          : Effect.succeed({
            functionId: id,
            modelId,
            createdAt,
            upToDate: true,
            sampleCount: metadata.metrics?.sampleCount ?? cv.total,
            leftOutLabels,
            cv
          })
      ),
    insights: (functionId) =>
      Effect.zipRight(
        known(functionId),
        Effect.fail(new DeployError({ reason: "TooFewSamples", field: "functionId", message: `No insights for ${id}: this server keeps no samples` }))
      ),
    capture: () => Effect.succeed(null),
    listCaptures: (functionId) => Effect.as(known(functionId), []),
    listModels: (functionId) => Effect.as(known(functionId), [model]),
    // Its one model already serves; any other id is not here.
    promoteModel: (functionId, id) =>
      Effect.zipRight(
        known(functionId),
        id === modelId
          ? Effect.succeed(model)
          : Effect.fail(new DeployError({ reason: "NotFound", field: "modelId", message: `No model ${JSON.stringify(id)}; this server serves ${modelId}` }))
      )
  }
}

/**
 * Load the bundle in `dir` and serve it read-only.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  dir: string,
  options: BundleBackendOptions & Predictor.PredictorOptions = {}
): Layer.Layer<FunctionBackend, DeployError, Registry.Registry | LoupeConfig.LoupeConfig | FileSystem.FileSystem> =>
  Layer.scoped(FunctionBackend, Effect.map(Predictor.load(dir, options), (predictor) => make(predictor, dir, options)))
