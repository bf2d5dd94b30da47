/** The report colours: one neutral ink scale, a blue scale for agreement and a warm scale for mistakes. */

export const ink = "#1f2430"
export const muted = "#6b7280"
export const grid = "#e5e7eb"
export const paper = "#ffffff"
export const accent = "#3056d3"
export const danger = "#d1495b"

type Rgb = readonly [number, number, number]

const hex = (c: Rgb): string => `#${c.map((v) => Math.round(v).toString(16).padStart(2, "0")).join("")}`

const lerp = (stops: ReadonlyArray<Rgb>, t: number): Rgb => {
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1)
  const i = Math.min(stops.length - 2, Math.floor(x))
  const f = x - i
  const a = stops[i]!
  const b = stops[i + 1]!
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]
}

const blues: ReadonlyArray<Rgb> = [[244, 246, 251], [188, 204, 240], [96, 128, 222], [40, 70, 180], [24, 42, 120]]
const reds: ReadonlyArray<Rgb> = [[251, 244, 244], [246, 201, 196], [232, 131, 122], [201, 64, 78], [140, 30, 50]]

/** Fill for a correct-prediction cell holding fraction `t` of its row. */
export const agreement = (t: number): string => hex(lerp(blues, t))

/** Fill for a mistake cell holding fraction `t` of its row. */
export const confusion = (t: number): string => hex(lerp(reds, t))

/** Black or white text, whichever reads better on `fill` (a `#rrggbb` colour). */
export const textOn = (fill: string): string => {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(fill.slice(i, i + 2), 16) / 255) as [number, number, number]
  const luminance = 0.2126 * r ** 2.2 + 0.7152 * g ** 2.2 + 0.0722 * b ** 2.2
  return luminance > 0.3 ? ink : "#ffffff"
}

export const fontFamily =
  "Inter, ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
