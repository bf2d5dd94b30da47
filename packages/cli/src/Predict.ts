/**
 * Predict with a saved bundle.
 *
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { Bundle, Pipeline } from "@loupe/core"
import type { CoreError, LoupeConfig, Registry } from "@loupe/core"
import type { Scope } from "effect"

export interface PredictLine {
  readonly file: string
  readonly labelName: string | null
  readonly confidence: number | null
  readonly labelConfidences: ReadonlyArray<Pipeline.LabelConfidence>
  /** Why the image could not be used, when it could not. */
  readonly error?: string
}

/** Predict each file with the bundle in `dir`; unreadable files get an `error` line instead of stopping the run. */
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
