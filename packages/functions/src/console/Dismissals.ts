/**
 * The Review page's memory of dismissed suggestions: a suggestion the user dismissed (a label-noise suspect, a
 * duplicate pair, an outlier, a capture) stays hidden on later visits and after restarts. They live in `review.db`
 * beside a store folder (SQLite, 0600 like the store's database), and in the database of a Postgres store (`layerSql`,
 * so every server on it sees the same), one row per function, kind and subject; deleting a function forgets its rows.
 *
 * @since 0.2.0
 */
import type { FileSystem } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import * as path from "node:path"
import { FunctionsError } from "../FunctionsError.js"
import { createDismissed, migrate } from "../internal/SharedSchema.js"
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
 * The dismissals service. Every operation fails with `FunctionsError` `StoreFailed` naming the database.
 *
 * @since 0.2.0
 * @category tags
 */
export class Dismissals extends Context.Tag("@loupe/functions/Dismissals")<Dismissals, {
  readonly dismiss: (functionId: string, kind: Kind, subject: string) => Effect.Effect<void, FunctionsError>
  readonly list: (functionId: string) => Effect.Effect<Dismissed, FunctionsError>
  readonly forget: (functionId: string) => Effect.Effect<void, FunctionsError>
}>() {}

const failure = (where: string) => (what: string) => (cause: SqlError.SqlError | { readonly message: string }) =>
  new FunctionsError({ reason: "StoreFailed", file: where, message: `Review dismissals: ${what} failed: ${cause.message}`, cause })

/** The operations on the `dismissed` table of the provided `SqlClient`'s database, `where` naming it in errors. */
const make = (where: string) =>
  Effect.map(SqlClient.SqlClient, (sql) => {
    const failed = failure(where)
    return Dismissals.of({
      dismiss: (functionId, kind, subject) =>
        sql`INSERT INTO dismissed ${
          sql.insert({ function_id: functionId, kind, subject, dismissed_at: new Date().toISOString() })
        } ON CONFLICT (function_id, kind, subject) DO NOTHING`.pipe(Effect.asVoid, Effect.mapError(failed("recording a dismissal"))),
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

/**
 * Dismissals in `<storeDir>/review.db`, created when missing. Fails with `FunctionsError` `StoreFailed` when the file
 * cannot be created or opened.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (storeDir: string): Layer.Layer<Dismissals, FunctionsError, FileSystem.FileSystem> => {
  const file = path.join(storeDir, "review.db")
  const failed = failure(file)
  const opened = Effect.zipRight(createDismissed.pipe(Effect.mapError(failed("creating the table"))), make(file))
  return Layer.effect(Dismissals, opened).pipe(Layer.provide(SideDatabase.layer(storeDir, file, failed)))
}

/**
 * Dismissals in the `dismissed` table of the provided `SqlClient`'s database (a Postgres store's, so that every
 * server on it sees the same), created by the shared-state migrations, which this runs first. `where` names the
 * database in errors.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerSql = (where: string = "the store database"): Layer.Layer<Dismissals, FunctionsError, SqlClient.SqlClient> =>
  Layer.effect(Dismissals, Effect.zipRight(migrate, make(where)))
