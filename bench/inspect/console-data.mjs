// @ts-check
/**
 * bench/inspect console-data: a 5,000-sample function's console Data page, timed to its first screen in Chromium.
 *
 *   pnpm build && node bench/inspect/console-data.mjs [samples] [visits]
 *
 * Fills a fresh store through `Functions.open` with `samples` (default 5,000) synthetic 256x256 JPEGs (Gaussian noise
 * around a colour per label, so every image is distinct), 4 labels and a tenth unlabelled, with retraining held off
 * (no embeddings are needed for the grid). Then serves it with the console (`Server.layer({ console: true })`, in this
 * process, retraining still held off so nothing competes for the 2 cores), signs in through the page in Debian's
 * Chromium (playwright-core) at 1280x800, and times `visits` (default 5) loads of the Data page: from navigation start
 * to the moment every thumbnail in the first screen has decoded. The first visit makes the thumbnails (sharp); the
 * others find them cached. It prints each visit, the median of the cached ones, and the server's time to the HTML.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { NodeFileSystem } from "@effect/platform-node"
import { Plugins } from "@loupe/cli"
import { DiskEmbeddingCache, LoupeConfig } from "@loupe/core"
import { Server as DeployServer } from "@loupe/deploy"
import { Functions, Server } from "@loupe/functions"
import { Layer, ManagedRuntime } from "effect"
import { chromium } from "playwright-core"
import sharp from "sharp"
import { modelsDir, repoRoot } from "../../test/fixtures/shared.mjs"

const count = Number(process.argv[2] ?? 5000)
const visits = Number(process.argv[3] ?? 5)
const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-console-bench-"))
const store = path.join(work, "store")
const cacheDir = path.join(work, "cache")
// Retraining held off: a debounce longer than the run, and no resuming at start.
const quiet = { debounce: "1 hour", resumeOnStart: false }
const labels = ["apples", "bananas", "cherries", "dates"]
const colours = [[200, 40, 40], [230, 210, 60], [120, 20, 60], [140, 90, 40]]

const image = (i) => {
  const [r, g, b] = colours[i % 4]
  return sharp({ create: { width: 256, height: 256, channels: 3, background: { r, g, b }, noise: { type: "gaussian", mean: 128, sigma: 40 } } })
    .composite([{ input: { create: { width: 256, height: 256, channels: 4, background: { r, g, b, alpha: 0.6 } } } }])
    .jpeg({ quality: 80 })
    .toBuffer()
}

let t0 = performance.now()
const loupe = await Functions.open({ store, modelsDir, cacheDir, plugins: Plugins.builtins, ...quiet })
const fn = await loupe.create("Synthetic", { preset: "fast" })
for (let start = 0; start < count; start += 250) {
  const batch = await Promise.all(Array.from({ length: Math.min(250, count - start) }, async (_, k) => {
    const i = start + k
    return { data: await image(i), ...(i % 10 === 9 ? {} : { label: labels[i % 4] }) }
  }))
  await loupe.createSamples(fn.id, batch)
}
await loupe.close()
console.log(`store: ${count} samples in ${((performance.now() - t0) / 1000).toFixed(1)} s (${work})`)

const key = spawnSync(process.execPath, [path.join(repoRoot, "packages/cli/dist/cli.js"), "keys", "create", "--store", store, "--name", "bench", "--json"], { encoding: "utf8" })
const token = JSON.parse(key.stdout).token

const config = LoupeConfig.LoupeConfig.layer({ modelsDir, cacheDir, offline: true })
const environment = Layer.mergeAll(config, DiskEmbeddingCache.layer().pipe(Layer.provide(config)), Plugins.registryLayer(), NodeFileSystem.layer)
const runtime = ManagedRuntime.make(Server.layer({ store, port: 0, console: true, ...quiet }).pipe(Layer.provide(environment)))
const url = await runtime.runPromise(DeployServer.url)

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"] })
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  await page.goto(`${url}/console/sign-in`)
  await page.fill("#key", token)
  await page.click("button[type=submit]")
  await page.waitForURL(/\/console\/functions$/)
  const dataUrl = `${url}/console/functions/${fn.id}/data`
  const times = []
  for (let v = 0; v < visits; v++) {
    await page.goto(dataUrl, { waitUntil: "commit" })
    // Navigation start to the last first-screen thumbnail decoded (performance.now() counts from navigation start).
    const ms = await page.evaluate(() =>
      new Promise((resolve) => {
        const check = () => {
          const shown = [...document.querySelectorAll("[data-grid] img")].filter((img) => img.getBoundingClientRect().top < innerHeight)
          if (shown.length > 0 && shown.every((img) => img.complete && img.naturalWidth > 0)) resolve({ ms: performance.now(), tiles: shown.length, all: document.querySelectorAll("[data-grid] [data-sample]").length })
          else requestAnimationFrame(check)
        }
        check()
      })
    )
    times.push(ms)
    console.log(`visit ${v + 1}${v === 0 ? " (thumbnails made)" : " (thumbnails cached)"}: first screen in ${ms.ms.toFixed(0)} ms (${ms.tiles} thumbnails on screen, ${ms.all} tiles in the page)`)
  }
  const cached = times.slice(1).map((t) => t.ms).sort((a, b) => a - b)
  if (cached.length > 0) console.log(`median with cached thumbnails: ${cached[Math.floor(cached.length / 2)].toFixed(0)} ms; first visit: ${times[0].ms.toFixed(0)} ms`)
  // The server alone: the page's HTML, with the session cookie.
  const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join("; ")
  const html = []
  for (let v = 0; v < 5; v++) {
    t0 = performance.now()
    const response = await fetch(dataUrl, { headers: { cookie } })
    await response.text()
    html.push(performance.now() - t0)
  }
  html.sort((a, b) => a - b)
  console.log(`server: the Data page's HTML in ${html[2].toFixed(0)} ms (median of 5)`)
} finally {
  await browser.close()
  await runtime.dispose()
  fs.rmSync(work, { recursive: true, force: true })
}
