/**
 * The built-in heads, for `Registry.layer({ heads: [...heads, myHead] })` and the search, and the one way to turn
 * user params into a head's decoded params.
 *
 * @since 0.1.0
 */
import type { Head } from "@loupe/core"
import { Effect, Schema } from "effect"
import * as Knn from "./Knn.js"
import * as LinearSvm from "./LinearSvm.js"
import * as LogisticRegression from "./LogisticRegression.js"
import * as Mlp from "./Mlp.js"
import * as NearestPrototype from "./NearestPrototype.js"
import { TrainerError } from "./TrainerError.js"

/**
 * Every built-in head plugin, linear ones first.
 *
 * @since 0.1.0
 * @category head
 */
export const heads: ReadonlyArray<Head.HeadPlugin> = [
  LogisticRegression.plugin,
  LinearSvm.plugin,
  NearestPrototype.plugin,
  Knn.plugin,
  Mlp.plugin
]

/**
 * Decodes `raw` with the head's params Schema, filling in defaults. Fails with `TrainerError` `InvalidParams` (field
 * `head.<kind>`) on an unknown key or a bad value.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeParams = <P>(head: Head.HeadPlugin<P>, raw: unknown): Effect.Effect<P, TrainerError> =>
  Schema.decodeUnknown(head.paramsSchema, { onExcessProperty: "error" })(raw).pipe(
    Effect.mapError((e) =>
      new TrainerError({ reason: "InvalidParams", field: `head.${head.kind}`, message: `${head.kind}: ${e.message}`, cause: e })
    )
  )
