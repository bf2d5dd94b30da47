// `loupe function add` on a Postgres store: the retrain is not run in the CLI's process but submitted as a job for
// the `loupe worker` runners, as `loupe serve` submits it. With no worker up, the command says it waits for one and
// gives up after --wait-timeout with a message naming the flag (the job stays submitted); with a worker, the worker
// runs every activity and the command prints the trained status; with --no-wait, the command submits and exits, and
// the worker trains it.
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../../test/fixtures/loopback.mjs"
import { clusterEnv, startPostgres } from "../../../test/fixtures/postgres.mjs"
import type { RunningPostgres } from "../../../test/fixtures/postgres.mjs"
import { catsVsDogs } from "../../../test/fixtures/shared.mjs"
import { labelFolders, loupe, loupeAsync, modelsDir, startCli } from "./fixtures/cli.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-function-pg-"))
/** The CLI and the worker share nothing on disk: the database is all they share. Short cluster timings. */
const envOf = (name: string) => ({
  ...clusterEnv,
  LOUPE_CACHE_DIR: path.join(work, name),
  LOUPE_MODELS_DIR: modelsDir,
  LOUPE_OFFLINE: "true",
  LOUPE_STORE_DIR: "",
  LOUPE_STORE_URL: ""
})

const photos = (name: string, from: number, count: number) => labelFolders(path.join(work, name), from, count)

let postgres: RunningPostgres | { readonly skipped: string }
let worker: ChildProcess | undefined

beforeAll(async () => {
  postgres = await startPostgres()
  if ("skipped" in postgres) console.warn(`Postgres function CLI test skipped: ${postgres.skipped}`)
}, 300_000)

afterAll(async () => {
  if (worker !== undefined && worker.exitCode === null) {
    await new Promise((resolve) => {
      worker!.on("exit", resolve)
      worker!.kill("SIGTERM")
    })
  }
  if (!("skipped" in postgres)) await postgres.stop()
  fs.rmSync(work, { recursive: true, force: true })
}, 60_000)

describe("loupe function add --store postgres://", () => {
  it("submits the retrain to the workers, waits for one, and says when none takes it", async (ctx) => {
    if ("skipped" in postgres) return ctx.skip(postgres.skipped)
    const url = postgres.url
    const created = loupe(["function", "create", "pets", "--preset", "fast", "--overrides", '{"folds": 3}', "--store", url], envOf("cli"))
    expect(created.status, created.stderr).toBe(0)
    const fn = created.stdout.trim()

    // No worker yet: the job is submitted, nothing trains here, and the command fails naming --wait-timeout.
    const waited = await loupeAsync(["function", "add", fn, photos("first", 0, 3), "--store", url, "--wait-timeout", "3"], envOf("cli"))
    expect(waited.status).not.toBe(0)
    expect(waited.stderr).toContain(`retrain of ${fn} submitted as a job; waiting for a worker`)
    expect(waited.stderr).toMatch(/No worker finished the retrain of function_\w+ within 3 s \(--wait-timeout\)/)
    expect(waited.stderr).not.toMatch(/Training function .* started/)
    const untrained = loupe(["function", "list", "--store", url], envOf("cli"))
    expect(untrained.stdout).toContain("not trained")

    // A worker takes the submitted job, and the next add's; the command waits for it and prints the model.
    const started = await startCli(
      ["worker", "--store", url, "--port", String(await freePort()), "--embed-range-size", "4"],
      { ...process.env, ...envOf("worker") },
      /Worker (\d+) runs on/
    )
    worker = started.child
    const added = await loupeAsync(["function", "add", fn, photos("second", 3, 2), "--store", url, "--json"], envOf("cli"))
    expect(added.status, added.stderr).toBe(0)
    expect(added.stderr).toContain(`retrain of ${fn} submitted as a job; waiting for a worker`)
    expect(added.stderr).toMatch(/retrain finished on a worker after \d+ s/)
    const { status } = JSON.parse(added.stdout)
    expect(status.model).toMatchObject({ upToDate: true })
    expect(status.labels.map((l: { sampleCount: number }) => l.sampleCount)).toEqual([5, 5])
    // Every activity of the retrain ran in the worker's process, none in the CLI's.
    const pid = started.match[1]!
    for (const activity of ["embed", "search", "promote"]) {
      expect(started.output()).toMatch(new RegExp(`Retrain ${fn}@\\d+: activity ${activity} running in process ${pid}`))
    }
    expect(added.stderr).not.toMatch(/Training function .* started/)

    const invoked = loupe(["function", "invoke", fn, path.join(catsVsDogs, "test", "dogs", fs.readdirSync(path.join(catsVsDogs, "test", "dogs"))[0]!), "--store", url], envOf("cli"))
    expect(invoked.status, invoked.stderr).toBe(0)
    expect(invoked.stdout).toMatch(/\tdogs\t/)

    // --no-wait submits the retrain and exits: the worker trains it with no later command to submit it.
    const noWait = await loupeAsync(["function", "add", fn, photos("third", 5, 1), "--store", url, "--no-wait", "--json"], envOf("cli"))
    expect(noWait.status, noWait.stderr).toBe(0)
    const revision = (log: string) => [...log.matchAll(new RegExp(`Retrain ${fn}@(\\d+): model \\w+ promoted`, "g"))].map((m) => Number(m[1]))
    const before = Math.max(...revision(started.output()))
    const deadline = Date.now() + 120_000
    while (Math.max(...revision(started.output())) <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500))
    expect(Math.max(...revision(started.output())), "a model for the --no-wait samples' revision").toBeGreaterThan(before)
    expect(noWait.stderr).toContain(`retrain of ${fn} submitted as a job for the workers`)
    const listed = loupe(["function", "list", "--store", url, "--json"], envOf("cli"))
    const latest = JSON.parse(listed.stdout).functions.find((f: { id: string }) => f.id === fn)
    expect(latest.labels.map((l: { sampleCount: number }) => l.sampleCount)).toEqual([6, 6])
    expect(latest.model).toMatchObject({ upToDate: true })
  }, 300_000)
})
