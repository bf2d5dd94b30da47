/**
 * Signing in and out: `GET /console/sign-in` (the form), `POST /console/sign-in` (an API key for a session cookie),
 * `POST /console/sign-out`, and `/console` itself, which leads to the functions.
 *
 * @internal
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse, UrlParams } from "@effect/platform"
import { Effect, Option } from "effect"
import { Assets } from "./Assets.js"
import { html } from "./Html.js"
import { action, redirect, respond, SignedIn } from "./Page.js"
import { randomToken, sameToken, sessionCookie, sessionSeconds, Sessions, setCookie, signInCookie } from "./Session.js"

/** Where to go after signing in: a console path of ours only, never another site. */
const safeNext = (next: string | undefined): string =>
  next !== undefined && /^\/console(\/|$|\?)/.test(next) && !next.includes("\\") ? next : "/console/functions"

const signInForm = (token: string, next: string, problem: string | undefined) =>
  Effect.map(Assets, (assets) =>
    html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Loupe</title>
<link rel="stylesheet" href="${assets.stylesheet}">
<link rel="icon" href="${assets.icon}" type="image/svg+xml">
</head>
<body class="signin">
<main>
<h1>Loupe console</h1>
<form method="post" action="/console/sign-in" class="card">
<input type="hidden" name="_signin" value="${token}">
<input type="hidden" name="next" value="${next}">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus placeholder="loupe_…">
${problem === undefined ? "" : html`<p class="error" role="alert">${problem}</p>`}
<button type="submit">Sign in</button>
<p class="hint">Create a key with <code>loupe keys create --store &lt;store&gt;</code>.</p>
</form>
</main>
</body>
</html>`)

/** The form, with a fresh double-submit token in a cookie and the form. */
const showForm = (next: string, problem: string | undefined, status: number) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const token = randomToken()
    const body = yield* signInForm(token, next, problem)
    return setCookie(respond(body, status), request, signInCookie, token, 3600)
  })

const signIn = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const form = yield* Effect.orElseSucceed(request.urlParamsBody, () => UrlParams.empty)
  const field = (name: string) => Option.getOrUndefined(UrlParams.getFirst(form, name))
  const next = safeNext(field("next"))
  if (!sameToken(field("_signin"), request.cookies[signInCookie] ?? "")) {
    return yield* showForm(next, "The sign-in form expired or came from another site; try again", 403)
  }
  const session = yield* Effect.flatMap(Sessions, (s) => s.signIn(field("key") ?? ""))
  if (session === undefined) return yield* showForm(next, "That API key is not valid (unknown, revoked or mistyped)", 401)
  const response = HttpServerResponse.empty({ status: 303, headers: { location: next } })
  return setCookie(setCookie(response, request, sessionCookie, session.id, sessionSeconds), request, signInCookie, "", 0)
})

const signOut = action(Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const session = yield* SignedIn
  yield* Effect.flatMap(Sessions, (s) => s.signOut(session.id))
  return setCookie(yield* redirect("/console/sign-in"), request, sessionCookie, "", 0)
}))

/** The sign-in routes. */
export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/console", Effect.succeed(HttpServerResponse.empty({ status: 303, headers: { location: "/console/functions" } }))),
  HttpRouter.get(
    "/console/sign-in",
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const params = yield* HttpServerRequest.ParsedSearchParams
      const next = safeNext(typeof params["next"] === "string" ? params["next"] : undefined)
      const session = yield* Effect.flatMap(Sessions, (s) => s.find(request.cookies[sessionCookie]))
      if (session !== undefined) return HttpServerResponse.empty({ status: 303, headers: { location: next } })
      return yield* showForm(next, undefined, 200)
    })
  ),
  HttpRouter.post("/console/sign-in", signIn),
  HttpRouter.post("/console/sign-out", signOut)
)
