/**
 * `loupe train <dir> --zero-shot`: no training. The first of the backbones that has a text tower (CLIP, SigLIP)
 * classifies images from the label names alone (`ZeroShot` in `@loupe/trainers`: prompt templates, averaged unit
 * text embeddings, `softmax(logitScale * cos)`), and the run reports its accuracy on the `test/` split, or on every
 * image when there is no split (none of them was trained on). The zero-shot model is saved as a bundle like any
 * other, so `loupe predict` and `loupe serve --bundle` use it.
 *
 * @since 0.2.0
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as path from "node:path"
import { Bundle, Dataset, Registry, TextTower } from "@loupe/core"
import type { CoreError, LoupeConfig, Pipeline } from "@loupe/core"
import type { MetricsError, Report } from "@loupe/metrics"
import { FunctionsError } from "@loupe/functions"
import { ZeroShot } from "@loupe/trainers"
import * as Evaluate from "./Evaluate.js"
import * as OutputFolder from "./internal/OutputFolder.js"
import * as ReportFile from "./ReportFile.js"
import type { TestResult } from "./Train.js"

/**
 * The options of `loupe train --zero-shot`: the folder, the candidate backbones (the first with a text tower
 * answers), and where to write the bundle and report.
 *
 * @since 0.2.0
 * @category models
 */
export interface ZeroShotOptions {
  readonly dir: string
  /** Backbone ids, in order of preference. */
  readonly backbones: ReadonlyArray<string>
  /** Where to write the bundle: a folder that does not exist yet, or is empty, unless `overwrite`. */
  readonly out: string
  readonly overwrite?: boolean
  /** Also write a report: `.html` or `.json`. */
  readonly report?: string
}

/**
 * What a zero-shot run did: the backbone that answered, the labels and prompt templates, the evaluation (on the
 * `test/` split, or on every image), the skipped images, the bundle and report written, and timings in milliseconds.
 *
 * @since 0.2.0
 * @category models
 */
export interface ZeroShotResult {
  readonly mode: "zero-shot"
  readonly backbone: string
  readonly labels: ReadonlyArray<string>
  readonly templates: ReadonlyArray<string>
  /** `test`: the `test/` split; `all`: every image of the folder (it has no split). */
  readonly evaluatedOn: "test" | "all"
  readonly test: TestResult
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>
  readonly bundle: string
  readonly report?: string
  readonly timings: { readonly embedMs: number; readonly totalMs: number }
}

/**
 * Evaluate the zero-shot classifier on a folder and save it (see the module docs). `out` is checked before any work.
 * Fails with `FunctionsError` `InvalidOptions` naming `backbone` when none of `backbones` has a text tower (or
 * `out`, or `--report`), with `CoreError` when the folder, a backbone or its text tower cannot be read, and with
 * `MetricsError` when the report cannot be written.
 *
 * @since 0.2.0
 * @category training
 */
export const run: (
  options: ZeroShotOptions
) => Effect.Effect<
  ZeroShotResult,
  FunctionsError.FunctionsError | CoreError.CoreError | MetricsError.MetricsError,
  Registry.Registry | LoupeConfig.LoupeConfig | FileSystem.FileSystem | Scope.Scope
> = Effect.fn("ZeroShotTrain.run")(function*(options: ZeroShotOptions) {
  const started = performance.now()
  const out = path.resolve(options.out)
  yield* OutputFolder.checkFree(out, options.overwrite ?? false)
  const registry = yield* Registry.Registry
  const plugins = yield* Effect.forEach(options.backbones, (id) => registry.backbone(id))
  const backbone = plugins.find((p) => p.textTower !== undefined)?.info.id
  if (backbone === undefined) {
    return yield* new FunctionsError.FunctionsError({
      reason: "InvalidOptions",
      field: "backbone",
      message: `--zero-shot needs a backbone with a text tower (CLIP, SigLIP); none of [${options.backbones.join(", ")}] has one. ` +
        "Name one with --backbone."
    })
  }
  const split = yield* Dataset.fromSplitFolders(options.dir)
  const labels = split.train.labels
  const head = yield* ZeroShot.fromEncoder(yield* TextTower.load(backbone), labels).pipe(
    Effect.mapError((e) => new FunctionsError.FunctionsError({ reason: "TrainingFailed", field: "backbone", message: e.message, cause: e }))
  )
  const fitted: Pipeline.FittedPipeline = { labels, backbone: yield* Registry.loadBackbone(backbone), backboneOptions: {}, head, embed: {} }
  const embedStart = performance.now()
  const hasTest = split.test !== undefined && split.test.samples.length > 0
  const evaluated = yield* Evaluate.evaluateDataset(fitted, hasTest ? split.test! : split.train)
  const embedMs = Math.round(performance.now() - embedStart)
  const test: TestResult = { ...evaluated.evaluation, macroF1: evaluated.evaluation.macro.f1, predictions: evaluated.predictions }
  const skipped = [...(hasTest ? split.train.skipped : []), ...evaluated.skipped]
  const timings = { embedMs, totalMs: Math.round(performance.now() - started) }
  yield* Bundle.save(fitted, out, {
    selected: { backbone, head: { kind: ZeroShot.kind, params: {} } },
    test: { accuracy: test.accuracy, correct: test.correct, total: test.total },
    timings
  })
  const report = options.report === undefined ? undefined : path.resolve(options.report)
  if (report !== undefined) {
    const input: Report.ReportInput = {
      title: "Loupe zero-shot report",
      subtitle: options.dir,
      model: { description: `${backbone} + zero-shot (${ZeroShot.templates.length} prompt templates per label, no training)` },
      evaluations: [{
        name: hasTest ? "Test set" : "All images",
        description: `${test.total} images, none trained on`,
        evaluation: evaluated.evaluation,
        misclassified: evaluated.misclassified
      }],
      timings: [{ name: "embed", seconds: embedMs / 1000 }, { name: "total", seconds: timings.totalMs / 1000 }]
    }
    yield* ReportFile.write(report, input)
  }
  return {
    mode: "zero-shot",
    backbone,
    labels,
    templates: ZeroShot.templates,
    evaluatedOn: hasTest ? "test" : "all",
    test,
    skipped,
    bundle: out,
    ...(report === undefined ? {} : { report }),
    timings
  } satisfies ZeroShotResult
})
