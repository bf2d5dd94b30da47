/**
 * The folder training run behind `loupe train`: load `<dir>` (a folder per label, or `train/` and `test/`),
 * fit with AutoML, save a bundle, and evaluate on the test split when there is one.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Bundle, Dataset, Pipeline } from "@loupe/core"
import type { CoreError, LoupeConfig, Registry } from "@loupe/core"
import type { Scope } from "effect"
import { Classification } from "@loupe/metrics"
import * as AutoML from "./AutoML.js"
import { AutomlError } from "./AutomlError.js"

export interface TrainOptions extends AutoML.FitOptions {
  readonly dir: string
  /** Where to write the bundle. */
  readonly out: string
}

export interface TestResult extends Classification.Evaluation {
  readonly macroF1: number
  /** The test predictions, one per embedded test image. */
  readonly predictions: ReadonlyArray<{ readonly file: string; readonly trueLabel: string } & Pipeline.Prediction>
}

export interface TrainResult extends Omit<AutoML.FitResult, "fitted" | "timings"> {
  readonly test: TestResult | null
  readonly bundle: string
  readonly timings: AutoML.FitResult["timings"] & { readonly totalMs: number }
}

export const train: (
  options: TrainOptions
) => Effect.Effect<
  TrainResult,
  AutomlError | CoreError.CoreError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope
> = Effect.fn("Train.train")(function*(options: TrainOptions) {
  const started = performance.now()
  const split = yield* Dataset.fromSplitFolders(options.dir)
  const result = yield* AutoML.fit(split.train, options)
  let test: TestResult | null = null
  const skipped = [...split.train.skipped, ...result.skipped]
  if (split.test && split.test.samples.length > 0) {
    const { predictions, proba, skipped: testSkipped } = yield* Pipeline.predictMany(result.fitted, split.test.samples)
    skipped.push(...split.test.skipped, ...testSkipped.map((s) => ({ file: s.sample.id, reason: s.reason })))
    const y = yield* Pipeline.labelIndices(result.fitted.labels, predictions.map((p) => p.sample))
    const evaluation = yield* Classification.evaluate(y, proba, result.fitted.labels)
      .pipe(Effect.mapError((e) => new AutomlError({ reason: "TrainingFailed", message: e.message, cause: e })))
    test = {
      ...evaluation,
      macroF1: evaluation.macro.f1,
      predictions: predictions.map((p) => ({ file: p.sample.id, trueLabel: p.sample.label!, ...p.prediction }))
    }
  }
  const timings = { ...result.timings, totalMs: Math.round(performance.now() - started) }
  yield* Bundle.save(result.fitted, options.out, {
    selected: result.selected,
    cv: { accuracy: result.cv.accuracy, macroF1: result.cv.macroF1, folds: result.cv.folds },
    test: test && { accuracy: test.accuracy, correct: test.correct, total: test.total },
    timings
  })
  const { fitted: _fitted, ...rest } = result
  return { ...rest, test, skipped, bundle: options.out, timings } satisfies TrainResult
})
