/**
 * Running a numbered migration list with `@effect/sql`'s Migrator, safely when several processes open one new
 * database at once. The Migrator checks for its migrations table outside its lock, so two processes can both try to
 * create it and one fails ("Failed to execute statement"); a short retry then finds the table, and the Migrator's
 * table lock (Postgres) makes the second wait for the first's migrations.
 *
 * `Migrator.make` is the engine of `PgMigrator.run` and `SqliteMigrator.run`; those add only schema dumps (pg_dump,
 * sqlite3), which would make the store need a FileSystem, a Path and a CommandExecutor for nothing.
 *
 * @internal
 */
import { Migrator } from "@effect/sql"
import type { SqlClient } from "@effect/sql"
import { Effect, Schedule } from "effect"
import { FunctionsError } from "../FunctionsError.js"

/** Run `migrations` recorded in `table`; `what` names the schema in the error ("Store", "Shared state"). */
export const run = (
  what: string,
  table: string,
  migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>
): Effect.Effect<void, FunctionsError, SqlClient.SqlClient> =>
  Migrator.make({})({ loader: Migrator.fromRecord(migrations), table }).pipe(
    Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.intersect(Schedule.recurs(5)))),
    Effect.asVoid,
    Effect.mapError((cause) =>
      new FunctionsError({ reason: "StoreFailed", message: `${what}: migrating the schema failed: ${cause.message}`, cause })
    )
  )
