/**
 * Where a function store lives, parsed from `--store`, `LOUPE_STORE_URL` or `LOUPE_STORE_DIR`: a folder (the
 * embedded SQLite store, as before) or a `postgres://` URL (a shared Postgres store). A URL is never taken for a
 * path: any other `scheme:` prefix is an error naming the scheme, so `--store s3://bucket` cannot quietly create a
 * local folder named `s3:`. A Windows drive (`C:\store`, `d:/store`) is a path.
 *
 * The Postgres URL is kept `Redacted`; `describe` prints it with its password masked.
 *
 * @since 0.2.0
 */
import { Either, Redacted } from "effect"
import * as path from "node:path"
import { FunctionsError } from "./FunctionsError.js"

/**
 * The embedded store in a folder: SQLite in `path/loupe.db`, blobs under `path/blobs`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Directory {
  readonly _tag: "Directory"
  /** An absolute path. */
  readonly path: string
}

/**
 * A Postgres database, by its `postgres://` connection URL (which may carry a password, hence `Redacted`).
 *
 * @since 0.2.0
 * @category models
 */
export interface Postgres {
  readonly _tag: "Postgres"
  readonly url: Redacted.Redacted<string>
}

/**
 * A store location: a folder or a Postgres database.
 *
 * @since 0.2.0
 * @category models
 */
export type StoreLocation = Directory | Postgres

/**
 * A folder location (the path is resolved against the working directory).
 *
 * @since 0.2.0
 * @category constructors
 */
export const directory = (dir: string): Directory => ({ _tag: "Directory", path: path.resolve(dir) })

/**
 * A Postgres location from its URL (not checked here; `parse` checks).
 *
 * @since 0.2.0
 * @category constructors
 */
export const postgres = (url: string | Redacted.Redacted<string>): Postgres => ({
  _tag: "Postgres",
  url: typeof url === "string" ? Redacted.make(url) : url
})

/** `scheme:` at the start, as RFC 3986 spells a scheme. */
const schemePrefix = /^([A-Za-z][A-Za-z0-9+.-]*):/

const postgresSchemes = new Set(["postgres", "postgresql"])

const invalid = (field: string, message: string) => new FunctionsError({ reason: "InvalidInput", field, message })

/** The URL with its password (if any) replaced by `***`, for messages. */
const maskPassword = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") {
      parsed.password = "***"
      return parsed.toString()
    }
  } catch {
    // Not a URL: masked below.
  }
  // Whatever sits between `user:` and `@`, in text the URL parser did not read as a user and password.
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:(?:\/\/)?[^:/@]*:)[^@]*@/, "$1***@")
}

/**
 * Parse a store location. `field` names where it came from (`--store`, `LOUPE_STORE_URL`, ...) in errors.
 *
 * - `postgres://...` or `postgresql://...`: Postgres (the URL must parse, and name a host or a `host=` socket folder).
 * - a path (`./store`, `/srv/loupe`, `store`, `C:\loupe`): a folder, resolved against `cwd`.
 * - anything else with a `scheme:` prefix: `InvalidInput` naming the scheme. A folder whose name has a colon is
 *   written `./name:...`.
 * - empty, or starting with `~` (which no shell expanded): `InvalidInput`.
 *
 * @since 0.2.0
 * @category parsing
 */
export const parse = (
  input: string,
  field = "store",
  cwd: string = process.cwd()
): Either.Either<StoreLocation, FunctionsError> => {
  const text = input.trim()
  if (text === "") return Either.left(invalid(field, `${field} is empty; use a folder or a postgres:// URL`))
  const scheme = schemePrefix.exec(text)?.[1]
  // One letter before the colon is a Windows drive (`C:\store`, `c:/store`), not a scheme.
  if (scheme !== undefined && !(scheme.length === 1 && /^[A-Za-z]:([\\/]|$)/.test(text))) {
    if (!postgresSchemes.has(scheme.toLowerCase())) {
      // `name:thing` may have meant a folder; `name://...` is a URL of some other kind.
      const folderHint = text.startsWith(`${scheme}://`) ? "" : ` (or ./${text} for a folder of that name)`
      return Either.left(
        invalid(field, `${field}: unknown store scheme '${scheme}:'; use a folder or postgres://${folderHint}`)
      )
    }
    let url: URL
    try {
      url = new URL(text)
    } catch {
      return Either.left(invalid(field, `${field}: ${maskPassword(text)} is not a valid postgres:// URL`))
    }
    if (!text.slice(scheme.length + 1).startsWith("//") || (url.hostname === "" && !url.searchParams.has("host"))) {
      return Either.left(
        invalid(field, `${field}: ${maskPassword(text)} names no host; write postgres://user@host:5432/database`)
      )
    }
    return Either.right(postgres(text))
  }
  if (text.startsWith("~")) {
    return Either.left(
      invalid(field, `${field}: ${text} starts with '~', which is not expanded here; use an absolute or ./relative path`)
    )
  }
  return Either.right(directory(path.resolve(cwd, text)))
}

/**
 * The location for people and logs: the folder, or the URL with its password masked (`postgres://loupe:***@db/loupe`).
 *
 * @since 0.2.0
 * @category formatting
 */
export const describe = (location: StoreLocation): string =>
  location._tag === "Directory" ? location.path : maskPassword(Redacted.value(location.url))

/**
 * The location named by the environment, if any: `LOUPE_STORE_URL` (a folder or a URL), else `LOUPE_STORE_DIR`
 * (parsed the same way, so a URL there is not taken for a folder either). `undefined` when neither is set.
 *
 * @since 0.2.0
 * @category parsing
 */
export const fromEnv = (
  env: Readonly<Record<string, string | undefined>> = process.env,
  cwd: string = process.cwd()
): Either.Either<StoreLocation, FunctionsError> | undefined => {
  for (const name of ["LOUPE_STORE_URL", "LOUPE_STORE_DIR"]) {
    const value = env[name]
    if (value !== undefined && value.trim() !== "") return parse(value, name, cwd)
  }
  return undefined
}
