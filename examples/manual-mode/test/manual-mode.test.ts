// Runs the example as a user would (node on the built packages), briefly: 2 epochs of 2 views per photo.
import { expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))

it("prints each epoch's train and test loss and accuracy, saves the best epoch, and scores the reloaded bundle", () => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "loupe-manual-example-")), "bundle")
  const run = spawnSync(process.execPath, [path.join(here, "../main.mjs"), "--epochs", "2", "--views", "2", "--out", out], {
    encoding: "utf8"
  })
  expect(run.stderr).toBe("")
  expect(run.status).toBe(0)
  const epochs = run.stdout.split("\n").filter((l) => /^Epoch\s+\d+\/2 {2}lr 1e-3 {2}train loss \d\.\d{4} acc [\d.]+% {2}test loss \d\.\d{4} acc [\d.]+%/.test(l))
  expect(epochs).toHaveLength(2)
  const [, correct, total] = /test accuracy (\d+)\/(\d+)/.exec(run.stdout) ?? []
  expect(Number(total)).toBe(40)
  expect(Number(correct)).toBeGreaterThanOrEqual(36)
  expect(JSON.parse(fs.readFileSync(path.join(out, "manifest.json"), "utf8")).head.kind).toBe("linear")
}, 180_000)
