/**
 * Page 3, a function's model (`GET /console/functions/:functionId/model`): the serving model's cross-validated metrics, its confusion matrix (each cell a link to
 * the Data grid showing those samples, true label X predicted as Y out of fold), per-label precision and recall, the
 * reliability diagram, and the model versions with a button to serve any of them (rollback: `POST
 * .../models/:versionId/serve`). Everything shown comes from `Functions.metrics` and `Functions.models`; the figures
 * are `@loupe/metrics`' own SVGs, drawn on the server.
 *
 * @internal
 */
import { HttpRouter } from "@effect/platform"
import { Effect } from "effect"
import { ConfusionMatrixImage, ReliabilityDiagram } from "@loupe/metrics"
import type { FunctionsError } from "../FunctionsError.js"
import * as Functions from "../Functions.js"
import type * as Retrainer from "../Retrainer.js"
import type * as StoreTypes from "../Store.js"
import { functionIdParam, statusFragment } from "./FunctionsPage.js"
import { type Html, html, path, raw, text } from "./Html.js"
import { action, csrfField, documentResponse, page, redirect, SignedIn } from "./Page.js"

/** What the page shows: the function, the serving model's metrics (`null` before the first model) and the history. */
export interface View {
  readonly status: Functions.FunctionStatus
  readonly metrics: Functions.FunctionMetrics | null
  readonly versions: ReadonlyArray<StoreTypes.ModelVersionRecord>
}

/** Read what the page shows. */
export const load = (functionId: string): Effect.Effect<View, FunctionsError, Functions.Functions> =>
  Effect.gen(function*() {
    const functions = yield* Functions.Functions
    const status = yield* functions.get(functionId)
    const metrics = status.model === null ? null : yield* functions.metrics(functionId)
    const versions = yield* functions.models(functionId)
    return { status, metrics, versions }
  })

/**
 * The samples of one confusion-matrix cell of the serving model: those trained with label `given` and predicted as
 * `predicted` out of fold (label names). Empty for a model trained before 0.2.0, which did not keep them.
 */
export const cellSamples = (
  metrics: Retrainer.ModelMetrics,
  given: string,
  predicted: string
): ReadonlyArray<string> => {
  const oof = metrics.cv.outOfFold
  const t = metrics.cv.labels.indexOf(given)
  const p = metrics.cv.labels.indexOf(predicted)
  if (oof === undefined || t < 0 || p < 0) return []
  return oof.sampleIds.filter((_, i) => oof.given[i] === t && oof.predicted[i] === p)
}

/** The Data page's link to one confusion-matrix cell's samples (see `cellSamples`). */
export const cellHref = (functionId: string, given: string, predicted: string): string =>
  `${path("/console/functions", functionId, "data")}?${new URLSearchParams({ filter: "cell", given, predicted })}`

const percent = (v: number) => `${(v * 100).toFixed(1)}%`
const fixed = (v: number) => v.toFixed(3)

const kpi = (label: string, value: string, note = "") =>
  html`<div class="kpi"><div class="kpi-label">${label}</div><div class="kpi-value">${value}</div><div class="kpi-note">${note}</div></div>`

const headline = (m: Functions.FunctionMetrics): Html =>
  html`<div class="kpis">${[
    kpi("CV accuracy", percent(m.cv.accuracy), `${m.cv.correct} of ${m.cv.total} right, ${m.cv.folds}-fold`),
    kpi("Errors", String(m.cv.total - m.cv.correct), "out of fold"),
    kpi(
      "Macro F1",
      fixed(m.cv.macroF1),
      m.cv.macroF1StandardError === undefined ? "" : `± ${fixed(m.cv.macroF1StandardError)} across folds`
    ),
    kpi("Log loss", fixed(m.cv.logLoss), "lower is better"),
    m.cv.calibration === undefined ? null : kpi("Calibration error", fixed(m.cv.calibration.ece), "ECE, lower is better")
  ]}</div>`

const perLabel = (m: Functions.FunctionMetrics): Html =>
  html`<div class="table-wrap"><table class="per-label"><thead><tr><th>Label</th><th>Samples</th><th>Precision</th><th>Recall</th><th>F1</th></tr></thead>
<tbody>${
    m.cv.perClass.map((c) =>
      html`<tr><td>${text(c.labelName)}</td><td class="num">${c.support}</td><td class="num">${fixed(c.precision)}</td><td class="num">${
        fixed(c.recall)
      }</td><td class="num">${fixed(c.f1)}</td></tr>`
    )
  }</tbody></table></div>`

const confusion = (functionId: string, m: Functions.FunctionMetrics): Html => {
  const labels = m.cv.labels
  // The SVG escapes labels and links itself; only the serving model's own numbers and label names go in.
  const svg = ConfusionMatrixImage.svg(m.cv.confusionMatrix, labels, {
    title: "Confusion matrix (out of fold)",
    ...(m.cv.outOfFold === undefined
      ? {}
      : { cellHref: (t, p) => (m.cv.confusionMatrix[t]![p]! > 0 ? cellHref(functionId, labels[t]!, labels[p]!) : undefined) })
  })
  return html`<figure class="figure">${raw(svg)}<figcaption>Rows: the label given; columns: the label predicted by a model that did not see the sample. Open a cell to see its samples.</figcaption></figure>`
}

const reliability = (m: Functions.FunctionMetrics): Html =>
  m.cv.calibration === undefined
    ? html`<p class="muted">This model was trained before Loupe kept its calibration; retrain to see the reliability diagram.</p>`
    : html`<figure class="figure">${
      raw(ReliabilityDiagram.svg(m.cv.calibration.bins, { ece: m.cv.calibration.ece, title: "Reliability diagram (out of fold)" }))
    }<figcaption>How often the model is right at each confidence: bars on the diagonal are well calibrated.</figcaption></figure>`

const versionRow = (functionId: string, csrf: Html, v: StoreTypes.ModelVersionRecord): Html => {
  const cv = (v.metrics as Partial<Retrainer.ModelMetrics> | null)?.cv
  const action = path("/console/functions", functionId, "models", v.id, "serve")
  return html`<tr class="${v.promoted ? "serving" : ""}" data-version="${v.id}">
<td><code>${v.id}</code></td><td>${new Date(v.createdAt).toLocaleString("en-GB", { timeZone: "UTC" })} UTC</td>
<td class="num">${v.sampleCount}</td><td class="num">${cv === undefined ? "–" : percent(cv.accuracy)}</td>
<td class="num">${cv === undefined ? "–" : cv.total - cv.correct}</td>
<td>${v.promoted ? html`<strong>serving</strong>` : v.heldBack === null ? "" : html`held back: ${v.heldBack}`}</td>
<td>${
    v.promoted
      ? null
      : html`<form method="post" action="${action}">${csrf}<button type="submit" class="secondary">Serve this version</button></form>`
  }</td></tr>`
}

const versions = (functionId: string, csrf: Html, all: ReadonlyArray<StoreTypes.ModelVersionRecord>): Html =>
  all.length === 0
    ? html`<p class="muted">No model versions yet.</p>`
    : html`<div class="table-wrap"><table class="versions"><thead><tr><th>Version</th><th>Trained</th><th>Samples</th><th>CV accuracy</th><th>CV errors</th><th>State</th><th></th></tr></thead>
<tbody>${all.map((v) => versionRow(functionId, csrf, v))}</tbody></table></div>`

/** The page's content (the shell wraps it in the layout); `csrf` is the session's hidden CSRF field. */
export const render = (view: View, csrf: Html): Html => {
  const id = view.status.id
  const m = view.metrics
  return html`<section class="model-page">
${
    m === null
      ? html`<p class="empty">No model yet: ${
        view.status.training.phase === "idle" ? "add samples of at least 2 labels on the Data page." : "training is in progress."
      }</p>`
      : html`<p class="muted">Serving <code>${m.modelId}</code>${m.upToDate ? "" : " (the data changed since: a newer model is on its way)"}.</p>
${headline(m)}
<div class="figures">${confusion(id, m)}${reliability(m)}</div>
<h2>Per label</h2>${perLabel(m)}`
  }
<h2>Versions</h2>${versions(id, csrf, view.versions)}
</section>`
}

const show = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const view = yield* load(functionId)
  const session = yield* SignedIn
  return yield* documentResponse(
    { title: `${view.status.name}: model`, fn: { id: functionId, name: view.status.name, tab: "model" } },
    html`<h1>Model</h1>${statusFragment(view.status, view.status.model?.id ?? null)}${render(view, csrfField(session))}`
  )
})

const serve = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const versionId = yield* Effect.map(HttpRouter.params, (params) => params["versionId"] ?? "")
  yield* Effect.flatMap(Functions.Functions, (functions) => functions.rollback(functionId, versionId))
  return yield* redirect(path("/console/functions", functionId, "model"))
})

/** The model page's routes. */
export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/console/functions/:functionId/model", page(show)),
  HttpRouter.post("/console/functions/:functionId/models/:versionId/serve", action(serve))
)
