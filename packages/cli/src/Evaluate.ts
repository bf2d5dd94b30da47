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

export interface LabelledPrediction extends Pipeline.Prediction {
  readonly file: string
  readonly trueLabel: string
}

export interface Evaluated {
  readonly evaluation: Classification.Evaluation
  /** One per evaluated image, in input order. */
  readonly predictions: ReadonlyArray<LabelledPrediction>
  /** Misclassified images, most confident mistakes first. */
  readonly misclassified: ReadonlyArray<Report.MisclassifiedItem>
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>
}

/** Evaluate probabilities for labelled samples (rows aligned with `samples`). */
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

/** Predict every image of a labelled dataset with a fitted pipeline and evaluate. */
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

/** `loupe evaluate <bundle> <dir>`: the bundle's labels must cover the folder's labels. */
export interface FolderEvaluation extends Evaluated {
  readonly manifest: Bundle.Manifest
  readonly dir: string
}

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
