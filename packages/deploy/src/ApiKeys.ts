/**
 * API keys for the HTTP server, stored hashed in a JSON file (`keys.json` in the function store). A key looks like
 * `loupe_<id>_<secret>`: the id (8 hex digits) names it in listings and revocation; the whole token is stored only
 * as its sha256, so the file gives nothing away. The token is shown once, when it is created.
 *
 * Every key is also an OAuth2 client (the client credentials grant, as Nyckel's clients use): its client id is the
 * key's `clientId` when it was created with one (`loupe keys create --client-id NAME`), else the key's id, and its
 * client secret is the key's token. `issueToken` trades them for an access token `loupe_at_<id>_<expiry>_<mac>`,
 * valid for an hour: an HMAC-SHA256 of the key id and expiry, keyed by the key's stored hash. So tokens need no
 * storage of their own, and every use looks the key up again: revoking the key revokes its tokens at once.
 *
 * Keys are 192-bit random, so a plain sha256 is enough (a slow password hash is for guessable secrets); tokens are
 * compared in constant time. The file is written atomically (temp file, fsync, rename) with mode 0600; the temporary
 * files of a writer killed mid-write are removed when the file is next opened, once that process is gone. A
 * running server notices keys created or revoked by `loupe keys` within a second.
 *
 * @since 0.1.0
 */
import { FileSystem } from "@effect/platform"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { Leftovers } from "@loupe/core"
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import * as path from "node:path"
import { DeployError } from "./DeployError.js"

/**
 * One key as the key file stores it: its id (the 8 hex characters after `loupe_` in its token), a name for people,
 * the sha256 of the whole token (never the token), when it was created and, once revoked, when (ISO 8601 times).
 *
 * @since 0.1.0
 * @category models
 */
export const KeyRecord = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  /** sha256 of the whole token, hex. */
  hash: Schema.String,
  createdAt: Schema.String,
  revokedAt: Schema.optional(Schema.String),
  /** The OAuth2 client id it was created with, if any (new in 0.2.0; else the client id is `id`). */
  clientId: Schema.optional(Schema.String)
})
/**
 * A key record, decoded.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyRecord = typeof KeyRecord.Type

const KeyFile = Schema.Struct({ version: Schema.Literal(1), keys: Schema.Array(KeyRecord) })

/**
 * What a listing shows of a key (never its hash).
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyInfo {
  readonly id: string
  readonly name: string
  readonly createdAt: string
  readonly revokedAt?: string
  /** The OAuth2 client id it was created with (new in 0.2.0); keys without one are clients by their `id`. */
  readonly clientId?: string
}

/**
 * The key a request was authenticated with, and how: the key itself as a bearer token (`apiKey`), or an OAuth2
 * access token issued for it by `issueToken` (`accessToken`, as Nyckel's clients send).
 *
 * @since 0.2.0
 * @category models
 */
export interface Caller extends KeyInfo {
  readonly via: "apiKey" | "accessToken"
}

/**
 * An OAuth2 access token for a key's client credentials: the token and its lifetime in seconds.
 *
 * @since 0.2.0
 * @category models
 */
export interface AccessToken {
  readonly accessToken: string
  readonly expiresIn: number
}

/**
 * What `create` may be told besides the name: an OAuth2 client id for the key (unique among live keys), and, for
 * test setups only, the secret to use instead of a random token (a client secret such as Nyckel's SDK test suite
 * expects). A chosen secret is only a client secret: it is not a `loupe_...` bearer key.
 *
 * @since 0.2.0
 * @category models
 */
export interface CreateOptions {
  readonly clientId?: string | undefined
  readonly secret?: string | undefined
}

/**
 * A key just created: the token is in here and nowhere else.
 *
 * @since 0.1.0
 * @category models
 */
export interface CreatedKey extends KeyInfo {
  readonly token: string
}

/**
 * The API key service over one key file: create, list, revoke and verify bearer tokens. Every change is written
 * atomically (temp file, fsync, rename, mode 0600); a file changed by another process is re-read before use.
 *
 * @since 0.1.0
 * @category models
 */
export interface ApiKeysShape {
  readonly file: string
  /** Create a key; with `options.clientId`, a client id that no live key has (`InvalidRequest` naming `client-id`). */
  readonly create: (name: string, options?: CreateOptions) => Effect.Effect<CreatedKey, DeployError>
  readonly list: Effect.Effect<ReadonlyArray<KeyInfo>, DeployError>
  /** Revoke by id; an unknown id is `NotFound`. */
  readonly revoke: (id: string) => Effect.Effect<KeyInfo, DeployError>
  /**
   * The key a bearer token (an API key, or an access token from `issueToken`) belongs to; `Unauthorized` for a
   * malformed, unknown, expired or revoked one.
   */
  readonly verify: (token: string) => Effect.Effect<KeyInfo, DeployError>
  /**
   * The key of a request, from its whole `Authorization` header (see `bearerToken`); `Unauthorized` for a missing
   * header, another scheme, or a malformed, unknown or revoked token.
   *
   * @since 0.2.0
   */
  readonly authenticate: (authorization: string | undefined) => Effect.Effect<Caller, DeployError>
  /**
   * The OAuth2 client credentials grant: an access token for the live key with this client id and secret;
   * `Unauthorized` naming `client_id` (no live key has it) or `client_secret` (it does not match).
   *
   * @since 0.2.0
   */
  readonly issueToken: (clientId: string, clientSecret: string) => Effect.Effect<AccessToken, DeployError>
}

/**
 * The API key service, as a context tag.
 *
 * @since 0.1.0
 * @category tags
 */
export class ApiKeys extends Context.Tag("@loupe/deploy/ApiKeys")<ApiKeys, ApiKeysShape>() {}

const tokenPattern = /^loupe_([0-9a-f]{8})_([A-Za-z0-9_-]{32})$/
const accessTokenPattern = /^loupe_at_([0-9a-f]{8})_([0-9]{1,15})_([A-Za-z0-9_-]{43})$/

/** How long an access token lives: an hour, as Nyckel's do. */
const ACCESS_TOKEN_SECONDS = 3600

const sha256 = (text: string) => createHash("sha256").update(text).digest()

const toInfo = (record: KeyRecord): KeyInfo => ({
  id: record.id,
  name: record.name,
  createdAt: record.createdAt,
  ...(record.revokedAt === undefined ? {} : { revokedAt: record.revokedAt }),
  ...(record.clientId === undefined ? {} : { clientId: record.clientId })
})

/** The MAC of an access token: keyed by the key's stored hash, which only the key storage holds. */
const tokenMac = (record: KeyRecord, expiry: string) =>
  createHmac("sha256", Buffer.from(record.hash, "hex")).update(`${record.id}.${expiry}`).digest()

const sameDigest = (expected: Buffer, actual: Buffer) => expected.length === actual.length && timingSafeEqual(expected, actual)

const storeFailed = (file: string, what: string) => (cause: unknown) =>
  new DeployError({ reason: "KeyStoreFailed", file, message: `Cannot ${what} the API key file ${file}: ${String(cause)}`, cause })

const unauthorized = (message: string) => new DeployError({ reason: "Unauthorized", field: "authorization", message })

/** `auth-scheme [ 1*SP credentials ]` (RFC 9110 section 11.4): the scheme is a token, compared without case. */
const authorizationPattern = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?: +(.*))?$/

/**
 * The bearer token of an `Authorization` header value, read as RFC 9110 and RFC 6750 say: the scheme `Bearer` in
 * any case, one or more spaces, then the token alone. Anything else is `Unauthorized` with a message saying what
 * to send, never echoing the credentials: a missing or empty header, another scheme (`Basic`, `Digest`, ...), a
 * scheme without a token, or more than one token. Reading only what follows the first seven characters, as a
 * bare `Bearer ` prefix check does, would take `Digest <key>` or `Basic  <key>` as a bearer key.
 *
 * @since 0.2.0
 * @category utils
 */
export const bearerToken = (authorization: string | undefined): Effect.Effect<string, DeployError> => {
  const send = "send an API key as `Authorization: Bearer <key>`"
  if (authorization === undefined || authorization === "") return Effect.fail(unauthorized(`No API key: ${send}`))
  const match = authorizationPattern.exec(authorization)
  if (match === null) return Effect.fail(unauthorized(`The Authorization header is malformed; ${send}`))
  const [, scheme, credentials] = match
  if (scheme!.toLowerCase() !== "bearer") {
    // A long "scheme" is a bare key: it is not repeated back.
    return Effect.fail(unauthorized(
      scheme!.length > 12
        ? `The Authorization header has no scheme; ${send}`
        : `The Authorization scheme ${JSON.stringify(scheme)} is not accepted; ${send}`
    ))
  }
  if (credentials === undefined || credentials === "") return Effect.fail(unauthorized(`The Bearer credentials are empty; ${send}`))
  if (/\s/.test(credentials)) return Effect.fail(unauthorized(`The Bearer credentials are malformed: one key, no spaces; ${send}`))
  return Effect.succeed(credentials)
}

/** How often a running server looks at the file for keys created or revoked elsewhere. */
const RECHECK_MS = 1000

/** The records in the key file; a missing file holds none. Fails on unreadable or malformed files. */
const readKeys = (fs: FileSystem.FileSystem, file: string): Effect.Effect<ReadonlyArray<KeyRecord>, DeployError> =>
  fs.readFileString(file).pipe(
    Effect.flatMap((text) => Effect.try(() => JSON.parse(text) as unknown)),
    Effect.flatMap(Schema.decodeUnknown(KeyFile)),
    Effect.map((contents) => contents.keys),
    Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "NotFound", () => Effect.succeed([])),
    Effect.mapError(storeFailed(file, "read"))
  )

/** Replace the key file atomically (temp file, fsync, rename), readable by its owner only, in a folder made 0700. */
const writeKeys = (fs: FileSystem.FileSystem, file: string, keys: ReadonlyArray<KeyRecord>): Effect.Effect<void, DeployError> =>
  Effect.gen(function*() {
    // A store folder made here (`loupe keys create` before the first `loupe serve`) is private, as the store's are.
    yield* fs.makeDirectory(path.dirname(file), { recursive: true, mode: 0o700 })
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`
    yield* Effect.scoped(Effect.gen(function*() {
      const handle = yield* fs.open(tmp, { flag: "w", mode: 0o600 })
      yield* handle.writeAll(new TextEncoder().encode(JSON.stringify({ version: 1, keys }, null, 2) + "\n"))
      yield* handle.sync
    }))
    yield* fs.rename(tmp, file)
  }).pipe(Effect.mapError(storeFailed(file, "write")))

/**
 * Remove the temporary files of writers killed mid-write (kill -9) beside the key file, `<file>.tmp-<pid>-<8 hex>`:
 * regular files whose writer is gone (`Leftovers.orphaned` of `@loupe/core`). A failure to clean is only logged.
 */
const removeLeftovers = (fs: FileSystem.FileSystem, file: string): Effect.Effect<void, never, FileSystem.FileSystem> =>
  Leftovers.removeBeside(file, {
    tags: ["tmp"],
    hexDigits: 8,
    owned: (tmp) =>
      Effect.zipWith(fs.stat(tmp), Effect.isSuccess(fs.readLink(tmp)), (info, link) => info.type === "File" && !link).pipe(
        Effect.orElseSucceed(() => false)
      )
  }).pipe(
    Effect.flatMap((removed) =>
      removed.length === 0 ? Effect.void : Effect.logInfo(`${file}: removed ${removed.length} temporary files left by interrupted writes`)
    ),
    Effect.catchAll((e) => Effect.logWarning(`${file}: cannot clean what interrupted writes left beside it: ${e.message}`))
  )

/**
 * What says the file changed: its modification time and size ("" when it does not exist). The size as well,
 * because `File.Info` gives the time in whole milliseconds, and every write changes the size (a key added, or a
 * `revokedAt` added).
 */
const stampOf = (fs: FileSystem.FileSystem, file: string): Effect.Effect<string> =>
  fs.stat(file).pipe(
    Effect.map((info) => `${Option.match(info.mtime, { onNone: () => "", onSome: (d) => d.getTime() })}:${info.size}`),
    Effect.orElseSucceed(() => "")
  )

/**
 * Where a key service keeps its records: the key file (`make`), or a database table (`@loupe/functions`'s
 * `SharedState`, so that several servers share their keys). `fromStorage` builds the service over one.
 *
 * @since 0.2.0
 * @category models
 */
export interface KeyStorage {
  /** Where the keys are, for messages: the key file's path, or a database and table. */
  readonly location: string
  /** The record with this id, as fresh as a verification needs (a key created or revoked elsewhere is seen). */
  readonly find: (id: string) => Effect.Effect<KeyRecord | undefined, DeployError>
  readonly all: Effect.Effect<ReadonlyArray<KeyRecord>, DeployError>
  /** Add `record`; `false`, adding nothing, when its id is taken. */
  readonly insert: (record: KeyRecord) => Effect.Effect<boolean, DeployError>
  /** Set `revokedAt` to `at` unless already set; the record afterwards, or `undefined` when there is no such id. */
  readonly revoke: (id: string, at: string) => Effect.Effect<KeyRecord | undefined, DeployError>
}

/**
 * The key service over a `KeyStorage`: names are checked, ids drawn until one is free, tokens made and hashed, and
 * verification compares hashes in constant time.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromStorage = (storage: KeyStorage): ApiKeysShape => {
  const invalid = (field: string, message: string) => new DeployError({ reason: "InvalidRequest", field, message: `${field}: ${message}` })

  const insert = (name: string, options: CreateOptions): Effect.Effect<CreatedKey, DeployError> =>
    Effect.suspend(() => {
      const id = randomBytes(4).toString("hex")
      const token = options.secret ?? `loupe_${id}_${randomBytes(24).toString("base64url")}`
      const record: KeyRecord = {
        id,
        name: name.trim(),
        hash: sha256(token).toString("hex"),
        createdAt: new Date().toISOString(),
        ...(options.clientId === undefined ? {} : { clientId: options.clientId })
      }
      // An id already taken: draw another.
      return Effect.flatMap(storage.insert(record), (added) => (added ? Effect.succeed({ ...toInfo(record), token }) : insert(name, options)))
    })

  const create = (name: string, options: CreateOptions = {}): Effect.Effect<CreatedKey, DeployError> =>
    Effect.gen(function*() {
      if (name.trim() === "") return yield* invalid("name", "a key needs a non-empty name")
      if (options.secret !== undefined && options.secret.length === 0) return yield* invalid("secret", "a chosen secret cannot be empty")
      if (options.clientId !== undefined) {
        if (!/^[A-Za-z0-9._-]{1,100}$/.test(options.clientId)) {
          return yield* invalid("client-id", "1 to 100 letters, digits, dots, dashes or underscores")
        }
        if ((yield* live(options.clientId)) !== undefined) {
          return yield* invalid("client-id", `a live key already has the client id ${JSON.stringify(options.clientId)}`)
        }
      }
      return yield* insert(name, options)
    })

  /** The live key whose client id is `clientId` (its `clientId`, or its `id` when it has none). */
  const live = (clientId: string) =>
    Effect.map(storage.all, (keys) => keys.find((k) => k.revokedAt === undefined && (k.clientId ?? k.id) === clientId))

  const revoke = (id: string) =>
    Effect.flatMap(storage.revoke(id, new Date().toISOString()), (record) =>
      record === undefined
        ? Effect.fail(new DeployError({ reason: "NotFound", field: "id", message: `No API key with id ${JSON.stringify(id)}` }))
        : Effect.succeed(toInfo(record)))

  const verifyKey = (token: string): Effect.Effect<KeyInfo, DeployError> => {
    const match = tokenPattern.exec(token)
    if (match === null) {
      return Effect.fail(unauthorized(
        token === "" ? "Send an API key as `Authorization: Bearer <key>`" : "The API key is malformed"
      ))
    }
    return Effect.flatMap(storage.find(match[1]!), (record) => {
      const expected = record ? Buffer.from(record.hash, "hex") : undefined
      if (record === undefined || expected === undefined || expected.length !== 32 || !timingSafeEqual(expected, sha256(token))) {
        return Effect.fail(unauthorized("The API key is not known"))
      }
      if (record.revokedAt !== undefined) return Effect.fail(unauthorized(`The API key ${record.id} was revoked`))
      return Effect.succeed(toInfo(record))
    })
  }

  /** An access token: its MAC under the key's hash, its expiry, and the key still live (revoking it revokes them). */
  const verifyAccessToken = (match: RegExpExecArray): Effect.Effect<KeyInfo, DeployError> =>
    Effect.flatMap(storage.find(match[1]!), (record) => {
      if (record === undefined || !sameDigest(tokenMac(record, match[2]!), Buffer.from(match[3]!, "base64url"))) {
        return Effect.fail(unauthorized("The access token is not valid"))
      }
      if (Number(match[2]) * 1000 <= Date.now()) return Effect.fail(unauthorized("The access token has expired: ask /connect/token for another"))
      if (record.revokedAt !== undefined) return Effect.fail(unauthorized(`The API key ${record.id} of this access token was revoked`))
      return Effect.succeed(toInfo(record))
    })

  const authenticate = (token: string): Effect.Effect<Caller, DeployError> => {
    const access = accessTokenPattern.exec(token)
    return access === null
      ? Effect.map(verifyKey(token), (key) => ({ ...key, via: "apiKey" as const }))
      : Effect.map(verifyAccessToken(access), (key) => ({ ...key, via: "accessToken" as const }))
  }

  const issueToken = (clientId: string, clientSecret: string): Effect.Effect<AccessToken, DeployError> =>
    Effect.flatMap(live(clientId), (record) => {
      if (record === undefined) {
        return Effect.fail(new DeployError({ reason: "Unauthorized", field: "client_id", message: `client_id: no live API key has the client id ${JSON.stringify(clientId)}` }))
      }
      if (!sameDigest(Buffer.from(record.hash, "hex"), sha256(clientSecret))) {
        return Effect.fail(new DeployError({ reason: "Unauthorized", field: "client_secret", message: `client_secret: not the secret of client ${JSON.stringify(clientId)}` }))
      }
      const expiry = String(Math.floor(Date.now() / 1000) + ACCESS_TOKEN_SECONDS)
      return Effect.succeed({
        accessToken: `loupe_at_${record.id}_${expiry}_${tokenMac(record, expiry).toString("base64url")}`,
        expiresIn: ACCESS_TOKEN_SECONDS
      })
    })

  return {
    file: storage.location,
    create,
    list: Effect.map(storage.all, (keys) => keys.map(toInfo)),
    revoke,
    verify: (token) => Effect.map(authenticate(token), ({ via: _, ...key }) => key),
    authenticate: (authorization) => Effect.flatMap(bearerToken(authorization), authenticate),
    issueToken
  }
}

/**
 * The keys in `file` (created on the first `create`; a missing file means no keys).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (file: string): Effect.Effect<ApiKeysShape, DeployError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const target = path.resolve(file)
    yield* removeLeftovers(fs, target)
    // Read-change-write runs one at a time in this process (another process may still write between them).
    const writing = yield* Effect.makeSemaphore(1)

    let cache = { keys: yield* readKeys(fs, target), stamp: yield* stampOf(fs, target), checkedAt: Date.now() }

    /**
     * The keys, re-read when the file changed: looked at no more than once a second, and at once when `missing` (an
     * id not in the cache: a key just created elsewhere).
     */
    const current = (missing?: string) =>
      Effect.gen(function*() {
        const now = Date.now()
        const stale = missing !== undefined && !cache.keys.some((k) => k.id === missing)
        if (stale || now - cache.checkedAt >= RECHECK_MS) {
          const stamp = yield* stampOf(fs, target)
          cache = stamp === cache.stamp
            ? { ...cache, checkedAt: now }
            : { keys: yield* readKeys(fs, target), stamp, checkedAt: now }
        }
        return cache.keys
      })

    /**
     * Read, change and write the file (always re-read first: another process may have written it); a change
     * without `keys` writes nothing.
     */
    const update = <A>(change: (keys: ReadonlyArray<KeyRecord>) => { keys?: ReadonlyArray<KeyRecord>; result: A }) =>
      writing.withPermits(1)(Effect.gen(function*() {
        const keys = yield* readKeys(fs, target)
        const outcome = change(keys)
        if (outcome.keys !== undefined) yield* writeKeys(fs, target, outcome.keys)
        cache = { keys: outcome.keys ?? keys, stamp: yield* stampOf(fs, target), checkedAt: Date.now() }
        return outcome.result
      }))

    return fromStorage({
      location: target,
      find: (id) => Effect.map(current(id), (keys) => keys.find((k) => k.id === id)),
      all: current(),
      insert: (record) =>
        update((keys) =>
          keys.some((k) => k.id === record.id) ? { result: false } : { keys: [...keys, record], result: true }
        ),
      revoke: (id, at) =>
        update((keys) => {
          const found = keys.find((k) => k.id === id)
          if (found === undefined) return { result: undefined }
          const revoked = { ...found, revokedAt: found.revokedAt ?? at }
          return { keys: keys.map((k) => (k.id === id ? revoked : k)), result: revoked }
        })
    })
  })

/**
 * The API key service over the key file `file` (created on the first key). Fails with a `DeployError` naming the
 * file when it exists but cannot be read or decoded.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (file: string): Layer.Layer<ApiKeys, DeployError, FileSystem.FileSystem> =>
  Layer.effect(ApiKeys, make(file))

/**
 * The key file of a function store directory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fileIn = (storeDir: string): string => path.join(storeDir, "keys.json")
