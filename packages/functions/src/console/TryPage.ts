/**
 * Page 5, try a function (`GET /console/functions/:functionId/try`): drop an image (or pick one) and see what the
 * serving model says, with every label's confidence. The form posts the image as multipart (`POST .../try`, by htmx,
 * which sends the CSRF token) to `Functions.invoke`; the image is not kept: trying is not a capture.
 *
 * @internal
 */
import { HttpRouter, HttpServerRequest, Multipart } from "@effect/platform"
import { Chunk, Effect, Stream } from "effect"
import { FunctionsError } from "../FunctionsError.js"
import * as Functions from "../Functions.js"
import { functionIdParam, statusFragment } from "./FunctionsPage.js"
import { type Html, html, path, text } from "./Html.js"
import { action, csrfField, documentResponse, page, respond, SignedIn } from "./Page.js"

/** The page's content (the shell wraps it in the layout); `csrf` is the session's hidden CSRF field. */
export const render = (status: Functions.FunctionStatus, csrf: Html): Html => {
  const action = path("/console/functions", status.id, "try")
  return html`<section class="try-page">
${
    status.model === null
      ? html`<p class="notice">No model serves yet${status.training.phase === "idle" ? "" : ": training is in progress"}.</p>`
      : html`<p class="muted">Served by <code>${status.model.id}</code>, ${(status.model.cvAccuracy * 100).toFixed(1)}% cross-validated accuracy.</p>`
  }
<form class="try-form" method="post" action="${action}" enctype="multipart/form-data" hx-post="${action}" hx-encoding="multipart/form-data" hx-target="#prediction" hx-trigger="change">
${csrf}
<label class="try-drop"><span>Drop an image here, or click to pick one</span><input type="file" name="image" accept="image/*" required></label>
</form>
<div id="prediction" aria-live="polite"></div>
</section>`
}

/** The serving model's answer for `image`, as the fragment swapped into the page. */
export const predict = (functionId: string, image: Uint8Array): Effect.Effect<Html, FunctionsError, Functions.Functions> =>
  Effect.map(Effect.flatMap(Functions.Functions, (functions) => functions.invoke(functionId, image)), result)

/** An invocation's answer: the top label, then every label's confidence as a bar. */
export const result = (answer: Functions.InvokeResult): Html =>
  html`<div class="prediction" data-label="${answer.labelName}"><p class="top">${text(answer.labelName)} <span class="muted">${
    (answer.confidence * 100).toFixed(1)
  }%</span></p>
<table class="confidences"><tbody>${
    answer.labelConfidences.map((c) =>
      html`<tr><td>${text(c.labelName)}</td><td class="bar-cell"><meter min="0" max="1" value="${c.confidence.toFixed(4)}"></meter></td><td class="num">${
        (c.confidence * 100).toFixed(1)
      }%</td></tr>`
    )
  }</tbody></table><p class="muted">Model <code>${answer.modelId}</code>${answer.mode === "zero-shot" ? " (zero-shot, from the label names)" : ""}</p></div>`

const show = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const status = yield* Effect.flatMap(Functions.Functions, (functions) => functions.get(functionId))
  const session = yield* SignedIn
  return yield* documentResponse(
    { title: `${status.name}: try`, fn: { id: functionId, name: status.name, tab: "try" } },
    html`<h1>Try it</h1>${statusFragment(status, status.model?.id ?? null)}${render(status, csrfField(session))}`
  )
})

const noImage = new FunctionsError({ reason: "InvalidImage", field: "image", message: "image: no image in the form; pick or drop one" })

/** The bytes of the form's `image` file. */
const uploaded = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const files = yield* request.multipartStream.pipe(
    Stream.filter((part): part is Multipart.File => Multipart.isFile(part) && part.key === "image"),
    Stream.mapEffect((file) => file.contentEffect),
    Stream.runCollect,
    Effect.mapError((e) => new FunctionsError({ reason: "InvalidImage", field: "image", message: `image: ${e.message}`, cause: e }))
  )
  const [bytes] = Chunk.toReadonlyArray(files)
  return bytes === undefined || bytes.length === 0 ? yield* noImage : bytes
})

const tryImage = Effect.gen(function*() {
  const functionId = yield* functionIdParam
  const bytes = yield* uploaded
  return respond(yield* predict(functionId, bytes))
}).pipe(
  // Answered in place of the prediction (htmx swaps only a 2xx answer): a bad image, or no model yet.
  Effect.catchIf((e) => e.reason === "InvalidImage" || e.reason === "NotTrained", (e) =>
    Effect.succeed(respond(html`<p class="error" role="alert">${text(e.message)}</p>`)))
)

/** The try page's routes. */
export const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/console/functions/:functionId/try", page(show)),
  HttpRouter.post("/console/functions/:functionId/try", action(tryImage))
)
