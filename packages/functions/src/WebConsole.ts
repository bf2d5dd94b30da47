/**
 * The console: server-rendered pages under `/console`, enhanced with htmx, served by `loupe serve --console` from
 * the same HTTP server as the function API (`Server.layer({ console: true, ... })`). Off unless asked for.
 *
 * Security: signing in exchanges an API key (the API's own, `loupe keys create`) for a session in an HttpOnly,
 * SameSite=Strict cookie on `/console` (Secure over https); every mutating request must carry the session's CSRF
 * token or is refused 403; thumbnails and images need the session like every page; every response carries a
 * Content-Security-Policy without inline scripts (`script-src 'self'`, `frame-ancestors 'none'`), `nosniff` and
 * `Referrer-Policy: same-origin`. All user text is escaped (and bidi-isolated) by the `html` template.
 *
 * The contract of a page module (`src/console/<Name>Page.ts`), so pages can be added without touching the others:
 *
 * - It exports `routes`, an `HttpRouter` built with `HttpRouter.empty.pipe(HttpRouter.get(path, handler), ...)`,
 *   with full paths under `/console` (a function's pages under `/console/functions/:functionId/<tab>`). Register it
 *   by adding it to `pages` below, and a function tab to `functionTabs` in `console/Page.ts`.
 * - A handler that reads is wrapped in `page(...)` (the browser must be signed in; `SignedIn` gives the session);
 *   one that changes anything (any POST, PUT or DELETE) in `action(...)`, which also checks the CSRF token. A
 *   handler may fail with `FunctionsError` (or the API backend's `DeployError`): it becomes an error page (404 for
 *   `NotFound`, 400 for bad input, a logged 500 otherwise). A plain-text answer for the script is `refuse(status,
 *   message)`.
 * - It renders with `html\`...\`` (`console/Html.ts`): interpolated strings are escaped; user text shown as text
 *   goes through `text(...)` (a `<bdi>`), a sentence quoting user text (an error message) through `message(...)`
 *   (bidi controls shown as `[U+202E]`); URL paths with dynamic segments through `path(...)`. A whole page is
 *   `documentResponse({ title, fn: { id, name, tab } }, content)` (the layout, with the function's tabs); an htmx
 *   fragment is `respond(html\`...\`)`.
 * - A form that posts includes `csrfField(session)` (with `const session = yield* SignedIn`); htmx requests send the
 *   token by themselves (the layout sets `hx-headers` on `<body>`), and `console.js` reads it from
 *   `<meta name="csrf-token">` for its own `fetch`es (header `X-CSRF-Token`).
 * - Images: `<img src="/console/functions/<id>/samples/<sampleId>/thumbnail">` (a 192 px WebP, cached) and
 *   `.../image` (the full image), both behind the session.
 * - Live status: `statusFragment(status, servingModelId ?? null)` from `console/FunctionsPage.ts` polls itself every
 *   2 s, names the serving model in `data-model`, and says "New model serving" once another one serves.
 * - Insights (suspects, duplicates, outliers): `InsightsCache` (`console/InsightsCache.ts`), computed once per state
 *   of the function's data.
 * - No inline scripts, inline event handlers or `style` attributes: behaviour goes in `assets/console/console.js`,
 *   styles in `assets/console/console.css`.
 *
 * @since 0.2.0
 */
import type { FileSystem } from "@effect/platform"
import { HttpApiBuilder, HttpRouter, HttpServerResponse } from "@effect/platform"
import { ApiKeys, FunctionBackend } from "@loupe/deploy"
import { Context, Effect, Layer } from "effect"
import type { BlobStore } from "./BlobStore.js"
import * as Assets from "./console/Assets.js"
import * as DataPage from "./console/DataPage.js"
import type * as Dismissals from "./console/Dismissals.js"
import * as FunctionsPage from "./console/FunctionsPage.js"
import * as InsightsCache from "./console/InsightsCache.js"
import * as ModelPage from "./console/ModelPage.js"
import { errorResponse, refuse } from "./console/Page.js"
import * as ReviewPage from "./console/ReviewPage.js"
import * as Session from "./console/Session.js"
import * as SignInPage from "./console/SignInPage.js"
import * as Thumbnails from "./console/Thumbnails.js"
import * as TryPage from "./console/TryPage.js"
import type { FunctionsError } from "./FunctionsError.js"
import type { Functions } from "./Functions.js"
import type { Retrainer } from "./Retrainer.js"
import type { Store } from "./Store.js"

/**
 * The headers of every console response: a Content-Security-Policy that allows scripts, styles, images and requests
 * from this origin only (no inline scripts or styles, no framing, forms post only here), `nosniff`, and no referrer
 * beyond this origin.
 *
 * @since 0.2.0
 * @category constants
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  "content-security-policy": [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'"
  ].join("; "),
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin"
}

/** The console's pages, in the order their routes are added. */
const pages = [SignInPage.routes, FunctionsPage.routes, DataPage.routes, ModelPage.routes, ReviewPage.routes, TryPage.routes]

/**
 * The services the console's routes read: the function API, its store and blob store, the retrainer, the API keys,
 * the API's backend (for changes that must do exactly what the API does, such as deleting a function with its
 * captures, and for the review queue of captures) and the Review page's dismissals.
 *
 * @since 0.2.0
 * @category models
 */
export type Services =
  | Functions
  | Retrainer
  | Store
  | BlobStore
  | ApiKeys.ApiKeys
  | FunctionBackend.FunctionBackend
  | Dismissals.Dismissals

/**
 * The console's routes, added to the function API's router (`HttpApiBuilder.Router`): build it beside
 * `HttpApiBuilder.serve` (as `Server.layer` does with `console: true`). Fails with `FunctionsError` `StoreFailed`
 * when its static files cannot be read.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<never, FunctionsError, Services | FileSystem.FileSystem> = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const assets = yield* Assets.make
    const sessions = Session.make(yield* ApiKeys.ApiKeys)
    const thumbnails = yield* Thumbnails.make
    const insights = yield* InsightsCache.make
    const services = (yield* Effect.context<Services>()).pipe(
      Context.add(Assets.Assets, assets),
      Context.add(Session.Sessions, sessions),
      Context.add(Thumbnails.Thumbnails, thumbnails),
      Context.add(InsightsCache.InsightsCache, insights)
    )
    const notFound = HttpRouter.all("/console/*", Effect.succeed(refuse(404, "No such console page")))
    const all = HttpRouter.concatAll(...pages, Assets.routes(assets)).pipe(
      notFound,
      HttpRouter.use((handler) =>
        handler.pipe(
          Effect.catchAll(errorResponse),
          Effect.catchAllDefect(errorResponse),
          Effect.map((response) => HttpServerResponse.setHeaders(response, securityHeaders)),
          Effect.provide(services)
        )
      )
    )
    yield* router.concat(all)
  })
)
