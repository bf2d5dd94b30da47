/**
 * How a training run is shown: one stable JSON object (`--json`) or a short human summary.
 *
 * @since 0.1.0
 */
import { AutoML } from "@loupe/functions"
import type { TestResult, TrainResult } from "./Train.js"
import type { ZeroShotResult } from "./ZeroShotTrain.js"

const round = (x: number) => Math.round(x * 1e4) / 1e4

/** A test evaluation in the `--json` objects. */
const testJson = (test: TestResult) => ({
  accuracy: test.accuracy,
  macroF1: test.macroF1,
  correct: test.correct,
  total: test.total,
  labels: test.labels,
  confusionMatrix: test.confusionMatrix,
  perClass: test.perClass,
  predictions: test.predictions.map((p) => ({
    file: p.file,
    trueLabel: p.trueLabel,
    labelName: p.labelName,
    confidence: p.confidence
  }))
})

/** A test evaluation in the text summaries: accuracy and the confusion matrix. */
const testLines = (test: TestResult): Array<string> => {
  const width = Math.max(...test.labels.map((l) => l.length), 4)
  return [
    `test       accuracy ${round(test.accuracy)}  (${test.correct}/${test.total})  macro-F1 ${round(test.macroF1)}`,
    `confusion  ${"".padEnd(width)}  ${test.labels.map((l) => l.padStart(width)).join(" ")}  (rows: true, columns: predicted)`,
    ...test.confusionMatrix.map((row, i) => `           ${test.labels[i]!.padEnd(width)}  ${row.map((n) => String(n).padStart(width)).join(" ")}`)
  ]
}

/** The `--json` object. `cv`, `test`, `selected` and `timings` keep their field names across releases. */
export const toJson = (result: TrainResult) => ({
  cv: {
    accuracy: result.cv.accuracy,
    macroF1: result.cv.macroF1,
    folds: result.cv.folds,
    repeats: result.cv.repeats,
    total: result.cv.total,
    correct: result.cv.correct,
    logLoss: result.cv.logLoss,
    ece: result.cv.ece
  },
  test: result.test && testJson(result.test),
  selected: result.selected,
  leaderboard: result.leaderboard,
  earlierRungs: result.earlierRungs,
  skipped: result.skipped,
  bundle: result.bundle,
  ...(result.report === undefined ? {} : { report: result.report }),
  timings: result.timings
})

export const toText = (result: TrainResult): string => {
  const lines = [
    `selected   ${AutoML.describeCandidate(result.selected)}`,
    `cv         accuracy ${round(result.cv.accuracy)}  macro-F1 ${round(result.cv.macroF1)}  (${result.cv.folds}-fold${result.cv.repeats > 1 ? ` x ${result.cv.repeats}` : ""}, ${result.cv.total} images)`
  ]
  if (result.test) lines.push(...testLines(result.test))
  for (const s of result.skipped) lines.push(`skipped    ${s.file}: ${s.reason}`)
  lines.push(`bundle     saved to ${result.bundle}`)
  if (result.report !== undefined) lines.push(`report     saved to ${result.report}`)
  lines.push(`time       embed ${result.timings.embedMs} ms, train ${result.timings.trainMs} ms, total ${result.timings.totalMs} ms`)
  return lines.join("\n")
}

/** The `--json` object of `loupe train --zero-shot`: `mode`, the backbone, labels and templates, and `test` as above. */
export const zeroShotJson = (result: ZeroShotResult) => ({
  mode: result.mode,
  backbone: result.backbone,
  labels: result.labels,
  templates: result.templates,
  evaluatedOn: result.evaluatedOn,
  test: testJson(result.test),
  skipped: result.skipped,
  bundle: result.bundle,
  ...(result.report === undefined ? {} : { report: result.report }),
  timings: result.timings
})

/** The text summary of `loupe train --zero-shot`. */
export const zeroShotText = (result: ZeroShotResult): string =>
  [
    `zero-shot  ${result.backbone}: ${result.templates.length} prompt templates per label, no training`,
    `evaluated  on ${result.evaluatedOn === "test" ? "the test split" : "every image (the folder has no test split)"}`,
    ...testLines(result.test),
    ...result.skipped.map((s) => `skipped    ${s.file}: ${s.reason}`),
    `bundle     saved to ${result.bundle}`,
    ...(result.report === undefined ? [] : [`report     saved to ${result.report}`]),
    `time       embed ${result.timings.embedMs} ms, total ${result.timings.totalMs} ms`
  ].join("\n")
