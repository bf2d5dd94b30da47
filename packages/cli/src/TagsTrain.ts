/**
 * The image-tags (multi-label) run behind `loupe train DIR --tags`: read the tags manifest in `DIR`, fit with
 * `TagsAutoML`, save a bundle, and summarise the cross-validated multi-label metrics.
 *
 * The manifest is `DIR/tags.csv` (lines `path,tag1;tag2`: tags separated by semicolons, an empty field for an image
 * with none of the tags; an optional header `path,tags`) or `DIR/tags.jsonl` (lines `{"path": ..., "tags": [...]}`).
 * Paths are relative to `DIR` or absolute.
 *
 * @since 0.2.0
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Bundle, CoreError, Dataset } from "@loupe/core"
import type { LoupeConfig, Registry } from "@loupe/core"
import type { FunctionsError } from "@loupe/functions"
import { TagsAutoML } from "@loupe/functions"
import * as OutOption from "./internal/OutOption.js"

/**
 * The manifest names `loupe train --tags` looks for in its folder, in order.
 *
 * @since 0.2.0
 * @category constants
 */
export const manifestNames: ReadonlyArray<string> = ["tags.csv", "tags.jsonl"]

/**
 * The options of `loupe train --tags`: the tags fit options, the folder holding the manifest, and where to write
 * the bundle.
 *
 * @since 0.2.0
 * @category models
 */
export interface TagsTrainOptions extends TagsAutoML.FitOptions {
  readonly dir: string
  readonly out: string
  readonly overwrite?: boolean
}

/**
 * What a tags run did: the fit's selection, cross-validated metrics, thresholds and leaderboard, the skipped images,
 * the manifest read and the bundle written, and timings in milliseconds.
 *
 * @since 0.2.0
 * @category models
 */
export interface TagsTrainResult extends Omit<TagsAutoML.FitResult, "fitted" | "outOfFold" | "timings"> {
  readonly manifest: string
  readonly bundle: string
  readonly timings: TagsAutoML.FitResult["timings"] & { readonly totalMs: number }
}

/** The one tags manifest in `dir`; `InvalidManifest` naming `dir` when there is none or more than one. */
const manifestIn = (dir: string): Effect.Effect<string, CoreError.CoreError> => {
  const found = manifestNames.map((name) => path.join(dir, name)).filter((file) => fs.existsSync(file))
  if (found.length === 1) return Effect.succeed(found[0]!)
  return Effect.fail(
    new CoreError.CoreError({
      reason: "InvalidManifest",
      file: dir,
      message: found.length === 0
        ? `No tags manifest in ${dir}: --tags reads ${manifestNames.join(" or ")} there (lines "path,tag1;tag2" or {"path": ..., "tags": [...]})`
        : `Both ${manifestNames.join(" and ")} are in ${dir}; keep one`
    })
  )
}

/**
 * `loupe train --tags`: read the manifest, fit, and save the bundle to `out` (checked before any work, as
 * `Train.train` checks it). Fails with `CoreError` on a missing or malformed manifest (naming the file and line), a
 * dataset that cannot be trained on (naming the tag) or a failed bundle write, and with `FunctionsError` when the fit
 * fails.
 *
 * @since 0.2.0
 * @category training
 */
export const train: (
  options: TagsTrainOptions
) => Effect.Effect<
  TagsTrainResult,
  FunctionsError.FunctionsError | CoreError.CoreError,
  Registry.Registry | LoupeConfig.LoupeConfig | FileSystem.FileSystem | Scope.Scope
> = Effect.fn("TagsTrain.train")(function*(options: TagsTrainOptions) {
  const started = performance.now()
  const out = path.resolve(options.out)
  yield* OutOption.checkFree(out, Bundle.FORMAT, options.overwrite ?? false)
  const manifest = yield* manifestIn(options.dir)
  const dataset = yield* Dataset.fromManifest(manifest, { tags: true })
  const fit = yield* TagsAutoML.fit(dataset, options)
  const timings = { ...fit.timings, totalMs: Math.round(performance.now() - started) }
  yield* Bundle.save(fit.fitted, out, {
    task: "tags",
    selected: fit.selected,
    cv: { microF1: fit.cv.micro.f1, macroF1: fit.cv.macro.f1, meanAveragePrecision: fit.cv.meanAveragePrecision, folds: fit.cv.folds },
    thresholds: fit.thresholds,
    timings
  })
  const { fitted: _fitted, outOfFold: _outOfFold, ...rest } = fit
  return { ...rest, skipped: [...dataset.skipped, ...fit.skipped], manifest, bundle: out, timings } satisfies TagsTrainResult
})

const pct = (x: number | null) => (x === null ? "  n/a" : `${(100 * x).toFixed(1).padStart(5)}`)

/**
 * The run in text: the selected model, micro and macro precision, recall and F1, mAP, and a line per tag (support,
 * precision, recall, F1, average precision, threshold and where it comes from).
 *
 * @since 0.2.0
 * @category formatting
 */
export const toText = (result: TagsTrainResult): string => {
  const { cv } = result
  const width = Math.max(3, ...cv.perTag.map((t) => t.tag.length))
  const threshold = new Map(result.thresholds.map((t) => [t.tag, t]))
  return [
    `Selected: ${result.selected.backbone} + one-vs-rest logistic regression l2=${result.selected.l2}`,
    `Cross-validation: ${cv.folds}-fold iterative stratification${cv.repeats > 1 ? `, repeated ${cv.repeats} times` : ""}, ${cv.total} images, ${cv.tags.length} tags`,
    `  micro  P ${pct(cv.micro.precision)}  R ${pct(cv.micro.recall)}  F1 ${pct(cv.micro.f1)}`,
    `  macro  P ${pct(cv.macro.precision)}  R ${pct(cv.macro.recall)}  F1 ${pct(cv.macro.f1)}`,
    `  mAP ${pct(cv.meanAveragePrecision)}   exact match ${pct(cv.exactMatch)}`,
    `  (F1s at thresholds chosen on these out-of-fold probabilities lean optimistic; mAP does not depend on them)`,
    `  ${"tag".padEnd(width)}  support      P      R     F1     AP  threshold`,
    ...cv.perTag.map((t) => {
      const th = threshold.get(t.tag)!
      return `  ${t.tag.padEnd(width)}  ${String(t.support).padStart(7)}  ${pct(t.precision)}  ${pct(t.recall)}  ${pct(t.f1)}  ${pct(t.averagePrecision)}  ${th.threshold.toFixed(3)}${
        th.source === "default" ? ` (default: ${th.positives} positives)` : ""
      }`
    }),
    ...(result.skipped.length > 0 ? [`Skipped ${result.skipped.length}: ${result.skipped.slice(0, 5).map((s) => `${s.file} (${s.reason})`).join("; ")}`] : []),
    `Saved ${result.bundle} (${(result.timings.totalMs / 1000).toFixed(1)} s)`
  ].join("\n")
}

/**
 * The run as one JSON-ready object.
 *
 * @since 0.2.0
 * @category formatting
 */
export const toJson = (
  result: TagsTrainResult
): { readonly task: "tags" } & Pick<TagsTrainResult, "selected" | "cv" | "thresholds" | "leaderboard" | "skipped" | "manifest" | "bundle" | "timings"> => ({
  task: "tags",
  selected: result.selected,
  cv: result.cv,
  thresholds: result.thresholds,
  leaderboard: result.leaderboard,
  skipped: result.skipped,
  manifest: result.manifest,
  bundle: result.bundle,
  timings: result.timings
})
