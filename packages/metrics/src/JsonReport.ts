/**
 * The JSON report: a stable, documented shape (see the package README) for scripts and dashboards. Image bytes are
 * never embedded; a misclassified image is referred to by its path (or `null` when it was given as bytes).
 *
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import type { Effect } from "effect"
import type { Evaluation } from "./Classification.js"
import type { MetricsError } from "./MetricsError.js"
import type { ModelDescription, ReportInput, Timing } from "./Report.js"
import { writeText } from "./internal/WriteFile.js"

/**
 * A misclassified image in the JSON report.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonMisclassified {
  /** The image's path; `null` when it was given as bytes. */
  readonly source: string | null
  /** The short name given with it, or `null`. */
  readonly id: string | null
  readonly trueLabel: string
  readonly predictedLabel: string
  /** Probability of the predicted label, in [0, 1]. */
  readonly confidence: number
}

/**
 * One evaluation in the JSON report: `Report.NamedEvaluation` with every key present.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonEvaluation {
  readonly name: string
  readonly description: string | null
  readonly evaluation: Evaluation
  /** In the order given (an empty array when none were given). */
  readonly misclassified: ReadonlyArray<JsonMisclassified>
}

/**
 * One leaderboard row in the JSON report: `Report.LeaderboardRow` with `selected` always present.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonLeaderboardRow {
  readonly candidate: string
  readonly metrics: Readonly<Record<string, number>>
  /** Seconds. */
  readonly fitSeconds: number
  readonly selected: boolean
}

/**
 * The JSON report document (schema `loupe/report`, version 1). Every key is always present: optional inputs become
 * `null` or empty arrays, so a consumer never has to test for a missing key.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonReport {
  readonly schema: "loupe/report"
  /** Bumped on any incompatible change of this shape. */
  readonly version: 1
  readonly title: string
  readonly subtitle: string | null
  /** ISO 8601. */
  readonly generatedAt: string
  readonly model: ModelDescription | null
  readonly evaluations: ReadonlyArray<JsonEvaluation>
  readonly leaderboard: ReadonlyArray<JsonLeaderboardRow>
  readonly timings: ReadonlyArray<Timing>
}

/**
 * The report as a plain JSON-ready value (optional fields become `null` or empty arrays, so every key is always
 * there). `generatedAt` defaults to now.
 *
 * @since 0.1.0
 * @category rendering
 */
export const make = (input: ReportInput): JsonReport => ({
  schema: "loupe/report",
  version: 1,
  title: input.title,
  subtitle: input.subtitle ?? null,
  generatedAt: (input.generatedAt ?? new Date()).toISOString(),
  model: input.model === undefined ? null : { description: input.model.description, details: input.model.details ?? {} },
  evaluations: input.evaluations.map((e) => ({
    name: e.name,
    description: e.description ?? null,
    evaluation: e.evaluation,
    misclassified: (e.misclassified ?? []).map((m) => ({
      source: typeof m.source === "string" ? m.source : null,
      id: m.id ?? null,
      trueLabel: m.trueLabel,
      predictedLabel: m.predictedLabel,
      confidence: m.confidence
    }))
  })),
  leaderboard: (input.leaderboard ?? []).map((r) => ({
    candidate: r.candidate,
    metrics: r.metrics,
    fitSeconds: r.fitSeconds,
    selected: r.selected ?? false
  })),
  timings: input.timings ?? []
})

/**
 * The report as JSON text, ending with a newline; `indent` is the number of spaces per level (2 by default).
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (input: ReportInput, indent = 2): string => `${JSON.stringify(make(input), null, indent)}\n`

/**
 * Writes the JSON report to `file`, creating its folder. Fails with a `MetricsError` (reason `Io`, `file` set) when
 * the folder or file cannot be written.
 *
 * @since 0.1.0
 * @category writing
 */
export const write = (input: ReportInput, file: string): Effect.Effect<void, MetricsError, FileSystem.FileSystem> =>
  writeText(file, render(input))
