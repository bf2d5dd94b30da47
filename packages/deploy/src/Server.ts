/**
 * The HTTP server of `FunctionApi` over a `FunctionBackend`: bearer API keys with a per-key rate limit, request
 * bodies and images checked before anything decodes them, invoke capture into the review queue, `/openapi.json`,
 * health probes, and a graceful shutdown that drains requests in flight.
 *
 * ```ts
 * const serving = Server.layer({ port: 8080 }).pipe(
 *   Layer.provide(ApiKeys.layer("./store/keys.json")),
 *   Layer.provide(myBackendLayer)
 * )
 * Layer.launch(serving).pipe(NodeRuntime.runMain)
 * ```
 *
 * Bad input never becomes a 500: malformed JSON, wrong content types, oversized bodies, bombs and schema mismatches
 * are answered 4xx with `{ _tag, reason, message, field }`. A 500 means a bug or a failing store, and is logged.
 *
 * Shutdown (the layer's scope closing, e.g. on SIGTERM): readiness turns 503 and new requests are answered 503 with
 * `Connection: close`, the listener stops accepting connections, requests in flight finish (up to `drainTimeoutMs`),
 * then the connections close.
 *
 * @since 0.1.0
 */
import {
  FileSystem,
  HttpApi,
  HttpApiBuilder,
  HttpApiError,
  HttpApp,
  HttpIncomingMessage,
  HttpRouter,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse,
  Multipart,
  Path
} from "@effect/platform"
import { NodeHttpServer, NodeHttpServerRequest } from "@effect/platform-node"
import { Effect, Either, Layer, Option, Random, Redacted, Schema } from "effect"
import * as http from "node:http"
import { ApiKeys } from "./ApiKeys.js"
import * as CapturePolicy from "./CapturePolicy.js"
import { DeployError, status } from "./DeployError.js"
import * as Api from "./FunctionApi.js"
import { FunctionBackend } from "./FunctionBackend.js"
import * as ImageGuard from "./ImageGuard.js"
import * as ImagePayload from "./ImagePayload.js"
import { mediaType, otherContentType } from "./internal/Payload.js"
import * as RateLimiter from "./RateLimiter.js"
import type * as UrlFetch from "./UrlFetch.js"

/**
 * The HTTP server's options: where it listens, its limits, invoke capture, URL fetching, timeouts and request
 * logging. Every field has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions {
  /** Default 8080; 0 picks a free port. */
  readonly port?: number
  /** Default 127.0.0.1. Serving beyond this machine is a choice: pass 0.0.0.0. */
  readonly host?: string
  /** Limits on each image: bytes and pixels (width x height, read from the header). */
  readonly image?: Partial<ImageGuard.ImageLimits>
  /** Requests per API key. Default 50/s with bursts of 100. */
  readonly rateLimit?: RateLimiter.RateLimit
  /** Invoke capture. Default `CapturePolicy.defaults`. */
  readonly capture?: Partial<CapturePolicy.CapturePolicy>
  /**
   * Fetch `http(s)` URLs given as image data, from public addresses only unless `allowPrivateUrls` (see `UrlFetch`).
   * Default false: a server that fetches URLs it is handed makes requests on its callers' behalf.
   */
  readonly allowUrlFetch?: boolean
  /**
   * With `allowUrlFetch`: fetch from private addresses too (loopback, RFC 1918, link-local, unique-local, ...; see
   * `UrlFetch`): `true` for all of them, or a function deciding per address (say, one intranet image host). Default
   * false: only public addresses are fetched.
   */
  readonly allowPrivateUrls?: UrlFetch.AddressPolicy
  /** The longest a shutdown waits for requests in flight. Default 10 s. */
  readonly drainTimeoutMs?: number
  /**
   * The longest a client may take to send a request. Default 30 s. Checked every second (or every tenth of the
   * headers' time, when shorter).
   */
  readonly requestTimeoutMs?: number
  /** The longest a client may take to send a request's headers. Default 20 s, or `requestTimeoutMs` when shorter. */
  readonly headersTimeoutMs?: number
  /** Log each request at info level: method, path, status and milliseconds. Default false. */
  readonly logRequests?: boolean
}

/**
 * The image limits when `ServerOptions.image` leaves them out: 16 MiB and 40 megapixels.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultImageLimits: ImageGuard.ImageLimits = ImageGuard.defaultLimits

/** An API error (the wire form) for a `DeployError`; server-side failures are logged. */
const toApiError = (e: DeployError): Effect.Effect<never, Api.ApiError> => {
  const fields = { reason: e.reason, message: e.message, ...(e.field === undefined ? {} : { field: e.field }) }
  switch (status(e.reason)) {
    case 401:
      return Effect.fail(new Api.Unauthorized(fields))
    case 404:
      return Effect.fail(new Api.NotFound(fields))
    case 405:
      return Effect.fail(new Api.MethodNotAllowed(fields))
    case 409:
      return Effect.fail(new Api.Conflict(fields))
    case 413:
      return Effect.fail(new Api.PayloadTooLarge(fields))
    case 415:
      return Effect.fail(new Api.UnsupportedMediaType(fields))
    case 429:
      return Effect.fail(new Api.TooManyRequests(fields))
    case 503:
      return Effect.fail(new Api.ServiceUnavailable(fields))
    case 500:
      return Effect.zipRight(
        Effect.logError(`${e.reason}: ${e.message}`, e.cause ?? ""),
        Effect.fail(new Api.InternalServerError({ reason: e.reason, message: "The server failed; see its log" }))
      )
    default:
      return Effect.fail(new Api.BadRequest(fields))
  }
}

const api = <A, R>(effect: Effect.Effect<A, DeployError, R>) => Effect.catchAll(effect, toApiError)

/** Requests in flight and whether the server is shutting down. */
interface Lifecycle {
  inflight: number
  draining: boolean
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers })

/** The byte limits on request bodies. */
interface BodyLimits {
  /** A JSON or multipart body: the image as base64 (4/3 larger) plus a little more. */
  readonly body: number
  /** A raw image body, and a multipart form's file. */
  readonly image: number
}


const isRawImage = (type: string) => type.startsWith("image/") || type === "application/octet-stream"

/**
 * Read and drop the rest of a request body nobody will read (the answer to it is a 413), so that the client, still
 * sending, gets the answer rather than a reset connection. Node's `requestTimeout` bounds how long this goes on.
 */
const drain = (incoming: http.IncomingMessage) => {
  if (incoming.complete || incoming.socket.destroyed) return
  incoming.unpipe()
  incoming.removeAllListeners("data")
  incoming.resume()
}

/**
 * The server's requests: a reader that stops early (the platform's, past `MaxBodySize`) destroys the request, which
 * in Node destroys the socket before the 413 is written. An unfinished body is drained instead (see `drain`).
 */
class DrainingIncomingMessage extends http.IncomingMessage {
  override destroy(error?: Error): this {
    if (error === undefined && !this.complete && !this.socket.destroyed) {
      drain(this)
      return this
    }
    return super.destroy(error)
  }
}

/**
 * A 413 for a body still arriving: answered at once (a client reading while it sends stops there), with the rest of
 * the body drained and the connection kept open (`Connection: keep-alive`, whatever the client asked), so that a
 * client that reads only once it has sent everything does not find the connection closed under it. Node closes the
 * connection after its keep-alive timeout, or cuts a body that takes longer than the request timeout.
 */
const answerWhileDraining = (incoming: http.IncomingMessage, response: HttpServerResponse.HttpServerResponse) => {
  if (incoming.complete || incoming.socket.destroyed) return response
  drain(incoming)
  return HttpServerResponse.setHeader(response, "connection", "keep-alive")
}

const tooLarge = (message: string) =>
  json(413, { _tag: "PayloadTooLarge", reason: "BodyTooLarge", field: "body", message: `body: ${message}` })

/**
 * The outermost middleware: the in-flight count, 503 once draining, the body limits (a declared `Content-Length`
 * over the limit is answered 413 before anything reads; the platform's `MaxBodySize` and multipart limits enforce
 * the rest while reading), and headers on every response (set in a pre-response handler, as the response is written
 * inside), where `logRequests` also logs the request with the time until its response was ready. Probes still answer
 * while draining (`/readyz` says 503 from its handler).
 */
const lifecycleMiddleware = (lifecycle: Lifecycle, limits: BodyLimits, logRequests: boolean) => (app: HttpApp.Default): HttpApp.Default =>
  Effect.gen(function*() {
    const started = performance.now()
    const request = yield* HttpServerRequest.HttpServerRequest
    const probe = request.url === "/healthz" || request.url === "/readyz"
    if (lifecycle.draining && !probe) {
      return json(503, { _tag: "ServiceUnavailable", reason: "Unavailable", message: "The server is shutting down" }, {
        connection: "close",
        "retry-after": "1"
      })
    }
    const secured = (response: HttpServerResponse.HttpServerResponse) => {
      // `no-store` unless the route chose its own caching (the console's static files).
      const headers = HttpServerResponse.setHeaders(response, {
        "x-content-type-options": "nosniff",
        "cache-control": response.headers["cache-control"] ?? "no-store"
      })
      return lifecycle.draining ? HttpServerResponse.setHeader(headers, "connection", "close") : headers
    }
    const type = mediaType(request)
    const limit = isRawImage(type) ? limits.image : limits.body
    const declared = Number(request.headers["content-length"] ?? "0")
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    if (declared > limit) return secured(answerWhileDraining(incoming, tooLarge(`${declared} bytes is over the ${limit}-byte limit`)))
    yield* HttpApp.appendPreResponseHandler((_, response) =>
      Effect.sync(() => secured(response.status === 413 ? answerWhileDraining(incoming, response) : response)).pipe(
        Effect.tap((response) =>
          logRequests
            ? Effect.logInfo(`${request.method} ${request.url.split("?")[0]} ${response.status} ${Math.round(performance.now() - started)} ms`)
            : Effect.void
        )
      )
    )
    lifecycle.inflight++
    const limited = type === "multipart/form-data"
      ? Multipart.withLimits(app, {
        maxParts: Option.some(16),
        maxFieldSize: 64 * 1024,
        maxFileSize: Option.some(limits.image),
        maxTotalSize: Option.some(limits.body)
      })
      : HttpIncomingMessage.withMaxBodySize(app, Option.some(limit))
    return yield* Effect.ensuring(limited, Effect.sync(() => lifecycle.inflight--))
  })

const tooLargeForm = (cause: unknown) =>
  new Api.PayloadTooLarge({
    reason: "BodyTooLarge",
    field: "body",
    message: `body: the form is over its limits (${
      (cause as { readonly limit?: unknown } | undefined)?.limit ?? "size"
    }; at most 16 parts, 64 KiB per text field, the image limit per file and the body limit in all)`
  })

/** The API error for a failure to read the body (the platform reads it, and dies when it cannot). */
const bodyError = (defect: unknown): Api.BadRequest | Api.PayloadTooLarge | undefined => {
  if (defect instanceof Multipart.MultipartError) {
    switch (defect.reason) {
      case "Parse":
        return new Api.BadRequest({ reason: "InvalidRequest", field: "body", message: "body: not a valid multipart form" })
      case "InternalError":
        // A file over its size limit fails the temporary file's write: a refusal too, not the server's fault.
        return (defect.cause as { readonly _tag?: unknown } | undefined)?._tag === "ReachedLimit" ? tooLargeForm(defect.cause) : undefined
      default:
        return tooLargeForm(defect.cause)
    }
  }
  if (typeof defect === "object" && defect !== null && (defect as { readonly _tag?: unknown })._tag === "RequestError") {
    const cause = (defect as { readonly cause?: unknown }).cause
    if (cause instanceof Error && cause.message === "maxBytes exceeded") {
      return new Api.PayloadTooLarge({ reason: "BodyTooLarge", field: "body", message: "body: over the byte limit" })
    }
    const detail = cause instanceof SyntaxError ? `not valid JSON: ${cause.message}` : `cannot be read: ${cause instanceof Error ? cause.message : String(cause)}`
    return new Api.BadRequest({ reason: "InvalidRequest", field: "body", message: `body: ${detail}` })
  }
  return undefined
}

/**
 * Inside the API's error handling: schema failures of paths, query parameters and payloads become `BadRequest`
 * naming the field (`body` for the payload as a whole), bodies that cannot be read `BadRequest` or
 * `PayloadTooLarge`, unknown routes `NotFound`, and other defects a logged `InternalServerError`, all in the API's
 * JSON error form.
 */
const apiMiddleware = HttpApiBuilder.middleware(Api.FunctionApi, (app) =>
  (app as HttpApp.Default<unknown>).pipe(
    Effect.catchAll((e) => {
      if (e instanceof HttpApiError.HttpApiDecodeError) {
        // The payload's members for other content types than the request's have nothing to say about it.
        const issue = e.issues.find((i) => i.message !== otherContentType) ?? e.issues[0]
        const field = issue && issue.path.length > 0 ? issue.path.map(String).join(".") : "body"
        return Effect.fail(new Api.BadRequest({ reason: "InvalidRequest", field, message: `${field}: ${issue?.message ?? e.message}` }))
      }
      if (typeof e === "object" && e !== null && (e as { readonly _tag?: unknown })._tag === "RouteNotFound") {
        return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          Effect.fail(new Api.NotFound({ reason: "NotFound", message: `No route ${request.method} ${request.url.split("?")[0]}` })))
      }
      return Effect.fail(e)
    }),
    Effect.catchAllDefect((defect): Effect.Effect<never, Api.BadRequest | Api.PayloadTooLarge | Api.InternalServerError> => {
      const refused = bodyError(defect)
      if (refused !== undefined) return Effect.fail(refused)
      return Effect.zipRight(
        Effect.logError("Defect while handling a request", defect),
        Effect.fail(new Api.InternalServerError({ reason: "Internal", message: "The server failed; see its log" }))
      )
    })
  ) as HttpApp.Default<Api.BadRequest | Api.NotFound | Api.PayloadTooLarge | Api.InternalServerError>)

/** Each route's documented body content types, by `METHOD path` as the router names them. */
const documentedContentTypes = (): ReadonlyMap<string, ReadonlySet<string>> => {
  const byRoute = new Map<string, ReadonlySet<string>>()
  HttpApi.reflect(Api.FunctionApi, {
    onGroup: () => {},
    onEndpoint: ({ endpoint, payloads }) => {
      if (payloads.size > 0) byRoute.set(`${endpoint.method} ${endpoint.path}`, new Set(payloads.keys()))
    }
  })
  return byRoute
}

/**
 * A multipart form, read (the platform caches it for the payload's decoding) with a bound: the parser never
 * finishes a body that ends inside a part's headers, so once the body has arrived the form must be read within
 * `graceMs`.
 */
const readForm = (request: HttpServerRequest.HttpServerRequest, graceMs: number) => {
  const incoming = NodeHttpServerRequest.toIncomingMessage(request)
  const arrived = incoming.complete
    ? Effect.void
    : Effect.async<void>((resume) => {
      const done = () => resume(Effect.void)
      incoming.once("end", done)
      return Effect.sync(() => incoming.off("end", done))
    })
  const cut = Effect.zipRight(
    arrived,
    Effect.zipRight(Effect.sleep(graceMs), Effect.fail(new Multipart.MultipartError({ reason: "Parse", cause: "the body ends inside a part" })))
  )
  return Effect.raceFirst(Effect.asVoid(request.multipart), cut)
}

/**
 * `ContentTypes`: a body whose content type the route does not document is refused before it is read, and a
 * multipart form is read here, after the API key was checked, so that its failures are answered as such.
 */
const contentTypes = Layer.effect(
  Api.ContentTypes,
  Effect.gen(function*() {
    const byRoute = documentedContentTypes()
    const platform = yield* Effect.context<FileSystem.FileSystem | Path.Path>()
    return Effect.gen(function*() {
      const { route } = yield* HttpRouter.RouteContext
      const accepted = byRoute.get(`${route.method} ${route.path}`)
      if (accepted === undefined) return
      const request = yield* HttpServerRequest.HttpServerRequest
      const type = mediaType(request)
      if (!accepted.has(type)) {
        return yield* new Api.UnsupportedMediaType({
          reason: "UnsupportedMediaType",
          field: "content-type",
          message: `content-type: ${type === "" ? "missing" : type}; this route takes ${[...accepted].join(", ")}`
        })
      }
      if (type === "multipart/form-data") {
        if (!/;\s*boundary=/i.test(request.headers["content-type"] ?? "")) {
          return yield* new Api.BadRequest({ reason: "InvalidRequest", field: "body", message: "body: a multipart/form-data body needs a boundary in its Content-Type" })
        }
        yield* readForm(request, 2_000).pipe(
          Effect.provide(platform),
          // An `InternalError` (the temporary file could not be written) is the server's: a logged 500.
          Effect.catchAll((e) => {
            const refused = bodyError(e)
            return refused === undefined ? Effect.die(e) : Effect.fail(refused)
          })
        )
      }
    })
  })
)

/** Bearer API keys and the per-key rate limit. */
const authorization = (rateLimit: RateLimiter.RateLimit) =>
  Layer.effect(
    Api.Authorization,
    Effect.gen(function*() {
      const keys = yield* ApiKeys
      const limiter = yield* RateLimiter.make(rateLimit)
      return {
        // The whole header, not the platform's token: it takes any scheme of the right length ("Digest <key>").
        bearer: (_: Redacted.Redacted<string>) =>
          Effect.gen(function*() {
            const request = yield* HttpServerRequest.HttpServerRequest
            const key = yield* keys.authenticate(request.headers["authorization"]).pipe(
              Effect.tapError((e) =>
                e.reason === "Unauthorized"
                  ? HttpApp.appendPreResponseHandler((_, response) =>
                    Effect.succeed(HttpServerResponse.setHeader(response, "www-authenticate", "Bearer"))
                  )
                  : Effect.void
              ),
              Effect.catchAll((e) => toApiError(e) as Effect.Effect<never, Api.Unauthorized | Api.InternalServerError>)
            )
            // Nyckel's clients (an access token) are answered as Nyckel answers: 200 where Loupe says 201 or 204.
            if (key.via === "accessToken") {
              yield* HttpApp.appendPreResponseHandler((_, response) =>
                Effect.succeed(response.status === 201 || response.status === 204 ? HttpServerResponse.setStatus(response, 200) : response)
              )
            }
            const decision = yield* limiter.take(key.id)
            if (!decision.allowed) {
              const seconds = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)))
              yield* HttpApp.appendPreResponseHandler((_, response) =>
                Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", seconds))
              )
              return yield* new Api.TooManyRequests({
                reason: "RateLimited",
                field: "authorization",
                message: `API key ${key.id} is over its limit of ${rateLimit.perSecond} requests/s; retry in ${decision.retryAfterMs} ms`
              })
            }
            return key
          })
      }
    })
  )

/** Label counts per function for the rare-class policy, refreshed every 10 s. */
const labelCountsCache = (backend: typeof FunctionBackend.Service) => {
  const cache = new Map<string, { readonly at: number; readonly counts: ReadonlyMap<string, number> }>()
  return (functionId: string) =>
    Effect.suspend(() => {
      const hit = cache.get(functionId)
      if (hit !== undefined && Date.now() - hit.at < 10_000) return Effect.succeed(hit.counts)
      return backend.getFunction(functionId).pipe(
        Effect.map((fn) => {
          const counts = new Map(fn.labels.map((l) => [l.name, l.sampleCount]))
          if (cache.size > 10_000) cache.clear()
          cache.set(functionId, { at: Date.now(), counts })
          return counts as ReadonlyMap<string, number>
        }),
        Effect.orElseSucceed(() => undefined)
      )
    })
}

/** Whether the request came from a Nyckel client: one that authenticated with an OAuth2 access token. */
const fromNyckelClient = Effect.map(Api.CurrentKey, (key) => key.via === "accessToken")

/**
 * A sample as its caller expects it: Loupe's view for an API key; for a Nyckel client, with its image as `data` and
 * no `annotation` while unlabelled (Nyckel leaves it out).
 */
const sampleFor = (backend: typeof FunctionBackend.Service, functionId: string) => (sample: Api.SampleView) =>
  Effect.flatMap(fromNyckelClient, (nyckel): Effect.Effect<Api.SampleView, DeployError> => {
    if (!nyckel) return Effect.succeed(sample)
    const { annotation, ...rest } = sample
    return Effect.map(backend.sampleData(functionId, sample.id), (data) => ({
      ...rest,
      ...(annotation === null || annotation === undefined ? {} : { annotation }),
      data
    }))
  })

/** A tag set as the backend takes it: the tags a Nyckel client marks `present: false` are not the sample's. */
const presentTags = (tags: Api.TagsAnnotationInput) =>
  tags.filter((t) => t.present !== false).map((t) => ("labelId" in t ? { labelId: t.labelId } : { labelName: t.labelName }))

/** A page of samples as the list routes ask for it; a full page says where the next one is, as Nyckel does. */
const samplesPage = (backend: typeof FunctionBackend.Service, functionId: string, urlParams: Api.SampleListParams) =>
  Effect.gen(function*() {
    const limit = urlParams.batchSize ?? urlParams.limit ?? 100
    const offset = urlParams.offset ?? 0
    const samples = yield* backend.listSamples(functionId, { limit, offset, descending: urlParams.sortOrder === "descending" })
    if (samples.length === limit) {
      // A path, with this request's parameters.
      const request = yield* HttpServerRequest.HttpServerRequest
      const next = new URL(request.url, "http://localhost")
      next.searchParams.set("offset", String(offset + limit))
      yield* HttpApp.appendPreResponseHandler((_, response) =>
        Effect.succeed(HttpServerResponse.setHeader(response, "link", `<${next.pathname}${next.search}>; rel="next"`))
      )
    }
    return samples
  })

/** A Tags function's sample as Nyckel shows it: its image as `data`, its tags as `annotation`. */
const nyckelTagsSample = (backend: typeof FunctionBackend.Service, functionId: string) => (sample: Api.SampleView) =>
  Effect.map(backend.sampleData(functionId, sample.id), (data): Api.NyckelTagsSample => ({
    id: sample.id,
    externalId: sample.externalId,
    createdAt: sample.createdAt,
    data,
    ...(sample.tags === undefined ? {} : { annotation: sample.tags.map((t) => ({ ...t, present: true as const })) })
  }))

/** The function kinds a create may ask for: images only, classification or tags. */
const checkKind = (input: Api.CreateFunction): Effect.Effect<void, DeployError> => {
  if (input.input !== undefined && input.input !== "Image") {
    return Effect.fail(new DeployError({
      reason: "InvalidRequest",
      field: "input",
      message: `input: Loupe functions take images; ${JSON.stringify(input.input)} functions are not supported (send "Image")`
    }))
  }
  if (input.output !== undefined && input.output !== "Classification" && input.output !== "Tags") {
    return Effect.fail(new DeployError({
      reason: "InvalidRequest",
      field: "output",
      message: `output: ${JSON.stringify(input.output)} is not a function output Loupe has; send "Classification" or "Tags"`
    }))
  }
  return Effect.void
}

/** The one project Loupe has, for Nyckel's clients (every function is in it). */
const defaultProject = { id: "project_default", name: "default" }

/** OAuth2's error answer (RFC 6749 section 5.2) for a refused token request. */
const oauthError = (e: DeployError): Effect.Effect<never, Api.OAuthUnauthorized | Api.InternalServerError> =>
  e.reason === "Unauthorized"
    ? Effect.fail(new Api.OAuthUnauthorized({ error: "invalid_client", error_description: e.message, field: e.field ?? "client_id" }))
    // The key store failed: the server's fault.
    : Effect.zipRight(
      Effect.logError(`${e.reason}: ${e.message}`, e.cause ?? ""),
      Effect.fail(new Api.InternalServerError({ reason: e.reason, message: "The server failed; see its log" }))
    )

const handlers = (options: {
  readonly capture: CapturePolicy.CapturePolicy
  readonly lifecycle: Lifecycle
}) => {
  const { lifecycle } = options
  const policy = options.capture

  const Health = HttpApiBuilder.group(Api.FunctionApi, "health", (h) =>
    h
      .handle("healthz", () => Effect.succeed({ status: "ok" }))
      .handle("readyz", () =>
        lifecycle.draining
          ? Effect.fail(new Api.ServiceUnavailable({ reason: "Unavailable", message: "The server is shutting down" }))
          : Effect.succeed({ status: "ready" })))

  const Functions = HttpApiBuilder.group(Api.FunctionApi, "functions", (h) =>
    Effect.map(FunctionBackend, (backend) =>
      h
        .handle("create", ({ payload }) => api(Effect.zipRight(checkKind(payload), backend.createFunction(payload))))
        .handle("list", () => api(backend.listFunctions))
        .handle("get", ({ path }) => api(backend.getFunction(path.functionId)))
        .handle("delete", ({ path }) => api(backend.deleteFunction(path.functionId)))))

  const Labels = HttpApiBuilder.group(Api.FunctionApi, "labels", (h) =>
    Effect.map(FunctionBackend, (backend) =>
      h
        .handle("create", ({ path, payload }) => api(backend.createLabel(path.functionId, payload)))
        .handle("list", ({ path }) => api(backend.listLabels(path.functionId)))
        .handle("get", ({ path }) => api(backend.getLabel(path.functionId, path.labelId)))
        .handle("update", ({ path, payload }) => api(backend.updateLabel(path.functionId, path.labelId, payload)))
        .handle("delete", ({ path }) => api(backend.deleteLabel(path.functionId, path.labelId)))))

  const Samples = HttpApiBuilder.group(Api.FunctionApi, "samples", (h) =>
    Effect.map(FunctionBackend, (backend) =>
      h
        .handle("create", ({ path, payload }) =>
          api(
            Effect.gen(function*() {
              // A raw body is the image alone; JSON and forms carry the annotation and externalId beside it.
              if (Either.isEither(payload)) return yield* backend.createSample(path.functionId, { image: (yield* payload).bytes })
              const image = yield* payload.data
              return yield* backend.createSample(path.functionId, {
                image: image.bytes,
                labelName: "annotation" in payload ? payload.annotation?.labelName : "labelName" in payload ? payload.labelName : undefined,
                externalId: payload.externalId ?? undefined
              })
            })
          ))
        .handle("list", ({ path, urlParams }) =>
          api(Effect.flatMap(samplesPage(backend, path.functionId, urlParams), Effect.forEach(sampleFor(backend, path.functionId)))))
        .handle("get", ({ path }) => api(Effect.flatMap(backend.getSample(path.functionId, path.sampleId), sampleFor(backend, path.functionId))))
        .handle("delete", ({ path }) => api(backend.deleteSample(path.functionId, path.sampleId)))
        .handle("annotate", ({ path, payload }) =>
          api(
            Array.isArray(payload)
              ? backend.setTags(path.functionId, path.sampleId, presentTags(payload as Api.TagsAnnotationInput))
              : backend.setAnnotation(path.functionId, path.sampleId, payload as Api.AnnotationInput)
          ))
        .handle("unannotate", ({ path }) => api(backend.setAnnotation(path.functionId, path.sampleId, null)))))

  const Invoke = HttpApiBuilder.group(Api.FunctionApi, "invoke", (h) =>
    Effect.gen(function*() {
      const backend = yield* FunctionBackend
      const captures = yield* RateLimiter.make({ perSecond: policy.perMinute / 60, burst: Math.max(1, Math.ceil(policy.perMinute / 6)) })
      const labelCounts = labelCountsCache(backend)

      /** Store the invocation for review when the policy says so and the function's capture budget allows. */
      const capture = (functionId: string, image: Uint8Array, result: { readonly labelName: string; readonly confidence: number; readonly modelId: string }, externalId: string | undefined) =>
        Effect.gen(function*() {
          const counts = policy.rareClassShare > 0 ? yield* labelCounts(functionId) : undefined
          const reason = CapturePolicy.decide(policy, { ...result, ...(counts === undefined ? {} : { labelCounts: counts }) }, yield* Random.next)
          if (reason === undefined) return null
          if (!(yield* captures.take(functionId)).allowed) return null
          return yield* backend.capture(functionId, image, { reason, ...result, externalId }).pipe(
            Effect.catchAll((e) => Effect.as(Effect.logWarning(`Capture for ${functionId} failed: ${e.message}`), null))
          )
        })

      return h
        .handle("invoke", ({ path, payload, urlParams }) =>
          api(
            Effect.gen(function*() {
              const { data, externalId } = Either.isEither(payload) ? { data: payload, externalId: undefined } : payload
              const image = (yield* data).bytes
              const result = yield* backend.invoke(path.functionId, image, {
                labelCount: urlParams.labelCount,
                modelId: urlParams.modelId === "" ? undefined : urlParams.modelId
              })
              const echo = externalId === undefined ? {} : { externalId }
              if ("tags" in result) {
                const least = CapturePolicy.leastSureTag(result.tags)
                const sampleId = urlParams.capture === false || least === undefined
                  ? null
                  : yield* capture(path.functionId, image, { ...least, modelId: result.modelId }, externalId)
                return { ...result, sampleId, ...echo } satisfies Api.TagsInvokeResult
              }
              const sampleId = urlParams.capture === false ? null : yield* capture(path.functionId, image, result, externalId)
              return { ...result, sampleId, ...echo } satisfies Api.InvokeResult
            })
          ))
        .handle("metrics", ({ path }) => api(backend.metrics(path.functionId)))
        .handle("insights", ({ path }) => api(backend.insights(path.functionId)))
        .handle("captures", ({ path, urlParams }) => api(backend.listCaptures(path.functionId, urlParams)))
    }))

  const Models = HttpApiBuilder.group(Api.FunctionApi, "models", (h) =>
    Effect.map(FunctionBackend, (backend) =>
      h
        .handle("list", ({ path }) => api(backend.listModels(path.functionId)))
        .handle("promote", ({ path }) => api(backend.promoteModel(path.functionId, path.modelId)))))

  const Token = HttpApiBuilder.group(Api.FunctionApi, "token", (h) =>
    Effect.map(ApiKeys, (keys) =>
      h.handle("token", ({ payload }) => {
        const missing = (field: string) =>
          Effect.fail(new Api.OAuthBadRequest({ error: "invalid_request", error_description: `${field}: missing`, field }))
        if (payload.grant_type === undefined) return missing("grant_type")
        if (payload.grant_type !== "client_credentials") {
          return Effect.fail(new Api.OAuthBadRequest({
            error: "unsupported_grant_type",
            error_description: `grant_type: ${JSON.stringify(payload.grant_type)} is not supported; send "client_credentials"`,
            field: "grant_type"
          }))
        }
        if (payload.client_id === undefined || payload.client_id === "") return missing("client_id")
        if (payload.client_secret === undefined || payload.client_secret === "") return missing("client_secret")
        return keys.issueToken(payload.client_id, payload.client_secret).pipe(
          Effect.map((token) => ({ access_token: token.accessToken, token_type: "Bearer" as const, expires_in: token.expiresIn })),
          Effect.catchAll(oauthError)
        )
      })))

  const Nyckel = HttpApiBuilder.group(Api.FunctionApi, "nyckel", (h) =>
    Effect.map(FunctionBackend, (backend) =>
      h
        .handle("function", ({ path }) =>
          api(Effect.map(backend.getFunction(path.functionId), (fn) => ({
            id: fn.id,
            name: fn.name,
            input: fn.input,
            output: fn.output,
            state: fn.model === null ? "Annotating" as const : "Tuning" as const,
            createdAt: fn.createdAt
          }))))
        .handle("metrics", ({ path }) =>
          api(Effect.map(backend.getFunction(path.functionId), (fn) => {
            const counts = Object.fromEntries(fn.labels.filter((l) => l.sampleCount > 0).map((l) => [l.id, l.sampleCount]))
            return {
              functionId: fn.id,
              isTraining: fn.training.pending || fn.training.phase !== "idle",
              sampleCount: fn.sampleCount,
              predictionCount: fn.model?.upToDate === true ? fn.sampleCount : 0,
              annotatedLabelCounts: counts,
              ...(fn.output === "Tags" ? { positiveAnnotatedLabelCounts: counts } : {})
            }
          })))
        .handle("createSample", ({ path, payload }) =>
          api(Effect.gen(function*() {
            const image = yield* payload.data
            const tags = (payload.annotation ?? []).filter((a) => a.present !== false).map((a) => a.labelName)
            return yield* backend.createSample(path.functionId, { image: image.bytes, tags, externalId: payload.externalId ?? undefined })
          })))
        .handle("invoke", ({ path, payload }) =>
          api(Effect.gen(function*() {
            const result = yield* backend.invoke(path.functionId, (yield* payload.data).bytes, {})
            const scores = "tags" in result ? result.tags : result.labelConfidences
            return scores.map((t) => ({ labelName: t.labelName, labelId: t.labelId, confidence: t.confidence }))
          })))
        .handle("listSamples", ({ path, urlParams }) =>
          api(Effect.flatMap(samplesPage(backend, path.functionId, urlParams), Effect.forEach(nyckelTagsSample(backend, path.functionId)))))
        .handle("getSample", ({ path }) =>
          api(Effect.flatMap(backend.getSample(path.functionId, path.sampleId), nyckelTagsSample(backend, path.functionId))))
        .handle("annotate", ({ path, payload }) =>
          api(Effect.flatMap(backend.setTags(path.functionId, path.sampleId, presentTags(payload)), nyckelTagsSample(backend, path.functionId))))
        .handle("deleteSample", ({ path }) => api(backend.deleteSample(path.functionId, path.sampleId)))
        .handle("projects", () => Effect.succeed([defaultProject]))
        .handle("createProject", () => Effect.succeed(defaultProject))))

  return Layer.mergeAll(Health, Functions, Labels, Samples, Invoke, Models, Token, Nyckel)
}

/**
 * Serve `FunctionApi` over the `FunctionBackend` and `ApiKeys` in context. The layer holds the listening server
 * (its `HttpServer` tells the bound address); closing it drains and stops.
 *
 * `routes` adds routes of the caller's beside the API's (the console's pages): a layer that adds them to
 * `HttpApiBuilder.Router` (`HttpApiBuilder.Router.use(...)`). They get the same limits, draining and headers as the
 * API, and answer for themselves (no API key is asked of them).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E = never, R = never>(
  options: ServerOptions = {},
  routes: Layer.Layer<never, E, R> = Layer.empty as Layer.Layer<never, E, R>
): Layer.Layer<HttpServer.HttpServer, DeployError | E, FunctionBackend | ApiKeys | R> =>
  // Each build gets its own Node server and lifecycle.
  Layer.suspend(() => {
    const lifecycle: Lifecycle = { inflight: 0, draining: false }
    const image = { ...defaultImageLimits, ...options.image }
    const limits: BodyLimits = { body: Math.ceil((image.maxBytes * 4) / 3) + 64 * 1024, image: image.maxBytes }
    const intake = Layer.succeed(ImagePayload.ImageIntake, {
      limits: image,
      allowUrlFetch: options.allowUrlFetch ?? false,
      allowPrivateUrls: options.allowPrivateUrls ?? false
    })
    const capture = Schema.decodeSync(CapturePolicy.CapturePolicy)(options.capture ?? {})
    const drainTimeoutMs = options.drainTimeoutMs ?? 10_000
    const requestTimeout = options.requestTimeoutMs ?? 30_000
    const headersTimeout = Math.min(requestTimeout, options.headersTimeoutMs ?? 20_000)
    const server = http.createServer({
      IncomingMessage: DrainingIncomingMessage,
      requestTimeout,
      headersTimeout,
      // Node looks for expired requests this often (30 s unless told): the timeouts are only as precise as this.
      connectionsCheckingInterval: Math.min(1000, Math.ceil(headersTimeout / 10))
    })

    const apiLayer = HttpApiBuilder.api(Api.FunctionApi).pipe(
      Layer.provide(handlers({ capture, lifecycle })),
      Layer.provide(contentTypes),
      Layer.provide(authorization(options.rateLimit ?? { perSecond: 50, burst: 100 }))
    )
    const serving = HttpApiBuilder.serve(lifecycleMiddleware(lifecycle, limits, options.logRequests ?? false)).pipe(
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
      Layer.provide(routes),
      Layer.provide(apiMiddleware),
      Layer.provide(apiLayer),
      // The payload schemas check images under this policy while the request decodes, outside any handler.
      Layer.provide(intake),
      // A path parameter longer than the router's default 100 characters would be "no route"; let the schema say
      // which parameter is too long instead.
      Layer.provide(HttpRouter.setRouterConfig({ maxParamLength: 4096 }))
    )
    // Built after `serving`, so released before it: requests drain while the handler is still attached.
    const draining = Layer.scopedDiscard(Effect.addFinalizer(() =>
      Effect.gen(function*() {
        lifecycle.draining = true
        server.close()
        server.closeIdleConnections()
        const deadline = Date.now() + drainTimeoutMs
        while (lifecycle.inflight > 0 && Date.now() < deadline) yield* Effect.sleep("10 millis")
        if (lifecycle.inflight > 0) yield* Effect.logWarning(`Shutting down with ${lifecycle.inflight} requests still in flight`)
        server.closeAllConnections()
      })
    ))
    const host = options.host ?? "127.0.0.1"
    const port = options.port ?? 8080
    const listening = NodeHttpServer.layer(() => server, { port, host }).pipe(
      Layer.mapError((e) =>
        new DeployError({ reason: "Unavailable", field: "port", message: `Cannot listen on ${host}:${port}: ${String(e.cause)}`, cause: e })
      )
    )
    return draining.pipe(Layer.provide(serving), Layer.provideMerge(listening))
  })

/**
 * The base URL of a running server (`http://127.0.0.1:54321`).
 *
 * @since 0.1.0
 * @category getters
 */
export const url: Effect.Effect<string, never, HttpServer.HttpServer> = Effect.map(HttpServer.HttpServer, (server) =>
  server.address._tag === "TcpAddress" ? `http://${server.address.hostname}:${server.address.port}` : `unix:${server.address.path}`)
