// The console end to end, in Debian's Chromium driven by playwright-core, against `loupe serve --console` (the built
// CLI): sign in with an API key; create a function (fast preset); upload 48 cats-vs-dogs photos, 40 labelled (4 of
// them deliberately wrong) and 8 unlabelled; label the 8 with keyboard shortcuts; wait for training; open the
// confusion-matrix cell with the errors; find the 4 mislabelled photos among the top 8 suspects and accept the fixes;
// see the retrained model serving with fewer cross-validated errors; try an image; roll back. Each page is
// screenshotted at 1280x800 and at a 390 px wide phone viewport into out/console-screenshots/ (CI artifacts), and
// no page may log an error (a Content-Security-Policy violation is one).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Page, chromium } from "playwright-core"
import { loupe, modelsDir, repoRoot, serve, type Serving, sharedDir } from "./fixtures/cli.js"

const dataset = path.join(sharedDir, "datasets", "cats-vs-dogs")
/** `count` photos of `label` in `split`, from the `from`-th in numeric order. */
const photos = (split: "train" | "test", label: "cats" | "dogs", from: number, count: number) =>
  fs.readdirSync(path.join(dataset, split, label))
    .sort((a, b) => Number(a.split(".")[1]) - Number(b.split(".")[1]))
    .slice(from, from + count)
    .map((f) => path.join(dataset, split, label, f))

// 20 labelled photos of each animal, the first 2 of each uploaded under the other label; 4 of each unlabelled.
const cats = photos("train", "cats", 0, 24)
const dogs = photos("train", "dogs", 0, 24)
const wrong = [...cats.slice(0, 2), ...dogs.slice(0, 2)]
const asCats = [...cats.slice(2, 20), ...dogs.slice(0, 2)]
const asDogs = [...dogs.slice(2, 20), ...cats.slice(0, 2)]
const unlabelled = [...cats.slice(20, 24), ...dogs.slice(20, 24)]
const truth = new Map([...cats.map((f) => [f, "cats"] as const), ...dogs.map((f) => [f, "dogs"] as const)])
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")
const fileByHash = new Map([...cats, ...dogs].map((f) => [sha256(fs.readFileSync(f)), f]))

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-console-"))
const store = path.join(work, "store")
const env = { LOUPE_CACHE_DIR: path.join(work, "cache"), LOUPE_MODELS_DIR: modelsDir }
const screenshots = path.join(repoRoot, "out", "console-screenshots")

/** The page's `document`, inside `page.evaluate` (the tests compile without the DOM's types). */
declare const document: any

const chromiumArgs = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

let server: Serving | undefined
let url = ""
let token = ""

/**
 * A GET of the function API, as the test's own client (to check what the pages claim). Tried again once when the
 * connection drops: Node's server may close a kept-alive socket just as the next request goes out on it (its event
 * loop busy training), which a browser retries by itself and `fetch` does not.
 */
const api = async (route: string): Promise<any> => {
  const get = () => fetch(`${url}${route}`, { headers: { authorization: `Bearer ${token}` } })
  const response = await get().catch(get)
  expect(response.status).toBe(200)
  return response.json()
}

beforeAll(async () => {
  const created = loupe(["keys", "create", "--store", store, "--name", "browser", "--json"], env)
  expect(created.status).toBe(0)
  token = JSON.parse(created.stdout).token
  server = await serve(["--console", "--store", store, "--port", "0", "--capture-random", "0"], env)
  url = server.url
  fs.mkdirSync(screenshots, { recursive: true })
})

afterAll(() => {
  server?.child.kill("SIGKILL")
})

/** Screenshots of the page as it is, at 1280x800 and 390 px wide (the page must not scroll sideways on a phone). */
const shoot = async (page: Page, name: string) => {
  await page.setViewportSize({ width: 1280, height: 800 })
  await page.screenshot({ path: path.join(screenshots, `${name}-1280x800.png`) })
  await page.setViewportSize({ width: 390, height: 844 })
  await page.screenshot({ path: path.join(screenshots, `${name}-390.png`), fullPage: true })
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
  expect(overflow, `${name} scrolls sideways at 390 px`).toBeLessThanOrEqual(0)
  await page.setViewportSize({ width: 1280, height: 800 })
}

/** The photo a sample holds, found by its stored bytes (the console serves a JPEG sample as stored). */
const photoOf = async (page: Page, functionId: string, sampleId: string) => {
  const response = await page.request.get(`${url}/console/functions/${functionId}/samples/${sampleId}/image`)
  expect(response.status()).toBe(200)
  const file = fileByHash.get(sha256(await response.body()))
  expect(file, `sample ${sampleId} is one of the uploaded photos`).toBeDefined()
  return file!
}

/** The function's status line, once no training is scheduled or running and the model serving saw every change. */
const settled = async (page: Page, functionId: string) => {
  for (;;) {
    const fn = await api(`/v1/functions/${functionId}`)
    if (fn.training.phase === "idle" && !fn.training.pending && fn.model?.upToDate === true) return fn
    await page.waitForTimeout(500)
  }
}

/** The cross-validated error count the Model page shows. */
const cvErrors = async (page: Page) => Number(await page.locator(".kpi", { hasText: "Errors" }).locator(".kpi-value").innerText())

describe("the console in Chromium", () => {
  it("signs in, uploads, labels by keyboard, trains, finds and fixes the wrong labels, retrains, tries, rolls back", async () => {
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs })
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
      const page = await context.newPage()
      const errors: Array<string> = []
      page.on("console", (m) => m.type() === "error" && errors.push(`${page.url()}: ${m.text()}`))
      page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`))
      page.on("dialog", (d) => void d.accept())

      // Sign in: the console asks first, then lands on the functions.
      await page.goto(`${url}/console`)
      expect(new URL(page.url()).pathname).toBe("/console/sign-in")
      await shoot(page, "1-sign-in")
      await page.fill("#key", token)
      await page.click("button[type=submit]")
      await page.waitForURL(/\/console\/functions$/)

      // Create a function with the fast preset: its Data page opens.
      await page.fill("#name", "Cats or dogs")
      await page.selectOption("#preset", "fast")
      await page.click("form.create button[type=submit]")
      await page.waitForURL(/\/console\/functions\/function_[0-9a-f]+\/data$/)
      const functionId = /functions\/(function_[0-9a-f]+)/.exec(page.url())![1]!

      // Upload: each batch with its label (none for the last), through the page's file picker.
      const upload = async (files: ReadonlyArray<string>, label: string) => {
        await page.fill("[data-upload-label]", label)
        await page.locator("[data-upload-files]").setInputFiles([...files])
        await page.waitForFunction((n) => document.querySelector("[data-message]")?.textContent?.startsWith(`Uploaded ${n} of ${n}`), files.length)
      }
      await upload(asCats, "cats")
      await upload(asDogs, "dogs")
      await upload(unlabelled, "")
      expect((await api(`/v1/functions/${functionId}/samples?limit=100`)).length).toBe(48)
      await shoot(page, "2-data")

      // Label the 8 unlabelled ones with the keyboard: click the first, then one key per image (focus moves on).
      await page.goto(`${url}/console/functions/${functionId}/data?filter=unlabelled`)
      const tiles = page.locator("[data-grid] [data-sample]")
      await expect(tiles.count()).resolves.toBe(8)
      const keys: ReadonlyArray<string> = JSON.parse((await page.locator("[data-grid]").getAttribute("data-labels"))!)
      await tiles.first().click()
      for (let i = 0; i < 8; i++) {
        const tile = tiles.nth(i)
        const sampleId = (await tile.getAttribute("data-sample"))!
        const label = truth.get(await photoOf(page, functionId, sampleId))!
        // The server may be busy training meanwhile (it trains in its own event loop): wait as long as that takes.
        if (i > 0) await expect.poll(() => tile.evaluate((t) => t === document.activeElement), { timeout: 60_000 }).toBe(true)
        await page.keyboard.press(String(keys.indexOf(label) + 1))
        await expect.poll(() => tile.locator(".caption").innerText(), { timeout: 60_000 }).toBe(label)
      }
      for (const f of unlabelled) expect(truth.get(f)).toBeDefined()
      const samples = (await api(`/v1/functions/${functionId}/samples?limit=100`)) as Array<any>
      expect(samples.filter((s) => s.annotation === null)).toEqual([])

      // Training: wait until the model serving has seen everything.
      const first = await settled(page, functionId)
      await page.goto(`${url}/console/functions/${functionId}/model`)
      const before = await cvErrors(page)
      expect(before).toBeGreaterThan(0)
      await shoot(page, "3-model")

      // The confusion-matrix cell with the most errors opens the grid of exactly its samples.
      const cells = page.locator("svg.confusion-matrix a")
      const counts = await cells.evaluateAll((links) =>
        links.map((a) => {
          const g = a.querySelector("g.cm-cell")!
          return { t: Number(g.getAttribute("data-true")), p: Number(g.getAttribute("data-predicted")), n: Number(g.querySelector("text")?.textContent ?? 0) }
        })
      )
      const offDiagonal = counts.filter((c) => c.t !== c.p).sort((a, b) => b.n - a.n)
      expect(offDiagonal.reduce((n, c) => n + c.n, 0)).toBe(before)
      const worst = offDiagonal[0]!
      await cells.nth(counts.indexOf(worst)).click()
      await page.waitForURL(/\/data\?/)
      await expect(page.locator("[data-grid] [data-sample]").count()).resolves.toBe(worst.n)
      await shoot(page, "4-data-cell")

      // Review: the 4 mislabelled photos are among the top 8 suspects; accept their fixes.
      await page.goto(`${url}/console/functions/${functionId}/review`)
      const suspects = page.locator("#suspects .suggestion[data-kind=suspect]")
      const top = await suspects.evaluateAll((cards) => cards.slice(0, 8).map((c) => c.getAttribute("data-subject")!))
      const topPhotos = await Promise.all(top.map((id) => photoOf(page, functionId, id)))
      await shoot(page, "5-review")
      for (const f of wrong) expect(topPhotos, `${path.basename(f)} (uploaded with the wrong label) among the top 8 suspects`).toContain(f)
      for (const f of wrong) {
        const id = top[topPhotos.indexOf(f)]!
        const right = truth.get(f)!
        await page.locator(`#suspects .suggestion[data-subject="${id}"] button`, { hasText: `Relabel as ${right}` }).click()
        await page.locator(`#suspects .suggestion.done[data-subject="${id}"]`, { hasText: `Relabelled as ${right}` }).waitFor()
        expect((await api(`/v1/functions/${functionId}/samples/${id}`)).annotation.labelName).toBe(right)
      }

      // The retrained model serves, announced live, with fewer cross-validated errors.
      await page.locator(".status .new", { hasText: "New model serving" }).waitFor({ timeout: 90_000 })
      const second = await settled(page, functionId)
      expect(second.model.id).not.toBe(first.model.id)
      await page.goto(`${url}/console/functions/${functionId}/model`)
      const after = await cvErrors(page)
      expect(after).toBeLessThan(before)
      const ranks = wrong.map((f) => topPhotos.indexOf(f) + 1)
      console.log(`console end to end: CV errors ${before} before the fixes, ${after} after; the 4 mislabelled photos at suspect ranks ${ranks.join(", ")} of ${top.length}`)

      // Try an image the function has not seen.
      await page.goto(`${url}/console/functions/${functionId}/try`)
      const probe = photos("test", "cats", 0, 1)[0]!
      await page.locator(".try-form input[type=file]").setInputFiles(probe)
      const prediction = page.locator("#prediction .prediction")
      await prediction.waitFor({ timeout: 30_000 })
      expect(await prediction.getAttribute("data-label")).toBe("cats")
      await expect(prediction.locator("meter").count()).resolves.toBe(2)
      await shoot(page, "6-try")

      // Roll back to the first model: it serves again.
      await page.goto(`${url}/console/functions/${functionId}/model`)
      await page.locator(`tr[data-version="${first.model.id}"] button`, { hasText: "Serve this version" }).click()
      await page.waitForURL(/\/model$/)
      expect(await page.locator(`tr[data-version="${first.model.id}"]`).innerText()).toContain("serving")
      expect((await api(`/v1/functions/${functionId}`)).model.id).toBe(first.model.id)
      expect(await cvErrors(page)).toBe(before)
      await shoot(page, "7-model-rolled-back")

      expect(errors).toEqual([])
    } finally {
      await browser.close()
    }
  }, 240_000)
})
