/**
 * HTML built from template literals, escaped by default: `html\`<p>${name}</p>\`` escapes `name` (`&`, `<`, `>`, `"`,
 * `'`), so user text can never open a tag or leave an attribute. Only `Html` values (what `html` and `raw` return)
 * are inserted as they are. Arrays are joined; `null`, `undefined` and `false` render nothing.
 *
 * User text shown as text goes through `text`, which also wraps it in `<bdi>`: a label name holding a right-to-left
 * override (U+202E) then cannot reverse the text around it.
 *
 * @internal
 */

/** Markup that is already safe to insert. */
export interface Html {
  readonly _tag: "Html"
  readonly value: string
}

/** A value a template may interpolate. */
export type Part = Html | string | number | boolean | null | undefined | ReadonlyArray<Part>

const entities: Readonly<Record<string, string>> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }

/** Escape text for an element's content or a quoted attribute value. */
export const escape = (value: string): string => value.replace(/[&<>"']/g, (c) => entities[c]!)

/** Markup inserted as it is: only for strings the server wrote itself, never user text. */
export const raw = (value: string): Html => ({ _tag: "Html", value })

const isHtml = (part: unknown): part is Html =>
  typeof part === "object" && part !== null && (part as { readonly _tag?: unknown })._tag === "Html"

const render = (part: Part): string => {
  if (part === null || part === undefined || part === false) return ""
  if (isHtml(part)) return part.value
  if (Array.isArray(part)) return part.map(render).join("")
  return escape(String(part))
}

/** The template tag: interpolations are escaped unless they are `Html`. */
export const html = (strings: TemplateStringsArray, ...parts: ReadonlyArray<Part>): Html =>
  raw(strings.reduce((out, s, i) => out + s + (i < parts.length ? render(parts[i]!) : ""), ""))

/** User text as content: escaped and isolated from the surrounding text's direction. */
export const text = (value: string): Html => html`<bdi>${value}</bdi>`

/** Bidirectional embedding, override and isolate controls (U+202A to U+202E, U+2066 to U+2069). */
const bidiControls = /[\u202A-\u202E\u2066-\u2069]/g

/**
 * A sentence that quotes user text (an error message naming a label): its bidi controls are shown as `[U+202E]`,
 * so a quoted name cannot reverse the rest of the sentence.
 */
export const visibleControls = (value: string): string =>
  value.replace(bidiControls, (c) => `[U+${c.codePointAt(0)!.toString(16).toUpperCase()}]`)

/** A message quoting user text, as content: escaped, with its bidi controls shown (`visibleControls`). */
export const message = (value: string): Html => html`<bdi>${visibleControls(value)}</bdi>`

/** A URL path with each dynamic segment percent-encoded: `path("/console/functions", id, "data")`. */
export const path = (base: string, ...segments: ReadonlyArray<string>): string =>
  [base, ...segments.map(encodeURIComponent)].join("/")
