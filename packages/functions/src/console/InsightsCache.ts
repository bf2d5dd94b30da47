/**
 * `Functions.insights` for the console's pages, computed once per state of a function's data: kept until the
 * function's revision or sample count changes, and computed by one request at a time per function (others wait for
 * it), since it embeds every sample and cross-validates.
 *
 * @internal
 */
import { Context, Effect } from "effect"
import type { FunctionsError } from "../FunctionsError.js"
import * as Functions from "../Functions.js"
import { Store } from "../Store.js"

/** The latest insights of each function. */
export interface InsightsCacheShape {
  readonly get: (functionId: string) => Effect.Effect<Functions.FunctionInsights, FunctionsError>
}

/** The insights cache, as a service of the console's routes. */
export class InsightsCache extends Context.Tag("@loupe/functions/console/InsightsCache")<InsightsCache, InsightsCacheShape>() {}

/** A cache over the function API and store in context. */
export const make: Effect.Effect<InsightsCacheShape, never, Functions.Functions | Store> = Effect.gen(function*() {
  const functions = yield* Functions.Functions
  const store = yield* Store
  const cache = new Map<string, { readonly key: string; readonly insights: Functions.FunctionInsights }>()
  const locks = new Map<string, Effect.Semaphore>()
  const lockOf = (functionId: string) => {
    let lock = locks.get(functionId)
    if (lock === undefined) {
      lock = Effect.unsafeMakeSemaphore(1)
      locks.set(functionId, lock)
    }
    return lock
  }
  return {
    get: (functionId) =>
      lockOf(functionId).withPermits(1)(Effect.gen(function*() {
        const fn = yield* store.getFunction(functionId)
        const key = `${fn.revision}:${yield* store.countSamples(functionId)}`
        const hit = cache.get(functionId)
        if (hit !== undefined && hit.key === key) return hit.insights
        const insights = yield* functions.insights(functionId)
        cache.set(functionId, { key, insights })
        return insights
      }))
  }
})
