/**
 * The Review page's memory of dismissed suggestions: a suggestion the user dismissed (a label-noise suspect, a
 * duplicate pair, an outlier, a capture) stays hidden on later visits and after restarts. They live in `review.db`
 * beside the store (SQLite, 0600 like the store's database), one row per function, kind and subject; deleting a
 * function forgets its rows.
 *
 * @since 0.2.0
 */
import type { FileSystem } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import * as path from "node:path"
import { FunctionsError } from "../FunctionsError.js"
import * as SideDatabase from "../internal/SideDatabase.js"

/**
 * What a suggestion is about: `suspect` and `outlier` name a sample, `duplicate` a pair of samples, `capture` a
 * captured invocation's sample.
 *
 * @since 0.2.0
 * @category models
 */
export type Kind = "suspect" | "duplicate" | "outlier" | "capture"

/**
 * The subject of a duplicate pair: both sample ids in a fixed order, so either order names the same pair.
 *
 * @since 0.2.0
 * @category models
 */
export const pairSubject = (a: string, b: string): string => (a < b ? `${a} ${b}` : `${b} ${a}`)

/**
 * The dismissed suggestions of one function, as `kind` + subject keys (see `key`).
 *
 * @since 0.2.0
 * @category models
 */
export type Dismissed = ReadonlySet<string>

/**
 * The key of a suggestion in `Dismissed`.
 *
 * @since 0.2.0
 * @category models
 */
export const key = (kind: Kind, subject: string): string => `${kind}:${subject}`

/**
 * The dismissals service. Every operation fails with `FunctionsError` `StoreFailed` naming `review.db`.
 *
 * @since 0.2.0
 * @category tags
 */
export class Dismissals extends Context.Tag("@loupe/functions/Dismissals")<Dismissals, {
  readonly dismiss: (functionId: string, kind: Kind, subject: string) => Effect.Effect<void, FunctionsError>
  readonly list: (functionId: string) => Effect.Effect<Dismissed, FunctionsError>
  readonly forget: (functionId: string) => Effect.Effect<void, FunctionsError>
}>() {}

/**
 * Dismissals in `<storeDir>/review.db`, created when missing. Fails with `FunctionsError` `StoreFailed` when the file
 * cannot be created or opened.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (storeDir: string): Layer.Layer<Dismissals, FunctionsError, FileSystem.FileSystem> => {
  const file = path.join(storeDir, "review.db")
  const failed = (what: string) => (cause: SqlError.SqlError | { readonly message: string }) =>
    new FunctionsError({ reason: "StoreFailed", file, message: `Review dismissals: ${what} failed: ${cause.message}`, cause })
  const make = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS dismissed (
      function_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      subject TEXT NOT NULL,
      dismissed_at TEXT NOT NULL,
      PRIMARY KEY (function_id, kind, subject)
    )`.pipe(Effect.mapError(failed("creating the table")))
    return Dismissals.of({
      dismiss: (functionId, kind, subject) =>
        sql`INSERT OR IGNORE INTO dismissed ${
          sql.insert({ function_id: functionId, kind, subject, dismissed_at: new Date().toISOString() })
        }`.pipe(Effect.asVoid, Effect.mapError(failed("recording a dismissal"))),
      list: (functionId) =>
        sql<{ readonly kind: Kind; readonly subject: string }>`SELECT kind, subject FROM dismissed
          WHERE function_id = ${functionId}`.pipe(
          Effect.map((rows) => new Set(rows.map((r) => key(r.kind, r.subject)))),
          Effect.mapError(failed("listing dismissals"))
        ),
      forget: (functionId) =>
        sql`DELETE FROM dismissed WHERE function_id = ${functionId}`.pipe(
          Effect.asVoid,
          Effect.mapError(failed("forgetting dismissals"))
        )
    })
  })
  return Layer.effect(Dismissals, make).pipe(Layer.provide(SideDatabase.layer(storeDir, file, failed)))
}
