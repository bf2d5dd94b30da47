// @ts-check
/**
 * bench/console: the console's data page on a function with 5,000 samples.
 *
 *   pnpm build && node bench/console/run.mjs [--samples 5000]
 *
 * Fills a fresh store with `--samples` distinct images (the cats-vs-dogs-large photos, then 160 px wide re-encodes
 * of them to reach the count): half labelled `cats`, half unlabelled, one label only so that no training runs during
 * the measurement. Starts the built `loupe serve --console` on it (its own process), signs in with an API key, then
 * times, over HTTP on 127.0.0.1: the data page's HTML (the first request, then the median of 9), a page deep in the
 * grid (offset 4,800), the label and unlabelled filters, and its first screen of 60 thumbnails fetched 6 at a time,
 * first made (sharp, then kept in the blob store) and then read back.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { Functions } from "@loupe/functions"
import { Plugins } from "@loupe/cli"
import sharp from "sharp"
import { sharedDir as shared } from "../../test/fixtures/shared.mjs"
import { cli, runLoupe } from "../lib/cli.mjs"

const { values: args } = parseArgs({ options: { samples: { type: "string", default: "5000" } } })
const count = Number(args.samples)

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-bench-console-"))
const store = path.join(work, "store")
const env = { ...process.env, LOUPE_MODELS_DIR: path.join(shared, "models"), LOUPE_CACHE_DIR: path.join(work, "cache") }

const photos = ["train", "test"].flatMap((split) =>
  ["cats", "dogs"].flatMap((label) => {
    const dir = path.join(shared, "datasets/cats-vs-dogs-large", split, label)
    return fs.readdirSync(dir).sort().map((f) => path.join(dir, f))
  })
)

// 1. The store.
let started = performance.now()
const loupe = await Functions.open({ store, modelsDir: path.join(shared, "models"), cacheDir: env.LOUPE_CACHE_DIR, plugins: Plugins.builtins })
const fn = await loupe.create("Console bench", { preset: "fast" })
for (let from = 0; from < count; from += 200) {
  const batch = await Promise.all(Array.from({ length: Math.min(200, count - from) }, async (_, j) => {
    const i = from + j
    const photo = photos[i % photos.length]
    const data = i < photos.length ? photo : new Uint8Array(await sharp(photo).resize({ width: 160 + Math.floor(i / photos.length) }).jpeg().toBuffer())
    return i % 2 === 0 ? { data, label: "cats" } : { data }
  }))
  await loupe.createSamples(fn.id, batch)
}
await loupe.close()
console.log(`store: ${count} samples in ${((performance.now() - started) / 1000).toFixed(1)} s`)

// 2. The server and a key.
const token = (await runLoupe(env, ["keys", "create", "--store", store, "--name", "bench"])).match(/loupe_[0-9a-f]{8}_[A-Za-z0-9_-]{32}/)?.[0]
if (token === undefined) throw new Error("no key printed")
// Its request log (stderr) is dropped: a pipe nobody reads would fill and stall the server.
const server = spawn(process.execPath, [cli, "serve", "--store", store, "--port", "0", "--console"], { env, stdio: ["ignore", "pipe", "ignore"] })
const base = await new Promise((resolve, reject) => {
  let out = ""
  server.stdout.on("data", (c) => {
    out += c
    const m = out.match(/on (http:\/\/127\.0\.0\.1:\d+)/)
    if (m) resolve(m[1])
  })
  server.on("exit", (code) => reject(new Error(`loupe serve exited with ${code}`)))
})

try {
  // 3. Sign in as a browser does.
  const form = await fetch(`${base}/console/sign-in`)
  const signin = form.headers.getSetCookie().find((c) => c.startsWith("loupe_console_signin="))?.split(";")[0]?.split("=")[1] ?? ""
  const signedIn = await fetch(`${base}/console/sign-in`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: `loupe_console_signin=${signin}` },
    body: new URLSearchParams({ key: token, _signin: signin })
  })
  const cookie = signedIn.headers.getSetCookie().find((c) => c.startsWith("loupe_console="))?.split(";")[0]
  if (cookie === undefined) throw new Error(`sign-in failed: ${signedIn.status}`)
  const get = async (/** @type {string} */ route) => {
    const t = performance.now()
    const response = await fetch(`${base}${route}`, { headers: { cookie } })
    const body = Buffer.from(await response.arrayBuffer())
    if (response.status !== 200) throw new Error(`${route}: ${response.status} ${body}`)
    return { ms: performance.now() - t, body }
  }
  const median = (/** @type {Array<number>} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const timed = async (/** @type {string} */ route) => {
    const first = await get(route)
    const rest = []
    for (let i = 0; i < 9; i++) rest.push((await get(route)).ms)
    return { first: first.ms, median: median(rest), body: first.body.toString() }
  }
  const data = `/console/functions/${fn.id}/data`
  const page1 = await timed(data)
  const deep = await timed(`${data}?page=81`)
  const label = page1.body.match(/filter=label%3A(label_[0-9a-f]+)/)?.[1]
  const labelled = await timed(`${data}?filter=${encodeURIComponent(`label:${label}`)}&page=20`)
  const unlabelled = await timed(`${data}?filter=unlabelled&page=20`)
  const thumbs = [...page1.body.matchAll(/src="([^"]+\/thumbnail)"/g)].map((m) => m[1])
  const screen = async () => {
    const t = performance.now()
    for (let i = 0; i < thumbs.length; i += 6) await Promise.all(thumbs.slice(i, i + 6).map((u) => get(String(u))))
    return performance.now() - t
  }
  const cold = await screen()
  const warm = await screen()
  const ms = (/** @type {number} */ x) => `${x.toFixed(1)} ms`
  console.log(`data page, ${count} samples (HTML ${(page1.body.length / 1024).toFixed(0)} KiB, ${thumbs.length} tiles): first ${ms(page1.first)}, median ${ms(page1.median)}`)
  console.log(`page 81 (offset 4800): first ${ms(deep.first)}, median ${ms(deep.median)}`)
  console.log(`label filter, page 20: first ${ms(labelled.first)}, median ${ms(labelled.median)}`)
  console.log(`unlabelled filter, page 20: first ${ms(unlabelled.first)}, median ${ms(unlabelled.median)}`)
  console.log(`first screen's ${thumbs.length} thumbnails, 6 at a time: made ${ms(cold)}, cached ${ms(warm)}`)
  console.log(`first screen (HTML + thumbnails): made ${ms(page1.first + cold)}, cached ${ms(page1.median + warm)}`)
} finally {
  server.kill("SIGTERM")
  fs.rmSync(work, { recursive: true, force: true })
}
