/**
 * What every console page shares: the signed-in guard (`page` for reads, `action` for writes, which also checks the
 * CSRF token), the layout, HTML responses and the error page. See `WebConsole` for how a page module uses them.
 *
 * @internal
 */
import { HttpServerRequest, HttpServerResponse, UrlParams } from "@effect/platform"
import { DeployError } from "@loupe/deploy"
import { Context, Effect, Option } from "effect"
import type { FunctionsError } from "../FunctionsError.js"
import { Assets } from "./Assets.js"
import type { Html, Part } from "./Html.js"
import { html, message as quoting, path, raw, text, visibleControls } from "./Html.js"
import type { Session } from "./Session.js"
import { sameToken, sessionCookie, Sessions } from "./Session.js"

/** The session of the request a `page` or `action` handler answers. */
export class SignedIn extends Context.Tag("@loupe/functions/console/SignedIn")<SignedIn, Session>() {}

/** A route handler's effect. */
export type Handler<E, R> = Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>

/** Whether htmx sent the request (it swaps a fragment rather than loading a page). */
export const isHtmx = (request: HttpServerRequest.HttpServerRequest): boolean => request.headers["hx-request"] === "true"

/** An HTML response. */
export const respond = (body: Html, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(body.value, { status, contentType: "text/html; charset=utf-8" })

/** A redirect after a form post (303, so the browser follows with a GET); htmx follows `HX-Redirect` instead. */
export const redirect = (location: string): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest> =>
  Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
    isHtmx(request)
      ? HttpServerResponse.empty({ status: 204, headers: { "hx-redirect": location } })
      : HttpServerResponse.empty({ status: 303, headers: { location } }))

/** A plain-text refusal (`403`, `401`, ...). */
export const refuse = (status: number, message: string): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(visibleControls(message), { status })

/**
 * A page only a signed-in browser sees: the handler runs with `SignedIn`; without a live session a page load is
 * redirected to the sign-in page and an htmx request is answered 401 with `HX-Redirect` there.
 */
export const page = <E, R>(handler: Handler<E, R>): Handler<E, Exclude<R, SignedIn> | Sessions | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const session = yield* Effect.flatMap(Sessions, (s) => s.find(request.cookies[sessionCookie]))
    if (session === undefined) {
      if (isHtmx(request) || request.method !== "GET") {
        return HttpServerResponse.text("Sign in first", { status: 401, headers: { "hx-redirect": "/console/sign-in" } })
      }
      const next = request.url.startsWith("/console") ? `?next=${encodeURIComponent(request.url)}` : ""
      return HttpServerResponse.empty({ status: 303, headers: { location: `/console/sign-in${next}` } })
    }
    return yield* Effect.provideService(handler, SignedIn, session)
  })

/** The CSRF token a request sent: the `X-CSRF-Token` header, or the `_csrf` field of a urlencoded form. */
const sentToken = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const header = request.headers["x-csrf-token"]
  if (header !== undefined) return header
  if (!(request.headers["content-type"] ?? "").startsWith("application/x-www-form-urlencoded")) return undefined
  const form = yield* Effect.orElseSucceed(request.urlParamsBody, () => UrlParams.empty)
  return Option.getOrUndefined(UrlParams.getFirst(form, "_csrf"))
})

/**
 * A change only a signed-in browser may make, with its session's CSRF token: as `page`, and a request without the
 * token (or with another) is refused 403 before the handler runs.
 */
export const action = <E, R>(handler: Handler<E, R>): Handler<E, Exclude<R, SignedIn> | Sessions | HttpServerRequest.HttpServerRequest> =>
  page(Effect.gen(function*() {
    const session = yield* SignedIn
    if (!sameToken(yield* sentToken, session.csrf)) {
      return refuse(403, "Refused: this request lacks the console's CSRF token for your session; reload the page")
    }
    return yield* handler
  }))

/** The hidden field that carries the CSRF token in a form. */
export const csrfField = (session: Session): Html => html`<input type="hidden" name="_csrf" value="${session.csrf}">`

/** A tab of a function's pages: its label and its path under `/console/functions/<id>`. */
export interface FunctionTab {
  readonly label: string
  readonly path: string
}

/** The tabs of a function's pages, in order. */
export const functionTabs: ReadonlyArray<FunctionTab> = [
  { label: "Data", path: "data" },
  { label: "Model", path: "model" },
  { label: "Review", path: "review" },
  { label: "Try it", path: "try" }
]

/** What a page shows around its content. */
export interface Layout {
  readonly title: string
  /** The function whose pages this is one of (its tabs are shown), with the tab that is open. */
  readonly fn?: { readonly id: string; readonly name: string; readonly tab: string }
}

/** htmx's settings: no inline styles or eval (the CSP forbids both) and no scripts from swapped content. */
const htmxConfig = JSON.stringify({ includeIndicatorStyles: false, allowEval: false, allowScriptTags: false, historyCacheSize: 0 })

/** A whole page: head, header with navigation and sign-out, then `content`. */
export const document = (layout: Layout, content: Part): Effect.Effect<Html, never, Assets | SignedIn> =>
  Effect.gen(function*() {
    const assets = yield* Assets
    const session = yield* SignedIn
    const fn = layout.fn
    return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content="${htmxConfig}">
<meta name="csrf-token" content="${session.csrf}">
<title>${layout.title} · Loupe</title>
<link rel="stylesheet" href="${assets.stylesheet}">
<link rel="icon" href="${assets.icon}" type="image/svg+xml">
<script src="${assets.htmx}" defer></script>
<script src="${assets.script}" defer></script>
</head>
<body hx-headers="${JSON.stringify({ "X-CSRF-Token": session.csrf })}">
<header class="top">
<a class="brand" href="/console">Loupe</a>
<nav class="crumbs"><a href="/console/functions">Functions</a>${fn === undefined ? "" : html` / <a href="${path("/console/functions", fn.id, "data")}">${text(fn.name)}</a>`}</nav>
<form class="signout" method="post" action="/console/sign-out">${csrfField(session)}<button type="submit" class="link">Sign out <bdi>${session.keyName}</bdi></button></form>
</header>
${fn === undefined ? "" : html`<nav class="tabs">${functionTabs.map((t) =>
      html`<a href="${path("/console/functions", fn.id, t.path)}"${t.path === fn.tab ? raw(` aria-current="page"`) : ""}>${t.label}</a>`
    )}</nav>`}
<main>
${content}
</main>
</body>
</html>`
  })

/** A whole page as a response. */
export const documentResponse = (layout: Layout, content: Part, status = 200) =>
  Effect.map(document(layout, content), (body) => respond(body, status))

const statusOf: Readonly<Record<FunctionsError["reason"], number>> = {
  NotFound: 404,
  NotTrained: 409,
  TooFewSamples: 409,
  InvalidImage: 400,
  InvalidInput: 400,
  InvalidOptions: 400,
  InvalidPlugin: 400,
  NoBackbone: 500,
  TrainingFailed: 500,
  StoreFailed: 500
}

/** The status and message of a failure the console can explain: a `FunctionsError`, or a `DeployError` of the API's backend. */
const explain = (error: unknown): { readonly status: number; readonly message: string } | undefined => {
  const tag = typeof error === "object" && error !== null ? (error as { readonly _tag?: unknown })._tag : undefined
  if (tag === "FunctionsError") {
    const e = error as FunctionsError
    return { status: statusOf[e.reason] ?? 500, message: e.message }
  }
  if (tag === "DeployError") {
    const e = error as DeployError.DeployError
    return { status: DeployError.status(e.reason), message: e.message }
  }
  return undefined
}

/** The answer to a failed console request: the error's message (a server failure is logged, not shown). */
export const errorResponse = (error: unknown): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  const known = explain(error)
  const status = known === undefined ? 500 : known.status
  const message = status >= 500 ? "The server failed; see its log" : known!.message
  const body = html`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error · Loupe</title></head><body><main><p class="error" role="alert">${quoting(message)}</p><p><a href="/console/functions">Back to the functions</a></p></main></body></html>`
  return Effect.as(
    status >= 500 ? Effect.logError("Console request failed", error) : Effect.void,
    respond(body, status)
  )
}
