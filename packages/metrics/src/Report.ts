/**
 * The data every report is built from: plain values the CLI (or any caller) fills in after training or evaluating.
 * `TerminalReport`, `JsonReport` and `HtmlReport` all take a `ReportInput`.
 *
 * @since 0.1.0
 */
import type { Sample } from "@loupe/core"
import type { Evaluation } from "./Classification.js"

/**
 * An image the model got wrong, as the reports show it.
 *
 * @since 0.1.0
 * @category models
 */
export interface MisclassifiedItem {
  /** A file path or the image bytes; the HTML report turns it into a thumbnail. */
  readonly source: Sample.ImageSource
  /** A short name shown under the thumbnail, e.g. the sample id `dogs/dog.4001.jpg`. */
  readonly id?: string
  readonly trueLabel: string
  readonly predictedLabel: string
  /** Probability of the predicted label, in [0, 1]. */
  readonly confidence: number
}

/**
 * One evaluation (cross-validation, a test set, ...) with the mistakes it found.
 *
 * @since 0.1.0
 * @category models
 */
export interface NamedEvaluation {
  /** A heading, e.g. `Test set` or `Cross-validation`. */
  readonly name: string
  /** One line of context, e.g. `5-fold stratified, out-of-fold predictions on 200 images`. */
  readonly description?: string
  /** What `Classification.evaluate` returned. */
  readonly evaluation: Evaluation
  /** The images to show as mistakes; without it the HTML report has no mistakes section for this evaluation. */
  readonly misclassified?: ReadonlyArray<MisclassifiedItem>
}

/**
 * One candidate of a model search, a row of the leaderboard.
 *
 * @since 0.1.0
 * @category models
 */
export interface LeaderboardRow {
  /** What was tried, e.g. `onnx:mobilenetv2-int8 + logistic (l2 = 1)`. */
  readonly candidate: string
  /** Scores by metric name (`accuracy`, `macroF1`, `logLoss`, ...), as in `Classification.metrics`. */
  readonly metrics: Readonly<Record<string, number>>
  /** Wall-clock time spent fitting it, in seconds. */
  readonly fitSeconds: number
  /** The candidate that was kept. */
  readonly selected?: boolean
}

/**
 * A stage and how long it took in seconds, e.g. `{ name: "embedding", seconds: 4.2 }`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Timing {
  readonly name: string
  readonly seconds: number
}

/**
 * The model a report describes.
 *
 * @since 0.1.0
 * @category models
 */
export interface ModelDescription {
  /** One line, e.g. `MobileNetV2 (int8) embeddings + logistic regression`. */
  readonly description: string
  /** Key facts shown as a list, e.g. `{ backbone: "onnx:mobilenetv2-int8", "head.l2": 1 }`. */
  readonly details?: Readonly<Record<string, string | number | boolean>>
}

/**
 * Everything a report shows. Only `title` and `evaluations` are required; a missing section is left out.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReportInput {
  /** The heading, e.g. the dataset's name. */
  readonly title: string
  /** One line under the title, e.g. the dataset's folder. */
  readonly subtitle?: string
  /** Shown in the header; defaults to the time the report is rendered. */
  readonly generatedAt?: Date
  /** The model that was kept. */
  readonly model?: ModelDescription
  /** Rendered in order; put the headline one (usually the test set) first. */
  readonly evaluations: ReadonlyArray<NamedEvaluation>
  /** In the order to show, best first. */
  readonly leaderboard?: ReadonlyArray<LeaderboardRow>
  /** Shown in the footer (terminal) or the model section (HTML), in order. */
  readonly timings?: ReadonlyArray<Timing>
}
