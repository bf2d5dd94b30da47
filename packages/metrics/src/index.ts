/**
 * @loupe/metrics: classification metrics and the reports built on them (terminal, JSON, confusion-matrix image,
 * reliability diagram, HTML).
 *
 * A typical run evaluates predicted probabilities with `Classification.evaluate`, wraps the result in a
 * `Report.ReportInput`, and hands that to `TerminalReport`, `JsonReport` or `HtmlReport`. Everything fails with
 * `MetricsError`.
 *
 * @since 0.1.0
 */

/**
 * Metrics from true class indices and predicted probabilities (accuracy, F1, ROC-AUC, log loss, calibration, a
 * bootstrap interval, ...), `evaluate` for all of them at once, and the same scores under the core `Metric` contract.
 *
 * @since 0.1.0
 */
export * as Classification from "./Classification.js"

/**
 * The confusion matrix as an SVG document or PNG bytes.
 *
 * @since 0.1.0
 */
export * as ConfusionMatrixImage from "./ConfusionMatrixImage.js"

/**
 * One self-contained HTML page with the metrics, figures and every misclassified image.
 *
 * @since 0.1.0
 */
export * as HtmlReport from "./HtmlReport.js"

/**
 * The report as a JSON document with a stable, versioned shape.
 *
 * @since 0.1.0
 */
export * as JsonReport from "./JsonReport.js"

/**
 * The one error type of this package.
 *
 * @since 0.1.0
 */
export * as MetricsError from "./MetricsError.js"

/**
 * The reliability (calibration) diagram as an SVG document.
 *
 * @since 0.1.0
 */
export * as ReliabilityDiagram from "./ReliabilityDiagram.js"

/**
 * The data every report is built from.
 *
 * @since 0.1.0
 */
export * as Report from "./Report.js"

/**
 * The report as aligned terminal text, coloured on a TTY.
 *
 * @since 0.1.0
 */
export * as TerminalReport from "./TerminalReport.js"

/**
 * Per-label image counts, imbalance and too-few warnings, and cross-validated recall per label.
 *
 * @since 0.2.0
 */
export * as ClassHealth from "./ClassHealth.js"

/**
 * Exact and near-duplicate images, with the pairs that leak across folds or splits and those with conflicting labels.
 *
 * @since 0.2.0
 */
export * as Duplicates from "./Duplicates.js"

/**
 * Every data analysis at once, named by image id and label, as JSON-ready data.
 *
 * @since 0.2.0
 */
export * as Insights from "./Insights.js"

/**
 * Label-noise suspects by confident learning on out-of-fold probabilities.
 *
 * @since 0.2.0
 */
export * as LabelNoise from "./LabelNoise.js"

/**
 * Images far from every label's centre.
 *
 * @since 0.2.0
 */
export * as Outliers from "./Outliers.js"

/**
 * The insights as terminal text and as a self-contained HTML page.
 *
 * @since 0.2.0
 */
export * as InsightsReport from "./InsightsReport.js"

/**
 * Multi-label (image tags) metrics: per-tag precision, recall, F1 and support, micro and macro averages, mAP.
 *
 * @since 0.2.0
 */
export * as MultiLabel from "./MultiLabel.js"
