/**
 * The folder training run behind `loupe train`: load `<dir>` (a folder per label, or `train/` and `test/`),
 * fit with AutoML, save a bundle, evaluate on the test split when there is one, and optionally write a report.
 *
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as path from "node:path"
import { Bundle, Dataset } from "@loupe/core"
import type { CoreError, LoupeConfig, Registry } from "@loupe/core"
import type { Classification, MetricsError, Report } from "@loupe/metrics"
import type { FunctionsError, Preset } from "@loupe/functions"
import { AutoML } from "@loupe/functions"
import * as Evaluate from "./Evaluate.js"
import * as OutOption from "./internal/OutOption.js"
import * as ReportFile from "./ReportFile.js"

/**
 * The options of `loupe train`: the AutoML fit options (preset, search, cross-validation, ...), the data folder
 * `dir` (a folder per label, or `train/` and `test/` folders of them), and where to write the bundle and report.
 *
 * @since 0.1.0
 * @category models
 */
export interface TrainOptions extends AutoML.FitOptions {
  readonly dir: string
  /** Where to write the bundle: a new or empty folder, or an earlier bundle with `overwrite`. */
  readonly out: string
  /** Replace `out` when it holds an earlier bundle (a folder holding anything else is never replaced). */
  readonly overwrite?: boolean
  /** Also write a report: `.html` (self-contained page) or `.json`. */
  readonly report?: string
  /**
   * Which backbones the search was given, and why (`Preset.fitOptions` says); kept in the result, the report and
   * the bundle's metadata.
   *
   * @since 0.2.0
   */
  readonly backboneChoice?: Preset.BackboneChoice
}

/**
 * The selected model's evaluation on the `test/` split: the metrics, macro F1, and each test prediction.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestResult extends Classification.Evaluation {
  readonly macroF1: number
  /** The test predictions, one per embedded test image. */
  readonly predictions: ReadonlyArray<Evaluate.LabelledPrediction>
}

/**
 * What a training run did: the fit's selection, cross-validation and leaderboard, the test result (`null`
 * without a `test/` split), the skipped images, the bundle and report written, and timings in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface TrainResult extends Omit<AutoML.FitResult, "fitted" | "timings" | "outOfFold"> {
  readonly test: TestResult | null
  /** The bundle folder written, as an absolute path. */
  readonly bundle: string
  /** The report file written, as an absolute path. */
  readonly report?: string
  /**
   * Which backbones were searched and why, when the options said (`TrainOptions.backboneChoice`).
   *
   * @since 0.2.0
   */
  readonly backboneChoice?: Preset.BackboneChoice
  readonly timings: AutoML.FitResult["timings"] & { readonly totalMs: number }
}

/** The metrics package's report input for a finished run: test set first, then cross-validation. */
const reportInput = (
  dir: string,
  fit: AutoML.FitResult,
  cvEvaluated: Evaluate.Evaluated,
  test: Evaluate.Evaluated | undefined,
  timings: TrainResult["timings"],
  choice: Preset.BackboneChoice | undefined
): Report.ReportInput => ({
  title: `Loupe training report`,
  subtitle: dir,
  model: {
    description: AutoML.describeCandidate(fit.selected),
    details: {
      backbone: fit.selected.backbone,
      head: fit.selected.head.kind,
      ...Object.fromEntries(Object.entries(fit.selected.head.params).map(([k, v]) => [`head.${k}`, typeof v === "object" ? JSON.stringify(v) : String(v)])),
      ...(fit.selected.augmentedViews ? { augmentedViews: String(fit.selected.augmentedViews) } : {}),
      ...(choice ? { "backbones searched": `${choice.backbones.join(", ")}: ${choice.reason}` } : {})
    }
  },
  evaluations: [
    ...(test ? [{ name: "Test set", description: `${test.evaluation.total} held-out images`, evaluation: test.evaluation, misclassified: test.misclassified }] : []),
    {
      name: "Cross-validation",
      description: `${fit.cv.folds}-fold stratified${fit.cv.repeats > 1 ? `, repeated ${fit.cv.repeats} times` : ""}, out-of-fold predictions on ${fit.cv.total} training images`,
      evaluation: cvEvaluated.evaluation,
      misclassified: cvEvaluated.misclassified
    }
  ],
  leaderboard: fit.leaderboard.map((row, i) => ({
    candidate: row.description,
    metrics: { accuracy: row.accuracy, macroF1: row.macroF1, logLoss: row.logLoss },
    fitSeconds: row.fitMs / 1000,
    selected: i === 0
  })),
  timings: [
    { name: "embed", seconds: timings.embedMs / 1000 },
    { name: "train", seconds: timings.trainMs / 1000 },
    { name: "total", seconds: timings.totalMs / 1000 }
  ]
})

/**
 * `loupe train`: load the folder, fit with AutoML (cross-validated search), save the bundle to `out`, evaluate
 * on the test split when there is one, and write the report when asked. `out` is checked before any work: it fails
 * with `CoreError` `OutputNotFree` naming it (field `out`) unless it is new, empty, or an earlier bundle and
 * `overwrite` is set; nothing else is ever replaced. Fails with `CoreError` on unreadable data or a failed bundle write, with `FunctionsError` `InvalidOptions` naming `--report`
 * when the report is neither `.html` nor `.json`, and with `MetricsError` when the report cannot be written.
 *
 * @since 0.1.0
 * @category training
 */
export const train: (
  options: TrainOptions
) => Effect.Effect<
  TrainResult,
  FunctionsError.FunctionsError | CoreError.CoreError | MetricsError.MetricsError,
  Registry.Registry | LoupeConfig.LoupeConfig | FileSystem.FileSystem | Scope.Scope
> = Effect.fn("Train.train")(function*(options: TrainOptions) {
  const started = performance.now()
  const out = path.resolve(options.out)
  yield* OutOption.checkFree(out, Bundle.FORMAT, options.overwrite ?? false)
  const split = yield* Dataset.fromSplitFolders(options.dir)
  const fit = yield* AutoML.fit(split.train, options)
  const skipped = [...split.train.skipped, ...fit.skipped]
  const testEvaluated = split.test && split.test.samples.length > 0
    ? yield* Evaluate.evaluateDataset(fit.fitted, split.test)
    : undefined
  if (testEvaluated) skipped.push(...testEvaluated.skipped)
  const test: TestResult | null = testEvaluated
    ? { ...testEvaluated.evaluation, macroF1: testEvaluated.evaluation.macro.f1, predictions: testEvaluated.predictions }
    : null
  const timings = { ...fit.timings, totalMs: Math.round(performance.now() - started) }
  yield* Bundle.save(fit.fitted, out, {
    selected: fit.selected,
    ...(options.backboneChoice ? { backboneChoice: options.backboneChoice } : {}),
    cv: { accuracy: fit.cv.accuracy, macroF1: fit.cv.macroF1, folds: fit.cv.folds },
    test: test && { accuracy: test.accuracy, correct: test.correct, total: test.total },
    timings
  })
  const report = options.report === undefined ? undefined : path.resolve(options.report)
  if (report !== undefined) {
    const cvEvaluated = yield* Evaluate.evaluateProba(fit.fitted.labels, fit.outOfFold.samples, fit.outOfFold.proba)
    yield* ReportFile.write(report, reportInput(options.dir, fit, { ...cvEvaluated, skipped: [] }, testEvaluated, timings, options.backboneChoice))
  }
  const { fitted: _fitted, outOfFold: _outOfFold, ...rest } = fit
  return {
    ...rest,
    test,
    skipped,
    bundle: out,
    ...(report === undefined ? {} : { report }),
    ...(options.backboneChoice ? { backboneChoice: options.backboneChoice } : {}),
    timings
  } satisfies TrainResult
})
