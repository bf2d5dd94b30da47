/**
 * @loupe/metrics: classification metrics and the reports built on them (terminal, JSON, confusion-matrix image,
 * HTML).
 *
 * @since 0.1.0
 */
export * as Classification from "./Classification.js"
export * as MetricsError from "./MetricsError.js"
