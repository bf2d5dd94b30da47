/**
 * The reliability (calibration) diagram as an SVG string: for each equal-width confidence bin, the accuracy of the
 * samples in it (bars), the gap to their mean confidence (red), the diagonal of perfect calibration, and below it a
 * histogram of how many samples fall in each bin.
 *
 * @since 0.1.0
 */
import type { CalibrationBin } from "./Classification.js"
import { escape, fixed } from "./internal/Format.js"
import * as Palette from "./internal/Palette.js"

/**
 * Settings of `svg`.
 *
 * @since 0.1.0
 * @category options
 */
export interface SvgOptions {
  /**
   * Side of the square plot in pixels; the axes, legend and histogram add 62 px to the width and 144 px to the
   * height. Default 280.
   */
  readonly size?: number
  /** The expected calibration error, written as `ECE 0.042` above the plot when given. */
  readonly ece?: number
  /** The image's accessible name (`aria-label`); it is not drawn. Default `Reliability diagram`. */
  readonly title?: string
}

/** A short stable hash (FNV-1a) of `text`, in base 36. */
const hash = (text: string): string => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return (h >>> 0).toString(36)
}

/**
 * The reliability diagram of `bins` (as in `Evaluation.calibration`) as a standalone SVG document; empty bins draw no
 * bar. Several diagrams can share one HTML page. Never fails.
 *
 * @since 0.1.0
 * @category rendering
 */
export const svg = (bins: ReadonlyArray<CalibrationBin>, options: SvgOptions = {}): string => {
  const size = options.size ?? 280
  const left = 48
  const top = 36
  const histogram = 52
  const gap = 12
  const width = left + size + 14
  const height = top + size + gap + histogram + 44
  const x = (v: number) => left + v * size
  const y = (v: number) => top + size - v * size
  const title = options.title ?? "Reliability diagram"
  // The pattern id must be unique in a page holding several diagrams; identical diagrams may share it.
  const hatch = `rd-hatch-${hash(JSON.stringify([bins, options]))}`
  const parts: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="reliability-diagram" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" role="img" aria-label="${escape(title)}" font-family="${escape(Palette.fontFamily)}">`,
    `<defs><pattern id="${hatch}" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
    `<rect width="5" height="5" fill="${Palette.danger}" fill-opacity="0.12"/>` +
    `<line x1="0" y1="0" x2="0" y2="5" stroke="${Palette.danger}" stroke-width="2.2"/></pattern></defs>`,
    `<rect width="${width}" height="${height}" fill="${Palette.paper}"/>`
  ]
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(
      `<line x1="${x(0)}" x2="${x(1)}" y1="${y(t)}" y2="${y(t)}" stroke="${Palette.grid}"/>`,
      `<line x1="${x(t)}" x2="${x(t)}" y1="${y(0)}" y2="${y(1)}" stroke="${Palette.grid}"/>`,
      `<text x="${left - 8}" y="${y(t) + 4}" font-size="11" fill="${Palette.muted}" text-anchor="end">${t}</text>`,
      `<text x="${x(t)}" y="${top + size + gap + histogram + 16}" font-size="11" fill="${Palette.muted}" ` +
        `text-anchor="middle">${t}</text>`
    )
  }
  const maxCount = Math.max(1, ...bins.map((b) => b.count))
  for (const bin of bins) {
    if (bin.accuracy === null || bin.confidence === null) continue
    const x0 = x(bin.lower) + 1
    const w = Math.max(1, x(bin.upper) - x(bin.lower) - 2)
    const tip = `confidence ${fixed(bin.lower, 2)}–${fixed(bin.upper, 2)}: ${bin.count} samples, ` +
      `accuracy ${fixed(bin.accuracy)}, mean confidence ${fixed(bin.confidence)}`
    const low = Math.min(bin.accuracy, bin.confidence)
    const high = Math.max(bin.accuracy, bin.confidence)
    const h = (bin.count / maxCount) * histogram
    parts.push(
      `<g class="rd-bin"><title>${escape(tip)}</title>`,
      `<rect x="${x0}" y="${y(bin.accuracy)}" width="${w}" height="${bin.accuracy * size}" fill="${Palette.accent}" ` +
        `fill-opacity="0.82"/>`,
      `<rect x="${x0}" y="${y(high)}" width="${w}" height="${(high - low) * size}" fill="url(#${hatch})" ` +
        `stroke="${Palette.danger}" stroke-width="1"/>`,
      `<rect x="${x0}" y="${top + size + gap + histogram - h}" width="${w}" height="${h}" fill="${Palette.muted}" ` +
        `fill-opacity="0.55"/>`,
      `</g>`
    )
  }
  parts.push(
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="${Palette.ink}" stroke-opacity="0.55" ` +
      `stroke-dasharray="4 4"/>`,
    `<line x1="${x(0)}" x2="${x(1)}" y1="${top + size + gap + histogram}" y2="${top + size + gap + histogram}" ` +
      `stroke="${Palette.grid}"/>`,
    `<text x="${x(0.5)}" y="${height - 6}" font-size="12" fill="${Palette.muted}" text-anchor="middle">` +
      `Confidence of the predicted class</text>`,
    `<text transform="translate(14 ${y(0.5)}) rotate(-90)" font-size="12" fill="${Palette.muted}" ` +
      `text-anchor="middle">Accuracy</text>`,
    `<text transform="translate(14 ${top + size + gap + histogram / 2}) rotate(-90)" font-size="10" ` +
      `fill="${Palette.muted}" text-anchor="middle">samples</text>`
  )
  // Legend and ECE in a row above the plot, where no bar can cover them.
  const legend = [
    [`fill="${Palette.accent}" fill-opacity="0.82"`, "accuracy", 0],
    [`fill="url(#${hatch})" stroke="${Palette.danger}"`, "gap to confidence", 80]
  ] as const
  for (const [paint, text, offset] of legend) {
    parts.push(
      `<rect x="${x(0) + offset}" y="8" width="11" height="11" ${paint}/>`,
      `<text x="${x(0) + offset + 17}" y="18" font-size="11" fill="${Palette.ink}">${text}</text>`
    )
  }
  if (options.ece !== undefined) {
    parts.push(
      `<text x="${x(1)}" y="18" font-size="12" font-weight="600" fill="${Palette.ink}" text-anchor="end">` +
        `ECE ${fixed(options.ece)}</text>`
    )
  }
  parts.push(`</svg>`)
  return parts.join("")
}
