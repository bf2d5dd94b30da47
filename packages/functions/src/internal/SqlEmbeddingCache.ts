/**
 * The embedding cache in the `embeddings` table of a shared database, keyed as the disk cache is, by (namespace,
 * content sha256), so every runner reuses the vectors any of them computed. Vectors are float32 bytes. Lookups and
 * writes of many vectors or file fingerprints take one statement per chunk of keys (`getMany`, `setMany`,
 * `knownContentHashes`), not one round trip per key. As every embedding cache, it never fails: a database error is logged and taken as a miss (or a write
 * skipped).
 *
 * @internal
 */
import { SqlClient } from "@effect/sql"
import type { EmbeddingCache } from "@loupe/core"
import { Effect } from "effect"
import { chunks } from "./SqlChunks.js"

const miss = <A>(what: string, fallback: A) => (cause: unknown) =>
  Effect.as(Effect.logWarning(`Embedding cache: ${what} failed, taken as a miss: ${String(cause)}`), fallback)

/** A copy: the driver's buffer may not be aligned for a Float32Array. */
const vectorOf = (bytes: Uint8Array): Float32Array | undefined =>
  bytes.byteLength % 4 !== 0 ? undefined : new Float32Array(new Uint8Array(bytes).buffer)

const bytesOf = (vector: Float32Array) => Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength)

/** The cache over the provided `SqlClient`, whose `embeddings` and `file_hashes` tables exist. */
export const make: Effect.Effect<EmbeddingCache.EmbeddingCacheShape, never, SqlClient.SqlClient> = Effect.map(
  SqlClient.SqlClient,
  (sql) => {
    const getMany = (namespace: string, contentHashes: ReadonlyArray<string>) =>
      Effect.forEach(chunks([...new Set(contentHashes)]), (chunk) =>
        sql<{ readonly content_hash: string; readonly vector: Uint8Array }>`SELECT content_hash, vector FROM embeddings
          WHERE namespace = ${namespace} AND ${sql.in("content_hash", chunk)}`).pipe(
          Effect.map((rows) => {
            const found = new Map(rows.flat().map((row) => [row.content_hash, row.vector]))
            return contentHashes.map((hash) => {
              const bytes = found.get(hash)
              return bytes === undefined ? undefined : vectorOf(bytes)
            })
          }),
          Effect.catchAll(miss("a read", contentHashes.map(() => undefined)))
        )
    const setMany = (namespace: string, entries: ReadonlyArray<EmbeddingCache.CacheEntry>) => {
      // One row per key, the first given (as a key already stored wins): a statement must not insert a key twice.
      const firsts = new Map<string, Float32Array>()
      for (const { contentHash, vector } of entries) if (!firsts.has(contentHash)) firsts.set(contentHash, vector)
      const rows = [...firsts].map(([contentHash, vector]) => ({ namespace, content_hash: contentHash, vector: bytesOf(vector) }))
      return Effect.forEach(chunks(rows), (chunk) =>
        sql`INSERT INTO embeddings ${sql.insert(chunk)} ON CONFLICT (namespace, content_hash) DO NOTHING`, { discard: true }).pipe(
          Effect.catchAll(miss("a write", undefined))
        )
    }
    const knownContentHashes = (fingerprints: ReadonlyArray<string>) =>
      Effect.forEach(chunks([...new Set(fingerprints)]), (chunk) =>
        sql<{ readonly fingerprint: string; readonly content_hash: string }>`SELECT fingerprint, content_hash FROM file_hashes
          WHERE ${sql.in("fingerprint", chunk)}`).pipe(
          Effect.map((rows) => {
            const found = new Map(rows.flat().map((row) => [row.fingerprint, row.content_hash]))
            return fingerprints.map((fingerprint) => found.get(fingerprint))
          }),
          Effect.catchAll(miss("a read", fingerprints.map(() => undefined)))
        )
    return {
      get: (namespace, contentHash) => Effect.map(getMany(namespace, [contentHash]), (vectors) => vectors[0]),
      set: (namespace, contentHash, vector) => setMany(namespace, [{ contentHash, vector }]),
      getMany,
      setMany,
      knownContentHash: (fingerprint) => Effect.map(knownContentHashes([fingerprint]), (hashes) => hashes[0]),
      knownContentHashes,
      rememberContentHash: (fingerprint, contentHash) =>
        sql`INSERT INTO file_hashes ${sql.insert({ fingerprint, content_hash: contentHash })}
          ON CONFLICT (fingerprint) DO UPDATE SET content_hash = excluded.content_hash`.pipe(
          Effect.asVoid,
          Effect.catchAll(miss("a write", undefined))
        )
    }
  }
)
