/**
 * Predict with a saved bundle.
 *
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { Bundle, Pipeline } from "@loupe/core"
import type { CoreError, LoupeConfig, Registry } from "@loupe/core"
import type { FunctionsError } from "@loupe/functions"
import { TagsAutoML } from "@loupe/functions"
import { OneVsRest } from "@loupe/trainers"
import type { Scope } from "effect"

/**
 * The prediction for one file: the top label and its confidence in [0, 1] and every label's confidence; or,
 * when the image could not be used, `null`s, no confidences and the `error`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PredictLine {
  readonly file: string
  readonly labelName: string | null
  readonly confidence: number | null
  readonly labelConfidences: ReadonlyArray<Pipeline.LabelConfidence>
  /** Why the image could not be used, when it could not. */
  readonly error?: string
}

/**
 * `loupe predict`: predict each file with the bundle in `dir`, one line per file in input order; unreadable
 * files get an `error` line instead of stopping the run. Fails with `CoreError` when the bundle cannot be loaded.
 *
 * @since 0.1.0
 * @category prediction
 */
export const predictFiles: (
  dir: string,
  files: ReadonlyArray<string>
) => Effect.Effect<
  ReadonlyArray<PredictLine>,
  CoreError.CoreError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope | FileSystem.FileSystem
> = Effect.fn("Predict.predictFiles")(function*(dir: string, files: ReadonlyArray<string>) {
  const { fitted } = yield* Bundle.load(dir)
  const samples = files.map((file) => ({ id: file, source: file }))
  const { predictions, skipped } = yield* Pipeline.predictMany(fitted, samples)
  const byFile = new Map<string, PredictLine>()
  for (const { sample, prediction } of predictions) byFile.set(sample.id, { file: sample.id, ...prediction })
  for (const { sample, reason } of skipped) {
    byFile.set(sample.id, { file: sample.id, labelName: null, confidence: null, labelConfidences: [], error: reason })
  }
  return files.map((f) => byFile.get(f)!)
})

/**
 * Whether the bundle in `dir` is an image-tags model (`loupe train --tags`), from its manifest. Fails with
 * `CoreError` when the manifest cannot be read.
 *
 * @since 0.2.0
 * @category prediction
 */
export const isTagsBundle = (dir: string): Effect.Effect<boolean, CoreError.CoreError, FileSystem.FileSystem> =>
  Effect.map(Bundle.readManifest(dir), (manifest) => manifest.head.kind === OneVsRest.kind)

/**
 * The tags of one file: every tag with its probability, threshold and whether it passes; or, when the image could
 * not be used, no tags and the `error`.
 *
 * @since 0.2.0
 * @category models
 */
export interface TagsLine {
  readonly file: string
  readonly tags: ReadonlyArray<TagsAutoML.TagPrediction>
  /** Why the image could not be used, when it could not. */
  readonly error?: string
}

/**
 * `loupe predict` on a tags bundle: every tag of each file, one line per file in input order; unreadable files get an
 * `error` line. Fails with `CoreError` when the bundle cannot be loaded, `FunctionsError` when it is not a tags model.
 *
 * @since 0.2.0
 * @category prediction
 */
export const predictTagFiles: (
  dir: string,
  files: ReadonlyArray<string>
) => Effect.Effect<
  ReadonlyArray<TagsLine>,
  CoreError.CoreError | FunctionsError.FunctionsError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope | FileSystem.FileSystem
> = Effect.fn("Predict.predictTagFiles")(function*(dir: string, files: ReadonlyArray<string>) {
  const { fitted } = yield* Bundle.load(dir)
  const { predictions, skipped } = yield* TagsAutoML.predictMany(fitted, files.map((file) => ({ id: file, source: file })))
  const byFile = new Map<string, TagsLine>()
  for (const { sample, tags } of predictions) byFile.set(sample.id, { file: sample.id, tags })
  for (const { reason, sample } of skipped) byFile.set(sample.id, { file: sample.id, tags: [], error: reason })
  return files.map((f) => byFile.get(f)!)
})
