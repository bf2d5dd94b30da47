/**
 * The tables of the state that several processes share through the store's database (`SharedState`): blobs and
 * their chunks, the capture log, API keys, the embedding cache and the console's dismissed suggestions. Numbered migrations run by `@effect/sql`'s
 * Migrator, recorded in `loupe_shared_migrations` (apart from the store's `loupe_migrations`, so the two lists grow
 * independently). Written for Postgres and SQLite alike: bytes are `BYTEA` on Postgres and `BLOB` elsewhere, and blob
 * keys sort bytewise (`COLLATE "C"`) on Postgres so that a prefix `LIKE` can use the primary key's index.
 *
 * @internal
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { FunctionsError } from "../FunctionsError.js"
import * as Migrate from "./Migrate.js"

const initial = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const bytes = sql.literal(sql.onDialectOrElse({ pg: () => "BYTEA", orElse: () => "BLOB" }))
  const bytewise = sql.literal(sql.onDialectOrElse({ pg: () => `COLLATE "C"`, orElse: () => "" }))
  // One row per blob (its size and sha256, checked on every read), its bytes in chunks of at most `CHUNK_BYTES`.
  yield* sql`CREATE TABLE blobs (
    key TEXT ${bytewise} PRIMARY KEY,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    written_at TEXT NOT NULL
  )`
  yield* sql`CREATE TABLE blob_chunks (
    key TEXT ${bytewise} NOT NULL REFERENCES blobs(key) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data ${bytes} NOT NULL,
    PRIMARY KEY (key, seq)
  )`
  yield* sql`CREATE TABLE captures (
    function_id TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    label_name TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    model_id TEXT NOT NULL,
    external_id TEXT,
    captured_at TEXT NOT NULL,
    PRIMARY KEY (function_id, sample_id)
  )`
  yield* sql`CREATE INDEX captures_by_time ON captures (function_id, captured_at)`
  yield* sql`CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
  )`
  yield* sql`CREATE TABLE embeddings (
    namespace TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    vector ${bytes} NOT NULL,
    PRIMARY KEY (namespace, content_hash)
  )`
  yield* sql`CREATE TABLE file_hashes (
    fingerprint TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL
  )`
})

/**
 * The console's dismissed suggestions (`Dismissals`), one row per function, kind and subject. Also what a store
 * folder's `review.db` holds, hence `IF NOT EXISTS`: that file is opened without migrations.
 */
export const createDismissed = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql`CREATE TABLE IF NOT EXISTS dismissed (
    function_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    dismissed_at TEXT NOT NULL,
    PRIMARY KEY (function_id, kind, subject)
  )`)

/** A key's OAuth2 client id, when it was created with one (`ApiKeys.KeyRecord.clientId`). */
const clientIds = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`ALTER TABLE api_keys ADD COLUMN client_id TEXT`)

const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_shared_state": initial,
  "0002_client_ids": clientIds,
  "0003_dismissed": createDismissed
}

/** Run the migrations (see `Migrate.run` for several processes on one new database). */
export const migrate: Effect.Effect<void, FunctionsError, SqlClient.SqlClient> = Migrate.run(
  "Shared state",
  "loupe_shared_migrations",
  migrations
)
