/**
 * Write a report file chosen by extension: `.html` (self-contained page) or `.json` (the stable JSON report).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { HtmlReport, JsonReport } from "@loupe/metrics"
import type { MetricsError, Report } from "@loupe/metrics"
import { AutomlError } from "./AutomlError.js"

export const write = (file: string, input: Report.ReportInput): Effect.Effect<void, MetricsError.MetricsError | AutomlError> => {
  if (file.endsWith(".html") || file.endsWith(".htm")) return HtmlReport.write(input, file)
  if (file.endsWith(".json")) return JsonReport.write(input, file)
  return Effect.fail(
    new AutomlError({ reason: "InvalidOptions", field: "--report", file, message: `--report ${file}: use a .html or .json file name` })
  )
}
