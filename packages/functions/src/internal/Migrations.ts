/**
 * The store's schema, as numbered migrations run by `@effect/sql`'s Migrator (recorded in `loupe_migrations`), the
 * same ids on every dialect. Where the dialects' types differ, `sql.onDialectOrElse` picks the type: Postgres gets a
 * real `BOOLEAN` for `promoted`, and byte-order `COLLATE "C"` on label names so listings sort as in SQLite. The
 * SQLite statements are exactly the ones that shipped. Add a new numbered entry for every change, never edit what
 * one does on a dialect where it has shipped.
 *
 * @internal
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

const initial = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
  const nameType = sql.literal(pg ? `TEXT COLLATE "C"` : "TEXT")
  const flagType = sql.literal(pg ? "BOOLEAN NOT NULL DEFAULT FALSE" : "INTEGER NOT NULL DEFAULT 0")
  const promoted = sql.literal(pg ? "promoted" : "promoted = 1")
  yield* sql`CREATE TABLE functions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    preset TEXT NOT NULL,
    overrides TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0,
    trained_revision INTEGER NOT NULL DEFAULT 0,
    train_error TEXT
  )`
  yield* sql`CREATE TABLE labels (
    id TEXT PRIMARY KEY,
    function_id TEXT NOT NULL REFERENCES functions(id),
    name ${nameType} NOT NULL,
    description TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (function_id, name)
  )`
  yield* sql`CREATE TABLE samples (
    id TEXT PRIMARY KEY,
    function_id TEXT NOT NULL REFERENCES functions(id),
    seq INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    external_id TEXT,
    label_id TEXT REFERENCES labels(id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (function_id, content_hash),
    UNIQUE (function_id, seq)
  )`
  yield* sql`CREATE INDEX samples_by_label ON samples (function_id, label_id)`
  yield* sql`CREATE TABLE model_versions (
    id TEXT PRIMARY KEY,
    function_id TEXT NOT NULL REFERENCES functions(id),
    bundle TEXT NOT NULL,
    labels TEXT NOT NULL,
    metrics TEXT NOT NULL,
    revision INTEGER NOT NULL,
    sample_count INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    promoted ${flagType}
  )`
  yield* sql`CREATE INDEX model_versions_by_function ON model_versions (function_id, created_at)`
  // At most one promoted version per function, enforced by the database.
  yield* sql`CREATE UNIQUE INDEX model_versions_promoted ON model_versions (function_id) WHERE ${promoted}`
})

/** Why a trained version was not promoted when it was recorded (`NULL`: it was, or nobody held it back). */
const heldBack = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`ALTER TABLE model_versions ADD COLUMN held_back TEXT`)

/**
 * Image tags (multi-label): a function's output kind (existing functions are `Classification`), a sample's `tagged`
 * flag (a Tags function's sample is tagged once its tag set is given, possibly empty: a negative for every tag) and
 * its tags, one row per sample and label.
 */
const tags = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
  const flagType = sql.literal(pg ? "BOOLEAN NOT NULL DEFAULT FALSE" : "INTEGER NOT NULL DEFAULT 0")
  yield* sql`ALTER TABLE functions ADD COLUMN output TEXT NOT NULL DEFAULT 'Classification'`
  yield* sql`ALTER TABLE samples ADD COLUMN tagged ${flagType}`
  yield* sql`CREATE TABLE sample_tags (
    sample_id TEXT NOT NULL REFERENCES samples(id),
    label_id TEXT NOT NULL REFERENCES labels(id),
    function_id TEXT NOT NULL REFERENCES functions(id),
    PRIMARY KEY (sample_id, label_id)
  )`
  yield* sql`CREATE INDEX sample_tags_by_label ON sample_tags (function_id, label_id)`
})

/** Every migration, by id. */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_initial": initial,
  "0002_held_back": heldBack,
  "0003_tags": tags
}
