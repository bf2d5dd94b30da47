import { describe, expect, it, layer } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Either, Schema, TestClock } from "effect"
import { ApiKeys, CapturePolicy, RateLimiter } from "@loupe/deploy"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { tempDir } from "./fixtures/shared.js"

layer(NodeFileSystem.layer)("ApiKeys", (it) => {
  it.effect("stores keys hashed, verifies tokens and honours revocation across instances", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir("keys"), "store", "keys.json")
      const keys = yield* ApiKeys.make(file)
      const created = yield* keys.create("ci")
      expect(created.token).toMatch(/^loupe_[0-9a-f]{8}_[A-Za-z0-9_-]{32}$/)
      const text = fs.readFileSync(file, "utf8")
      expect(text).not.toContain(created.token)
      expect(text).not.toContain(created.token.slice(15))
      expect(fs.statSync(file).mode & 0o777).toBe(0o600)
      expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700)
      expect((yield* keys.verify(created.token)).id).toBe(created.id)

      const reason = (token: string) => Effect.map(Effect.flip(keys.verify(token)), (e) => `${e.reason}: ${e.message}`)
      expect(yield* reason("")).toMatch(/Unauthorized: Send an API key/)
      expect(yield* reason("not-a-key")).toMatch(/malformed/)
      expect(yield* reason(created.token.slice(0, -1) + (created.token.endsWith("A") ? "B" : "A"))).toMatch(/not known/)

      // Another process (here: another instance) revokes it; this one notices within a second.
      const other = yield* ApiKeys.make(file)
      yield* other.revoke(created.id)
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 1100)))
      expect(yield* reason(created.token)).toMatch(/revoked/)
      expect((yield* keys.list).map((k) => [k.name, k.revokedAt !== undefined])).toEqual([["ci", true]])
      const unknown = yield* Effect.either(keys.revoke("00000000"))
      expect(Either.isLeft(unknown) && unknown.left.reason).toBe("NotFound")
    }))

  it.effect("trades client credentials for access tokens that die with their key", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir("keys-oauth"), "keys.json")
      const keys = yield* ApiKeys.make(file)
      const plain = yield* keys.create("plain")
      const named = yield* keys.create("sdk", { clientId: "python-sdk-test", secret: "secret" })
      expect(fs.readFileSync(file, "utf8")).not.toContain("\"secret\"")
      // Every key is a client by its id with the key as secret; a named one by its client id.
      const byId = yield* keys.issueToken(plain.id, plain.token)
      const byName = yield* keys.issueToken("python-sdk-test", "secret")
      expect(byName.expiresIn).toBe(3600)
      expect(yield* keys.authenticate(`Bearer ${byId.accessToken}`)).toMatchObject({ id: plain.id, via: "accessToken" })
      expect(yield* keys.authenticate(`Bearer ${plain.token}`)).toMatchObject({ id: plain.id, via: "apiKey" })
      expect((yield* keys.verify(byName.accessToken)).clientId).toBe("python-sdk-test")

      const refused = <A>(effect: Effect.Effect<A, { readonly field?: string | undefined; readonly message: string }>) =>
        Effect.map(Effect.flip(effect), (e) => `${e.field}: ${e.message}`)
      expect(yield* refused(keys.issueToken("nobody", "secret"))).toMatch(/^client_id: .*no live API key has the client id "nobody"/)
      expect(yield* refused(keys.issueToken("python-sdk-test", "wrong"))).toMatch(/^client_secret: /)
      expect(yield* refused(keys.create("again", { clientId: "python-sdk-test" }))).toMatch(/^client-id: .*already has the client id/)
      // A token changed by one character, or signed for another key, is refused.
      const forged = byName.accessToken.replace(named.id, plain.id)
      expect(yield* refused(keys.verify(forged))).toMatch(/access token is not valid/)

      yield* keys.revoke(named.id)
      expect(yield* refused(keys.verify(byName.accessToken))).toMatch(/of this access token was revoked/)
      expect(yield* refused(keys.issueToken("python-sdk-test", "secret"))).toMatch(/^client_id: /)
      // The client id is free again once its key is revoked.
      expect((yield* keys.create("sdk 2", { clientId: "python-sdk-test" })).clientId).toBe("python-sdk-test")
    }))

  it.effect("reads the key from a whole Authorization header: the Bearer scheme in any case, nothing else", () =>
    Effect.gen(function*() {
      const keys = yield* ApiKeys.make(path.join(tempDir("keys-header"), "keys.json"))
      const { id, token } = yield* keys.create("ci")
      for (const header of [`Bearer ${token}`, `bearer ${token}`, `BEARER ${token}`, `Bearer   ${token}`]) {
        expect((yield* keys.authenticate(header)).id).toBe(id)
      }
      const refused = (header: string | undefined) => Effect.map(Effect.flip(keys.authenticate(header)), (e) => [e.reason, e.field, e.message])
      const cases: ReadonlyArray<readonly [string | undefined, RegExp]> = [
        [undefined, /^No API key: send an API key as `Authorization: Bearer <key>`$/],
        ["", /^No API key/],
        // A seven-character scheme: what a bare "Bearer " prefix check would have taken as a bearer key.
        [`Digest ${token}`, /^The Authorization scheme "Digest" is not accepted/],
        [`Basic  ${token}`, /^The Authorization scheme "Basic" is not accepted/],
        [`Basic ${Buffer.from(`${token}:`).toString("base64")}`, /"Basic" is not accepted/],
        [`Token ${token}`, /"Token" is not accepted/],
        [`${token}`, /^The Authorization header has no scheme/],
        ["Bearer", /Bearer credentials are empty/],
        [`Bearer ${token} ${token}`, /malformed: one key, no spaces/],
        [`Bearer\t${token}`, /Authorization header is malformed/],
        [`: ${token}`, /Authorization header is malformed/],
        [`Bearer ${token.toUpperCase()}`, /The API key is malformed/],
        [`Bearer ${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`, /not known/]
      ]
      for (const [header, message] of cases) {
        const [reason, field, text] = yield* refused(header)
        expect([header, reason, field]).toEqual([header, "Unauthorized", "authorization"])
        expect(text).toMatch(message)
        // The credentials are never echoed back.
        expect(text).not.toContain(token.slice(6, 20))
      }
      yield* keys.revoke(id)
      expect((yield* refused(`Bearer ${token}`))[2]).toMatch(/revoked/)
    }))

  it.effect("removes the temporary files a killed writer left beside the key file, never a live writer's", () =>
    Effect.gen(function*() {
      const dir = tempDir("keys-leftovers")
      const file = path.join(dir, "keys.json")
      yield* Effect.flatMap(ApiKeys.make(file), (k) => k.create("ci"))
      // A pid no process has any more (one that has exited), and this live process's.
      const dead = spawnSync(process.execPath, ["-e", ""]).pid!
      const orphan = `keys.json.tmp-${dead}-0123abcd`
      const half = `keys.json.tmp-${dead}-89abcdef`
      const live = `keys.json.tmp-${process.pid}-01234567`
      const notOurs = `keys.json.tmp-${dead}-backup`
      fs.writeFileSync(path.join(dir, orphan), "")
      fs.writeFileSync(path.join(dir, half), "{\n  \"version\": 1,\n  \"ke")
      fs.writeFileSync(path.join(dir, live), "")
      fs.writeFileSync(path.join(dir, notOurs), "mine")
      const keys = yield* ApiKeys.make(file)
      expect(fs.readdirSync(dir).sort()).toEqual(["keys.json", live, notOurs].sort())
      expect((yield* keys.list).map((k) => k.name)).toEqual(["ci"])
    }))

  it.effect("names the file when it is not a key file", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir("keys-bad"), "keys.json")
      fs.writeFileSync(file, "{ not json")
      const result = yield* Effect.either(ApiKeys.make(file))
      expect(Either.isLeft(result) && result.left.reason).toBe("KeyStoreFailed")
      expect(Either.isLeft(result) && result.left.file).toBe(file)
    }))
})

describe("RateLimiter", () => {
  it.effect("allows a burst, then refills at the rate, per key", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ perSecond: 10, burst: 3 })
      const take = (key: string) => Effect.map(limiter.take(key), (d) => (d.allowed ? "ok" : d.retryAfterMs))
      expect(yield* Effect.all([take("a"), take("a"), take("a"), take("a")])).toEqual(["ok", "ok", "ok", 100])
      expect(yield* take("b")).toBe("ok")
      yield* TestClock.adjust("50 millis")
      expect(yield* take("a")).toBe(50)
      yield* TestClock.adjust("60 millis")
      expect(yield* take("a")).toBe("ok")
      yield* TestClock.adjust("10 seconds")
      expect(yield* Effect.all([take("a"), take("a"), take("a"), take("a")])).toEqual(["ok", "ok", "ok", 100])
    }))
  it.effect("fails with a typed error naming the field when the limit is out of range", () =>
    Effect.gen(function*() {
      const zeroRate = yield* Effect.flip(RateLimiter.make({ perSecond: 0, burst: 3 }))
      expect([zeroRate.reason, zeroRate.field]).toEqual(["InvalidRequest", "perSecond"])
      const noBurst = yield* Effect.flip(RateLimiter.make({ perSecond: 1, burst: 0.5 }))
      expect([noBurst.reason, noBurst.field]).toEqual(["InvalidRequest", "burst"])
      const noKeys = yield* Effect.flip(RateLimiter.make({ perSecond: 1, burst: 1 }, { maxKeys: 0 }))
      expect([noKeys.reason, noKeys.field]).toEqual(["InvalidRequest", "maxKeys"])
    }))
})

describe("CapturePolicy", () => {
  const policy = CapturePolicy.defaults
  const counts = new Map([["cats", 50], ["dogs", 48], ["foxes", 2]])

  it("captures low confidence, rare classes and a random fraction, in that order", () => {
    expect(CapturePolicy.decide(policy, { labelName: "cats", confidence: 0.55, labelCounts: counts }, 0.5)).toBe("low-confidence")
    expect(CapturePolicy.decide(policy, { labelName: "foxes", confidence: 0.99, labelCounts: counts }, 0.5)).toBe("rare-class")
    expect(CapturePolicy.decide(policy, { labelName: "cats", confidence: 0.99, labelCounts: counts }, 0.005)).toBe("random")
    expect(CapturePolicy.decide(policy, { labelName: "cats", confidence: 0.99, labelCounts: counts }, 0.5)).toBeUndefined()
    expect(CapturePolicy.decide(policy, { labelName: "foxes", confidence: 0.99 }, 0.5)).toBeUndefined()
    const off = Schema.decodeSync(CapturePolicy.CapturePolicy)({ lowConfidence: 0, rareClassShare: 0, randomFraction: 0 })
    expect(CapturePolicy.decide(off, { labelName: "foxes", confidence: 0.01, labelCounts: counts }, 0)).toBeUndefined()
  })

  it("rejects a policy out of range, naming the field", () => {
    const result = Schema.decodeUnknownEither(CapturePolicy.CapturePolicy)({ lowConfidence: 1.5 })
    expect(Either.isLeft(result) && String(result.left.message)).toMatch(/lowConfidence/)
  })
})
