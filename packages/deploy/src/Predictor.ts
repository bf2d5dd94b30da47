/**
 * A predictor serves one fitted pipeline to many concurrent callers. Calls to `predict` queue up, and worker fibers
 * take whatever has queued (up to `maxBatch` images) and run it as one batch: the images decoded in parallel, then
 * one backbone call and one head call for the batch. Alone, a request runs at once as a batch of one; under load,
 * batches grow and the backbone's per-call overhead is shared. While one batch is in the backbone (a worker thread
 * for ONNX models), the next one decodes. Multi-backbone pipelines run each backbone on the batch; with `mirror`,
 * each image's mirror image rides in the same backbone calls.
 *
 * This is the serving path, kept lean: no embedding cache and no progress events (see `Pipeline.predictMany` for
 * batch jobs over files).
 *
 * ```ts
 * const predictor = yield* Predictor.load("./loupe-model")
 * const { labelName, confidence } = yield* predictor.predict(jpegBytes)
 * ```
 *
 * @since 0.1.0
 */
import { Bundle, Embedder, Matrix, Pipeline, Preprocess } from "@loupe/core"
import type { LoupeConfig, Registry } from "@loupe/core"
import type { FileSystem } from "@effect/platform"
import { Cause, Context, Deferred, Effect, Either, Layer, Queue } from "effect"
import type { Scope } from "effect"
import { DeployError } from "./DeployError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface PredictorOptions {
  /** Most images in one batch (at most the backbone's own limit). Default 16. */
  readonly maxBatch?: number
  /** Images of a batch decoded at once. Default 4. */
  readonly decodeConcurrency?: number
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

const failed = (e: { readonly message: string }): DeployError =>
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
    const { head, labels } = fitted
    const backbones = Pipeline.backbonesOf(fitted).map((b) => b.backbone)
    const mirror = fitted.mirror === true
    const maxBatch = Math.max(1, Math.min(options.maxBatch ?? 16, ...backbones.map((b) => b.maxBatchSize)))
    const decodeConcurrency = Math.max(1, options.decodeConcurrency ?? 4)
    const queue = yield* Effect.acquireRelease(Queue.bounded<Job>(Math.max(1, options.queue ?? 256)), Queue.shutdown)

    const decodeAll = (images: ReadonlyArray<Uint8Array>, spec: Preprocess.PreprocessSpec) =>
      Effect.forEach(images, (image) => Effect.either(Preprocess.decodeRgb(image, spec, "data")), {
        concurrency: decodeConcurrency
      })

    const join = (parts: ReadonlyArray<Matrix.Matrix>) => (parts.length === 1 ? parts[0]! : Matrix.concatColumns(parts))

    /**
     * The features of images decoded for the first backbone (`ready`), and of their mirror images. A further
     * backbone decodes the batch again only when no earlier one decodes the same way (`Preprocess.decodeKey`).
     */
    const features = (ready: ReadonlyArray<{ readonly job: Job; readonly rgb: Uint8Array }>) =>
      Effect.gen(function*() {
        const n = ready.length
        const vectors: Array<Matrix.Matrix> = []
        const mirrored: Array<Matrix.Matrix> = []
        const decodedAs = new Map([[Preprocess.decodeKey(backbones[0]!.info.preprocess), ready.map((r) => r.rgb)]])
        for (const backbone of backbones) {
          const { embeddingSize: dim, preprocess: spec } = backbone.info
          const key = Preprocess.decodeKey(spec)
          const rgb = decodedAs.get(key) ?? (yield* decodeAll(ready.map((r) => r.job.image), spec)).map(Either.getOrThrow)
          decodedAs.set(key, rgb)
          const output = yield* Embedder.embedTensor(backbone, Preprocess.toTensor(rgb, spec, mirror), (mirror ? 2 : 1) * n)
          vectors.push(Matrix.make(n, dim, output.subarray(0, n * dim)))
          if (mirror) mirrored.push(Matrix.make(n, dim, output.subarray(n * dim)))
        }
        return mirror ? { vectors: join(vectors), mirrored: join(mirrored) } : { vectors: join(vectors) }
      })

    const runBatch = (jobs: ReadonlyArray<Job>) =>
      Effect.gen(function*() {
        const decoded = yield* decodeAll(jobs.map((job) => job.image), backbones[0]!.info.preprocess)
        const ready: Array<{ readonly job: Job; readonly rgb: Uint8Array }> = []
        for (const [i, result] of decoded.entries()) {
          if (Either.isRight(result)) {
            ready.push({ job: jobs[i]!, rgb: result.right })
          } else {
            const reason = result.left.message.replace(/^Cannot decode data: /, "")
            yield* Deferred.fail(
              jobs[i]!.done,
              new DeployError({ reason: "InvalidImage", field: "data", message: `data: not a decodable image: ${reason}` })
            )
          }
        }
        if (ready.length === 0) return
        const outcome = yield* Effect.either(features(ready))
        if (Either.isLeft(outcome)) return yield* failed(outcome.left)
        const proba = yield* Effect.try({
          try: () => Pipeline.predictProba(head, outcome.right),
          catch: (cause) => failed(cause instanceof Error ? cause : new Error(String(cause)))
        })
        const predictions = Pipeline.toPredictions(labels, proba)
        yield* Effect.forEach(ready, (r, i) => Deferred.succeed(r.job.done, predictions[i]!), { discard: true })
      })

    // A failure answers the batch's callers (those not answered yet) and the worker goes on.
    const worker = Effect.forever(
      Effect.flatMap(Queue.takeBetween(queue, 1, maxBatch), (chunk) => {
        const jobs = Array.from(chunk)
        return runBatch(jobs).pipe(
          Effect.catchAllCause((cause) =>
            Effect.forEach(jobs, (job) => Deferred.fail(job.done, failed(new Error(Cause.pretty(cause)))), { discard: true })
          )
        )
      })
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

    return { fitted, manifest: options.manifest, predict } satisfies PredictorShape
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
): Effect.Effect<
  PredictorShape,
  DeployError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope | FileSystem.FileSystem
> =>
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
): Layer.Layer<Predictor, DeployError, Registry.Registry | LoupeConfig.LoupeConfig | FileSystem.FileSystem> =>
  Layer.scoped(Predictor, load(dir, options))
