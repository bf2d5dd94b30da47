/**
 * Page 2, a function's data: upload (drag and drop, file or folder picker, per-file progress; `console.js` posts
 * each file to `POST .../samples`), a paginated grid of thumbnails filtered by label, unlabelled, suspect or
 * duplicate, or by a cell of the serving model's confusion matrix (`?filter=cell&given=X&predicted=Y`, the Model
 * page's links), multi-select, keyboard shortcuts and bulk label/delete (`POST .../samples/bulk`). Labelling and
 * deleting go through `Functions`, so they schedule the usual background retrain. Thumbnails and full images
 * (`GET .../samples/:sampleId/thumbnail` and `/image`) need the session like the page.
 *
 * Keys (in `console.js`): `1`-`9` label the selected images, or else the focused one (then focus moves on), with the
 * n-th label in creation order (`data-labels` on the grid); `x` or Delete deletes them after a `confirm()`; arrows
 * move focus; space toggles selection; shift-click selects a range, ctrl/cmd-click toggles one; Esc clears.
 *
 * The grid reads one page of samples at a time from the store (`LIMIT`/`OFFSET`), so a function with thousands of
 * samples opens as fast as a small one; the suspect and duplicate filters page through `Functions.insights`.
 *
 * @internal
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { FunctionsError } from "../FunctionsError.js"
import * as Functions from "../Functions.js"
import type { LabelCount, SampleFilter, SampleRecord } from "../Store.js"
import { Store } from "../Store.js"
import { formField, functionIdParam, statusFragment } from "./FunctionsPage.js"
import type { Html } from "./Html.js"
import { html, message, path, raw, text } from "./Html.js"
import { InsightsCache } from "./InsightsCache.js"
import * as ModelPage from "./ModelPage.js"
import { action, documentResponse, isHtmx, page, refuse } from "./Page.js"
import { Thumbnails } from "./Thumbnails.js"

/** Samples per page of the grid. */
export const PAGE_SIZE = 60

/** Which samples the grid shows. */
type Filter =
  | { readonly kind: "all" }
  | { readonly kind: "unlabelled" }
  | { readonly kind: "label"; readonly labelId: string }
  | { readonly kind: "suspect" }
  | { readonly kind: "duplicate" }
  | { readonly kind: "cell"; readonly given: string; readonly predicted: string }

const parseFilter = (value: string | undefined, param: (name: string) => string | undefined): Filter => {
  const given = param("given")
  const predicted = param("predicted")
  if (value === "cell" && given !== undefined && predicted !== undefined) return { kind: "cell", given, predicted }
  if (value === "unlabelled" || value === "suspect" || value === "duplicate") return { kind: value }
  if (value !== undefined && value.startsWith("label:")) return { kind: "label", labelId: value.slice("label:".length) }
  return { kind: "all" }
}

const filterParam = (f: Filter) => (f.kind === "label" ? `label:${f.labelId}` : f.kind)

const dataUrl = (functionId: string, filter: Filter, pageNumber: number) => {
  const query = new URLSearchParams()
  if (filter.kind !== "all") query.set("filter", filterParam(filter))
  if (filter.kind === "cell") {
    query.set("given", filter.given)
    query.set("predicted", filter.predicted)
  }
  if (pageNumber > 1) query.set("page", String(pageNumber))
  const q = query.toString()
  return path("/console/functions", functionId, "data") + (q === "" ? "" : `?${q}`)
}

/** What a tile says beside the image: suspect with the suggested label, duplicate of which. */
interface Notes {
  readonly suspect?: { readonly suggested: string; readonly selfConfidence: number }
  readonly duplicateOf?: { readonly other: string; readonly kind: "exact" | "near"; readonly conflict: boolean; readonly leak: boolean }
}

const tile = (functionId: string, sample: SampleRecord, notes: Notes | undefined): Html => {
  const base = path("/console/functions", functionId, "samples", sample.id)
  const label = sample.annotation?.labelName
  const badges: Array<Html> = []
  if (notes?.suspect !== undefined) {
    badges.push(html`<span class="badge" title="Label suspect: ${(100 * notes.suspect.selfConfidence).toFixed(0)} % sure of its label">suspect → <bdi>${notes.suspect.suggested}</bdi></span>`)
  }
  if (notes?.duplicateOf !== undefined) {
    const d = notes.duplicateOf
    badges.push(html`<span class="badge" title="${d.kind} duplicate of ${d.other}">${d.kind === "exact" ? "duplicate" : "near-duplicate"}${d.conflict ? ", labels differ" : ""}${d.leak ? ", leaks" : ""}</span>`)
  }
  return html`<li class="tile" role="option" tabindex="0" aria-selected="false" data-sample="${sample.id}" data-label="${label ?? ""}" data-image="${base}/image">
<img src="${base}/thumbnail" alt="${label ?? "unlabelled"} ${sample.externalId ?? sample.id}" loading="lazy" width="192" height="192">
${badges.length === 0 ? "" : html`<span class="badges">${badges}</span>`}
<span class="caption${label === undefined ? " unlabelled" : ""}">${label === undefined ? "unlabelled" : text(label)}</span>
</li>`
}

/** One page of the filtered samples, the total they page through, and notes for their tiles. */
interface Slice {
  readonly samples: ReadonlyArray<SampleRecord>
  readonly total: number
  readonly notes: ReadonlyMap<string, Notes>
  /** Why the filter shows nothing (insights not available yet). */
  readonly unavailable?: string
}

const fromStore = (functionId: string, filter: SampleFilter, offset: number) =>
  Effect.gen(function*() {
    const store = yield* Store
    const [samples, total] = yield* Effect.all([
      store.listSamples(functionId, { ...filter, limit: PAGE_SIZE, offset }),
      store.countSamples(functionId, filter)
    ])
    return { samples, total, notes: new Map() } satisfies Slice
  })

/** A page of samples named by an insights list (suspects or duplicates), in its order. */
const fromInsights = (functionId: string, kind: "suspect" | "duplicate", offset: number) =>
  Effect.gen(function*() {
    const found = yield* Effect.either(Effect.flatMap(InsightsCache, (c) => c.get(functionId)))
    if (found._tag === "Left") {
      if (found.left.reason !== "TooFewSamples" && found.left.reason !== "TrainingFailed") return yield* found.left
      return { samples: [], total: 0, notes: new Map(), unavailable: found.left.message } satisfies Slice
    }
    const insights = found.right
    const notes = new Map<string, Notes>()
    if (kind === "suspect") {
      for (const s of insights.suspects ?? []) notes.set(s.id, { suspect: { suggested: s.suggested, selfConfidence: s.selfConfidence } })
    } else {
      for (const d of insights.duplicates) {
        for (const [id, other] of [[d.a, d.b], [d.b, d.a]] as const) {
          if (!notes.has(id)) notes.set(id, { duplicateOf: { other, kind: d.kind, conflict: d.conflict, leak: d.leak !== null } })
        }
      }
    }
    const ids = [...notes.keys()]
    const store = yield* Store
    // A sample deleted since the insights were computed is skipped.
    const samples = yield* Effect.forEach(ids.slice(offset, offset + PAGE_SIZE), (id) => Effect.option(store.getSample(functionId, id)))
    return {
      samples: samples.flatMap((s) => (s._tag === "Some" ? [s.value] : [])),
      total: ids.length,
      notes,
      ...(kind === "suspect" && insights.suspects === null ? { unavailable: "No label-noise suspects: cross-validation gave no out-of-fold probabilities" } : {})
    } satisfies Slice
  })

/** A page of the samples of one cell of the serving model's confusion matrix (`ModelPage.cellSamples`). */
const fromCell = (functionId: string, given: string, predicted: string, offset: number) =>
  Effect.gen(function*() {
    const metrics = yield* Effect.flatMap(Functions.Functions, (f) => f.metrics(functionId)).pipe(
      Effect.catchIf((e) => e.reason === "NotTrained", () => Effect.succeed(undefined))
    )
    if (metrics === undefined) return { samples: [], total: 0, notes: new Map(), unavailable: "No model serves yet" } satisfies Slice
    const ids = ModelPage.cellSamples(metrics, given, predicted)
    const store = yield* Store
    // A sample deleted since the model was trained is skipped.
    const samples = yield* Effect.forEach(ids.slice(offset, offset + PAGE_SIZE), (id) => Effect.option(store.getSample(functionId, id)))
    return { samples: samples.flatMap((s) => (s._tag === "Some" ? [s.value] : [])), total: ids.length, notes: new Map() } satisfies Slice
  })

const chip = (href: string, current: boolean, content: Html | string, count: number | undefined) =>
  html`<a href="${href}"${current ? raw(` aria-current="true"`) : ""}>${content}${count === undefined ? "" : html` <span class="count">${count}</span>`}</a>`

const samplesSection = (functionId: string, filter: Filter, pageNumber: number, counts: ReadonlyArray<LabelCount>, all: number) =>
  Effect.gen(function*() {
    const offset = (pageNumber - 1) * PAGE_SIZE
    const slice: Slice = filter.kind === "all"
      ? yield* fromStore(functionId, {}, offset)
      : filter.kind === "unlabelled"
      ? yield* fromStore(functionId, { labelId: null }, offset)
      : filter.kind === "label"
      ? yield* fromStore(functionId, { labelId: filter.labelId }, offset)
      : filter.kind === "cell"
      ? yield* fromCell(functionId, filter.given, filter.predicted, offset)
      : yield* fromInsights(functionId, filter.kind, offset)
    const labelled = counts.reduce((n, c) => n + c.count, 0)
    const pages = Math.max(1, Math.ceil(slice.total / PAGE_SIZE))
    const labelNames = counts.map((c) => c.label.name)
    const chips = [
      chip(dataUrl(functionId, { kind: "all" }, 1), filter.kind === "all", "All", all),
      chip(dataUrl(functionId, { kind: "unlabelled" }, 1), filter.kind === "unlabelled", "Unlabelled", all - labelled),
      ...counts.map((c) =>
        chip(dataUrl(functionId, { kind: "label", labelId: c.label.id }, 1), filter.kind === "label" && filter.labelId === c.label.id, text(c.label.name), c.count)
      ),
      chip(dataUrl(functionId, { kind: "suspect" }, 1), filter.kind === "suspect", "Suspects", undefined),
      chip(dataUrl(functionId, { kind: "duplicate" }, 1), filter.kind === "duplicate", "Duplicates", undefined),
      filter.kind === "cell" ? chip(dataUrl(functionId, filter, 1), true, html`Given <bdi>${filter.given}</bdi>, predicted <bdi>${filter.predicted}</bdi>`, undefined) : ""
    ]
    return html`<section id="samples" data-src="${dataUrl(functionId, filter, pageNumber)}">
<nav class="filters" aria-label="Filter">${chips}</nav>
${slice.unavailable === undefined ? "" : html`<p class="hint">${message(slice.unavailable)}</p>`}
${slice.samples.length === 0 && slice.unavailable === undefined ? html`<p class="empty">No images here${filter.kind === "all" ? ": drop some above" : ""}.</p>` : ""}
<ul class="grid" data-grid role="listbox" aria-multiselectable="true" aria-label="Images" data-labels="${JSON.stringify(labelNames)}" data-bulk="${path("/console/functions", functionId, "samples", "bulk")}">
${slice.samples.map((s) => tile(functionId, s, slice.notes.get(s.id)))}
</ul>
<nav class="pager" aria-label="Pages">
${pageNumber > 1 ? html`<a href="${dataUrl(functionId, filter, pageNumber - 1)}" rel="prev">← Previous</a>` : ""}
<span>Page ${pageNumber} of ${pages} · ${slice.total} image${slice.total === 1 ? "" : "s"}</span>
${pageNumber < pages ? html`<a href="${dataUrl(functionId, filter, pageNumber + 1)}" rel="next">Next →</a>` : ""}
</nav>
</section>`
  })

const uploadZone = (functionId: string, labelNames: ReadonlyArray<string>) =>
  html`<section class="dropzone" data-upload="${path("/console/functions", functionId, "samples")}" aria-label="Upload">
<p><strong>Drop images or folders here</strong>, or pick them:</p>
<div class="pick">
<label class="button">Choose images<input class="sr-only" type="file" multiple accept="image/*" data-upload-files></label>
<label class="button">Choose a folder<input class="sr-only" type="file" webkitdirectory multiple data-upload-folder></label>
<label>Label <input data-upload-label list="labels" placeholder="none" size="12" maxlength="200"></label>
<label><input type="checkbox" data-upload-folder-labels> label by folder name</label>
</div>
<ul class="uploads" data-upload-list aria-live="polite"></ul>
</section>
<datalist id="labels">${labelNames.map((n) => html`<option value="${n}">`)}</datalist>`

const bulkBar = (labelNames: ReadonlyArray<string>) =>
  html`<div class="bulk" role="toolbar" aria-label="Selected images">
<span><span data-selected-count>0</span> selected</span>
<label>Label <input data-bulk-label list="labels" size="12" maxlength="200"></label>
<button type="button" data-bulk="label" disabled>Label</button>
<button type="button" class="secondary" data-bulk="unlabel" disabled>Unlabel</button>
<button type="button" class="danger" data-bulk="delete" disabled>Delete</button>
<span class="keys">${labelNames.slice(0, 9).map((n, i) => html`<kbd>${i + 1}</kbd> <bdi>${n}</bdi> `)}<kbd>x</kbd> delete · <kbd>←↑→↓</kbd> move · <kbd>space</kbd> select · shift-click range</span>
</div>`

const dataPage = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const params = yield* HttpServerRequest.ParsedSearchParams
  const request = yield* HttpServerRequest.HttpServerRequest
  const one = (name: string) => (typeof params[name] === "string" ? params[name] : undefined)
  const filter = parseFilter(one("filter"), one)
  const pageNumber = Math.max(1, Math.min(1_000_000, Number.parseInt(one("page") ?? "1", 10) || 1))
  const store = yield* Store
  const [status, counts, all] = yield* Effect.all([
    Effect.flatMap(Functions.Functions, (f) => f.get(functionId)),
    store.labelCounts(functionId),
    store.countSamples(functionId)
  ])
  const samples = yield* samplesSection(functionId, filter, pageNumber, counts, all)
  // htmx reloading the grid (after an upload) takes the section alone.
  if (isHtmx(request) && request.headers["hx-target"] === "samples") {
    return HttpServerResponse.text(samples.value, { contentType: "text/html; charset=utf-8" })
  }
  const labelNames = counts.map((c) => c.label.name)
  return yield* documentResponse(
    { title: `${status.name}: data`, fn: { id: functionId, name: status.name, tab: "data" } },
    html`<h1>${text(status.name)}</h1>
${statusFragment(status, status.model?.id ?? null)}
${uploadZone(functionId, labelNames)}
<p data-message role="status" aria-live="polite"></p>
${samples}
${bulkBar(labelNames)}`
  )
})

/** A refusal for a failed upload or bulk change, in words (the script shows it beside the file). */
const refusal = (e: FunctionsError) =>
  e.reason === "StoreFailed" || e.reason === "TrainingFailed" || e.reason === "NoBackbone"
    ? Effect.fail(e)
    : Effect.succeed(refuse(e.reason === "NotFound" ? 404 : 400, e.message.replaceAll("samples[0].", "")))

const upload = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const request = yield* HttpServerRequest.HttpServerRequest
  const params = yield* HttpServerRequest.ParsedSearchParams
  const label = typeof params["label"] === "string" && params["label"].trim() !== "" ? params["label"].trim() : undefined
  const body = yield* Effect.orElseSucceed(request.arrayBuffer, () => new ArrayBuffer(0))
  if (body.byteLength === 0) return refuse(400, "The file is empty")
  const [added] = yield* Effect.flatMap(Functions.Functions, (f) =>
    f.createSamples(functionId, [{ data: new Uint8Array(body), ...(label === undefined ? {} : { label }) }]))
  return refuse(added!.created ? 201 : 200, added!.created ? "Added" : "Already held")
}).pipe(Effect.catchTag("FunctionsError", refusal))

/** The bulk change's sample ids: `ids` comma-separated. */
const idsField = Effect.map(formField("ids"), (ids) => (ids ?? "").split(",").map((s) => s.trim()).filter((s) => s !== ""))

const bulk = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const functions = yield* Functions.Functions
  const op = yield* formField("op")
  const ids = yield* idsField
  if (ids.length === 0) return refuse(400, "No images chosen")
  if (ids.length > 5000) return refuse(400, "At most 5000 images at once")
  switch (op) {
    case "label": {
      const label = ((yield* formField("label")) ?? "").trim()
      if (label === "") return refuse(400, "No label given")
      yield* Effect.forEach(ids, (id) => functions.updateAnnotation(functionId, id, { labelName: label }), { discard: true })
      return refuse(200, `Labelled ${ids.length} image${ids.length === 1 ? "" : "s"} ${label}`)
    }
    case "unlabel": {
      yield* Effect.forEach(ids, (id) => functions.updateAnnotation(functionId, id, null), { discard: true })
      return refuse(200, `Unlabelled ${ids.length} image${ids.length === 1 ? "" : "s"}`)
    }
    case "delete": {
      const store = yield* Store
      const samples = yield* Effect.forEach(ids, (id) => store.getSample(functionId, id))
      yield* functions.deleteSamples(functionId, ids)
      yield* Effect.flatMap(Thumbnails, (t) => Effect.forEach(samples, (s) => Effect.ignore(t.remove(functionId, s.contentHash)), { discard: true }))
      return refuse(200, `Deleted ${ids.length} image${ids.length === 1 ? "" : "s"}`)
    }
    default:
      return refuse(400, `Unknown operation ${JSON.stringify(op ?? "")}: label, unlabel or delete`)
  }
}).pipe(Effect.catchTag("FunctionsError", refusal))

/** A sample's thumbnail or full image, after checking the sample is the function's. */
const image = (which: "thumbnail" | "image") =>
  Effect.gen(function*() {
    const functionId = yield* functionIdParam
    const sampleId = (yield* HttpRouter.params)["sampleId"] ?? ""
    const sample = yield* Effect.flatMap(Store, (s) => s.getSample(functionId, sampleId))
    const thumbnails = yield* Thumbnails
    const { bytes, contentType } = yield* (which === "thumbnail" ? thumbnails.thumbnail : thumbnails.image)(functionId, sample.contentHash)
    // A sample's image never changes under its id; private, since it is behind the session.
    return HttpServerResponse.uint8Array(bytes, { contentType, headers: { "cache-control": "private, max-age=86400" } })
  })

/** The data page's routes. */
export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/console/functions/:functionId/data", page(dataPage)),
  HttpRouter.post("/console/functions/:functionId/samples", action(upload)),
  HttpRouter.post("/console/functions/:functionId/samples/bulk", action(bulk)),
  HttpRouter.get("/console/functions/:functionId/samples/:sampleId/thumbnail", page(image("thumbnail"))),
  HttpRouter.get("/console/functions/:functionId/samples/:sampleId/image", page(image("image")))
)
