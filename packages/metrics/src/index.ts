/**
 * @loupe/metrics: classification metrics and the reports built on them (terminal, JSON, confusion-matrix image,
 * reliability diagram, HTML).
 *
 * @since 0.1.0
 */
export * as Classification from "./Classification.js"
export * as ConfusionMatrixImage from "./ConfusionMatrixImage.js"
export * as HtmlReport from "./HtmlReport.js"
export * as JsonReport from "./JsonReport.js"
export * as MetricsError from "./MetricsError.js"
export * as ReliabilityDiagram from "./ReliabilityDiagram.js"
export * as Report from "./Report.js"
export * as TerminalReport from "./TerminalReport.js"
