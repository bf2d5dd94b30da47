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
  HttpApiBuilder,
  HttpApiError,
  HttpApp,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Random, Redacted, Schema } from "effect"
import * as http from "node:http"
import { ApiKeys } from "./ApiKeys.js"
import * as CapturePolicy from "./CapturePolicy.js"
import { DeployError, status } from "./DeployError.js"
import * as Api from "./FunctionApi.js"
import { FunctionBackend } from "./FunctionBackend.js"
import type * as ImageGuard from "./ImageGuard.js"
import * as Body from "./internal/Body.js"
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
  /** The longest a client may take to send a request. Default 30 s. */
  readonly requestTimeoutMs?: number
  /** Log each request at info level: method, path, status and milliseconds. Default false. */
  readonly logRequests?: boolean
}

/**
 * The image limits when `ServerOptions.image` leaves them out: 16 MiB and 40 megapixels.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultImageLimits: ImageGuard.ImageLimits = { maxBytes: 16 * 1024 * 1024, maxPixels: 40_000_000 }

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

/**
 * The outermost middleware: the in-flight count, 503 once draining, and headers on every response (set in a
 * pre-response handler, as the response is written inside), where `logRequests` also logs the request with the time
 * until its response was ready. Probes still answer while draining (`/readyz` says 503 from its handler).
 */
const lifecycleMiddleware = (lifecycle: Lifecycle, logRequests: boolean) => (app: HttpApp.Default): HttpApp.Default =>
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
    lifecycle.inflight++
    yield* HttpApp.appendPreResponseHandler((_, response) =>
      Effect.sync(() => {
        const secured = HttpServerResponse.setHeaders(response, {
          "x-content-type-options": "nosniff",
          "cache-control": "no-store"
        })
        return lifecycle.draining ? HttpServerResponse.setHeader(secured, "connection", "close") : secured
      }).pipe(
        Effect.tap((response) =>
          logRequests
            ? Effect.logInfo(`${request.method} ${request.url.split("?")[0]} ${response.status} ${Math.round(performance.now() - started)} ms`)
            : Effect.void
        )
      )
    )
    return yield* Effect.ensuring(app, Effect.sync(() => lifecycle.inflight--))
  })

/**
 * Inside the API's error handling: schema failures of paths and query parameters become `BadRequest` naming the
 * field, unknown routes `NotFound`, and defects a logged `InternalServerError`, all in the API's JSON error form.
 */
const apiMiddleware = HttpApiBuilder.middleware(Api.FunctionApi, (app) =>
  (app as HttpApp.Default<unknown>).pipe(
    Effect.catchAll((e) => {
      if (e instanceof HttpApiError.HttpApiDecodeError) {
        const issue = e.issues[0]
        const field = issue && issue.path.length > 0 ? issue.path.map(String).join(".") : "request"
        return Effect.fail(new Api.BadRequest({ reason: "InvalidRequest", field, message: `${field}: ${issue?.message ?? e.message}` }))
      }
      if (typeof e === "object" && e !== null && (e as { readonly _tag?: unknown })._tag === "RouteNotFound") {
        return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          Effect.fail(new Api.NotFound({ reason: "NotFound", message: `No route ${request.method} ${request.url.split("?")[0]}` })))
      }
      return Effect.fail(e)
    }),
    Effect.catchAllDefect((defect) =>
      Effect.zipRight(
        Effect.logError("Defect while handling a request", defect),
        Effect.fail(new Api.InternalServerError({ reason: "Internal", message: "The server failed; see its log" }))
      )
    )
  ) as HttpApp.Default<Api.BadRequest | Api.NotFound | Api.InternalServerError>)

/** Bearer API keys and the per-key rate limit. */
const authorization = (rateLimit: RateLimiter.RateLimit) =>
  Layer.effect(
    Api.Authorization,
    Effect.gen(function*() {
      const keys = yield* ApiKeys
      const limiter = yield* RateLimiter.make(rateLimit)
      return {
        bearer: (token: Redacted.Redacted<string>) =>
          Effect.gen(function*() {
            const key = yield* keys.verify(Redacted.value(token)).pipe(
              Effect.tapError((e) =>
                e.reason === "Unauthorized"
                  ? HttpApp.appendPreResponseHandler((_, response) =>
                    Effect.succeed(HttpServerResponse.setHeader(response, "www-authenticate", "Bearer"))
                  )
                  : Effect.void
              ),
              Effect.catchAll((e) => toApiError(e) as Effect.Effect<never, Api.Unauthorized | Api.InternalServerError>)
            )
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

const formSampleFields = Schema.Struct({
  labelName: Schema.optional(Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200))),
  externalId: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100)))
})
const formInvokeFields = Schema.Struct({
  externalId: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100)))
})

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

const handlers = (options: {
  readonly limits: Body.BodyLimits
  readonly capture: CapturePolicy.CapturePolicy
  readonly lifecycle: Lifecycle
}) => {
  const { limits, lifecycle } = options
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
        .handleRaw("create", () => api(Effect.flatMap(Body.json(Api.CreateFunction, limits), backend.createFunction)))
        .handle("list", () => api(backend.listFunctions))
        .handle("get", ({ path }) => api(backend.getFunction(path.functionId)))
        .handle("delete", ({ path }) => api(backend.deleteFunction(path.functionId)))))

  const Labels = HttpApiBuilder.group(Api.FunctionApi, "labels", (h) =>
    Effect.map(FunctionBackend, (backend) =>
      h
        .handleRaw("create", ({ path }) =>
          api(Effect.flatMap(Body.json(Api.CreateLabel, limits), (label) => backend.createLabel(path.functionId, label))))
        .handle("list", ({ path }) => api(backend.listLabels(path.functionId)))
        .handle("delete", ({ path }) => api(backend.deleteLabel(path.functionId, path.labelId)))))

  const Samples = HttpApiBuilder.group(Api.FunctionApi, "samples", (h) =>
    Effect.map(FunctionBackend, (backend) =>
      h
        .handleRaw("create", ({ path }) =>
          api(
            Effect.gen(function*() {
              const { fields, image } = yield* Body.image(Api.CreateSample, {
                schema: formSampleFields,
                fields: ["labelName", "externalId"],
                toFields: (f) => ({
                  ...(f.labelName === undefined ? {} : { annotation: { labelName: f.labelName } }),
                  ...(f.externalId === undefined ? {} : { externalId: f.externalId })
                })
              }, limits)
              const sample = yield* backend.createSample(path.functionId, {
                image,
                labelName: fields.annotation?.labelName,
                externalId: fields.externalId
              })
              return HttpServerResponse.unsafeJson(sample, { status: 201 })
            })
          ))
        .handle("list", ({ path, urlParams }) => api(backend.listSamples(path.functionId, urlParams)))
        .handle("get", ({ path }) => api(backend.getSample(path.functionId, path.sampleId)))
        .handle("delete", ({ path }) => api(backend.deleteSample(path.functionId, path.sampleId)))
        .handleRaw("annotate", ({ path }) =>
          api(
            Effect.flatMap(
              Body.json(Api.AnnotationInput, limits),
              (annotation) => backend.setAnnotation(path.functionId, path.sampleId, annotation)
            )
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
        .handleRaw("invoke", ({ path, urlParams }) =>
          api(
            Effect.gen(function*() {
              const { fields, image } = yield* Body.image(Api.InvokeRequest, {
                schema: formInvokeFields,
                fields: ["externalId"],
                toFields: (f) => f
              }, limits)
              const result = yield* backend.invoke(path.functionId, image, {
                labelCount: urlParams.labelCount,
                modelId: urlParams.modelId
              })
              const sampleId = urlParams.capture === false ? null : yield* capture(path.functionId, image, result, fields.externalId)
              return {
                ...result,
                sampleId,
                ...(fields.externalId === undefined ? {} : { externalId: fields.externalId })
              } satisfies Api.InvokeResult
            })
          ))
        .handle("metrics", ({ path }) => api(backend.metrics(path.functionId)))
        .handle("captures", ({ path, urlParams }) => api(backend.listCaptures(path.functionId, urlParams)))
    }))

  const Models = HttpApiBuilder.group(Api.FunctionApi, "models", (h) =>
    Effect.map(FunctionBackend, (backend) =>
      h
        .handle("list", ({ path }) => api(backend.listModels(path.functionId)))
        .handle("promote", ({ path }) => api(backend.promoteModel(path.functionId, path.modelId)))))

  return Layer.mergeAll(Health, Functions, Labels, Samples, Invoke, Models)
}

/**
 * Serve `FunctionApi` over the `FunctionBackend` and `ApiKeys` in context. The layer holds the listening server
 * (its `HttpServer` tells the bound address); closing it drains and stops.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: ServerOptions = {}
): Layer.Layer<HttpServer.HttpServer, DeployError, FunctionBackend | ApiKeys> =>
  // Each build gets its own Node server and lifecycle.
  Layer.suspend(() => {
    const lifecycle: Lifecycle = { inflight: 0, draining: false }
    const image = { ...defaultImageLimits, ...options.image }
    const limits: Body.BodyLimits = {
      // A JSON body carries the image as base64 (4/3 larger) plus a little more.
      maxBodyBytes: Math.ceil((image.maxBytes * 4) / 3) + 64 * 1024,
      image,
      allowUrlFetch: options.allowUrlFetch ?? false,
      allowPrivateUrls: options.allowPrivateUrls ?? false
    }
    const capture = Schema.decodeSync(CapturePolicy.CapturePolicy)(options.capture ?? {})
    const drainTimeoutMs = options.drainTimeoutMs ?? 10_000
    const server = http.createServer({
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      headersTimeout: Math.min(options.requestTimeoutMs ?? 30_000, 20_000)
    })

    const apiLayer = HttpApiBuilder.api(Api.FunctionApi).pipe(
      Layer.provide(handlers({ limits, capture, lifecycle })),
      Layer.provide(authorization(options.rateLimit ?? { perSecond: 50, burst: 100 }))
    )
    const serving = HttpApiBuilder.serve(lifecycleMiddleware(lifecycle, options.logRequests ?? false)).pipe(
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
      Layer.provide(apiMiddleware),
      Layer.provide(apiLayer)
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
