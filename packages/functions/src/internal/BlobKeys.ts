/**
 * What every blob store implementation shares: the shape of a key, and the errors for a malformed or missing one.
 *
 * @internal
 */
import { Effect } from "effect"
import { FunctionsError } from "../FunctionsError.js"

/**
 * The name of a filesystem write in progress: the target's name, then `.tmp-<writer's pid>-<12 hex digits>`. No key
 * may end like this, so the names matching it are the store's own temporary files and folders.
 */
export const tempName = /\.tmp-(\d+)-[0-9a-f]{12}$/

/** Check a key's shape; fails with `InvalidInput` naming it. */
export const validateKey = (key: string): Effect.Effect<string, FunctionsError> => {
  const segments = key.split("/")
  return key.length > 0 && !key.startsWith("/") &&
      segments.every((s) => s !== "" && s !== "." && s !== ".." && !tempName.test(s))
    ? Effect.succeed(key)
    : Effect.fail(new FunctionsError({ reason: "InvalidInput", field: "key", message: `Invalid blob key ${JSON.stringify(key)}` }))
}

export const notFound = (key: string) => new FunctionsError({ reason: "NotFound", file: key, message: `Blob store: no blob ${key}` })
