/**
 * One line of CSV (RFC 4180 quoting: `"a, b"`, `"say ""hi"""`). Unquoted fields are trimmed; quoted fields are
 * kept as written. Fields spanning several lines are not supported.
 *
 * @internal
 */
import { Either } from "effect"

/** Split one CSV line into fields, or say what is wrong with it. */
export const parseLine = (line: string): Either.Either<ReadonlyArray<string>, string> => {
  const fields: Array<string> = []
  let i = 0
  for (;;) {
    while (line[i] === " " || line[i] === "\t") i++
    if (line[i] === "\"") {
      let value = ""
      i++
      for (;;) {
        const close = line.indexOf("\"", i)
        if (close < 0) return Either.left(`unterminated quoted field starting at column ${i}`)
        value += line.slice(i, close)
        if (line[close + 1] === "\"") {
          value += "\""
          i = close + 2
        } else {
          i = close + 1
          break
        }
      }
      while (line[i] === " " || line[i] === "\t") i++
      if (i < line.length && line[i] !== ",") {
        return Either.left(`unexpected ${JSON.stringify(line[i])} after a quoted field at column ${i + 1}`)
      }
      fields.push(value)
    } else {
      const comma = line.indexOf(",", i)
      const end = comma < 0 ? line.length : comma
      const value = line.slice(i, end).trim()
      if (value.includes("\"")) return Either.left(`stray quote in field ${JSON.stringify(value)}`)
      fields.push(value)
      i = end
    }
    if (i >= line.length) return Either.right(fields)
    i++ // the comma
  }
}
