/**
 * Databases cap bound parameters per statement (SQLite: 32766, Postgres: 65535), so `IN (...)` lists and multi-row
 * inserts go in chunks of `CHUNK` rows (at most 8 columns each).
 *
 * @internal
 */

/** Rows per statement. */
export const CHUNK = 400

/** `items` in chunks of at most `CHUNK`. */
export const chunks = <A>(items: ReadonlyArray<A>): ReadonlyArray<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / CHUNK) }, (_, i) => items.slice(i * CHUNK, (i + 1) * CHUNK))
