/**
 * A small SQLite database of its own beside a folder store (the capture log's `captures.db`, the console's
 * `review.db`): the file created 0600 in its 0700 folder before SQLite opens it, then opened in WAL mode with a busy
 * timeout, so the several processes that may serve one store share it without "database is locked" failures.
 *
 * @internal
 */
import type { FileSystem } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import * as PrivateFiles from "./PrivateFiles.js"

/** The `SqlClient` of the database `file` in `storeDir`; `failed(what)` makes the error of each step that fails. */
export const layer = <E>(
  storeDir: string,
  file: string,
  failed: (what: string) => (cause: { readonly message: string }) => E
): Layer.Layer<SqlClient.SqlClient, E, FileSystem.FileSystem> => {
  const createFile = Layer.effectDiscard(Effect.mapError(PrivateFiles.databaseIn(storeDir, file), failed("creating the file")))
  const client = SqliteClient.layer({ filename: file }).pipe(
    Layer.mapError((cause) => failed("opening the database")({ message: String(cause) }))
  )
  const pragmas = Layer.effectDiscard(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.all([sql`PRAGMA journal_mode = WAL`, sql`PRAGMA busy_timeout = 10000`], { discard: true })).pipe(
        Effect.mapError(failed("opening the database"))
      )
  )
  return Layer.provideMerge(pragmas, client).pipe(Layer.provide(createFile))
}
