/**
 * Write a report file chosen by extension: `.html` (self-contained page) or `.json` (the stable JSON report).
 *
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { HtmlReport, JsonReport } from "@loupe/metrics"
import type { MetricsError, Report } from "@loupe/metrics"
import { FunctionsError } from "@loupe/functions"

export const write = (file: string, input: Report.ReportInput): Effect.Effect<
  void,
  MetricsError.MetricsError | FunctionsError.FunctionsError,
  FileSystem.FileSystem
> => {
  if (file.endsWith(".html") || file.endsWith(".htm")) return HtmlReport.write(input, file)
  if (file.endsWith(".json")) return JsonReport.write(input, file)
  return Effect.fail(
    new FunctionsError.FunctionsError({ reason: "InvalidOptions", field: "--report", file, message: `--report ${file}: use a .html or .json file name` })
  )
}
