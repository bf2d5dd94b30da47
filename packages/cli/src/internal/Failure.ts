/**
 * How a failed command reports itself: one line on stderr, and with `--json` also exactly one JSON object on stdout
 * (`{"error": {"_tag", "reason", "message", "field", "file"}}`), so a script reading stdout always gets an object.
 */
import { HelpDoc, ValidationError } from "@effect/cli"
import { stripVTControlCharacters } from "node:util"

/** A failure as `--json` prints it: the error's tag and reason, its message, and the field or file it names. */
export interface FailureJson {
  readonly _tag: string
  readonly reason?: string
  readonly message: string
  readonly field?: string
  readonly file?: string
}

/** Whether the command line asked for JSON output. */
export const wantsJson = (args: ReadonlyArray<string>): boolean => {
  const end = args.indexOf("--")
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "--json" || a === "--json=true")
}

/** The JSON form of any failure: a usage error of @effect/cli, a tagged Loupe error, or anything else. */
export const toJson = (error: unknown): FailureJson => {
  if (ValidationError.isValidationError(error)) {
    const message = stripVTControlCharacters(HelpDoc.toAnsiText(error.error)).trim()
    return { _tag: "ValidationError", reason: error._tag, message }
  }
  if (typeof error === "object" && error !== null && "message" in error) {
    const e = error as Partial<Record<"_tag" | "reason" | "field" | "file", unknown>> & { readonly message: unknown }
    const text = (v: unknown) => (typeof v === "string" ? v : undefined)
    return {
      _tag: text(e._tag) ?? "Error",
      ...(text(e.reason) === undefined ? {} : { reason: text(e.reason)! }),
      message: String(e.message),
      ...(text(e.field) === undefined ? {} : { field: text(e.field)! }),
      ...(text(e.file) === undefined ? {} : { file: text(e.file)! })
    }
  }
  return { _tag: "Error", message: String(error) }
}

/** The stderr line of a failure that @effect/cli has not already printed. */
export const toLine = (error: FailureJson): string =>
  `loupe: ${error.message}${error.reason ? ` [${error._tag}: ${error.reason}]` : ""}`
