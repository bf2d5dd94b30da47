// `loupe keys` on a Postgres store: keys live in its api_keys table (hashed), not in a local keys.json, so a key
// created from one machine's CLI is listed and revoked through any other process given the same URL.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { startPostgres } from "../../../test/fixtures/postgres.mjs"
import type { RunningPostgres } from "../../../test/fixtures/postgres.mjs"
import { loupe, modelsDir } from "./fixtures/cli.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-keys-pg-"))
/** Two CLIs that share nothing on disk: their own cache folders, so the database is all they share. */
const envOf = (name: string) => ({ LOUPE_CACHE_DIR: path.join(work, name), LOUPE_MODELS_DIR: modelsDir, LOUPE_STORE_DIR: "", LOUPE_STORE_URL: "" })

describe("loupe keys --store postgres://", () => {
  let postgres: RunningPostgres | { readonly skipped: string } | undefined
  beforeAll(async () => {
    postgres = await startPostgres()
    if ("skipped" in postgres) console.warn(`Postgres keys CLI test skipped: ${postgres.skipped}`)
  }, 300_000)
  afterAll(async () => {
    if (postgres !== undefined && !("skipped" in postgres)) await postgres.stop()
  })

  it("creates a key in the database, lists and revokes it from another process", (ctx) => {
    if (postgres === undefined || "skipped" in postgres) return ctx.skip(postgres?.skipped)
    const created = loupe(["keys", "create", "--name", "ci", "--store", postgres.url, "--json"], envOf("a"), work)
    expect(created.status, created.stderr).toBe(0)
    const key = JSON.parse(created.stdout)
    expect(key.token).toMatch(/^loupe_[0-9a-f]{8}_/)
    expect(key.file).toBe(postgres.url)

    const listed = loupe(["keys", "list", "--json"], { ...envOf("b"), LOUPE_STORE_URL: postgres.url }, work)
    expect(listed.status, listed.stderr).toBe(0)
    expect(JSON.parse(listed.stdout).keys).toEqual([{ id: key.id, name: "ci", createdAt: key.createdAt }])

    const revoked = loupe(["keys", "revoke", key.id, "--store", postgres.url, "--json"], envOf("b"), work)
    expect(revoked.status, revoked.stderr).toBe(0)
    expect(JSON.parse(revoked.stdout)).toMatchObject({ id: key.id, revokedAt: expect.any(String) })
    // No key file anywhere on disk: not in the working folder, not under either cache folder.
    const files = fs.readdirSync(work, { recursive: true }).map(String)
    expect(files.filter((f) => f.endsWith("keys.json"))).toEqual([])
  })
})
