// Several machines' worth of Loupe on loopback: a real Postgres, two `loupe serve --store postgres://...` and two
// `loupe worker` processes. A function made through server 1 gets 200 photos posted through both servers (100 per
// label, cats-vs-dogs-large); every acknowledged sample is then in the store, the trained model answers on both
// servers, and the invokes sent to both while the model changed all succeed, with one model promoted for the data.
// Once every photo is in, the worker that starts a search first is killed (SIGKILL) mid-search: the other finishes
// that retrain, and the workers' logs count its activities (embedding once, the search twice, the promotion once).
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { clusterEnv, startPostgres } from "../../../test/fixtures/postgres.mjs"
import type { RunningPostgres } from "../../../test/fixtures/postgres.mjs"
import { datasetDir } from "../../../test/fixtures/shared.mjs"
import { loupe, modelsDir, type Started, startCli } from "./fixtures/cli.js"
import { freePort, jsonCall } from "../../../test/fixtures/loopback.mjs"

const catsVsDogs = datasetDir("cats-vs-dogs-large")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-scale-out-"))
/** Each process its own cache folder: the database is all they share. Short cluster timings. */
const envOf = (name: string) => ({
  ...process.env,
  ...clusterEnv,
  LOUPE_CACHE_DIR: path.join(work, name),
  LOUPE_MODELS_DIR: modelsDir,
  LOUPE_STORE_DIR: "",
  LOUPE_STORE_URL: ""
})

const children: Array<ChildProcess> = []

/** Spawns the CLI and resolves with `pattern`'s first match in its output; stopped after the tests. */
const start = (args: ReadonlyArray<string>, name: string, pattern: RegExp) =>
  startCli(args, envOf(name), pattern).then((started) => {
    children.push(started.child)
    return started
  })

let postgres: RunningPostgres | { readonly skipped: string }
let token = ""
const servers: Array<string> = []
const workers: Array<Started> = []

beforeAll(async () => {
  postgres = await startPostgres()
  if ("skipped" in postgres) return console.warn(`Scale-out test skipped: ${postgres.skipped}`)
  const created = loupe(["keys", "create", "--name", "ci", "--store", postgres.url, "--json"], envOf("keys"))
  expect(created.status, created.stderr).toBe(0)
  token = JSON.parse(created.stdout).token
  for (const i of [1, 2]) {
    const port = await freePort()
    const worker = await start(["worker", "--store", postgres.url, "--port", String(port)], `worker-${i}`, /Worker \d+ runs on/)
    workers.push(worker)
  }
  for (const i of [1, 2]) {
    const server = await start(
      ["serve", "--store", postgres.url, "--port", "0", "--capture-random", "0"],
      `server-${i}`,
      /Serving .* on (http:\/\/127\.0\.0\.1:\d+)/
    )
    servers.push(server.match[1]!)
  }
}, 300_000)

afterAll(async () => {
  await Promise.all(children.map((child) =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined)
      const kill = setTimeout(() => child.kill("SIGKILL"), 10_000)
      child.on("exit", () => resolve(clearTimeout(kill)))
      child.kill("SIGTERM")
    })
  ))
  if (!("skipped" in postgres)) await postgres.stop()
  fs.rmSync(work, { recursive: true, force: true })
}, 180_000)

const api = (server: number, method: string, route: string, body?: unknown) =>
  jsonCall(servers[server]!, token, method, route, body)

const photos = (split: "train" | "test", label: "cats" | "dogs", count: number) =>
  fs.readdirSync(path.join(catsVsDogs, split, label))
    .sort((a, b) => Number(a.split(".")[1]) - Number(b.split(".")[1]))
    .slice(0, count)
    .map((f) => path.join(catsVsDogs, split, label, f))

const count = (text: string, pattern: RegExp) => (text.match(new RegExp(pattern, "g")) ?? []).length

/** Resolves with the first worker whose output past `from` (its length per worker) matches `pattern` (polled). */
const loggedAfter = (from: ReadonlyArray<number>, pattern: RegExp, timeoutMs = 240_000) =>
  new Promise<{ readonly worker: Started; readonly match: RegExpExecArray }>((resolve, reject) => {
    const started = Date.now()
    const timer = setInterval(() => {
      for (const [i, worker] of workers.entries()) {
        const match = pattern.exec(worker.output().slice(from[i]))
        if (match) {
          clearInterval(timer)
          return resolve({ worker, match })
        }
      }
      if (Date.now() - started > timeoutMs) {
        clearInterval(timer)
        reject(new Error(`No worker logged ${pattern} in ${timeoutMs} ms`))
      }
    }, 20)
  })

const dataUri = (file: string) => `data:image/jpeg;base64,${fs.readFileSync(file).toString("base64")}`

describe("2 servers and 2 workers on one Postgres", () => {
  it("share a function: samples through both, trained by the workers, answered by both, no invoke failing", async (ctx) => {
    if ("skipped" in postgres) return ctx.skip(postgres.skipped)
    const fn = (await api(0, "POST", "/v1/functions", { name: "ScaleOut", preset: "fast", overrides: { folds: 3 } })).body.id
    expect(fn).toMatch(/^function_/)
    expect((await api(1, "GET", `/v1/functions/${fn}`)).status).toBe(200)

    const posts = (["cats", "dogs"] as const).flatMap((label) => photos("train", label, 100).map((file) => ({ file, label })))
    const acknowledged: Array<string> = []
    // Invokes on both servers all along: before the first model they answer 409 NotTrained (or zero-shot), after it 200.
    const probe = dataUri(photos("test", "cats", 1)[0]!)
    let invoking = true
    const answers: Array<{ status: number; modelId?: string }> = []
    const invokes = [0, 1].map(async (server) => {
      while (invoking) {
        const r = await api(server, "POST", `/v1/functions/${fn}/invoke`, { data: probe })
        answers.push({ status: r.status, modelId: r.body?.modelId })
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })
    // Posted 4 at a time, alternating servers.
    for (let i = 0; i < posts.length; i += 4) {
      const batch = await Promise.all(posts.slice(i, i + 4).map(({ file, label }, k) =>
        api((i + k) % 2, "POST", `/v1/functions/${fn}/samples`, { data: dataUri(file), annotation: { labelName: label } })
      ))
      for (const r of batch) {
        expect(r.status, JSON.stringify(r.body)).toBe(201)
        acknowledged.push(r.body.id)
      }
    }

    // The first search to start once every photo is in: its runner is killed while it searches.
    const posted = workers.map((w) => w.output().length)
    const searching = await loggedAfter(posted, new RegExp(`Retrain ${fn}@(\\d+): activity search running in process`))
    searching.worker.child.kill("SIGKILL")
    const killedOutput = searching.worker.output()
    const survivor = workers.find((w) => w !== searching.worker)!
    const retrain = `Retrain ${fn}@${searching.match[1]}:`

    // Trained on every sample, by the workers (the servers run no retrain of their own on a Postgres store).
    const deadline = Date.now() + 240_000
    let detail = (await api(1, "GET", `/v1/functions/${fn}`)).body
    while (!(detail.model?.upToDate === true) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      detail = (await api(1, "GET", `/v1/functions/${fn}`)).body
    }
    expect(detail.model, JSON.stringify(detail)).toMatchObject({ upToDate: true })
    // The killed retrain may be for a revision before the last: then the last one's retrain, on the survivor, can
    // finish before the survivor has taken over the killed workflow. Its outcome comes later; wait for it.
    await loggedAfter(workers.map(() => 0), new RegExp(`${retrain} model model_\\w+ (promoted|not promoted)`))
    detail = (await api(1, "GET", `/v1/functions/${fn}`)).body
    const model = detail.model.id
    // Both servers answer with it.
    for (const server of [0, 1]) {
      const answer = await api(server, "POST", `/v1/functions/${fn}/invoke`, { data: probe })
      expect(answer).toMatchObject({ status: 200, body: { modelId: model, labelName: "cats" } })
    }
    invoking = false
    await Promise.all(invokes)

    // Every acknowledged sample is in the store, through either server.
    const listed = (await api(0, "GET", `/v1/functions/${fn}/samples?limit=1000`)).body.map((s: any) => s.id).sort()
    expect(listed).toEqual([...new Set(acknowledged)].sort())
    expect(acknowledged).toHaveLength(200)
    // No invoke failed: before the first model NotTrained (409), after it 200.
    expect(answers.filter((a) => a.status !== 200 && a.status !== 409)).toEqual([])
    expect(answers.filter((a) => a.status === 200).length).toBeGreaterThan(0)
    // One model promoted for the final data: the serving version is the only one trained on the final revision.
    const models = (await api(0, "GET", `/v1/functions/${fn}/models`)).body
    expect(models.filter((m: any) => m.serving).map((m: any) => m.id)).toEqual([model])
    const finalRevision = models.find((m: any) => m.id === model).revision
    expect(models.filter((m: any) => m.revision === finalRevision).map((m: any) => m.id)).toEqual([model])
    // The killed retrain: cut off mid-search, finished by the other runner; the embedding that had finished did not
    // run again, and the promotion ran once.
    expect(killedOutput).not.toContain(`${retrain} search selected`)
    const all = workers.map((w) => w.output()).join("\n")
    expect(count(all, new RegExp(`${retrain} activity embed running`))).toBe(1)
    expect(count(all, new RegExp(`${retrain} activity search running`))).toBe(2)
    expect(count(survivor.output(), new RegExp(`${retrain} activity search running`))).toBe(1)
    expect(count(all, new RegExp(`${retrain} activity promote running`))).toBe(1)
    expect(count(all, new RegExp(`${retrain} model model_\\w+ (promoted|not promoted)`))).toBe(1)
  }, 400_000)
})
