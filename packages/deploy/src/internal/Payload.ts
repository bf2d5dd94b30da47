/**
 * Payloads as the API decodes them: unknown keys are errors naming the key, and the nesting depth is checked before
 * anything else, so that a deeply nested JSON body (thousands of levels in a few KB) is refused with a short message
 * instead of overflowing the stack when a schema error would format the value it got. Every member of a payload
 * union is checked so, as each one sees the value the body decoded to.
 *
 * @internal
 */
import { Schema, SchemaAST } from "effect"

/** Deeper than any payload of the API needs; far below what formatting an error can take. */
const maxDepth = 64

/** Whether `value` nests arrays and objects more than `limit` levels deep; iterative, so any depth is safe. */
const tooDeep = (value: unknown, limit: number): boolean => {
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!
    // Bytes (a raw body) are one value, not a nesting.
    if (typeof node !== "object" || node === null || ArrayBuffer.isView(node)) continue
    if (depth >= limit) return true
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}

/**
 * `schema` for a body: the depth check runs first (with a message that does not show the value), then `schema` with
 * unknown keys refused. The OpenAPI document shows `schema` itself, with its content type.
 */
export const strict = <A, I, R>(schema: Schema.Schema<A, I, R>): Schema.Schema<A, unknown, R> => {
  const shallow = Schema.Unknown.pipe(
    Schema.filter((u) => !tooDeep(u, maxDepth), {
      message: () => `the JSON nests deeper than ${maxDepth} levels`
    })
  ).annotations({ [SchemaAST.SurrogateAnnotationId]: schema.ast })
  return Schema.compose(shallow, schema, { strict: false }).annotations({
    parseOptions: { onExcessProperty: "error" }
  })
}
