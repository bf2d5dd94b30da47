/**
 * The terminal report: aligned plain-text tables (headline metrics, per-class table, confusion matrix, the most
 * confident mistakes, the leaderboard). Colour is used only when the output stream is a TTY and `NO_COLOR` is unset.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Evaluation } from "./Classification.js"
import type { NamedEvaluation, ReportInput } from "./Report.js"
import { duration, fixed, percent, truncate } from "./internal/Format.js"
import * as Leaderboard from "./internal/Leaderboard.js"
import type { Style } from "./internal/Text.js"
import { style, table } from "./internal/Text.js"

/**
 * Settings of `render` and `write`.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** Use ANSI colours. `write` decides from the stream when this is absent; `render` defaults to no colour. */
  readonly color?: boolean
  /** Larger label sets print their most confused pairs instead of the full matrix. Default 16. */
  readonly maxMatrixClasses?: number
  /** How many of the most confident mistakes to list per evaluation. Default 5. */
  readonly mistakes?: number
}

/**
 * The stream-like target of `write`: `process.stdout`, `process.stderr` or anything with a `write(text)` method.
 *
 * @since 0.1.0
 * @category models
 */
export interface Output {
  readonly isTTY?: boolean
  readonly write: (text: string) => unknown
}

const labelWidth = 24

const headline = (ev: Evaluation, s: Style): Array<string> => {
  const ci = ev.accuracyCI
  const rows: Array<Array<string>> = [
    [
      "accuracy",
      s.bold(percent(ev.accuracy)),
      s.dim(`${Math.round(ci.level * 100)}% CI ${percent(ci.lower)}–${percent(ci.upper)}, ${ev.correct} of ${ev.total}`)
    ],
    ["balanced accuracy", percent(ev.balancedAccuracy), ""],
    ["macro F1", fixed(ev.macro.f1), s.dim(`precision ${fixed(ev.macro.precision)}, recall ${fixed(ev.macro.recall)}`)],
    ["weighted F1", fixed(ev.weighted.f1), ""],
    ...ev.topKAccuracy.map((t) => [`top-${t.k} accuracy`, percent(t.accuracy), ""]),
    ["log loss", fixed(ev.logLoss), ""],
    ["ROC-AUC", fixed(ev.rocAuc), s.dim("one-vs-rest, macro")],
    ["ECE", fixed(ev.ece), s.dim(`${ev.calibration.length} equal-width bins`)]
  ]
  return table(rows, ["left", "right", "left"])
}

const perClassTable = (ev: Evaluation, s: Style): Array<string> => {
  const row = (name: string, p: number, r: number, f: number, support: number) => [
    truncate(name, labelWidth),
    fixed(p),
    fixed(r),
    fixed(f),
    String(support)
  ]
  return table(
    [
      ["class", "precision", "recall", "f1", "support"].map(s.bold),
      ...ev.perClass.map((c) => row(c.label, c.precision, c.recall, c.f1, c.support)),
      row("macro avg", ev.macro.precision, ev.macro.recall, ev.macro.f1, ev.total).map(s.dim),
      row("weighted avg", ev.weighted.precision, ev.weighted.recall, ev.weighted.f1, ev.total).map(s.dim)
    ],
    ["left", "right", "right", "right", "right"]
  )
}

const confusedPairs = (ev: Evaluation) =>
  ev.confusionMatrix
    .flatMap((row, t) => row.map((count, p) => ({ t, p, count })))
    .filter((c) => c.t !== c.p && c.count > 0)
    .sort((a, b) => b.count - a.count || a.t - b.t || a.p - b.p)

const matrixTable = (ev: Evaluation, s: Style, maxClasses: number): Array<string> => {
  const names = ev.labels.map((l) => truncate(l, 12))
  if (ev.labels.length > maxClasses) {
    const pairs = confusedPairs(ev).slice(0, 10)
    return [
      s.dim(`  ${ev.labels.length} classes: the full confusion matrix is in the JSON and HTML reports`),
      ...table(pairs.map((c) => [truncate(ev.labels[c.t]!, labelWidth), "→", truncate(ev.labels[c.p]!, labelWidth), String(c.count)]), [
        "left",
        "left",
        "left",
        "right"
      ])
    ]
  }
  const cell = (count: number, t: number, p: number) =>
    count === 0 ? s.dim("0") : t === p ? s.green(String(count)) : s.red(String(count))
  return table(
    [
      [s.dim("true \\ predicted"), ...names.map(s.bold)],
      ...ev.confusionMatrix.map((row, t) => [s.bold(truncate(ev.labels[t]!, labelWidth)), ...row.map((c, p) => cell(c, t, p))])
    ],
    ["left", ...names.map(() => "right" as const)]
  )
}

const evaluationSection = (named: NamedEvaluation, s: Style, options: Options): Array<string> => {
  const ev = named.evaluation
  const lines = [
    s.bold(s.cyan(named.name)) + (named.description === undefined ? "" : s.dim(` · ${named.description}`)),
    ...headline(ev, s),
    "",
    ...perClassTable(ev, s),
    "",
    `  ${s.bold("confusion matrix")} ${s.dim("(rows: true class, columns: predicted)")}`,
    ...matrixTable(ev, s, options.maxMatrixClasses ?? 16)
  ]
  const mistakes = [...(named.misclassified ?? [])].sort((a, b) => b.confidence - a.confidence)
  const shown = mistakes.slice(0, options.mistakes ?? 5)
  if (shown.length > 0) {
    lines.push(
      "",
      `  ${s.bold("most confident mistakes")} ${s.dim(`(${shown.length} of ${mistakes.length})`)}`,
      ...table(
        shown.map((m) => [
          truncate(m.id ?? (typeof m.source === "string" ? m.source : "image bytes"), 48),
          `${truncate(m.trueLabel, labelWidth)} → ${s.red(truncate(m.predictedLabel, labelWidth))}`,
          percent(m.confidence)
        ]),
        ["left", "left", "right"]
      )
    )
  }
  return lines
}

const leaderboardSection = (input: ReportInput, s: Style): Array<string> => {
  const rows = input.leaderboard ?? []
  if (rows.length === 0) return []
  const columns = Leaderboard.columns(rows)
  const best = columns.map((c) => Leaderboard.best(rows, c))
  return [
    s.bold(s.cyan("Leaderboard")),
    ...table(
      [
        ["#", "candidate", ...columns, "fit"].map(s.bold),
        ...rows.map((r, i) => [
          String(i + 1),
          truncate(r.candidate, 56) + (r.selected === true ? s.green(" ✓ selected") : ""),
          ...columns.map((c, j) => {
            const v = r.metrics[c]
            if (v === undefined) return ""
            return v === best[j] ? s.bold(fixed(v)) : fixed(v)
          }),
          duration(r.fitSeconds)
        ])
      ],
      ["right", "left", ...columns.map(() => "right" as const), "right"]
    ),
    ""
  ]
}

/**
 * The whole report as text, ending with a newline: the title, the model, the leaderboard, for each evaluation its
 * headline metrics, per-class table, confusion matrix (or its most confused pairs) and most confident mistakes, and
 * the timings. Never fails.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (input: ReportInput, options: Options = {}): string => {
  const s = style(options.color ?? false)
  const lines: Array<string> = [s.bold(input.title)]
  if (input.subtitle !== undefined) lines.push(s.dim(input.subtitle))
  if (input.model !== undefined) {
    lines.push(`${s.dim("model")}  ${input.model.description}`)
    const details = Object.entries(input.model.details ?? {})
    if (details.length > 0) lines.push(s.dim(`       ${details.map(([k, v]) => `${k} ${String(v)}`).join(" · ")}`))
  }
  lines.push("", ...leaderboardSection(input, s))
  for (const named of input.evaluations) lines.push(...evaluationSection(named, s, options), "")
  const timings = input.timings ?? []
  if (timings.length > 0) lines.push(s.dim(`time  ${timings.map((t) => `${t.name} ${duration(t.seconds)}`).join(" · ")}`))
  return `${lines.join("\n").trimEnd()}\n`
}

/**
 * Whether to colour output for `stream`: a TTY, and neither `NO_COLOR` nor `TERM=dumb` set.
 *
 * @since 0.1.0
 * @category rendering
 */
export const supportsColor = (stream: Output): boolean =>
  stream.isTTY === true && process.env["NO_COLOR"] === undefined && process.env["TERM"] !== "dumb"

/**
 * Writes the report to `stream` (standard output by default), coloured when `options.color` says so or, when it is
 * absent, when `supportsColor(stream)`.
 *
 * @since 0.1.0
 * @category writing
 */
export const write = (input: ReportInput, stream: Output = process.stdout, options: Options = {}): Effect.Effect<void> =>
  Effect.sync(() => {
    stream.write(render(input, { ...options, color: options.color ?? supportsColor(stream) }))
  })
