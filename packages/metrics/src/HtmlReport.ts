/**
 * The HTML report: one self-contained file (inline CSS, inline SVG figures, thumbnails as JPEG data URIs, no script
 * and no external request) with the selected model, the leaderboard, and for each evaluation its headline metrics,
 * confusion matrix, reliability diagram, per-class bars and every misclassified image with its true label,
 * predicted label and confidence.
 *
 * An image that cannot be read becomes a labelled placeholder tile; it never fails the report.
 *
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import { Effect, Either } from "effect"
import type { Evaluation } from "./Classification.js"
import * as ConfusionMatrixImage from "./ConfusionMatrixImage.js"
import type { MetricsError } from "./MetricsError.js"
import * as ReliabilityDiagram from "./ReliabilityDiagram.js"
import type { LeaderboardRow, MisclassifiedItem, NamedEvaluation, ReportInput } from "./Report.js"
import { duration, escape, fixed, percent } from "./internal/Format.js"
import { pageStart } from "./internal/HtmlStyle.js"
import * as Leaderboard from "./internal/Leaderboard.js"
import * as Thumbnail from "./internal/Thumbnail.js"
import { writeText } from "./internal/WriteFile.js"

/**
 * Settings of `render` and `write`.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** Side of the square thumbnails in pixels (shown at about 156 CSS px). Default 192. */
  readonly thumbnailSize?: number
  /** Thumbnails decoded at once. Default 4. */
  readonly concurrency?: number
}

type Thumb = Either.Either<string, MetricsError>

const kpi = (label: string, value: string, note = "", hero = false) =>
  `<div class="kpi${hero ? " hero" : ""}"><div class="label">${escape(label)}</div>` +
  `<div class="value">${escape(value)}</div><div class="note">${escape(note)}</div></div>`

const kpis = (ev: Evaluation): string => {
  const ci = ev.accuracyCI
  const [topK, ...moreTopK] = ev.topKAccuracy
  const rest = [
    kpi("Balanced accuracy", percent(ev.balancedAccuracy), "mean recall per class"),
    kpi("Macro F1", fixed(ev.macro.f1), `precision ${fixed(ev.macro.precision)} · recall ${fixed(ev.macro.recall)}`),
    ...(topK === undefined
      ? []
      : [kpi(
        `Top-${topK.k} accuracy`,
        percent(topK.accuracy),
        moreTopK.map((o) => `top-${o.k} ${percent(o.accuracy)}`).join(" · ") || `true class in the top ${topK.k}`
      )]),
    kpi("Log loss", fixed(ev.logLoss), "lower is better"),
    kpi("ROC-AUC", fixed(ev.rocAuc), "one-vs-rest, macro"),
    kpi("Calibration error", fixed(ev.ece), `ECE over ${ev.calibration.length} bins · lower is better`)
  ]
  return `<div class="kpis">` +
    kpi(
      "Accuracy",
      percent(ev.accuracy),
      `${ev.correct} of ${ev.total} correct\n${Math.round(ci.level * 100)}% CI ${percent(ci.lower)} – ${percent(ci.upper)}`,
      true
    ) +
    `<div class="rest">${rest.join("")}</div></div>`
}

const bar = (value: number, kind: "p" | "r" | "f") =>
  `<div class="bar"><span class="track"><span class="fill ${kind}" style="width:${(value * 100).toFixed(1)}%">` +
  `</span></span><span class="v">${fixed(value)}</span></div>`

const perClassTable = (ev: Evaluation): string => {
  const rows = ev.perClass.map((c) =>
    `<tr><td>${escape(c.label)}</td><td class="num">${c.support}</td><td>${bar(c.precision, "p")}</td>` +
    `<td>${bar(c.recall, "r")}</td><td>${bar(c.f1, "f")}</td><td class="num">${fixed(c.rocAuc)}</td></tr>`
  )
  const average = (name: string, a: Evaluation["macro"]) =>
    `<tr class="avg"><td>${name}</td><td class="num">${ev.total}</td><td>${bar(a.precision, "p")}</td>` +
    `<td>${bar(a.recall, "r")}</td><td>${bar(a.f1, "f")}</td><td></td></tr>`
  return `<div class="legend"><span><i style="background:var(--p)"></i>precision</span>` +
    `<span><i style="background:var(--r)"></i>recall</span><span><i style="background:var(--f)"></i>F1</span></div>` +
    `<div class="scroll"><table class="per-class"><thead><tr><th>Class</th><th class="num">Support</th>` +
    `<th>Precision</th><th>Recall</th><th>F1</th><th class="num">ROC-AUC</th></tr></thead><tbody>${rows.join("")}` +
    `${average("macro average", ev.macro)}${average("micro average", ev.micro)}` +
    `${average("weighted average", ev.weighted)}</tbody></table></div>`
}

const mistakeTile = (item: MisclassifiedItem, thumb: Thumb): string => {
  const name = item.id ?? (typeof item.source === "string" ? item.source : "image bytes")
  const shortName = name.split(/[\\/]/).pop() ?? name
  const image = Either.match(thumb, {
    onRight: (uri) =>
      `<img class="thumb" src="${uri}" alt="${escape(`${name}: ${item.trueLabel} predicted as ${item.predictedLabel}`)}" ` +
      `decoding="async">`,
    onLeft: (error) => `<div class="broken" title="${escape(error.message)}">could not read this image</div>`
  })
  return `<figure class="mistake"><div class="img">${image}</div><figcaption>` +
    `<div class="labels"><span class="truth">${escape(item.trueLabel)}</span><span class="arrow">→</span>` +
    `<span class="pred">${escape(item.predictedLabel)}</span></div>` +
    `<div class="conf"><span class="track"><span class="fill" style="width:${
      (item.confidence * 100).toFixed(1)
    }%"></span></span>${percent(item.confidence)}</div>` +
    `<span class="id" title="${escape(name)}">${escape(shortName)}</span></figcaption></figure>`
}

const mistakesBlock = (items: ReadonlyArray<MisclassifiedItem>, thumbs: ReadonlyArray<Thumb>): string => {
  if (items.length === 0) return `<p class="empty"><span class="ok">No mistakes.</span> Every image was classified correctly.</p>`
  const pairs = new Map<string, number>()
  for (const m of items) pairs.set(`${m.trueLabel} → ${m.predictedLabel}`, (pairs.get(`${m.trueLabel} → ${m.predictedLabel}`) ?? 0) + 1)
  const chips = [...pairs].sort((a, b) => b[1] - a[1]).map(([pair, n]) => `<span class="chip">${escape(pair)} <b>${n}</b></span>`)
  return `<div class="pairs">${chips.join("")}</div>` +
    `<div class="mistakes">${items.map((m, i) => mistakeTile(m, thumbs[i]!)).join("")}</div>`
}

const evaluationSection = (
  named: NamedEvaluation,
  index: number,
  items: ReadonlyArray<MisclassifiedItem>,
  thumbs: ReadonlyArray<Thumb>
): string => {
  const ev = named.evaluation
  const mistakesShown = named.misclassified !== undefined
  return `<section class="panel evaluation" id="evaluation-${index}">` +
    `<h2>${escape(named.name)}</h2>` +
    (named.description === undefined ? "" : `<p class="lede">${escape(named.description)}</p>`) +
    kpis(ev) +
    `<div class="figures"><div class="figure"><h3>Confusion matrix</h3>` +
    ConfusionMatrixImage.svg(ev.confusionMatrix, ev.labels) +
    `<div class="caption">Rows are true classes, columns predictions; each cell shows its count and share of the row.</div></div>` +
    `<div class="figure"><h3>Reliability</h3>` +
    ReliabilityDiagram.svg(ev.calibration, { ece: ev.ece, size: 320, title: `${named.name}: reliability diagram` }) +
    `<div class="caption">Bars on the dashed diagonal mean the confidence can be taken at face value.</div></div></div>` +
    `<h3 style="margin-top:18px">Per class</h3>${perClassTable(ev)}` +
    (mistakesShown
      ? `<h3 style="margin-top:26px">Misclassified images · ${items.length}</h3>` +
        `<p class="lede">Most confident mistakes first.</p>${mistakesBlock(items, thumbs)}`
      : "") +
    `</section>`
}

const leaderboardSection = (rows: ReadonlyArray<LeaderboardRow>): string => {
  if (rows.length === 0) return ""
  const columns = Leaderboard.columns(rows)
  const best = columns.map((c) => Leaderboard.best(rows, c))
  const body = rows.map((r, i) => {
    const cells = columns.map((c, j) => {
      const v = r.metrics[c]
      return `<td class="num${v !== undefined && v === best[j] ? " best" : ""}">${v === undefined ? "" : fixed(v)}</td>`
    })
    return `<tr${r.selected === true ? ` class="selected"` : ""}><td class="num">${i + 1}</td>` +
      `<td>${escape(r.candidate)}${r.selected === true ? `<span class="badge">selected</span>` : ""}</td>` +
      `${cells.join("")}<td class="num">${duration(r.fitSeconds)}</td></tr>`
  })
  return `<section class="panel" id="leaderboard"><h2>Leaderboard</h2>` +
    `<p class="lede">${rows.length} candidate${rows.length === 1 ? "" : "s"}; the best value of each column is in bold.</p>` +
    `<div class="scroll"><table class="leaderboard"><thead><tr><th class="num">#</th><th>Candidate</th>` +
    `${columns.map((c) => `<th class="num metric">${escape(c)}</th>`).join("")}<th class="num">Fit time</th></tr></thead>` +
    `<tbody>${body.join("")}</tbody></table></div></section>`
}

const modelSection = (input: ReportInput): string => {
  if (input.model === undefined && (input.timings ?? []).length === 0) return ""
  const details = Object.entries(input.model?.details ?? {})
  const timings = input.timings ?? []
  return `<section class="panel model" id="model"><div>` +
    (input.model === undefined ? "" : `<h3>Selected model</h3><div class="what">${escape(input.model.description)}</div>`) +
    (details.length === 0
      ? ""
      : `<div class="chips">${
        details.map(([k, v]) => `<span class="chip">${escape(k)} <b>${escape(String(v))}</b></span>`).join("")
      }</div>`) +
    `</div>` +
    (timings.length === 0
      ? ""
      : `<div class="time"><h3>Time</h3><div class="timings">${
        timings.map((t) => `<span>${escape(t.name)} <b>${duration(t.seconds)}</b></span>`).join("")
      }</div></div>`) +
    `</section>`
}

const page = (
  input: ReportInput,
  sorted: ReadonlyArray<ReadonlyArray<MisclassifiedItem>>,
  thumbs: ReadonlyArray<ReadonlyArray<Thumb>>
): string => {
  const generated = (input.generatedAt ?? new Date()).toISOString().replace("T", " ").slice(0, 16) + " UTC"
  const leaderboard = input.leaderboard ?? []
  const toc = [
    ...(leaderboard.length > 0 ? [[`#leaderboard`, "Leaderboard"]] : []),
    ...input.evaluations.map((e, i) => [`#evaluation-${i}`, e.name])
  ]
  return pageStart({ title: input.title, subtitle: input.subtitle, metaHtml: `Generated ${escape(generated)}` }) +
    (toc.length > 1
      ? `<nav class="toc">${toc.map(([href, text]) => `<a href="${href}">${escape(text!)}</a>`).join("")}</nav>`
      : `<div style="height:18px"></div>`) +
    modelSection(input) +
    leaderboardSection(leaderboard) +
    input.evaluations.map((e, i) => evaluationSection(e, i, sorted[i]!, thumbs[i]!)).join("") +
    `<footer>Made with Loupe · a single self-contained file</footer>
</div>
</body>
</html>
`
}

/**
 * The report as one self-contained HTML document. Thumbnails are made with sharp; an image that cannot be read
 * becomes a placeholder tile and a logged warning, so rendering never fails.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render: (input: ReportInput, options?: Options) => Effect.Effect<string> = Effect.fn(
  "HtmlReport.render"
)(function*(input: ReportInput, options: Options = {}) {
  const size = options.thumbnailSize ?? 192
  const sorted = input.evaluations.map((e) => [...(e.misclassified ?? [])].sort((a, b) => b.confidence - a.confidence))
  const thumbs = yield* Effect.forEach(
    sorted,
    (items) =>
      Effect.forEach(items, (item) => Effect.either(Thumbnail.dataUri(item.source, size)), {
        concurrency: options.concurrency ?? 4
      }),
    { concurrency: 1 }
  )
  const failed = thumbs.flat().filter(Either.isLeft)
  if (failed.length > 0) {
    yield* Effect.logWarning(`${failed.length} misclassified image(s) could not be read; shown as placeholders`)
  }
  return page(input, sorted, thumbs)
})

/**
 * Renders the report and writes it to `file`, creating its folder. Fails with a `MetricsError` (reason `Io`, `file`
 * set) when the folder or file cannot be written.
 *
 * @since 0.1.0
 * @category writing
 */
export const write = (input: ReportInput, file: string, options: Options = {}): Effect.Effect<void, MetricsError, FileSystem.FileSystem> =>
  render(input, options).pipe(Effect.flatMap((html) => writeText(file, html)))
