/**
 * Page 4, a function's review (`GET /console/functions/:functionId/review`): what to fix in a function's data, each suggestion with a one-click accept and dismiss.
 *
 * - Label-noise suspects (`Functions.insights`, through the console's `InsightsCache`), most suspicious first: accepting relabels the sample as suggested.
 * - Duplicates (exact and near, with leaks across folds and conflicting labels): accepting deletes the second copy.
 * - Outliers (far from every label): accepting deletes the sample.
 * - Low-confidence captures from invoke (the review queue): accepting annotates it with the label the model gave, or
 *   with another label picked on the card.
 *
 * Accepting goes through `Functions` (`updateAnnotation`, `deleteSamples`), so the usual background retrain follows.
 * Dismissing is remembered in `Dismissals` and the suggestion is not shown again. Each button posts to `POST
 * .../review`; with htmx the card is swapped for a one-line answer, without it the page is drawn again.
 *
 * @internal
 */
import { HttpRouter, HttpServerRequest } from "@effect/platform"
import { FunctionBackend } from "@loupe/deploy"
import type { FunctionApi } from "@loupe/deploy"
import type { Insights } from "@loupe/metrics"
import { Effect } from "effect"
import { FunctionsError } from "../FunctionsError.js"
import * as Functions from "../Functions.js"
import * as Dismissals from "./Dismissals.js"
import { formField, functionIdParam, statusFragment } from "./FunctionsPage.js"
import { type Html, html, path, text } from "./Html.js"
import { InsightsCache } from "./InsightsCache.js"
import { action, csrfField, documentResponse, isHtmx, page, redirect, refuse, respond, SignedIn } from "./Page.js"
import { Thumbnails } from "./Thumbnails.js"

/** How many suggestions of each kind the page shows at once (the next ones appear as these are handled). */
export const shown = 24

/** What the page shows: the insights (or why there are none) and the captures waiting, without dismissed ones. */
export interface View {
  readonly functionId: string
  readonly labels: ReadonlyArray<string>
  readonly insights: Functions.FunctionInsights | { readonly unavailable: string }
  readonly captures: ReadonlyArray<FunctionApi.CaptureView>
  readonly dismissed: Dismissals.Dismissed
}

/**
 * Read what the page shows; `captures` lists the function's review queue (the server's). A function without enough
 * annotated samples has no insights: the page says why instead.
 */
export const load = (
  functionId: string,
  captures: Effect.Effect<ReadonlyArray<FunctionApi.CaptureView>, FunctionsError>
): Effect.Effect<View, FunctionsError, Functions.Functions | Dismissals.Dismissals | InsightsCache> =>
  Effect.gen(function*() {
    const functions = yield* Functions.Functions
    const dismissals = yield* Dismissals.Dismissals
    const labels = (yield* functions.listLabels(functionId)).map((l) => l.name)
    const insights = yield* Effect.flatMap(InsightsCache, (cache) => cache.get(functionId)).pipe(
      Effect.catchIf((e) => e.reason === "TooFewSamples" || e.reason === "TrainingFailed", (e) => Effect.succeed({ unavailable: e.message }))
    )
    return { functionId, labels, insights, captures: yield* captures, dismissed: yield* dismissals.list(functionId) }
  })

/** The suggestions of each kind still to show, in the order shown. */
export interface Pending {
  readonly suspects: ReadonlyArray<Insights.Suspect>
  readonly duplicates: ReadonlyArray<Insights.DuplicatePair>
  readonly outliers: ReadonlyArray<Insights.Outlier>
  readonly captures: ReadonlyArray<FunctionApi.CaptureView>
}

/** The suggestions of each kind still to show (not dismissed), at most `shown` of each, in the order shown. */
export const pending = (view: View): Pending => {
  const open = (kind: Dismissals.Kind, subject: string) => !view.dismissed.has(Dismissals.key(kind, subject))
  const insights = "unavailable" in view.insights ? undefined : view.insights
  return {
    suspects: (insights?.suspects ?? []).filter((s) => open("suspect", s.id)).slice(0, shown),
    duplicates: (insights?.duplicates ?? []).filter((d) => open("duplicate", Dismissals.pairSubject(d.a, d.b))).slice(0, shown),
    outliers: (insights?.outliers ?? []).filter((o) => open("outlier", o.id)).slice(0, shown),
    captures: view.captures.filter((c) => open("capture", c.sampleId)).slice(0, shown)
  }
}

/** The image of a sample, as the shell serves its thumbnails. */
const thumbnail = (functionId: string, sampleId: string) =>
  html`<img class="thumb" src="${path("/console/functions", functionId, "samples", sampleId, "thumbnail")}" alt="" loading="lazy" width="96" height="96">`

const percent = (v: number) => `${Math.round(v * 100)}%`

/** A button posting one decision about a suggestion; htmx swaps the card for the answer. */
const button = (functionId: string, csrf: Html, fields: Readonly<Record<string, string>>, label: Html | string, kind = "") =>
  html`<form method="post" action="${path("/console/functions", functionId, "review")}" hx-post="${
    path("/console/functions", functionId, "review")
  }" hx-target="closest .suggestion" hx-swap="outerHTML">${csrf}${
    Object.entries(fields).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`)
  }<button type="submit" class="${kind}">${label}</button></form>`

const dismissButton = (functionId: string, csrf: Html, kind: Dismissals.Kind, subject: string) =>
  button(functionId, csrf, { action: "dismiss", kind, subject }, "Dismiss", "secondary")

const card = (kind: Dismissals.Kind, subject: string, body: Html) =>
  html`<li class="suggestion" data-kind="${kind}" data-subject="${subject}">${body}</li>`

const section = (title: string, id: string, note: string, items: ReadonlyArray<Html>) =>
  html`<section class="review-group" id="${id}"><h2>${title} <span class="count">${items.length}</span></h2><p class="muted">${note}</p>${
    items.length === 0 ? html`<p class="empty">Nothing to review.</p>` : html`<ul class="suggestions">${items}</ul>`
  }</section>`

/** The page's content (the shell wraps it in the layout); `csrf` is the session's hidden CSRF field. */
export const render = (view: View, csrf: Html): Html => {
  const id = view.functionId
  const open = pending(view)
  const suspects = open.suspects.map((s) =>
    card(
      "suspect",
      s.id,
      html`${thumbnail(id, s.id)}<div class="why">Labelled ${text(s.given)}, looks like ${text(s.suggested)} <span class="muted">(${
        percent(s.suggestedConfidence)
      } vs ${percent(s.selfConfidence)})</span></div>
<div class="actions">${
        button(id, csrf, { action: "relabel", sampleId: s.id, label: s.suggested }, html`Relabel as ${text(s.suggested)}`)
      }${dismissButton(id, csrf, "suspect", s.id)}</div>`
    )
  )
  const duplicates = open.duplicates.map((d) =>
    card(
      "duplicate",
      Dismissals.pairSubject(d.a, d.b),
      html`<div class="pair">${thumbnail(id, d.a)}${thumbnail(id, d.b)}</div><div class="why">${
        d.kind === "exact" ? "Exact copies" : `Near-duplicates (${percent(d.similarity)} similar)`
      }${d.leak === null ? "" : html`, <strong>leak: ${d.leak}</strong>`}${
        d.conflict ? html`, <strong>conflicting labels</strong> ${text(d.labelA ?? "unlabelled")} / ${text(d.labelB ?? "unlabelled")}` : ""
      }</div>
<div class="actions">${button(id, csrf, { action: "delete", sampleId: d.b }, "Delete the second")}${
        dismissButton(id, csrf, "duplicate", Dismissals.pairSubject(d.a, d.b))
      }</div>`
    )
  )
  const outliers = open.outliers.map((o) =>
    card(
      "outlier",
      o.id,
      html`${thumbnail(id, o.id)}<div class="why">${o.label === null ? "Unlabelled" : html`Labelled ${text(o.label)}`}, far from every label (nearest ${
        text(o.nearest)
      }, ${percent(o.similarity)} similar)</div>
<div class="actions">${button(id, csrf, { action: "delete", sampleId: o.id }, "Delete")}${dismissButton(id, csrf, "outlier", o.id)}</div>`
    )
  )
  const captures = open.captures.map((c) =>
    card(
      "capture",
      c.sampleId,
      html`${thumbnail(id, c.sampleId)}<div class="why">The model said ${text(c.labelName)} at ${percent(c.confidence)} (${c.reason})</div>
<div class="actions">${button(id, csrf, { action: "relabel", sampleId: c.sampleId, label: c.labelName }, html`Confirm ${text(c.labelName)}`)}${
        view.labels.filter((l) => l !== c.labelName).map((l) =>
          button(id, csrf, { action: "relabel", sampleId: c.sampleId, label: l }, html`Label ${text(l)}`, "secondary")
        )
      }${dismissButton(id, csrf, "capture", c.sampleId)}</div>`
    )
  )
  return html`<section class="review-page">${
    "unavailable" in view.insights ? html`<p class="notice">No data analyses yet: ${view.insights.unavailable}</p>` : ""
  }
${section("Label suspects", "suspects", "Samples whose label disagrees with a model that did not see them, most suspicious first.", suspects)}
${section("Duplicates and leaks", "duplicates", "Copies inflate the cross-validated scores when they land in different folds.", duplicates)}
${section("Outliers", "outliers", "Images far from every label: maybe none of the labels fits.", outliers)}
${section("Captures from invoke", "captures", "Images the serving model was unsure about.", captures)}
</section>`
}

/** A decision posted by a card's button. */
export type Decision =
  | { readonly action: "relabel"; readonly sampleId: string; readonly label: string }
  | { readonly action: "delete"; readonly sampleId: string }
  | { readonly action: "dismiss"; readonly kind: Dismissals.Kind; readonly subject: string }

const kinds: ReadonlyArray<Dismissals.Kind> = ["suspect", "duplicate", "outlier", "capture"]

/** Read a card's form fields as a decision; `undefined` for a malformed post. */
export const decision = (form: (name: string) => string | undefined): Decision | undefined => {
  const sampleId = form("sampleId")
  const label = form("label")
  const kind = form("kind") as Dismissals.Kind | undefined
  const subject = form("subject")
  switch (form("action")) {
    case "relabel":
      return sampleId && label ? { action: "relabel", sampleId, label } : undefined
    case "delete":
      return sampleId ? { action: "delete", sampleId } : undefined
    case "dismiss":
      return kind !== undefined && kinds.includes(kind) && subject ? { action: "dismiss", kind, subject } : undefined
  }
  return undefined
}

/** Carry out a decision: relabel or delete through `Functions` (a retrain follows), or remember a dismissal. */
export const decide = (
  functionId: string,
  d: Decision
): Effect.Effect<Html, FunctionsError, Functions.Functions | Dismissals.Dismissals> =>
  Effect.gen(function*() {
    const functions = yield* Functions.Functions
    switch (d.action) {
      case "relabel":
        yield* functions.updateAnnotation(functionId, d.sampleId, { labelName: d.label })
        return html`<li class="suggestion done" data-subject="${d.sampleId}" role="status">Relabelled as ${text(d.label)}; a retrain follows.</li>`
      case "delete":
        yield* functions.deleteSamples(functionId, [d.sampleId])
        return html`<li class="suggestion done" data-subject="${d.sampleId}" role="status">Deleted; a retrain follows.</li>`
      case "dismiss":
        yield* Effect.flatMap(Dismissals.Dismissals, (s) => s.dismiss(functionId, d.kind, d.subject))
        return html`<li class="suggestion done" data-subject="${d.subject}" role="status">Dismissed.</li>`
    }
  })

const show = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const backend = yield* FunctionBackend.FunctionBackend
  const captures = Effect.mapError(backend.listCaptures(functionId, { limit: 100 }), (e) =>
    new FunctionsError({ reason: "StoreFailed", message: `Listing the captures: ${e.message}`, cause: e }))
  const view = yield* load(functionId, captures)
  const status = yield* Effect.flatMap(Functions.Functions, (functions) => functions.get(functionId))
  const session = yield* SignedIn
  return yield* documentResponse(
    { title: `${status.name}: review`, fn: { id: functionId, name: status.name, tab: "review" } },
    html`<h1>Review</h1>${statusFragment(status, status.model?.id ?? null)}${render(view, csrfField(session))}`
  )
})

const post = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const fields = yield* Effect.forEach(["action", "sampleId", "label", "kind", "subject"], (name) =>
    Effect.map(formField(name), (value) => [name, value] as const))
  const values = new Map(fields)
  const chosen = decision((name) => values.get(name))
  const htmx = isHtmx(yield* HttpServerRequest.HttpServerRequest)
  if (chosen === undefined) return refuse(400, "That suggestion's form was malformed; reload the page")
  const sample = chosen.action === "delete"
    ? yield* Effect.flatMap(Functions.Functions, (functions) => functions.getSample(functionId, chosen.sampleId))
    : undefined
  const answer = yield* decide(functionId, chosen)
  // A deleted sample's thumbnail goes too.
  if (sample !== undefined) yield* Effect.flatMap(Thumbnails, (t) => t.remove(functionId, sample.contentHash))
  return htmx ? respond(answer) : yield* redirect(path("/console/functions", functionId, "review"))
})

/** The review page's routes. */
export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/console/functions/:functionId/review", page(show)),
  HttpRouter.post("/console/functions/:functionId/review", action(post))
)
