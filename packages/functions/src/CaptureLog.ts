/**
 * The review queue of `loupe serve`: invocations captured for review (low confidence, a rare class, a random share)
 * and not annotated yet. In `captures.db` in a store folder, or in the `captures` table of a shared database, so
 * that every server on a Postgres store sees one queue. `Server` keeps the queue in step with the samples.
 *
 * @since 0.2.0
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql"
import type { FileSystem } from "@effect/platform"
import { DeployError } from "@loupe/deploy"
import type { FunctionApi, FunctionBackend } from "@loupe/deploy"
import { Context, Effect, Layer } from "effect"
import * as path from "node:path"
import type { FunctionsError } from "./FunctionsError.js"
import * as SideDatabase from "./internal/SideDatabase.js"
import * as SharedSchema from "./internal/SharedSchema.js"

interface CaptureRow {
  readonly function_id: string
  readonly sample_id: string
  readonly reason: FunctionApi.CaptureView["reason"]
  readonly label_name: string
  readonly confidence: number
  readonly model_id: string
  readonly external_id: string | null
  readonly captured_at: string
}

/**
 * The capture log's operations.
 *
 * @since 0.2.0
 * @category captures
 */
export interface CaptureLogShape {
  readonly add: (functionId: string, sampleId: string, capture: FunctionBackend.NewCapture) => Effect.Effect<void, DeployError.DeployError>
  readonly page: (functionId: string, limit: number, offset: number) => Effect.Effect<ReadonlyArray<FunctionApi.CaptureView>, DeployError.DeployError>
  readonly remove: (functionId: string, sampleIds: ReadonlyArray<string>) => Effect.Effect<void, DeployError.DeployError>
  readonly forget: (functionId: string) => Effect.Effect<void, DeployError.DeployError>
}

/**
 * The capture log over the provided `SqlClient`, whose `captures` table exists (SQL that SQLite and Postgres both
 * accept). `where` names the database in errors.
 */
const makeCaptureLog = (where: string): Effect.Effect<CaptureLogShape, never, SqlClient.SqlClient> =>
  Effect.map(SqlClient.SqlClient, (sql) => {
    const failed = (what: string) => (cause: SqlError.SqlError) =>
      new DeployError.DeployError({ reason: "Internal", file: where, message: `Capture log: ${what} failed: ${cause.message}`, cause })
    return {
      add: (functionId, sampleId, c) =>
        sql`INSERT INTO captures ${
          sql.insert({
            function_id: functionId,
            sample_id: sampleId,
            reason: c.reason,
            label_name: c.labelName,
            confidence: c.confidence,
            model_id: c.modelId,
            external_id: c.externalId ?? null,
            captured_at: new Date().toISOString()
          })
        } ON CONFLICT (function_id, sample_id) DO UPDATE SET reason = excluded.reason, label_name = excluded.label_name,
          confidence = excluded.confidence, model_id = excluded.model_id, external_id = excluded.external_id,
          captured_at = excluded.captured_at`.pipe(Effect.asVoid, Effect.mapError(failed("recording a capture"))),
      page: (functionId, limit, offset) =>
        sql<CaptureRow>`SELECT * FROM captures WHERE function_id = ${functionId}
          ORDER BY captured_at DESC, sample_id LIMIT ${limit} OFFSET ${offset}`.pipe(
          Effect.map((rows) =>
            rows.map((r): FunctionApi.CaptureView => ({
              sampleId: r.sample_id,
              capturedAt: r.captured_at,
              reason: r.reason,
              labelName: r.label_name,
              confidence: Number(r.confidence),
              modelId: r.model_id,
              externalId: r.external_id
            }))
          ),
          Effect.mapError(failed("listing captures"))
        ),
      remove: (functionId, sampleIds) =>
        sampleIds.length === 0
          ? Effect.void
          : sql`DELETE FROM captures WHERE function_id = ${functionId} AND ${sql.in("sample_id", sampleIds)}`.pipe(
            Effect.asVoid,
            Effect.mapError(failed("removing captures"))
          ),
      forget: (functionId) =>
        sql`DELETE FROM captures WHERE function_id = ${functionId}`.pipe(Effect.asVoid, Effect.mapError(failed("removing captures")))
    }
  })

/**
 * Captured invocations waiting for review: in `captures.db` in a store folder (SQLite, WAL; 0600 like the store's
 * database), or in the `captures` table of a shared database (`layerSql`). A record is dropped once its sample is
 * annotated or deleted.
 *
 * @since 0.1.0
 * @category captures
 */
export class CaptureLog extends Context.Tag("@loupe/functions/CaptureLog")<CaptureLog, CaptureLogShape>() {
  static readonly layer = (storeDir: string): Layer.Layer<CaptureLog, DeployError.DeployError, FileSystem.FileSystem> => {
    const file = path.join(storeDir, "captures.db")
    const failed = (what: string) => (cause: { readonly message: string }) =>
      new DeployError.DeployError({ reason: "Internal", file, message: `Capture log: ${what} failed: ${cause.message}`, cause })
    const make = Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* Effect.all([
        sql`CREATE TABLE IF NOT EXISTS captures (
          function_id TEXT NOT NULL,
          sample_id TEXT NOT NULL,
          reason TEXT NOT NULL,
          label_name TEXT NOT NULL,
          confidence REAL NOT NULL,
          model_id TEXT NOT NULL,
          external_id TEXT,
          captured_at TEXT NOT NULL,
          PRIMARY KEY (function_id, sample_id)
        )`,
        sql`CREATE INDEX IF NOT EXISTS captures_by_time ON captures (function_id, captured_at)`
      ], { discard: true }).pipe(Effect.mapError(failed("creating the table")))
      return yield* makeCaptureLog(file)
    })
    return Layer.effect(CaptureLog, make).pipe(Layer.provide(SideDatabase.layer(storeDir, file, failed)))
  }

  /**
   * The capture log in the `captures` table of the provided `SqlClient`'s database (created by the shared-state
   * migrations, `loupe_shared_migrations`), so every server on a shared store sees the same review queue. Fails with
   * `FunctionsError` `StoreFailed` when the migrations fail.
   *
   * @since 0.2.0
   */
  static readonly layerSql = (where: string = "the store database"): Layer.Layer<CaptureLog, FunctionsError, SqlClient.SqlClient> =>
    Layer.effect(CaptureLog, Effect.zipRight(SharedSchema.migrate, makeCaptureLog(where)))
}

