// `--store` and `LOUPE_STORE_URL` with the built CLI: a folder or a postgres:// URL, never a URL taken for a folder,
// an unknown scheme an error naming it, and a password never printed. The Postgres part runs on a throwaway cluster.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { startPostgres } from "../../../test/fixtures/postgres.mjs"
import type { RunningPostgres } from "../../../test/fixtures/postgres.mjs"
import { loupe, modelsDir } from "./fixtures/cli.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-store-flag-"))
const env = { LOUPE_CACHE_DIR: path.join(work, "cache"), LOUPE_MODELS_DIR: modelsDir, LOUPE_STORE_DIR: "", LOUPE_STORE_URL: "" }

/** A new empty working folder, to check that a command created nothing in it. */
const emptyCwd = () => fs.mkdtempSync(path.join(work, "cwd-"))

describe("--store", () => {
  it("an unknown scheme is an error naming it, and creates no folder", () => {
    const cwd = emptyCwd()
    const run = loupe(["function", "list", "--store", "s3://bucket/loupe"], env, cwd)
    expect(run.status).not.toBe(0)
    expect(run.stdout + run.stderr).toContain("--store: unknown store scheme 's3:'; use a folder or postgres://")
    const fromEnv = loupe(["keys", "list"], { ...env, LOUPE_STORE_URL: "mysql://db/loupe" }, cwd)
    expect(fromEnv.status).not.toBe(0)
    expect(fromEnv.stdout + fromEnv.stderr).toContain("LOUPE_STORE_URL: unknown store scheme 'mysql:'")
    expect(fs.readdirSync(cwd)).toEqual([])
  })

  it("a postgres:// URL that cannot be reached fails naming it, password masked, and creates no folder", () => {
    const cwd = emptyCwd()
    const run = loupe(["function", "list", "--store", "postgres://loupe:hunter2@127.0.0.1:1/loupe"], env, cwd)
    expect(run.status).not.toBe(0)
    expect(run.stdout + run.stderr).toContain("postgres://loupe:***@127.0.0.1:1/loupe")
    expect(run.stdout + run.stderr).not.toContain("hunter2")
    expect(fs.readdirSync(cwd)).toEqual([])
  })
})

describe("--store postgres://", () => {
  let postgres: RunningPostgres | { readonly skipped: string } | undefined
  beforeAll(async () => {
    postgres = await startPostgres()
    if ("skipped" in postgres) console.warn(`Postgres CLI tests skipped: ${postgres.skipped}`)
  }, 300_000)
  afterAll(async () => {
    if (postgres !== undefined && !("skipped" in postgres)) await postgres.stop()
  })

  it("functions created with --store are listed through LOUPE_STORE_URL (over LOUPE_STORE_DIR), and no folder is made", (ctx) => {
    if (postgres === undefined || "skipped" in postgres) return ctx.skip(postgres?.skipped)
    const cwd = emptyCwd()
    const created = loupe(["function", "create", "pets", "--preset", "fast", "--store", postgres.url, "--json"], env, cwd)
    expect(created.stderr).toBe("")
    expect(created.status).toBe(0)
    const fn = JSON.parse(created.stdout)
    const storeDir = path.join(work, "dir")
    const listed = loupe(["function", "list", "--json"], { ...env, LOUPE_STORE_URL: postgres.url, LOUPE_STORE_DIR: storeDir }, cwd)
    expect(listed.status).toBe(0)
    expect(listed.stdout).toContain(fn.id)
    expect(fs.existsSync(storeDir)).toBe(false)
    expect(fs.readdirSync(cwd)).toEqual([])
  })
})
