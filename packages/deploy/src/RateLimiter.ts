/**
 * Token buckets by key: each key may spend `burst` requests at once and regains `perSecond` per second. The server
 * keeps one limiter for API keys (a request over the limit is answered 429 with `Retry-After`) and one for invoke
 * capture per function (a capture over the limit is skipped, the invocation still answered).
 *
 * Time comes from the Effect `Clock`, so tests drive it with `TestClock`.
 *
 * Why not `@effect/experimental`'s `RateLimiter` (token-bucket over `layerStoreMemory`): it would give the same per-key
 * buckets and retry delay, but its memory store never forgets a key, where this one forgets refilled buckets past
 * `maxKeys`; a store shared by several servers (Redis) is what it would add, and this server keeps its state per
 * process anyway.
 *
 * @since 0.1.0
 */
import { Clock, Effect } from "effect"
import { DeployError } from "./DeployError.js"

/**
 * A token bucket's settings: `perSecond` tokens regained each second, at most `burst` held.
 *
 * @since 0.1.0
 * @category models
 */
export interface RateLimit {
  /** Tokens regained per second. */
  readonly perSecond: number
  /** Bucket size: the most spent at once after a quiet spell. */
  readonly burst: number
}

/**
 * The answer to one request: allowed, with the tokens left, or refused, with the milliseconds until a token is back
 * (the server's `Retry-After`).
 *
 * @since 0.1.0
 * @category models
 */
export type Decision =
  | { readonly allowed: true; readonly remaining: number }
  | { readonly allowed: false; readonly retryAfterMs: number }

/**
 * A rate limiter: one token bucket per key (an API key id, or an address).
 *
 * @since 0.1.0
 * @category models
 */
export interface RateLimiter {
  readonly limit: RateLimit
  /** Spend one token of `key`'s bucket, or say how long until one is there. */
  readonly take: (key: string) => Effect.Effect<Decision>
}

interface Bucket {
  tokens: number
  updatedAt: number
}

/**
 * A limiter whose buckets live in memory. Buckets that have refilled are forgotten once there are more than
 * `maxKeys`, so memory stays bounded whatever the keys. Fails with `InvalidRequest` naming the field when
 * `perSecond` is not above 0, `burst` is below 1, or `maxKeys` is below 1.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (limit: RateLimit, options: { readonly maxKeys?: number } = {}): Effect.Effect<RateLimiter, DeployError> => {
  const bad = (field: string, value: number, rule: string) =>
    Effect.fail(
      new DeployError({ reason: "InvalidRequest", field, message: `A rate limit needs ${field} ${rule}, got ${value}` })
    )
  if (!(limit.perSecond > 0)) return bad("perSecond", limit.perSecond, "> 0")
  if (!(limit.burst >= 1)) return bad("burst", limit.burst, ">= 1")
  if (options.maxKeys !== undefined && !(options.maxKeys >= 1)) return bad("maxKeys", options.maxKeys, ">= 1")
  const maxKeys = options.maxKeys ?? 10_000
  const buckets = new Map<string, Bucket>()

  const refill = (bucket: Bucket, now: number) => {
    const elapsed = Math.max(0, now - bucket.updatedAt)
    bucket.tokens = Math.min(limit.burst, bucket.tokens + (elapsed * limit.perSecond) / 1000)
    bucket.updatedAt = now
  }

  const prune = (now: number) => {
    for (const [key, bucket] of buckets) {
      refill(bucket, now)
      if (bucket.tokens >= limit.burst) buckets.delete(key)
    }
  }

  const take = (key: string) =>
    Effect.map(Clock.currentTimeMillis, (now): Decision => {
      let bucket = buckets.get(key)
      if (bucket === undefined) {
        if (buckets.size >= maxKeys) prune(now)
        bucket = { tokens: limit.burst, updatedAt: now }
        buckets.set(key, bucket)
      } else {
        refill(bucket, now)
      }
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1
        return { allowed: true, remaining: Math.floor(bucket.tokens) }
      }
      return { allowed: false, retryAfterMs: Math.ceil(((1 - bucket.tokens) * 1000) / limit.perSecond) }
    })

  return Effect.succeed({ limit, take })
}
