/**
 * Payloads as the API decodes them: unknown keys are errors naming the key, and the nesting depth is checked before
 * anything else, so that a deeply nested JSON body (thousands of levels in a few KB) is refused with a short message
 * instead of overflowing the stack when a schema error would format the value it got (the error names the top-level
 * key the nesting is under). A body that was not UTF-8 (the platform decodes it with replacement characters) is
 * refused too. Every member of a payload union is checked so, as each one sees the value the body decoded to.
 *
 * @internal
 */
import { HttpServerRequest } from "@effect/platform"
import { Effect, ParseResult, Schema, SchemaAST } from "effect"

/** The media type of a request (lowercase, without parameters); `""` when there is none. */
export const mediaType = (request: HttpServerRequest.HttpServerRequest): string =>
  (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()

/**
 * The message of a payload member's failure for a request of another content type: a union's members all see the
 * body, and only the one for the request's content type has something to say about it.
 */
export const otherContentType = "is for another content type"

/** Deeper than any payload of the API needs; far below what formatting an error can take. */
const maxDepth = 64

/**
 * What is wrong with the shape of a decoded body, if anything: nesting deeper than `limit` (under which top-level key),
 * or the replacement character U+FFFD, which is what bytes that are not UTF-8 decode to. Iterative, so any depth is
 * safe.
 */
const shapeIssue = (value: unknown, limit: number): { readonly path: ReadonlyArray<string>; readonly message: string } | undefined => {
  const stack: Array<[unknown, number, string | undefined]> = [[value, 0, undefined]]
  while (stack.length > 0) {
    const [node, depth, key] = stack.pop()!
    if (typeof node === "string") {
      if (node.includes("\uFFFD")) return { path: [], message: "not valid UTF-8 (it decodes to U+FFFD)" }
      continue
    }
    // Bytes (a raw body) are one value, not a nesting.
    if (typeof node !== "object" || node === null || ArrayBuffer.isView(node)) continue
    if (depth >= limit) return { path: key === undefined ? [] : [key], message: `nests arrays or objects deeper than ${limit} levels` }
    for (const [k, child] of Object.entries(node)) {
      stack.push([child, depth + 1, key ?? (Array.isArray(node) ? undefined : k)])
    }
  }
  return undefined
}

/**
 * `schema` for a body of `contentType`: the depth check runs first (with a message that does not show the value),
 * then, for a request of that content type only, `schema` with unknown keys refused. The OpenAPI document shows
 * `schema` itself, with its content type.
 */
export const strict = <A, I, R>(
  schema: Schema.Schema<A, I, R>,
  contentType: string
): Schema.Schema<A, unknown, R | HttpServerRequest.HttpServerRequest> => {
  const shallow = Schema.Unknown.pipe(
    Schema.filter((u) => shapeIssue(u, maxDepth) ?? true)
  ).annotations({ [SchemaAST.SurrogateAnnotationId]: schema.ast })
  const forThisType = Schema.transformOrFail(shallow, Schema.Unknown, {
    strict: true,
    decode: (u, _, ast) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        mediaType(request) === contentType ? ParseResult.succeed(u) : ParseResult.fail(new ParseResult.Type(ast, u, otherContentType))),
    encode: ParseResult.succeed
  })
  return Schema.compose(forThisType, schema, { strict: false }).annotations({
    parseOptions: { onExcessProperty: "error" }
  })
}
