/** Number and text formatting shared by the terminal and HTML reports. */

/** `0.975` -> `"97.5%"`. */
export const percent = (x: number, digits = 1): string => `${(x * 100).toFixed(digits)}%`

/** A score in [0, 1] or a loss, with a fixed number of decimals; `null` (undefined metric) -> an en dash. */
export const fixed = (x: number | null, digits = 3): string => (x === null ? "–" : x.toFixed(digits))

/** `0.0042` -> `"4 ms"`, `12.3` -> `"12.3 s"`, `184` -> `"3 min 4 s"`. */
export const duration = (seconds: number): string => {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`
  const minutes = Math.floor(seconds / 60)
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`
}

/** Escapes text for HTML and XML (element content and quoted attributes). */
export const escape = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;")

/** Cuts `text` to `max` characters, ending with an ellipsis when cut. */
export const truncate = (text: string, max: number): string =>
  text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`
