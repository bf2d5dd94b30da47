/**
 * Acceptance: the HTML report of a real cats-vs-dogs run (see fixtures/catsVsDogsRun.ts), opened in headless
 * Chromium (Debian's `chromium`, driven by playwright-core): the confusion matrices render, every misclassified
 * thumbnail loads, nothing is requested from outside the file and the console stays free of errors.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import type { Browser, Page } from "playwright-core"
import { chromium } from "playwright-core"
import { HtmlReport } from "@loupe/metrics"
import type { Report } from "@loupe/metrics"
import { catsVsDogsRun } from "./fixtures/catsVsDogsRun.js"

const executablePath = "/usr/bin/chromium"
const args = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

/** The fields of an `<img>` the test reads (the DOM typings are not part of this Node project). */
interface ImageLike {
  readonly complete: boolean
  readonly naturalWidth: number
  readonly naturalHeight: number
  readonly src: string
}

let input: Report.ReportInput
let dir: string
let file: string
let html: string
let browser: Browser
let page: Page
const consoleErrors: Array<string> = []
const requests: Array<string> = []

beforeAll(async () => {
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} is missing: install Debian's chromium (apt-get install -y chromium)`)
  }
  input = await Effect.runPromise(catsVsDogsRun)
  dir = await mkdtemp(path.join(tmpdir(), "loupe-html-report-"))
  file = path.join(dir, "nested", "report.html")
  await Effect.runPromise(HtmlReport.write(input, file).pipe(Effect.provide(NodeFileSystem.layer)))
  html = await readFile(file, "utf8")
  browser = await chromium.launch({ executablePath, args })
  page = await browser.newPage({ viewport: { width: 1366, height: 900 } })
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text())
  })
  page.on("pageerror", (error) => consoleErrors.push(error.message))
  page.on("requestfailed", (request) => consoleErrors.push(`request failed: ${request.url()}`))
  page.on("request", (request) => requests.push(request.url()))
  await page.goto(pathToFileURL(file).href, { waitUntil: "load" })
})

afterAll(async () => {
  await browser?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe("HtmlReport of a real cats-vs-dogs run in Chromium", () => {
  it("comes from a real run with real mistakes", () => {
    const [test, cv] = input.evaluations
    expect(test!.evaluation.total).toBe(40)
    expect(cv!.evaluation.total).toBe(200)
    for (const named of input.evaluations) {
      const ev = named.evaluation
      expect(named.misclassified).toHaveLength(ev.total - ev.correct)
      expect(ev.total - ev.correct).toBeGreaterThan(0)
    }
  })

  it("renders every confusion matrix with the evaluation's counts", async () => {
    for (const [i, named] of input.evaluations.entries()) {
      const svg = page.locator(`#evaluation-${i} svg.confusion-matrix`)
      await expect(svg.count()).resolves.toBe(1)
      const box = await svg.boundingBox()
      expect(box!.width).toBeGreaterThan(200)
      expect(box!.height).toBeGreaterThan(200)
      const cells = await svg.locator("g.cm-cell").evaluateAll((gs) =>
        gs.map((g) => {
          const rect = g.querySelector("rect")!.getBoundingClientRect()
          return {
            t: Number(g.getAttribute("data-true")),
            p: Number(g.getAttribute("data-predicted")),
            count: Number(g.querySelector("text")!.textContent),
            visible: rect.width > 20 && rect.height > 20
          }
        })
      )
      expect(cells).toHaveLength(4)
      for (const cell of cells) {
        expect(cell.visible).toBe(true)
        expect(cell.count).toBe(named.evaluation.confusionMatrix[cell.t]![cell.p])
      }
    }
  })

  it("loads every misclassified image as a thumbnail with its labels and confidence", async () => {
    const expected = input.evaluations.flatMap((e) => e.misclassified ?? [])
    const thumbs = await page.locator("img.thumb").evaluateAll((imgs) =>
      (imgs as unknown as Array<ImageLike>).map((img) => ({
        complete: img.complete,
        naturalWidth: img.naturalWidth,
        naturalHeight: img.naturalHeight,
        src: img.src.slice(0, 23)
      }))
    )
    expect(thumbs).toHaveLength(expected.length)
    for (const thumb of thumbs) {
      expect(thumb).toEqual({ complete: true, naturalWidth: 192, naturalHeight: 192, src: "data:image/jpeg;base64," })
    }
    await expect(page.locator("figure.mistake .broken").count()).resolves.toBe(0)
    // The first tile of the test set is its most confident mistake.
    const first = [...input.evaluations[0]!.misclassified!].sort((a, b) => b.confidence - a.confidence)[0]!
    const caption = await page.locator("#evaluation-0 figure.mistake figcaption").first().innerText()
    expect(caption).toContain(first.trueLabel)
    expect(caption).toContain(first.predictedLabel)
    expect(caption).toContain(`${(first.confidence * 100).toFixed(1)}%`)
    expect(caption).toContain(path.basename(first.source as string))
  })

  it("shows the leaderboard, the per-class bars and the reliability diagrams", async () => {
    const rows = await page.locator("table.leaderboard tbody tr").count()
    expect(rows).toBe(input.leaderboard!.length)
    await expect(page.locator("table.leaderboard tr.selected .badge").innerText()).resolves.toMatch(/selected/i)
    await expect(page.locator("svg.reliability-diagram").count()).resolves.toBe(input.evaluations.length)
    const widths = await page.locator("#evaluation-0 table.per-class tbody tr:first-child .fill").evaluateAll((els) =>
      els.map((el) => el.getBoundingClientRect().width)
    )
    const cats = input.evaluations[0]!.evaluation.perClass[0]!
    expect(widths).toHaveLength(3)
    // Bars are drawn in proportion to precision, recall and F1.
    const track = widths[0]! / cats.precision
    expect(widths[1]! / track).toBeCloseTo(cats.recall, 1)
    expect(widths[2]! / track).toBeCloseTo(cats.f1, 1)
  })

  it("is self-contained and logs no errors", () => {
    expect(consoleErrors).toEqual([])
    expect(requests.filter((url) => !url.startsWith("data:"))).toEqual([pathToFileURL(file).href])
    // The only URLs in the file are SVG namespace declarations.
    const urls = html.match(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"')]*/gi) ?? []
    expect(new Set(urls)).toEqual(new Set(["http://www.w3.org/2000/svg"]))
  })
})
