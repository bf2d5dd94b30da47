/** The HTML reports' inline stylesheet (system fonts only, no external requests) and their common page opening. */
import { escape } from "./Format.js"
import * as Palette from "./Palette.js"
import { htmlGeneratorTag } from "./WriteFile.js"

export const css = `
:root {
  --ink: ${Palette.ink}; --muted: ${Palette.muted}; --line: ${Palette.grid}; --paper: ${Palette.paper};
  --bg: #f4f5f8; --accent: ${Palette.accent}; --danger: ${Palette.danger}; --ok: #1f9d6b;
  --p: #3056d3; --r: #17a2b8; --f: #7048e8;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.55 ${Palette.fontFamily};
  font-feature-settings: "tnum" 1; -webkit-font-smoothing: antialiased;
}
.page { max-width: 1160px; margin: 0 auto; padding: 36px 28px 56px; }
header.top { display: flex; flex-wrap: wrap; gap: 8px 28px; align-items: flex-end; justify-content: space-between; margin-bottom: 10px; }
h1 { font-size: 28px; line-height: 1.2; margin: 0; font-weight: 680; letter-spacing: -0.015em; }
.subtitle { color: var(--muted); margin-top: 4px; word-break: break-all; }
.meta { color: var(--muted); font-size: 13px; text-align: right; }
nav.toc { display: flex; flex-wrap: wrap; gap: 6px; margin: 18px 0 26px; }
nav.toc a { font-size: 13px; color: var(--ink); text-decoration: none; padding: 5px 12px; border-radius: 999px; background: var(--paper); border: 1px solid var(--line); }
nav.toc a:hover { border-color: var(--accent); color: var(--accent); }
.panel { background: var(--paper); border: 1px solid var(--line); border-radius: 14px; padding: 22px 24px; margin: 0 0 20px; box-shadow: 0 1px 2px rgba(16, 24, 40, 0.04); }
h2 { font-size: 19px; margin: 0 0 2px; font-weight: 650; letter-spacing: -0.01em; }
h3 { font-size: 13px; margin: 0 0 12px; font-weight: 650; color: var(--muted); text-transform: uppercase; letter-spacing: 0.06em; }
.lede { color: var(--muted); margin: 0 0 18px; font-size: 14px; }
.model { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 4px 24px; align-items: start; }
.model .what { font-size: 17px; font-weight: 600; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
.chip { font-size: 12.5px; padding: 3px 10px; border-radius: 999px; background: #eef1f8; color: #374151; }
.chip b { font-weight: 600; }
.model .time h3 { text-align: right; }
.timings { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 13px; color: var(--muted); justify-content: flex-end; }
.timings b { color: var(--ink); font-weight: 600; }
.kpis { display: grid; grid-template-columns: minmax(210px, 1fr) minmax(0, 3fr); gap: 12px; margin: 18px 0 24px; }
.kpis .rest { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 12px; }
.kpi { border: 1px solid var(--line); border-radius: 12px; padding: 12px 14px; background: linear-gradient(180deg, #fbfcfe, #fff); }
.kpi .label { font-size: 13px; color: var(--muted); font-weight: 500; }
.kpi .value { font-size: 24px; font-weight: 680; letter-spacing: -0.02em; line-height: 1.25; margin-top: 2px; }
.kpi .note { font-size: 12px; color: var(--muted); white-space: pre-line; }
.kpi.hero { border-color: #c9d4f6; background: linear-gradient(180deg, #eef2ff, #fff 70%); padding: 18px 20px; display: flex; flex-direction: column; justify-content: center; }
.kpi.hero .value { color: var(--accent); font-size: 46px; letter-spacing: -0.03em; margin: 4px 0 6px; }
.kpi.hero .note { font-size: 13px; }
@media (max-width: 860px) { .kpis { grid-template-columns: 1fr; } .kpis .rest { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 22px; align-items: start; margin-bottom: 8px; }
.figure { overflow-x: auto; }
.figure svg { max-width: 100%; height: auto; display: block; margin: 0 auto; }
.figure .caption { font-size: 12.5px; color: var(--muted); margin-top: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 8px 10px; text-align: left; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: 0.05em; }
td.num, th.num { text-align: right; white-space: nowrap; }
th.metric { text-transform: none; letter-spacing: 0; font-size: 12.5px; }
tbody tr:hover { background: #fafbfd; }
tr.selected td { background: #f3f6ff; }
tr.selected td:first-child { box-shadow: inset 3px 0 0 var(--accent); }
.badge { display: inline-block; font-size: 11px; font-weight: 650; padding: 1px 8px; border-radius: 999px; background: var(--accent); color: #fff; margin-left: 8px; vertical-align: 1px; letter-spacing: 0.03em; }
.best { font-weight: 700; }
.scroll { overflow-x: auto; }
.bar { display: flex; align-items: center; gap: 8px; min-width: 130px; }
.bar .track { flex: 1; height: 8px; border-radius: 999px; background: #eef0f4; overflow: hidden; }
.bar .fill { display: block; height: 100%; border-radius: 999px; }
.bar .v { width: 3.2em; text-align: right; font-size: 13px; }
.fill.p { background: var(--p); } .fill.r { background: var(--r); } .fill.f { background: var(--f); }
tr.avg td { color: var(--muted); font-size: 13px; }
.legend { display: flex; gap: 16px; font-size: 12.5px; color: var(--muted); margin: 4px 0 10px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 3px; margin-right: 6px; vertical-align: -1px; }
.pairs { display: flex; flex-wrap: wrap; gap: 6px; margin: 0 0 14px; }
.mistakes { display: grid; grid-template-columns: repeat(auto-fill, minmax(156px, 1fr)); gap: 14px; }
.mistake { margin: 0; border: 1px solid var(--line); border-radius: 12px; overflow: hidden; background: #fff; }
.mistake .img { aspect-ratio: 1 / 1; background: #eef0f4; display: grid; place-items: center; }
.mistake img { width: 100%; height: 100%; object-fit: cover; display: block; }
.mistake .broken { font-size: 12px; color: var(--muted); padding: 10px; text-align: center; }
.mistake figcaption { padding: 8px 10px 10px; font-size: 13px; }
.mistake .labels { display: flex; align-items: baseline; gap: 6px; flex-wrap: wrap; }
.mistake .truth { font-weight: 600; }
.mistake .arrow { color: var(--muted); }
.mistake .pred { color: var(--danger); font-weight: 600; }
.mistake .conf { display: flex; align-items: center; gap: 8px; margin-top: 6px; font-size: 12px; color: var(--muted); }
.mistake .conf .track { flex: 1; height: 5px; border-radius: 999px; background: #f1e3e5; overflow: hidden; }
.mistake .conf .fill { display: block; height: 100%; background: var(--danger); }
.mistake .id { display: block; margin-top: 4px; font: 11.5px/1.3 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.empty { color: var(--muted); font-size: 14px; padding: 6px 0; }
.ok { color: var(--ok); font-weight: 600; }
footer { color: var(--muted); font-size: 12.5px; text-align: center; margin-top: 30px; }
@media (max-width: 640px) {
  .page { padding: 22px 14px 40px; } .panel { padding: 16px; } h1 { font-size: 23px; } .meta { text-align: left; }
  .model { grid-template-columns: 1fr; gap: 14px; } .model .time h3 { text-align: left; } .timings { justify-content: flex-start; }
}
@media print { body { background: #fff; } .panel { box-shadow: none; break-inside: avoid; } nav.toc { display: none; } }
`

/**
 * A report page up to the end of its header: the head (Loupe's generator tag, the stylesheet and `extraCss`), then
 * the title, the subtitle if any, and `metaHtml` (already escaped) on the right.
 */
export const pageStart = (page: {
  readonly title: string
  readonly subtitle?: string | undefined
  readonly metaHtml: string
  readonly extraCss?: string
}): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${htmlGeneratorTag}
<title>${escape(page.title)}</title>
<link rel="icon" href="data:,">
<style>${css}${page.extraCss ?? ""}</style>
</head>
<body>
<div class="page">
<header class="top"><div><h1>${escape(page.title)}</h1>` +
  (page.subtitle === undefined ? "" : `<div class="subtitle">${escape(page.subtitle)}</div>`) +
  `</div><div class="meta">${page.metaHtml}</div></header>`
