/**
 * The console's sign-in: an API key (the same keys as the `/v1` API) exchanged for a session, kept server-side in
 * memory and named by a random 256-bit id in an HttpOnly, SameSite=Strict cookie on `/console` (Secure when the
 * request came over https, directly or as `X-Forwarded-Proto` says). Each session has its own CSRF token, which
 * every mutating request must send back (`_csrf` form field or `X-CSRF-Token` header); it is compared in constant
 * time. A session ends on sign-out, after 12 hours, or as soon as its API key is revoked. Sessions live in the
 * server's memory: a restart signs everyone out, and behind a load balancer each server signs in its own.
 *
 * The sign-in form is itself protected from cross-site posts (which could sign a victim into an attacker's key) by a
 * double-submit token: a random value in a short-lived `loupe_console_signin` cookie and in the form.
 *
 * @internal
 */
import type { HttpServerRequest } from "@effect/platform"
import { HttpServerResponse } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import type { ApiKeys } from "@loupe/deploy"
import { Context, Effect } from "effect"
import { randomBytes, timingSafeEqual } from "node:crypto"

/** The session cookie. */
export const sessionCookie = "loupe_console"
/** The sign-in form's double-submit cookie. */
export const signInCookie = "loupe_console_signin"

const SESSION_MS = 12 * 60 * 60 * 1000
const MAX_SESSIONS = 10_000

/** A signed-in browser: its API key and the CSRF token its forms carry. */
export interface Session {
  readonly id: string
  readonly keyId: string
  readonly keyName: string
  readonly csrf: string
  readonly expiresAt: number
}

/** The sessions of this server. */
export interface SessionsShape {
  /** Sign in with an API key token: a new session, or `undefined` for a malformed, unknown or revoked key. */
  readonly signIn: (token: string) => Effect.Effect<Session | undefined>
  /** The live session a cookie names, or `undefined` (unknown, expired, or its key revoked since). */
  readonly find: (id: string | undefined) => Effect.Effect<Session | undefined>
  readonly signOut: (id: string) => Effect.Effect<void>
}

/** The session store, as a service of the console's routes. */
export class Sessions extends Context.Tag("@loupe/functions/console/Sessions")<Sessions, SessionsShape>() {}

/** A random token: 32 bytes, base64url. */
export const randomToken = (): string => randomBytes(32).toString("base64url")

/** Compare two tokens in constant time (for equal lengths; the lengths are not secret). */
export const sameToken = (a: string | undefined, b: string): boolean => {
  if (a === undefined) return false
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** In-memory sessions over the API keys. */
export const make = (keys: ApiKeys.ApiKeysShape): SessionsShape => {
  const sessions = new Map<string, Session>()
  const live = (keyId: string) =>
    Effect.map(Effect.orElseSucceed(keys.list, () => []), (all) => all.some((k) => k.id === keyId && k.revokedAt === undefined))
  const sweep = (now: number) => {
    for (const [id, s] of sessions) if (s.expiresAt <= now) sessions.delete(id)
  }
  return {
    signIn: (token) =>
      Effect.map(Effect.option(keys.verify(token.trim())), (key) => {
        if (key._tag === "None") return undefined
        const now = Date.now()
        if (sessions.size >= MAX_SESSIONS) sweep(now)
        // Still full of live sessions: the oldest goes (a Map iterates in insertion order).
        if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!)
        const session: Session = { id: randomToken(), keyId: key.value.id, keyName: key.value.name, csrf: randomToken(), expiresAt: now + SESSION_MS }
        sessions.set(session.id, session)
        return session
      }),
    find: (id) =>
      Effect.gen(function*() {
        if (id === undefined) return undefined
        const session = sessions.get(id)
        if (session === undefined) return undefined
        if (session.expiresAt <= Date.now() || !(yield* live(session.keyId))) {
          sessions.delete(id)
          return undefined
        }
        return session
      }),
    signOut: (id) => Effect.sync(() => void sessions.delete(id))
  }
}

/** Whether the request reached us over https, directly or through a proxy that says so. */
export const isHttps = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const forwarded = request.headers["x-forwarded-proto"]?.split(",")[0]?.trim().toLowerCase()
  if (forwarded === "https") return true
  const socket = NodeHttpServerRequest.toIncomingMessage(request).socket as { readonly encrypted?: boolean }
  return socket.encrypted === true
}

/** Set a console cookie: HttpOnly, SameSite=Strict, on `/console`, Secure over https. */
export const setCookie = (
  response: HttpServerResponse.HttpServerResponse,
  request: HttpServerRequest.HttpServerRequest,
  name: string,
  value: string,
  maxAgeSeconds: number
): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeSetCookie(response, name, value, {
    httpOnly: true,
    sameSite: "strict",
    path: "/console",
    secure: isHttps(request),
    maxAge: `${maxAgeSeconds} seconds`
  })

/** How long a session cookie lives, in seconds (as the session). */
export const sessionSeconds = SESSION_MS / 1000
