/** ANSI styling (a no-op when colour is off) and aligned plain-text tables for the terminal report. */

export interface Style {
  readonly bold: (s: string) => string
  readonly dim: (s: string) => string
  readonly green: (s: string) => string
  readonly red: (s: string) => string
  readonly cyan: (s: string) => string
}

const sgr = (open: number, close: number) => (s: string) => `\u001b[${open}m${s}\u001b[${close}m`
const plain = (s: string) => s

export const style = (color: boolean): Style =>
  color
    ? { bold: sgr(1, 22), dim: sgr(2, 22), green: sgr(32, 39), red: sgr(31, 39), cyan: sgr(36, 39) }
    : { bold: plain, dim: plain, green: plain, red: plain, cyan: plain }

const ansi = /\u001b\[[0-9;]*m/g

/** Width on screen, ignoring ANSI sequences. */
export const visibleLength = (s: string): number => [...s.replace(ansi, "")].length

const pad = (s: string, width: number, align: "left" | "right"): string => {
  const fill = " ".repeat(Math.max(0, width - visibleLength(s)))
  return align === "left" ? s + fill : fill + s
}

/**
 * Lines of a table whose columns are as wide as their widest cell. `align[i]` applies to column `i` (left when
 * missing); cells may already carry ANSI styling.
 */
export const table = (
  rows: ReadonlyArray<ReadonlyArray<string>>,
  align: ReadonlyArray<"left" | "right"> = [],
  indent = "  ",
  gap = "  "
): Array<string> => {
  const widths: Array<number> = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell))))
  return rows.map((row) => indent + row.map((cell, i) => pad(cell, widths[i]!, align[i] ?? "left")).join(gap).trimEnd())
}
