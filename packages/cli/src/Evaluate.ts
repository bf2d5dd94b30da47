/**
 * Evaluate a saved bundle on a labelled folder, and turn evaluations into the metrics package's report input.
 *
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { Bundle, Dataset, Pipeline } from "@loupe/core"
import type { CoreError, LoupeConfig, Matrix, Registry, Sample } from "@loupe/core"
import type { Scope } from "effect"
import { Classification } from "@loupe/metrics"
import type { Report } from "@loupe/metrics"
import * as path from "node:path"
import { FunctionsError } from "@loupe/functions"

/**
 * A prediction for one image of a labelled folder: the file, its true label, and what the model said.
 *
 * @since 0.1.0
 * @category models
 */
export interface LabelledPrediction extends Pipeline.Prediction {
  readonly file: string
  readonly trueLabel: string
}

/**
 * An evaluation of a model on labelled images: the metrics (accuracy, per-class precision/recall/F1, confusion
 * matrix), each prediction, the mistakes, and the images that could not be used, with why.
 *
 * @since 0.1.0
 * @category models
 */
export interface Evaluated {
  readonly evaluation: Classification.Evaluation
  /** One per evaluated image, in input order. */
  readonly predictions: ReadonlyArray<LabelledPrediction>
  /** Misclassified images, most confident mistakes first. */
  readonly misclassified: ReadonlyArray<Report.MisclassifiedItem>
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>
}

/**
 * Evaluate class probabilities for labelled samples: row i of `proba` (columns in `labels` order) is the
 * prediction for `samples[i]`. Fails with `CoreError` when a sample's label is not in `labels`, and with
 * `FunctionsError` `TrainingFailed` when the metrics cannot be computed (say, rows and samples do not match).
 *
 * @since 0.1.0
 * @category evaluation
 */
export const evaluateProba = (
  labels: ReadonlyArray<string>,
  samples: ReadonlyArray<Sample.Sample>,
  proba: Matrix.Matrix
): Effect.Effect<Omit<Evaluated, "skipped">, CoreError.CoreError | FunctionsError.FunctionsError> =>
  Effect.gen(function*() {
    const y = yield* Pipeline.labelIndices(labels, samples)
    const evaluation = yield* Classification.evaluate(y, proba, labels)
    const misclassified = Classification.mistakes(y, proba).map((m) => ({
      source: samples[m.index]!.source,
      id: samples[m.index]!.id,
      trueLabel: labels[m.trueClass]!,
      predictedLabel: labels[m.predictedClass]!,
      confidence: m.confidence
    }))
    const predictions = Pipeline.toPredictions(labels, proba).map((p, i) => ({
      file: samples[i]!.id,
      trueLabel: labels[y[i]!]!,
      ...p
    }))
    return { evaluation, predictions, misclassified }
  }).pipe(
    Effect.mapError((e) => e._tag === "CoreError" ? e : new FunctionsError.FunctionsError({ reason: "TrainingFailed", message: e.message, cause: e }))
  )

/**
 * Predict every image of a labelled dataset with a fitted pipeline and evaluate; images that cannot be read
 * are listed in `skipped` (with the dataset's own skipped files), not failed on.
 *
 * @since 0.1.0
 * @category evaluation
 */
export const evaluateDataset: (
  fitted: Pipeline.FittedPipeline,
  dataset: Dataset.Dataset
) => Effect.Effect<Evaluated, CoreError.CoreError | FunctionsError.FunctionsError> = Effect.fn("Evaluate.evaluateDataset")(function*(
  fitted: Pipeline.FittedPipeline,
  dataset: Dataset.Dataset
) {
  const { predictions, proba, skipped } = yield* Pipeline.predictMany(fitted, dataset.samples)
  const result = yield* evaluateProba(fitted.labels, predictions.map((p) => p.sample), proba)
  return {
    ...result,
    skipped: [...dataset.skipped, ...skipped.map((s) => ({ file: s.sample.id, reason: s.reason }))]
  } satisfies Evaluated
})

/**
 * The result of `evaluateFolder`: the evaluation, the bundle's manifest, and the folder as an absolute path.
 *
 * @since 0.1.0
 * @category models
 */
export interface FolderEvaluation extends Evaluated {
  readonly manifest: Bundle.Manifest
  readonly dir: string
}

/**
 * `loupe evaluate <bundle> <dir>`: load the bundle and evaluate it on a folder with a subfolder per label.
 * Fails with `FunctionsError` `InvalidOptions` naming the folder when it has labels the model does not know, and
 * with `CoreError` when the bundle or the folder cannot be read.
 *
 * @since 0.1.0
 * @category evaluation
 */
export const evaluateFolder: (
  bundle: string,
  dir: string
) => Effect.Effect<
  FolderEvaluation,
  CoreError.CoreError | FunctionsError.FunctionsError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope | FileSystem.FileSystem
> = Effect.fn("Evaluate.evaluateFolder")(function*(bundle: string, dir: string) {
  const { fitted, manifest } = yield* Bundle.load(bundle)
  const dataset = yield* Dataset.fromFolder(dir)
  const unknown = dataset.labels.filter((l) => !fitted.labels.includes(l))
  if (unknown.length > 0) {
    return yield* new FunctionsError.FunctionsError({
      reason: "InvalidOptions",
      file: dir,
      message: `${dir} has labels the model does not know: ${unknown.join(", ")} (model labels: ${fitted.labels.join(", ")})`
    })
  }
  const result = yield* evaluateDataset(fitted, dataset)
  return { ...result, manifest, dir: path.resolve(dir) }
})
