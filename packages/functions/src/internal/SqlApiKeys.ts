/**
 * API keys in the `api_keys` table of a shared database: `@loupe/deploy`'s key service (`ApiKeys.fromStorage`) over
 * rows instead of a key file. Every verification reads the key's row, so a key created or revoked through any
 * server or `loupe keys` is seen by all at once. Tokens are stored only as their sha256, as in the key file.
 *
 * @internal
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql"
import { ApiKeys, DeployError } from "@loupe/deploy"
import { Effect } from "effect"

interface KeyRow {
  readonly id: string
  readonly name: string
  readonly hash: string
  readonly created_at: string
  readonly revoked_at: string | null
  readonly client_id: string | null
}

const toRecord = (row: KeyRow): ApiKeys.KeyRecord => ({
  id: row.id,
  name: row.name,
  hash: row.hash,
  createdAt: row.created_at,
  ...(row.revoked_at === null ? {} : { revokedAt: row.revoked_at }),
  ...(row.client_id === null ? {} : { clientId: row.client_id })
})

/** The key service over the provided `SqlClient`, whose `api_keys` table exists; `where` names it in messages. */
export const make = (where: string): Effect.Effect<ApiKeys.ApiKeysShape, never, SqlClient.SqlClient> =>
  Effect.map(SqlClient.SqlClient, (sql) => {
    const failed = (what: string) => (cause: SqlError.SqlError) =>
      new DeployError.DeployError({ reason: "KeyStoreFailed", file: where, message: `Cannot ${what} the API keys in ${where}: ${cause.message}`, cause })
    return ApiKeys.fromStorage({
      location: where,
      find: (id) =>
        sql<KeyRow>`SELECT * FROM api_keys WHERE id = ${id}`.pipe(
          Effect.map((rows) => (rows[0] === undefined ? undefined : toRecord(rows[0]))),
          Effect.mapError(failed("read"))
        ),
      all: sql<KeyRow>`SELECT * FROM api_keys ORDER BY created_at, id`.pipe(
        Effect.map((rows) => rows.map(toRecord)),
        Effect.mapError(failed("read"))
      ),
      insert: (record) =>
        sql<{ readonly id: string }>`INSERT INTO api_keys ${
          sql.insert({ id: record.id, name: record.name, hash: record.hash, created_at: record.createdAt, revoked_at: null, client_id: record.clientId ?? null })
        } ON CONFLICT (id) DO NOTHING RETURNING id`.pipe(Effect.map((rows) => rows.length === 1), Effect.mapError(failed("write"))),
      revoke: (id, at) =>
        sql<KeyRow>`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ${at}) WHERE id = ${id} RETURNING *`.pipe(
          Effect.map((rows) => (rows[0] === undefined ? undefined : toRecord(rows[0]))),
          Effect.mapError(failed("write"))
        )
    })
  })
