/**
 * A predictor serves one fitted pipeline to many concurrent callers. Calls to `predict` queue up, and worker fibers
 * take whatever has queued (up to `maxBatch` images) and run it as one batch: decoding in parallel, one backbone
 * call per batch. Alone, a request runs at once as a batch of one; under load, batches grow and the backbone's
 * per-call overhead is shared.
 *
 * ```ts
 * const predictor = yield* Predictor.load("./loupe-model")
 * const { labelName, confidence } = yield* predictor.predict(jpegBytes)
 * ```
 *
 * @since 0.1.0
 */
import { Bundle, Pipeline } from "@loupe/core"
import type { LoupeConfig, Matrix, Registry, Sample } from "@loupe/core"
import { Context, Deferred, Effect, Layer, Queue } from "effect"
import type { Scope } from "effect"
import { DeployError } from "./DeployError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface PredictorOptions {
  /** Most images in one batch. Default 16. */
  readonly maxBatch?: number
  /** Batches in flight at once (one decodes while another runs the backbone). Default 2. */
  readonly workers?: number
  /** Requests waiting beyond those being served; callers wait for room when it is full. Default 256. */
  readonly queue?: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PredictorShape {
  readonly fitted: Pipeline.FittedPipeline
  /** The bundle's manifest, when the predictor was loaded from one. */
  readonly manifest: Bundle.Manifest | undefined
  /** Classify one encoded image; an image that cannot be decoded fails with `InvalidImage` naming `data`. */
  readonly predict: (image: Uint8Array) => Effect.Effect<Pipeline.Prediction, DeployError>
  /**
   * Probabilities for several images in one batch, one row per image that could be read (columns in label
   * order), with the unreadable ones listed.
   */
  readonly predictProba: (
    images: ReadonlyArray<Sample.ImageSource>
  ) => Effect.Effect<{ readonly proba: Matrix.Matrix; readonly skipped: ReadonlyArray<Sample.SkippedSample> }, DeployError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Predictor extends Context.Tag("@loupe/deploy/Predictor")<Predictor, PredictorShape>() {}

interface Job {
  readonly image: Uint8Array
  readonly done: Deferred.Deferred<Pipeline.Prediction, DeployError>
}

const failed = (e: { readonly message: string }) =>
  new DeployError({ reason: "BundleFailed", message: `Prediction failed: ${e.message}`, cause: e })

/**
 * A predictor over a fitted pipeline; its workers live as long as the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  fitted: Pipeline.FittedPipeline,
  options: PredictorOptions & { readonly manifest?: Bundle.Manifest } = {}
): Effect.Effect<PredictorShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxBatch = Math.max(1, options.maxBatch ?? 16)
    const queue = yield* Effect.acquireRelease(Queue.bounded<Job>(Math.max(1, options.queue ?? 256)), Queue.shutdown)

    const runBatch = (jobs: ReadonlyArray<Job>) =>
      Pipeline.predictMany(fitted, jobs.map((job, i) => ({ id: String(i), source: job.image }))).pipe(
        Effect.matchEffect({
          onFailure: (e) => Effect.forEach(jobs, (job) => Deferred.fail(job.done, failed(e)), { discard: true }),
          onSuccess: ({ predictions, skipped }) =>
            Effect.gen(function*() {
              for (const { prediction, sample } of predictions) {
                yield* Deferred.succeed(jobs[Number(sample.id)]!.done, prediction)
              }
              for (const { reason, sample } of skipped) {
                yield* Deferred.fail(
                  jobs[Number(sample.id)]!.done,
                  new DeployError({
                    reason: "InvalidImage",
                    field: "data",
                    message: `data: not a decodable image: ${reason.replace(/^Cannot decode <[^>]*>: /, "")}`
                  })
                )
              }
            })
        })
      )

    const worker = Effect.forever(
      Effect.flatMap(Queue.takeBetween(queue, 1, maxBatch), (chunk) => runBatch(Array.from(chunk)))
    )
    yield* Effect.forkScoped(Effect.all(Array.from({ length: Math.max(1, options.workers ?? 2) }, () => worker), {
      concurrency: "unbounded",
      discard: true
    }))

    const predict = (image: Uint8Array) =>
      Effect.gen(function*() {
        const done = yield* Deferred.make<Pipeline.Prediction, DeployError>()
        yield* Queue.offer(queue, { image, done })
        return yield* Deferred.await(done)
      })

    const predictProba: PredictorShape["predictProba"] = (images) =>
      Pipeline.predictMany(fitted, images.map((source, i) => ({ id: String(i), source }))).pipe(
        Effect.map(({ proba, skipped }) => ({ proba, skipped })),
        Effect.mapError(failed)
      )

    return { fitted, manifest: options.manifest, predict, predictProba } satisfies PredictorShape
  })

/**
 * Load a bundle directory (its backbone from the registry, checked against the weights it was trained with) and
 * serve it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (
  dir: string,
  options: PredictorOptions = {}
): Effect.Effect<PredictorShape, DeployError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> =>
  Bundle.load(dir).pipe(
    Effect.mapError((e) =>
      new DeployError({ reason: "BundleFailed", file: e.file ?? dir, message: e.message, cause: e })
    ),
    Effect.flatMap(({ fitted, manifest }) => make(fitted, { ...options, manifest }))
  )

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  dir: string,
  options: PredictorOptions = {}
): Layer.Layer<Predictor, DeployError, Registry.Registry | LoupeConfig.LoupeConfig> =>
  Layer.scoped(Predictor, load(dir, options))
