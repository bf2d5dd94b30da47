/**
 * The embedding cache in the `embeddings` table of a shared database, keyed as the disk cache is, by (namespace,
 * content sha256), so every runner reuses the vectors any of them computed. Vectors are float32 bytes. As every
 * embedding cache, it never fails: a database error is logged and taken as a miss (or a write skipped).
 *
 * @internal
 */
import { SqlClient } from "@effect/sql"
import type { EmbeddingCache } from "@loupe/core"
import { Effect } from "effect"

const miss = (what: string) => (cause: unknown) =>
  Effect.as(Effect.logWarning(`Embedding cache: ${what} failed, taken as a miss: ${String(cause)}`), undefined)

/** The cache over the provided `SqlClient`, whose `embeddings` and `file_hashes` tables exist. */
export const make: Effect.Effect<EmbeddingCache.EmbeddingCacheShape, never, SqlClient.SqlClient> = Effect.map(
  SqlClient.SqlClient,
  (sql) => ({
    get: (namespace, contentHash) =>
      sql<{ readonly vector: Uint8Array }>`SELECT vector FROM embeddings
        WHERE namespace = ${namespace} AND content_hash = ${contentHash}`.pipe(
        Effect.map((rows) => {
          const bytes = rows[0]?.vector
          // A copy: the driver's buffer may not be aligned for a Float32Array.
          return bytes === undefined || bytes.byteLength % 4 !== 0 ? undefined : new Float32Array(new Uint8Array(bytes).buffer)
        }),
        Effect.catchAll(miss("a read"))
      ),
    set: (namespace, contentHash, vector) =>
      sql`INSERT INTO embeddings ${
        sql.insert({ namespace, content_hash: contentHash, vector: Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength) })
      } ON CONFLICT (namespace, content_hash) DO NOTHING`.pipe(Effect.asVoid, Effect.catchAll(miss("a write"))),
    knownContentHash: (fingerprint) =>
      sql<{ readonly content_hash: string }>`SELECT content_hash FROM file_hashes WHERE fingerprint = ${fingerprint}`.pipe(
        Effect.map((rows) => rows[0]?.content_hash),
        Effect.catchAll(miss("a read"))
      ),
    rememberContentHash: (fingerprint, contentHash) =>
      sql`INSERT INTO file_hashes ${sql.insert({ fingerprint, content_hash: contentHash })}
        ON CONFLICT (fingerprint) DO UPDATE SET content_hash = excluded.content_hash`.pipe(Effect.asVoid, Effect.catchAll(miss("a write")))
  })
)
