/**
 * A Postgres connection pool from a store URL, failing with a `FunctionsError` that names the URL without its
 * password.
 *
 * @internal
 */
import type { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Layer, Redacted } from "effect"
import { FunctionsError } from "../FunctionsError.js"

/** `url` with any password replaced, for messages. */
export const redact = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return "(a malformed URL)"
  }
}

export const layer = (url: string): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, FunctionsError> =>
  PgClient.layer({ url: Redacted.make(url) }).pipe(
    Layer.mapError((cause) =>
      new FunctionsError({ reason: "StoreFailed", field: "store", message: `Cannot connect to ${redact(url)}: ${cause.message}`, cause })
    )
  )
