// Runs the example as a user would (node on the built packages) on the real cats-vs-dogs photos.
import { expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { sharedDir as shared } from "../../../test/fixtures/shared.mjs"

const here = path.dirname(fileURLToPath(import.meta.url))

it("fits, saves, reloads and predicts cats-vs-dogs in code", () => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "loupe-compose-")), "bundle")
  const run = spawnSync(process.execPath, [
    path.join(here, "../main.mjs"),
    path.join(shared, "datasets/cats-vs-dogs"),
    path.join(shared, "models"),
    out
  ], { encoding: "utf8", env: { ...process.env, LOUPE_CACHE_DIR: path.join(out, "..", "cache") } })
  expect(run.stderr).toBe("")
  expect(run.status).toBe(0)
  const [, correct, total] = /test accuracy (\d+)\/(\d+)/.exec(run.stdout) ?? []
  expect(Number(total)).toBe(40)
  expect(Number(correct)).toBeGreaterThanOrEqual(38)
  expect(fs.existsSync(path.join(out, "manifest.json"))).toBe(true)
})
