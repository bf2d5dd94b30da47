/**
 * Page 1, the functions: `GET /console/functions` lists them (samples, CV accuracy, the model serving, training
 * status) with a form to create one; `POST /console/functions` creates; `GET .../:id/delete` asks, `POST
 * .../:id/delete` deletes; `GET .../:id/status` is the live status fragment the pages poll every 2 s.
 *
 * @internal
 */
import { HttpRouter, HttpServerRequest, UrlParams } from "@effect/platform"
import { FunctionBackend } from "@loupe/deploy"
// Named here so that the declaration of `routes` (whose errors include it) can refer to it.
import type { DeployError } from "@loupe/deploy"
import { Effect, Option } from "effect"
import { FunctionsError } from "../FunctionsError.js"
import * as Functions from "../Functions.js"
import * as Preset from "../Preset.js"
import { Store } from "../Store.js"
import type { Html } from "./Html.js"
import { html, message, path, text } from "./Html.js"
import { action, csrfField, documentResponse, page, redirect, respond, SignedIn } from "./Page.js"
import * as Dismissals from "./Dismissals.js"
import { Thumbnails } from "./Thumbnails.js"

/** The `:functionId` of the route. */
export const functionIdParam = Effect.flatMap(HttpRouter.params, (params) =>
  params["functionId"] === undefined
    ? Effect.fail(new FunctionsError({ reason: "NotFound", field: "functionId", message: "No function in the path" }))
    : Effect.succeed(params["functionId"]))

/** A form's field, or `undefined`. */
export const formField = (name: string) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.map(Effect.orElseSucceed(request.urlParamsBody, () => UrlParams.empty), (form) => Option.getOrUndefined(UrlParams.getFirst(form, name))))

const percent = (x: number) => `${(100 * x).toFixed(1)} %`

const phaseText: Readonly<Record<Functions.FunctionStatus["training"]["phase"], string>> = {
  idle: "idle",
  debouncing: "waiting for changes to settle",
  training: "training"
}

/**
 * The live status of a function: training phase, the model serving and its CV accuracy. It polls itself every 2 s
 * (htmx replaces it with the next one); `since` is the model that was serving when the page was drawn (`null`:
 * none), so a model promoted since is announced as "new model serving".
 */
export const statusFragment = (status: Functions.FunctionStatus, since: string | null): Html => {
  const model = status.model
  const fresh = model !== null && model.id !== since
  const href = `${path("/console/functions", status.id, "status")}?since=${encodeURIComponent(since ?? "none")}`
  const busy = status.training.phase !== "idle" || status.training.pending
  return html`<div class="status${busy ? " busy" : ""}" data-model="${model?.id ?? ""}" hx-get="${href}" hx-trigger="every 2s" hx-swap="outerHTML" aria-live="polite">
<span class="phase">${busy ? html`<span class="spinner" aria-hidden="true"></span>` : ""}${phaseText[status.training.phase]}${status.training.pending ? ", another run follows" : ""}</span>
${model === null
    ? html`<span class="model none">no model yet</span>`
    : html`<span class="model">${fresh ? html`<strong class="new">New model serving:</strong> ` : "serving "}<code>${model.id}</code> · CV accuracy ${percent(model.cvAccuracy)}${model.upToDate ? "" : " · data changed since"}</span>`}
${status.trainError === null ? "" : html`<span class="error">last run failed: ${message(status.trainError)}</span>`}
${status.heldBack === null ? "" : html`<span class="held">newer model held back: ${message(status.heldBack.reason)}</span>`}
</div>`
}

const row = (status: Functions.FunctionStatus, samples: number) =>
  html`<tr>
<td><a href="${path("/console/functions", status.id, "data")}">${text(status.name)}</a><br><code class="id">${status.id}</code></td>
<td data-th="Preset">${status.preset}</td>
<td class="num" data-th="Samples">${samples}</td>
<td class="num" data-th="CV accuracy">${status.model === null ? "–" : percent(status.model.cvAccuracy)}</td>
<td data-th="Status">${statusFragment(status, status.model?.id ?? null)}</td>
<td><a class="danger" href="${path("/console/functions", status.id, "delete")}">Delete…</a></td>
</tr>`

const createForm = (problem: string | undefined, name: string) =>
  Effect.map(SignedIn, (session) =>
    html`<form method="post" action="/console/functions" class="card create">
${csrfField(session)}
<h2>New function</h2>
<label for="name">Name</label>
<input id="name" name="name" required maxlength="200" value="${name}">
<label for="preset">Preset</label>
<select id="preset" name="preset">${Preset.presets.map((p) =>
      html`<option value="${p.name}"${p.name === Preset.defaultPreset ? html` selected` : ""}>${p.name}</option>`
    )}</select>
${problem === undefined ? "" : html`<p class="error" role="alert">${message(problem)}</p>`}
<button type="submit">Create</button>
</form>`)

const list = (problem?: { readonly message: string; readonly name: string }) =>
  Effect.gen(function*() {
    const functions = yield* Functions.Functions
    const store = yield* Store
    const all = yield* functions.list
    const rows = yield* Effect.forEach(all, (fn) =>
      Effect.all([functions.get(fn.id), store.countSamples(fn.id)]).pipe(Effect.map(([status, samples]) => row(status, samples))))
    const content = html`<h1>Functions</h1>
${all.length === 0
      ? html`<p class="empty">No functions yet: create one below, then upload images on its Data page.</p>`
      : html`<div class="table-wrap"><table class="functions">
<thead><tr><th>Name</th><th>Preset</th><th class="num">Samples</th><th class="num">CV accuracy</th><th>Status</th><th></th></tr></thead>
<tbody>${rows}</tbody>
</table></div>`}
${yield* createForm(problem?.message, problem?.name ?? "")}`
    return yield* documentResponse({ title: "Functions" }, content, problem === undefined ? 200 : 400)
  })

const create = Effect.gen(function*() {
  const functions = yield* Functions.Functions
  const name = (yield* formField("name")) ?? ""
  const preset = yield* formField("preset")
  const created = yield* Effect.either(functions.create(name, preset === undefined ? {} : { preset }))
  if (created._tag === "Left") {
    const e = created.left
    if (e.reason === "StoreFailed") return yield* e
    // A bad name or preset: the list again, with the message by the form.
    return yield* list({ message: e.message, name })
  }
  return yield* redirect(path("/console/functions", created.right.id, "data"))
})

const confirmDelete = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const functions = yield* Functions.Functions
  const status = yield* functions.get(functionId)
  const samples = yield* Effect.flatMap(Store, (s) => s.countSamples(functionId))
  const session = yield* SignedIn
  return yield* documentResponse(
    { title: `Delete ${status.name}` },
    html`<h1>Delete ${text(status.name)}?</h1>
<p>This deletes the function with its ${samples} samples, ${status.labels.length} labels and every model version. It cannot be undone.</p>
<form method="post" action="${path("/console/functions", functionId, "delete")}" class="inline">
${csrfField(session)}
<button type="submit" class="danger">Delete ${text(status.name)}</button>
<a href="/console/functions">Cancel</a>
</form>`
  )
})

const remove = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  // As `DELETE /v1/functions/:id` does: the function, and its captures waiting for review.
  yield* Effect.flatMap(FunctionBackend.FunctionBackend, (backend) => backend.deleteFunction(functionId))
  yield* Effect.flatMap(Thumbnails, (t) => t.forget(functionId))
  yield* Effect.flatMap(Dismissals.Dismissals, (d) => d.forget(functionId))
  return yield* redirect("/console/functions")
})

const status = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const params = yield* HttpServerRequest.ParsedSearchParams
  // A model id, or "none" (no model was serving when the page was drawn).
  const since = typeof params["since"] === "string" && params["since"] !== "none" ? params["since"] : null
  const current = yield* Effect.flatMap(Functions.Functions, (f) => f.get(functionId))
  return respond(statusFragment(current, since))
})

/** The functions page's routes. */
export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/console/functions", page(list())),
  HttpRouter.post("/console/functions", action(create)),
  HttpRouter.get("/console/functions/:functionId/delete", page(confirmDelete)),
  HttpRouter.post("/console/functions/:functionId/delete", action(remove)),
  HttpRouter.get("/console/functions/:functionId/status", page(status))
)
