/**
 * How a training run is shown: one stable JSON object (`--json`) or a short human summary.
 *
 * @since 0.1.0
 */
import { AutoML } from "@loupe/functions"
import type { TrainResult } from "./Train.js"

const round = (x: number) => Math.round(x * 1e4) / 1e4

/**
 * The `--json` object. `cv`, `test`, `selected` and `timings` keep their field names across releases;
 * `backboneChoice` (which backbones were searched, and why) is there when the preset said.
 */
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
  test: result.test && {
    accuracy: result.test.accuracy,
    macroF1: result.test.macroF1,
    correct: result.test.correct,
    total: result.test.total,
    labels: result.test.labels,
    confusionMatrix: result.test.confusionMatrix,
    perClass: result.test.perClass,
    predictions: result.test.predictions.map((p) => ({
      file: p.file,
      trueLabel: p.trueLabel,
      labelName: p.labelName,
      confidence: p.confidence
    }))
  },
  selected: result.selected,
  ...(result.backboneChoice ? { backboneChoice: result.backboneChoice } : {}),
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
  if (result.test) {
    lines.push(
      `test       accuracy ${round(result.test.accuracy)}  (${result.test.correct}/${result.test.total})  macro-F1 ${round(result.test.macroF1)}`
    )
    const width = Math.max(...result.test.labels.map((l) => l.length), 4)
    lines.push(`confusion  ${"".padEnd(width)}  ${result.test.labels.map((l) => l.padStart(width)).join(" ")}  (rows: true, columns: predicted)`)
    result.test.confusionMatrix.forEach((row, i) =>
      lines.push(`           ${result.test!.labels[i]!.padEnd(width)}  ${row.map((n) => String(n).padStart(width)).join(" ")}`)
    )
  }
  if (result.backboneChoice) lines.push(`backbones  ${result.backboneChoice.backbones.join(", ")}: ${result.backboneChoice.reason}`)
  for (const s of result.skipped) lines.push(`skipped    ${s.file}: ${s.reason}`)
  lines.push(`bundle     saved to ${result.bundle}`)
  if (result.report !== undefined) lines.push(`report     saved to ${result.report}`)
  lines.push(`time       embed ${result.timings.embedMs} ms, train ${result.timings.trainMs} ms, total ${result.timings.totalMs} ms`)
  return lines.join("\n")
}
