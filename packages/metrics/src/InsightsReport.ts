/**
 * The insights (`Insights.analyse`) as aligned terminal text and as one self-contained HTML page (the training
 * report's stylesheet, inline JPEG thumbnails, no script), with the label-noise suspects, duplicates, outliers and
 * class health. Label names and ids are escaped everywhere.
 *
 * @since 0.2.0
 */
import type { FileSystem } from "@effect/platform"
import { Effect, Either } from "effect"
import type { Sample } from "@loupe/core"
import type { Insights } from "./Insights.js"
import type { MetricsError } from "./MetricsError.js"
import { escape, fixed, percent } from "./internal/Format.js"
import { pageStart } from "./internal/HtmlStyle.js"
import { style, table } from "./internal/Text.js"
import * as Thumbnail from "./internal/Thumbnail.js"
import { writeText } from "./internal/WriteFile.js"

/**
 * Settings of `text`.
 *
 * @since 0.2.0
 * @category options
 */
export interface TextOptions {
  /** ANSI colours. Default false. */
  readonly color?: boolean
  /** Rows shown per section. Default 10. */
  readonly limit?: number
}

/** Text content isolated from its surroundings' direction: a right-to-left override in a label stays inside it. */
const bidi = (text: string): string => `<bdi>${escape(text)}</bdi>`

const leakText = (leak: string | null): string => (leak === "split" ? "train/test leak" : leak === "fold" ? "fold leak" : "")

/**
 * The insights as terminal text: class health, then the top suspects, duplicates and outliers, each with its total.
 *
 * @since 0.2.0
 * @category rendering
 */
export const text = (insights: Insights, options: TextOptions = {}): string => {
  const s = style(options.color ?? false)
  const limit = options.limit ?? 10
  const more = (total: number) => (total > limit ? [s.dim(`  … ${total - limit} more (--json or --report for all)`)] : [])
  // A table with its header row, or "none" when there are no rows.
  const rows = (header: ReadonlyArray<string>, body: ReadonlyArray<ReadonlyArray<string>>, align: ReadonlyArray<"left" | "right">) =>
    body.length === 0 ? [s.dim("  none")] : table([header.map(s.dim), ...body], align)
  const lines = [
    s.bold(`${insights.images} images, ${insights.labels.length} labels`),
    "",
    s.bold("Class health"),
    ...rows(
      ["label", "images", "CV recall"],
      insights.health.perLabel.map((l) => [l.label, String(l.count), l.recall === null ? "–" : percent(l.recall)]),
      ["left", "right", "right"]
    ),
    ...(insights.health.unlabelled > 0 ? [`  ${insights.health.unlabelled} unlabelled`] : []),
    ...insights.health.warnings.map((w) => `  ${s.red("!")} ${w.message}`),
    ""
  ]
  if (insights.suspects === null) {
    lines.push(s.bold("Label-noise suspects"), s.dim("  not computed: cross-validation needs two labels with two images each"), "")
  } else {
    lines.push(s.bold(`Label-noise suspects · ${insights.suspects.length}`))
    lines.push(
      ...rows(
        ["image", "labelled", "suggested", "P(labelled)"],
        insights.suspects.slice(0, limit).map((x) => [x.id, x.given, s.cyan(x.suggested), fixed(x.selfConfidence)]),
        ["left", "left", "left", "right"]
      ),
      ...more(insights.suspects.length),
      ""
    )
  }
  lines.push(s.bold(`Duplicates · ${insights.duplicates.length}`))
  lines.push(...rows(
    ["image", "copy", "kind", "cosine", ""],
    insights.duplicates.slice(0, limit).map((p) => [
      p.a,
      p.b,
      p.kind,
      fixed(p.similarity),
      [leakText(p.leak), p.conflict ? `labels differ (${p.labelA} / ${p.labelB})` : ""].filter((t) => t !== "").map(s.red).join(", ")
    ]),
    ["left", "left", "left", "right", "left"]
  ), ...more(insights.duplicates.length), "")
  lines.push(s.bold(`Outliers · ${insights.outliers.length}`))
  lines.push(...rows(
    ["image", "label", "nearest label", "cosine", "score"],
    insights.outliers.slice(0, limit).map((o) => [o.id, o.label ?? "–", o.nearest, fixed(o.similarity), o.score.toFixed(1)]),
    ["left", "left", "left", "right", "right"]
  ), ...more(insights.outliers.length))
  return lines.join("\n")
}

/**
 * Settings of `render` and `write`.
 *
 * @since 0.2.0
 * @category options
 */
export interface HtmlOptions {
  /** Each image's bytes or path by id, for the thumbnails; an image without one is shown by name only. */
  readonly sources: ReadonlyMap<string, Sample.ImageSource>
  /** The page's heading. Default `Dataset insights`. */
  readonly title?: string
  /** A line under the heading, e.g. the folder. */
  readonly subtitle?: string
  /** Images shown per section, the rest counted. Default 60. */
  readonly limit?: number
  /** Side of the thumbnails in pixels. Default 160. */
  readonly thumbnailSize?: number
}

const extraCss = `
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 0; }
.tag { display: inline-block; font-size: 11.5px; font-weight: 600; padding: 1px 8px; border-radius: 999px; background: #fde8eb; color: var(--danger); margin: 4px 4px 0 0; }
.warn { color: var(--danger); margin: 6px 0 0; font-size: 14px; }
`

/**
 * The insights as one self-contained HTML document. Images that cannot be read become placeholders; rendering never
 * fails.
 *
 * @since 0.2.0
 * @category rendering
 */
export const render: (insights: Insights, options: HtmlOptions) => Effect.Effect<string> = Effect.fn("InsightsReport.render")(
  function*(insights: Insights, options: HtmlOptions) {
    const limit = options.limit ?? 60
    const size = options.thumbnailSize ?? 160
    const suspects = (insights.suspects ?? []).slice(0, limit)
    const duplicates = insights.duplicates.slice(0, limit)
    const outliers = insights.outliers.slice(0, limit)
    const ids = [...new Set([...suspects.map((x) => x.id), ...duplicates.flatMap((p) => [p.a, p.b]), ...outliers.map((o) => o.id)])]
    const thumbs = new Map(yield* Effect.forEach(ids, (id) => {
      const source = options.sources.get(id)
      return source === undefined
        ? Effect.succeed([id, undefined] as const)
        : Effect.map(Effect.either(Thumbnail.dataUri(source, size)), (t) => [id, Either.getOrUndefined(t)] as const)
    }, { concurrency: 4 }))
    const image = (id: string) => {
      const uri = thumbs.get(id)
      return `<div class="img">${uri === undefined ? `<div class="broken">could not read this image</div>` : `<img class="thumb" src="${uri}" alt="${escape(id)}">`}</div>`
    }
    const name = (id: string) => `<span class="id" title="${escape(id)}">${bidi(id)}</span>`
    const counted = (shown: number, total: number) => (total > shown ? `<p class="lede">Showing ${shown} of ${total}.</p>` : "")
    const health = `<section class="panel" id="health"><h2>Class health</h2>` +
      `<div class="scroll"><table><thead><tr><th>Label</th><th class="num">Images</th><th class="num">CV recall</th></tr></thead><tbody>` +
      insights.health.perLabel.map((l) =>
        `<tr><td>${bidi(l.label)}</td><td class="num">${l.count}</td><td class="num">${l.recall === null ? "–" : percent(l.recall)}</td></tr>`
      ).join("") + `</tbody></table></div>` +
      (insights.health.unlabelled > 0 ? `<p class="lede">${insights.health.unlabelled} unlabelled images.</p>` : "") +
      insights.health.warnings.map((w) => `<p class="warn">${bidi(w.message)}</p>`).join("") + `</section>`
    const suspectSection = `<section class="panel" id="suspects"><h2>Label-noise suspects · ${insights.suspects?.length ?? 0}</h2>` +
      (insights.suspects === null
        ? `<p class="empty">Not computed: cross-validation needs two labels with two images each.</p>`
        : `<p class="lede">Images whose label the cross-validated model confidently disagrees with, least confident in their label first.</p>` +
          counted(suspects.length, insights.suspects.length) +
          `<div class="mistakes">${suspects.map((x) =>
            `<figure class="mistake">${image(x.id)}<figcaption><div class="labels"><span class="truth">${bidi(x.given)}</span>` +
            `<span class="arrow">→</span><span class="pred">${bidi(x.suggested)}</span></div>` +
            `<div class="conf">P(${bidi(x.given)}) ${percent(x.selfConfidence)}</div>${name(x.id)}</figcaption></figure>`
          ).join("")}</div>`) + `</section>`
    const duplicateSection = `<section class="panel" id="duplicates"><h2>Duplicates · ${insights.duplicates.length}</h2>` +
      `<p class="lede">Exact copies (same bytes) and near copies (embeddings at least as alike as an edited copy).</p>` +
      counted(duplicates.length, insights.duplicates.length) +
      `<div class="mistakes">${duplicates.map((p) =>
        `<figure class="mistake"><div class="pair">${image(p.a)}${image(p.b)}</div><figcaption>` +
        `<div>${p.kind} · cosine ${fixed(p.similarity)}</div>` +
        (p.leak === null ? "" : `<span class="tag">${p.leak === "split" ? "train/test leak" : "fold leak"}</span>`) +
        (p.conflict ? `<span class="tag">labels differ: ${bidi(p.labelA ?? "")} / ${bidi(p.labelB ?? "")}</span>` : "") +
        `${name(p.a)}${name(p.b)}</figcaption></figure>`
      ).join("")}</div></section>`
    const outlierSection = `<section class="panel" id="outliers"><h2>Outliers · ${insights.outliers.length}</h2>` +
      `<p class="lede">Images far from every label's centre, farthest first.</p>` + counted(outliers.length, insights.outliers.length) +
      `<div class="mistakes">${outliers.map((o) =>
        `<figure class="mistake">${image(o.id)}<figcaption><div class="labels"><span class="truth">${bidi(o.label ?? "unlabelled")}</span></div>` +
        `<div class="conf">nearest ${bidi(o.nearest)} · cosine ${fixed(o.similarity)}</div>${name(o.id)}</figcaption></figure>`
      ).join("")}</div></section>`
    const title = options.title ?? "Dataset insights"
    return pageStart({ title, subtitle: options.subtitle, metaHtml: `${insights.images} images · ${insights.labels.length} labels`, extraCss }) +
      `<nav class="toc"><a href="#health">Class health</a><a href="#suspects">Suspects</a><a href="#duplicates">Duplicates</a><a href="#outliers">Outliers</a></nav>` +
      health + suspectSection + duplicateSection + outlierSection +
      `<footer>Made with Loupe · a single self-contained file</footer>
</div>
</body>
</html>
`
  }
)

/**
 * Renders the page and writes it to `file`, creating its folder. Fails with a `MetricsError` (reason `Io`, `file` set)
 * when it cannot be written.
 *
 * @since 0.2.0
 * @category writing
 */
export const write = (insights: Insights, file: string, options: HtmlOptions): Effect.Effect<void, MetricsError, FileSystem.FileSystem> =>
  render(insights, options).pipe(Effect.flatMap((html) => writeText(file, html)))
