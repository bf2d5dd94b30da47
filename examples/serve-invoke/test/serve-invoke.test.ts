// Runs the example as a user would (node on the built packages) on the real cats-vs-dogs photos.
import { expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))

it("serves a function, trains it over HTTP, invokes, reviews a capture, exports ONNX and stops", () => {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-serve-invoke-test-"))
  const run = spawnSync(process.execPath, [path.join(here, "../main.mjs"), "--store", store], {
    encoding: "utf8",
    env: { ...process.env, LOUPE_CACHE_DIR: path.join(store, "cache") },
    timeout: 240_000
  })
  expect(run.status, run.stderr).toBe(0)
  const [, correct] = /test accuracy (\d+)\/20/.exec(run.stdout) ?? []
  expect(Number(correct)).toBeGreaterThanOrEqual(18)
  expect(run.stdout).toMatch(/^trained: model model_\w+, cross-validated accuracy/m)
  expect(run.stdout).toMatch(/^review queue: \d+ captured invocation/m)
  expect(run.stdout).toMatch(/^onnx: .*model\.onnx, verified on 8 images/m)
  expect(run.stdout).toMatch(/^server stopped \(exit code 0\)$/m)
  expect(fs.existsSync(path.join(store, "export-onnx", "model.json"))).toBe(true)
})
