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
import * as TipAdapter from "./TipAdapter.js"
import { TrainerError } from "./TrainerError.js"
import * as ZeroShot from "./ZeroShot.js"

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
 * The built-in heads built on the labels' zero-shot classifier (`ZeroShot`, `TipAdapter`): they fit only training
 * sets that carry one (`Head.TrainingSet.zeroShot`, from a backbone with a text tower), so they are kept apart from
 * `heads`. Register both lists to train and load them.
 *
 * @since 0.2.0
 * @category head
 */
export const zeroShotHeads: ReadonlyArray<Head.HeadPlugin> = [ZeroShot.plugin, TipAdapter.plugin]

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
