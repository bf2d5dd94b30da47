/**
 * The confusion matrix as an image: an SVG string (embedded as-is in the HTML report) and a PNG rendered from it
 * with sharp. Rows are true classes, columns predicted classes; each cell shows its count and its share of the row,
 * blue on the diagonal (agreement) and red off it (mistakes), so the errors stand out at a glance.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import sharp from "sharp"
import { MetricsError } from "./MetricsError.js"
import { escape, percent, truncate } from "./internal/Format.js"
import * as Palette from "./internal/Palette.js"

/**
 * Settings of `svg`.
 *
 * @since 0.1.0
 * @category options
 */
export interface SvgOptions {
  /** Side of one cell in pixels; by default about 440 px for the whole grid, between 16 and 120 per cell. */
  readonly cellSize?: number
  /** Text for `aria-label` and a title above the grid; no visible title when absent. */
  readonly title?: string
  /**
   * A link for a cell (true class `t`, predicted class `p`), for an SVG shown inside an HTML page: the cell becomes an
   * `<a>` to it (escaped). `undefined` leaves the cell without a link. Default: no links.
   *
   * @since 0.2.0
   */
  readonly cellHref?: (t: number, p: number) => string | undefined
}

/**
 * Settings of `png`: those of `svg` and the pixel density.
 *
 * @since 0.1.0
 * @category options
 */
export interface PngOptions extends SvgOptions {
  /**
   * Pixel density multiplier, in (0, 8]: the PNG is `scale` times the SVG's size in pixels (2 gives a sharp image on
   * high-DPI screens). Default 2.
   */
  readonly scale?: number
}

const labelFont = 12
const charWidth = labelFont * 0.62
const maxLabelChars = 20

/**
 * The confusion matrix `matrix[true][predicted]` (as in `Evaluation.confusionMatrix`) as a standalone SVG document,
 * `labels` naming its rows and columns in class order. Labels longer than 20 characters are cut, with the full label
 * in a tooltip; each cell's tooltip gives its count and share of the row. Never fails.
 *
 * @since 0.1.0
 * @category rendering
 */
export const svg = (
  matrix: ReadonlyArray<ReadonlyArray<number>>,
  labels: ReadonlyArray<string>,
  options: SvgOptions = {}
): string => {
  const k = labels.length
  const cell = options.cellSize ?? Math.max(16, Math.min(120, Math.round(440 / Math.max(1, k))))
  const shown = labels.map((l) => truncate(l, maxLabelChars))
  const labelWidth = Math.ceil(Math.max(...shown.map((l) => l.length), 1) * charWidth)
  const rotate = labelWidth > cell - 6
  const titleHeight = options.title === undefined ? 0 : 28
  const axisTitle = 22
  const left = axisTitle + labelWidth + 10
  const columnLabels = rotate ? Math.ceil(labelWidth * Math.SQRT1_2) + 14 : 20
  const top = titleHeight + axisTitle + columnLabels
  const width = left + k * cell + 12
  const height = top + k * cell + 12
  const countFont = cell >= 44 ? Math.min(24, Math.round(cell * 0.22)) : 11
  const shareFont = Math.min(13, Math.max(10, Math.round(cell * 0.12)))
  const parts: Array<string> = []
  const title = options.title ?? "Confusion matrix"
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="confusion-matrix" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" role="img" aria-label="${escape(title)}" font-family="${escape(Palette.fontFamily)}">`,
    `<rect width="${width}" height="${height}" fill="${Palette.paper}"/>`
  )
  if (options.title !== undefined) {
    parts.push(`<text x="4" y="18" font-size="15" font-weight="600" fill="${Palette.ink}">${escape(title)}</text>`)
  }
  const gridLeft = left
  const gridTop = top
  parts.push(
    `<text x="${gridLeft + (k * cell) / 2}" y="${titleHeight + 14}" font-size="12" font-weight="600" ` +
      `letter-spacing="0.06em" fill="${Palette.muted}" text-anchor="middle">PREDICTED</text>`,
    `<text transform="translate(14 ${gridTop + (k * cell) / 2}) rotate(-90)" font-size="12" font-weight="600" ` +
      `letter-spacing="0.06em" fill="${Palette.muted}" text-anchor="middle">TRUE</text>`
  )
  shown.forEach((label, i) => {
    const cx = gridLeft + i * cell + cell / 2
    const y = gridTop - 8
    parts.push(
      rotate
        ? `<text transform="translate(${cx} ${y}) rotate(-45)" font-size="${labelFont}" fill="${Palette.ink}">` +
          `${escape(label)}<title>${escape(labels[i]!)}</title></text>`
        : `<text x="${cx}" y="${y}" font-size="${labelFont}" fill="${Palette.ink}" text-anchor="middle">` +
          `${escape(label)}<title>${escape(labels[i]!)}</title></text>`,
      `<text x="${gridLeft - 10}" y="${gridTop + i * cell + cell / 2 + 4}" font-size="${labelFont}" ` +
        `fill="${Palette.ink}" text-anchor="end">${escape(label)}<title>${escape(labels[i]!)}</title></text>`
    )
  })
  matrix.forEach((row, t) => {
    const rowTotal = row.reduce((a, b) => a + b, 0)
    row.forEach((count, p) => {
      const share = rowTotal === 0 ? 0 : count / rowTotal
      const fill = count === 0
        ? "#f6f7f9"
        : t === p
        ? Palette.agreement(0.15 + 0.85 * share)
        : Palette.confusion(0.12 + 0.88 * share ** 0.7)
      const x = gridLeft + p * cell
      const y = gridTop + t * cell
      const color = count === 0 ? "#b8bec9" : Palette.textOn(fill)
      const tooltip = `true ${labels[t]} → predicted ${labels[p]}: ${count} (${percent(share)} of ${labels[t]})`
      const href = options.cellHref?.(t, p)
      if (href !== undefined) parts.push(`<a href="${escape(href)}" aria-label="${escape(tooltip)}">`)
      parts.push(
        `<g class="cm-cell" data-true="${t}" data-predicted="${p}"><title>${escape(tooltip)}</title>`,
        `<rect x="${x + 1}" y="${y + 1}" width="${cell - 2}" height="${cell - 2}" rx="3" fill="${fill}"/>`
      )
      if (cell >= 24) {
        const withShare = cell >= 44 && count > 0
        const cy = y + cell / 2 + (withShare ? countFont * 0.05 : countFont / 3)
        parts.push(
          `<text x="${x + cell / 2}" y="${cy}" font-size="${countFont}" font-weight="600" fill="${color}" ` +
            `text-anchor="middle">${count}</text>`
        )
        if (withShare) {
          parts.push(
            `<text x="${x + cell / 2}" y="${cy + shareFont + 5}" font-size="${shareFont}" fill="${color}" fill-opacity="0.85" ` +
              `text-anchor="middle">${percent(share, share === 1 || share === 0 ? 0 : 1)}</text>`
          )
        }
      }
      parts.push(href === undefined ? `</g>` : `</g></a>`)
    })
  })
  parts.push(`</svg>`)
  return parts.join("")
}

/**
 * The same image as PNG bytes, rendered from the SVG with sharp. Fails with a `MetricsError`: `InvalidOption` (field
 * `scale`) when `scale` is outside (0, 8], `RenderFailed` when sharp cannot render it.
 *
 * @since 0.1.0
 * @category rendering
 */
export const png: (
  matrix: ReadonlyArray<ReadonlyArray<number>>,
  labels: ReadonlyArray<string>,
  options?: PngOptions
) => Effect.Effect<Uint8Array, MetricsError> = Effect.fn("ConfusionMatrixImage.png")(function*(
  matrix: ReadonlyArray<ReadonlyArray<number>>,
  labels: ReadonlyArray<string>,
  options: PngOptions = {}
) {
  const scale = options.scale ?? 2
  if (!(scale > 0 && scale <= 8)) {
    return yield* new MetricsError({ reason: "InvalidOption", field: "scale", message: `scale must be in (0, 8], got ${scale}` })
  }
  const source = Buffer.from(svg(matrix, labels, options))
  const bytes = yield* Effect.tryPromise({
    try: () => sharp(source, { density: 72 * scale }).png().toBuffer(),
    catch: (cause) =>
      new MetricsError({ reason: "RenderFailed", message: `could not render the confusion matrix: ${String(cause)}`, cause })
  })
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
})
