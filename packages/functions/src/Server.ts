/**
 * The function API over HTTP (`loupe serve`): `@loupe/deploy`'s server with the function store behind it. This
 * module adapts `Functions` to the server's `FunctionBackend` and keeps the review queue of captured invocations.
 *
 * The review queue: a captured invocation is stored as an unlabelled sample of its function (deduplicated by
 * content, like every sample) and recorded in `captures.db` beside the store with why it was captured and what the
 * model said. `GET /v1/functions/:id/captures` lists the captured samples not annotated yet, newest first; annotating
 * one (`PUT .../annotation`) takes it off the queue and, as every annotation does, schedules a retrain.
 *
 * Invocations go to the promoted model (as `Functions.invoke` finds it) through a `Predictor` per model version, so
 * concurrent invocations share backbone calls in batches. The server holds no state of its own beyond this: models
 * come from the store's promoted versions, so several servers can serve one store: each invocation reads the
 * promoted version, so a promotion by any process (another server, a worker, `loupe function rollback`) is answered
 * with from the next call, while calls in flight finish on the model they started with. Once a second, each server
 * loads the newly promoted version of the functions it serves, so that those calls rarely wait for the load.
 *
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import type { HttpServer } from "@effect/platform"
import type { EmbeddingCache, LoupeConfig, Registry } from "@loupe/core"
import { ApiKeys, DeployError, FunctionBackend, Predictor, Server as DeployServer } from "@loupe/deploy"
import type { FunctionApi } from "@loupe/deploy"
import { Context, Effect, ExecutionStrategy, Exit, Layer, Schedule, Scope } from "effect"
import * as path from "node:path"
import { FunctionsError } from "./FunctionsError.js"
import * as Functions from "./Functions.js"
import { BlobStore } from "./BlobStore.js"
import { CaptureLog } from "./CaptureLog.js"
import * as Ids from "./internal/Ids.js"
import * as SampleData from "./internal/SampleData.js"
import * as Retrainer from "./Retrainer.js"
import * as RetrainWorkflow from "./RetrainWorkflow.js"
import * as SharedState from "./SharedState.js"
import { imageKey, Store } from "./Store.js"
import * as StoreLocation from "./StoreLocation.js"
import type * as StoreTypes from "./Store.js"
import * as Dismissals from "./console/Dismissals.js"
import * as WebConsole from "./WebConsole.js"

/**
 * Options of `layer`: the store folder, the HTTP server's options (`@loupe/deploy`'s `Server.ServerOptions`: port,
 * limits, ...) and the function API's `FunctionsConfig`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServeOptions extends DeployServer.ServerOptions, Functions.FunctionsConfig {
  /**
   * The function store: a folder (its `keys.json` holds the API keys), or a `StoreLocation` (a folder, or a Postgres
   * database, which holds the keys and captures too).
   */
  readonly store: string | StoreLocation.StoreLocation
  /**
   * Serve the console (`WebConsole`) under `/console` too. Default false.
   *
   * @since 0.2.0
   */
  readonly console?: boolean
}

const reasons: Readonly<Record<FunctionsError["reason"], DeployError.DeployErrorReason>> = {
  NotFound: "NotFound",
  NotTrained: "NotTrained",
  TooFewSamples: "TooFewSamples",
  InvalidImage: "InvalidImage",
  InvalidInput: "InvalidRequest",
  InvalidOptions: "InvalidRequest",
  InvalidPlugin: "InvalidRequest",
  NoBackbone: "Internal",
  TrainingFailed: "Internal",
  StoreFailed: "Internal"
}

/** The server's error for a function API error, keeping its message and field. */
const toDeployError = (e: FunctionsError): DeployError.DeployError =>
  new DeployError.DeployError({ reason: reasons[e.reason] ?? "Internal", message: e.message, field: e.field, file: e.file, cause: e })

/** The route's fields for an error of the one-sample batch it makes: `data`, not `samples[0].data`. */
const routeFields: Readonly<Record<string, string>> = { data: "data", label: "annotation.labelName", externalId: "externalId" }
const asOneSample = (e: FunctionsError): FunctionsError => {
  const field = e.field?.match(/^samples\[0\]\.(\w+)$/)?.[1]
  const named = field === undefined ? undefined : routeFields[field]
  if (named === undefined) return e
  return new FunctionsError({
    reason: e.reason,
    field: named,
    message: e.message.replaceAll(`samples[0].${field}`, named),
    ...(e.file === undefined ? {} : { file: e.file }),
    cause: e.cause
  })
}

const sampleView = (s: StoreTypes.SampleRecord): FunctionApi.SampleView => ({
  id: s.id,
  externalId: s.externalId,
  annotation: s.annotation,
  // A Tags function's sample once tagged; a Classification function's never is.
  ...(s.tags === null ? {} : { tags: s.tags }),
  createdAt: s.createdAt
})

const labelView = (l: StoreTypes.LabelRecord): FunctionApi.LabelView => ({
  id: l.id,
  name: l.name,
  description: l.description,
  metadata: l.metadata
})

const modelView = (v: StoreTypes.ModelVersionRecord): FunctionApi.ModelView => {
  const metrics = v.metrics as Partial<Retrainer.ModelMetrics> | null
  const cv = metrics?.cv
  return {
    id: v.id,
    createdAt: v.createdAt,
    sampleCount: v.sampleCount,
    revision: v.revision,
    labels: v.labels.map((l) => l.name),
    preset: metrics?.preset?.name ?? null,
    cv: cv === undefined
      ? null
      : { folds: cv.folds, accuracy: cv.accuracy, macroF1: cv.macroF1, macroF1StandardError: cv.macroF1StandardError ?? null, logLoss: cv.logLoss },
    serving: v.promoted,
    heldBack: v.heldBack
  }
}

/** The route's form of a function's insights: images named as sample ids, both ids of a duplicate pair. */
const insightsView = (i: Functions.FunctionInsights): FunctionApi.InsightsView => ({
  functionId: i.functionId,
  backbone: i.backbone,
  modelId: i.modelId,
  images: i.images,
  labels: i.labels,
  health: i.health,
  // No cross-validation (too few readable samples) finds no suspects.
  suspects: (i.suspects ?? []).map((s) => ({
    sampleId: s.id,
    given: s.given,
    suggested: s.suggested,
    selfConfidence: s.selfConfidence,
    suggestedConfidence: s.suggestedConfidence
  })),
  duplicates: i.duplicates.map((d) => ({
    sampleIdA: d.a,
    sampleIdB: d.b,
    labelA: d.labelA,
    labelB: d.labelB,
    kind: d.kind,
    similarity: d.similarity,
    leak: d.leak,
    conflict: d.conflict
  })),
  outliers: i.outliers.map((o) => ({ sampleId: o.id, label: o.label, nearest: o.nearest, similarity: o.similarity, score: o.score })),
  skipped: i.skipped
})

/**
 * The review queue of captured invocations (moved to its own module, `CaptureLog`, in 0.2.0; still exported here).
 *
 * @since 0.1.0
 * @category captures
 */
export { CaptureLog } from "./CaptureLog.js"

// ---------------------------------------------------------------------------------------------------------------
// The backend

/** Model versions whose predictors are kept; an older one is released a while after it drops out. */
const PREDICTORS = 4

/** How often a server checks for promotions made by other processes (see `warmPromoted` in `backend`). */
const PROMOTION_POLL = "1 second"

/**
 * The function API as the HTTP server's backend. Its predictors live as long as the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const backend: Effect.Effect<
  FunctionBackend.FunctionBackendShape,
  never,
  Functions.Functions | Retrainer.Retrainer | Store | BlobStore | CaptureLog | Scope.Scope
> = Effect.gen(function*() {
  const functions = yield* Functions.Functions
  const blobs = yield* BlobStore
  const retrainer = yield* Retrainer.Retrainer
  const store = yield* Store
  const captures = yield* CaptureLog
  const scope = yield* Effect.scope
  const run = <A>(effect: Effect.Effect<A, FunctionsError | DeployError.DeployError>) =>
    Effect.mapError(effect, (e) => (e._tag === "FunctionsError" ? toDeployError(e) : e))

  /** Predictors by model version, most recently used last. */
  const predictors = new Map<string, {
    readonly model: Retrainer.LoadedModel
    readonly predictor: Predictor.PredictorShape
    readonly scope: Scope.CloseableScope
  }>()
  const creating = yield* Effect.makeSemaphore(1)
  /** Requests may still be using a predictor that drops out: release it once they are surely done. */
  const release = (own: Scope.CloseableScope) =>
    Effect.forkIn(Effect.delay(Scope.close(own, Exit.void), "30 seconds"), scope)
  const predictorFor = (model: Retrainer.LoadedModel) =>
    creating.withPermits(1)(Effect.gen(function*() {
      const id = model.version.id
      const hit = predictors.get(id)
      predictors.delete(id)
      if (hit !== undefined && hit.model.fitted === model.fitted) {
        predictors.set(id, hit)
        return hit.predictor
      }
      // A version seen for the first time, or loaded again since.
      if (hit !== undefined) yield* release(hit.scope)
      const own = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const predictor = yield* Scope.extend(Predictor.make(model.fitted), own)
      predictors.set(id, { model, predictor, scope: own })
      if (predictors.size > PREDICTORS) {
        const [oldest, entry] = predictors.entries().next().value!
        predictors.delete(oldest)
        yield* release(entry.scope)
      }
      return predictor
    }))

  /** The promoted version each function had when this server last answered for it or loaded it. */
  const served = new Map<string, string>()
  /**
   * Another process (a server, a worker, `loupe function rollback`) may promote a version at any time. Invocations
   * read the promoted version from the store on every call, so they switch at once; this loads a newly promoted
   * version and its predictor beside the old one, so that the first invocations after the switch do not wait for it.
   */
  const warmPromoted = Effect.suspend(() => Effect.forEach([...served], ([functionId, seen]) =>
    store.promotedVersion(functionId).pipe(
      Effect.flatMap((version) =>
        // No promoted version: the function was deleted (it had one when it was served).
        version === undefined
          ? Effect.sync(() => served.delete(functionId))
          : version.id === seen
          ? Effect.void
          : retrainer.model(functionId, version.id).pipe(
            Effect.flatMap((model) => (model === undefined ? Effect.void : predictorFor(model))),
            Effect.zipRight(Effect.sync(() => served.set(functionId, version.id))),
            Effect.zipRight(Effect.logInfo(`Function ${functionId}: model ${version.id} is promoted, loaded`))
          )
      ),
      Effect.catchAll((e) =>
        e.reason === "NotFound"
          ? Effect.sync(() => served.delete(functionId))
          : Effect.logWarning(`Loading the promoted model of function ${functionId} failed: ${e.message}`)
      )
    ), { discard: true }))
  yield* Effect.forkIn(Effect.repeat(warmPromoted, Schedule.spaced(PROMOTION_POLL)), scope)

  /** A sample the user has answered for: annotated (classification) or given a tag set, even an empty one (tags). */
  const isReviewed = (sample: StoreTypes.SampleRecord) => sample.annotation !== null || sample.tags !== null

  const invoke: FunctionBackend.FunctionBackendShape["invoke"] = (functionId, image, options) =>
    run(Effect.gen(function*() {
      const model = yield* retrainer.model(functionId, options.modelId)
      // No model yet: the function API says why, in words.
      if (model === undefined) {
        return (yield* functions.get(functionId)).output === "Tags"
          ? yield* functions.invokeTags(functionId, image)
          : yield* functions.invoke(functionId, image, options.labelCount === undefined ? {} : { labelCount: options.labelCount })
      }
      if (isTagsModel(model.version)) return yield* functions.invokeTags(functionId, image, { modelId: model.version.id })
      if (options.modelId === undefined) served.set(functionId, model.version.id)
      const prediction = yield* Effect.flatMap(predictorFor(model), (p) => p.predict(image))
      const ids = new Map(model.version.labels.map((l) => [l.name, l.id]))
      return FunctionBackend.invocation(prediction, ids, model.version.id, options.labelCount)
    }))

  /** Captured samples still waiting: records whose sample is annotated or gone are dropped as they are met. */
  const listCaptures = (functionId: string, paging: FunctionApi.Paging) =>
    run(Effect.gen(function*() {
      yield* store.getFunction(functionId)
      const limit = paging.limit ?? 100
      const offset = paging.offset ?? 0
      while (true) {
        const page = yield* captures.page(functionId, limit, offset)
        const samples = yield* Effect.forEach(page, (c) => Effect.option(store.getSample(functionId, c.sampleId)))
        const resolved = page.filter((_, i) => samples[i]!._tag === "None" || isReviewed(samples[i]!.value))
        if (resolved.length === 0) return page
        yield* captures.remove(functionId, resolved.map((c) => c.sampleId))
      }
    }))

  /** A page of samples, newest first: the matching page of the oldest-first order, reversed. */
  const newestFirst = (functionId: string, limit: number, offset: number) =>
    Effect.gen(function*() {
      const count = yield* store.countSamples(functionId)
      const end = count - offset
      if (end <= 0) return []
      const page = yield* functions.listSamples(functionId, { limit: Math.min(limit, end), offset: Math.max(0, end - limit) })
      return [...page].reverse()
    })

  const shape: FunctionBackend.FunctionBackendShape = {
    createFunction: (input) =>
      run(Effect.map(functions.create(input.name, {
        ...(input.preset === undefined ? {} : { preset: input.preset }),
        ...(input.overrides === undefined ? {} : { overrides: input.overrides }),
        ...(input.output === "Tags" ? { output: "Tags" as const } : {})
      }), imageFunction)),
    listFunctions: run(Effect.map(functions.list, (all) => all.map(imageFunction))),
    getFunction: (functionId) =>
      run(Effect.zipWith(functions.get(functionId), store.countSamples(functionId), (fn, sampleCount) => ({
        ...imageFunction(fn),
        sampleCount
      }))),
    deleteFunction: (functionId) => run(Effect.zipRight(functions.delete(functionId), captures.forget(functionId))),
    createLabel: (functionId, label) =>
      run(Effect.map(
        functions.createLabels(functionId, [newLabel(label)]),
        ([created]) => labelView(created!)
      )),
    getLabel: (functionId, labelId) =>
      run(Effect.flatMap(functions.listLabels(functionId), (labels) => {
        const label = labels.find((l) => l.id === labelId)
        return label === undefined
          ? Effect.fail(new DeployError.DeployError({ reason: "NotFound", field: "labelId", message: `No label ${JSON.stringify(labelId)}` }))
          : Effect.succeed(labelView(label))
      })),
    updateLabel: (functionId, labelId, label) => run(Effect.map(functions.updateLabel(functionId, labelId, newLabel(label)), labelView)),
    listLabels: (functionId) => run(Effect.map(functions.listLabels(functionId), (labels) => labels.map(labelView))),
    deleteLabel: (functionId, labelId) =>
      run(Effect.map(functions.deleteLabel(functionId, labelId), (deleted) => ({
        id: deleted.label.id,
        name: deleted.label.name,
        unannotatedSamples: deleted.unannotatedSamples
      }))),
    createSample: (functionId, sample) =>
      run(Effect.map(
        functions.createSamples(functionId, [{
          data: sample.image,
          ...(sample.labelName === undefined ? {} : { label: sample.labelName }),
          ...(sample.tags === undefined ? {} : { tags: sample.tags }),
          ...(sample.externalId === undefined ? {} : { externalId: sample.externalId })
        }]).pipe(Effect.mapError(asOneSample)),
        ([added]) => ({ ...sampleView(added!.sample), updated: added!.updated })
      )),
    listSamples: (functionId, paging) =>
      run(Effect.map(
        paging.descending === true
          ? newestFirst(functionId, paging.limit ?? 100, paging.offset ?? 0)
          : functions.listSamples(functionId, {
            ...(paging.limit === undefined ? {} : { limit: paging.limit }),
            ...(paging.offset === undefined ? {} : { offset: paging.offset })
          }),
        (samples) => samples.map(sampleView)
      )),
    sampleData: (functionId, sampleId) =>
      run(Effect.gen(function*() {
        const sample = yield* functions.getSample(functionId, sampleId)
        const key = imageKey(functionId, sample.contentHash)
        return yield* SampleData.dataUri(yield* blobs.get(key), key)
      })),
    getSample: (functionId, sampleId) => run(Effect.map(functions.getSample(functionId, sampleId), sampleView)),
    deleteSample: (functionId, sampleId) =>
      run(Effect.zipRight(functions.deleteSamples(functionId, [sampleId]), captures.remove(functionId, [sampleId]))),
    setAnnotation: (functionId, sampleId, annotation) =>
      run(Effect.gen(function*() {
        // Removing a Tags function sample's annotation removes its tags.
        if (annotation === null && (yield* functions.get(functionId)).output === "Tags") {
          return sampleView(yield* functions.updateTags(functionId, sampleId, null))
        }
        const sample = yield* functions.updateAnnotation(functionId, sampleId, annotation)
        if (isReviewed(sample)) yield* captures.remove(functionId, [sampleId])
        return sampleView(sample)
      })),
    setTags: (functionId, sampleId, tags) =>
      run(Effect.gen(function*() {
        const sample = yield* functions.updateTags(functionId, sampleId, tags)
        if (isReviewed(sample)) yield* captures.remove(functionId, [sampleId])
        return sampleView(sample)
      })),
    invoke,
    metrics: (functionId) =>
      run(Effect.flatMap(
        functions.get(functionId),
        (fn): Effect.Effect<FunctionApi.Metrics | FunctionApi.TagsMetrics, FunctionsError> =>
          fn.output === "Tags" ? functions.tagsMetrics(functionId) : functions.metrics(functionId)
      )),
    insights: (functionId) => run(Effect.map(functions.insights(functionId), insightsView)),
    capture: (functionId, image, capture) =>
      run(Effect.gen(function*() {
        // An invocation never rewrites a sample the function already holds.
        const [{ sample }] = yield* functions.createSamples(functionId, [{
          data: image,
          ...(capture.externalId === undefined ? {} : { externalId: capture.externalId })
        }], { updateExisting: false })
        // An image the function already holds with an annotation (or a tag set) needs no review.
        if (!isReviewed(sample)) yield* captures.add(functionId, sample.id, capture)
        return sample.id
      })),
    listCaptures,
    listModels: (functionId) => run(Effect.map(functions.models(functionId), (versions) => versions.map(modelView))),
    promoteModel: (functionId, modelId) => run(Effect.map(functions.rollback(functionId, modelId), modelView))
  }
  return acceptingBareIds(shape)
})

/** Whether a model version is a Tags function's (its metrics say so), which `invokeTags` answers with. */
const isTagsModel = (version: StoreTypes.ModelVersionRecord) =>
  (version.metrics as { readonly output?: string } | null)?.output === "Tags"

/** Every function takes images, as Nyckel names its input. */
const imageFunction = <F extends Functions.FunctionInfo>(fn: F) => ({ ...fn, input: "Image" as const })

/** A label of the API as the function API takes it (`null` is left out). */
const newLabel = (label: FunctionApi.CreateLabel): Functions.NewLabel => ({
  name: label.name,
  ...(label.description == null ? {} : { description: label.description }),
  ...(label.metadata == null ? {} : { metadata: label.metadata })
})

/**
 * The backend taking ids with or without their kind prefix: Nyckel's clients strip `function_`, `label_`, `sample_`
 * from every id they are given, and send them back so.
 */
const acceptingBareIds = (shape: FunctionBackend.FunctionBackendShape): FunctionBackend.FunctionBackendShape => {
  const fn = (id: string) => Ids.withPrefix("function", id)
  const label = (id: string) => Ids.withPrefix("label", id)
  const sample = (id: string) => Ids.withPrefix("sample", id)
  const model = (id: string) => Ids.withPrefix("model", id)
  return {
    ...shape,
    getFunction: (f) => shape.getFunction(fn(f)),
    deleteFunction: (f) => shape.deleteFunction(fn(f)),
    createLabel: (f, l) => shape.createLabel(fn(f), l),
    listLabels: (f) => shape.listLabels(fn(f)),
    deleteLabel: (f, l) => shape.deleteLabel(fn(f), label(l)),
    getLabel: (f, l) => shape.getLabel(fn(f), label(l)),
    updateLabel: (f, l, body) => shape.updateLabel(fn(f), label(l), body),
    createSample: (f, s) => shape.createSample(fn(f), s),
    listSamples: (f, paging) => shape.listSamples(fn(f), paging),
    getSample: (f, s) => shape.getSample(fn(f), sample(s)),
    deleteSample: (f, s) => shape.deleteSample(fn(f), sample(s)),
    sampleData: (f, s) => shape.sampleData(fn(f), sample(s)),
    setAnnotation: (f, s, a) => shape.setAnnotation(fn(f), sample(s), a !== null && "labelId" in a ? { labelId: label(a.labelId) } : a),
    setTags: (f, s, tags) =>
      shape.setTags(fn(f), sample(s), tags === null ? null : tags.map((t) => ("labelId" in t ? { labelId: label(t.labelId) } : t))),
    invoke: (f, image, options) =>
      shape.invoke(fn(f), image, options.modelId === undefined ? options : { ...options, modelId: model(options.modelId) }),
    metrics: (f) => shape.metrics(fn(f)),
    insights: (f) => shape.insights(fn(f)),
    capture: (f, image, c) => shape.capture(fn(f), image, c),
    listCaptures: (f, paging) => shape.listCaptures(fn(f), paging),
    listModels: (f) => shape.listModels(fn(f)),
    promoteModel: (f, m) => shape.promoteModel(fn(f), model(m))
  }
}

/**
 * Serve the function store in `options.store` over HTTP. Needs the registry, config and embedding cache (the CLI's
 * environment). A folder store retrains in this process; a Postgres store submits each retrain as a
 * `RetrainWorkflow` for the `loupe worker` runners to execute (the server is a cluster client, no runner). Fails with `FunctionsError` `StoreFailed` when the store cannot be opened, and with `DeployError`
 * when the API keys or the capture log cannot be read or the server cannot start.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: ServeOptions
): Layer.Layer<
  HttpServer.HttpServer,
  DeployError.DeployError | FunctionsError,
  Registry.Registry | LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | FileSystem.FileSystem
> => {
  const location = typeof options.store === "string" ? StoreLocation.directory(options.store) : options.store
  const { console: withConsole, store: _, ...rest } = options
  // Samples and invokes are checked again on the function path: with the server's limits unless set apart.
  const limits = { ...DeployServer.defaultImageLimits, ...options.image }
  const config: Functions.FunctionsConfig = {
    ...rest,
    maxImageBytes: rest.maxImageBytes ?? limits.maxBytes,
    maxImagePixels: rest.maxImagePixels ?? limits.maxPixels
  }
  // A folder keeps captures.db, keys.json and the console's review.db beside the store; a Postgres store keeps them,
  // with the blobs and the embedding cache, in its database (one pool for all), so every server on it shares them.
  // `shared` is one layer value, provided to both the services and the console: it is built once, one pool.
  const shared = location._tag === "Directory" ? undefined : SharedState.layerPostgres(location.url)
  const services = location._tag === "Directory"
    ? Layer.mergeAll(CaptureLog.layer(location.path), ApiKeys.layer(ApiKeys.fileIn(location.path))).pipe(
      Layer.provideMerge(Functions.layerStore(location, config))
    )
    // Its retrains are submitted as workflows that `loupe worker` runners execute.
    : Functions.layer(config).pipe(Layer.provide(RetrainWorkflow.layerJobsFor(location)), Layer.provideMerge(shared!))
  const dismissals: Layer.Layer<Dismissals.Dismissals, FunctionsError, FileSystem.FileSystem | LoupeConfig.LoupeConfig> =
    location._tag === "Directory" ? Dismissals.layer(location.path) : shared!
  const webConsole = withConsole === true ? WebConsole.layer.pipe(Layer.provide(dismissals)) : Layer.empty
  return DeployServer.layer(options, webConsole).pipe(
    Layer.provide(Layer.scoped(FunctionBackend.FunctionBackend, backend)),
    Layer.provide(services)
  )
}
