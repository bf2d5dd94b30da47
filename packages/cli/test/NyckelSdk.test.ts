// Nyckel's own Python SDK and its image tests, unchanged, against `loupe serve` on 127.0.0.1:5000 (the SDK's paging
// only follows links on port 5000), with the client python-sdk-test / secret the SDK's test setup signs in with; and
// Loupe's port of the SDK's label and sample handler tests onto image functions (test/nyckel). Needs Debian's
// python3 with pytest, numpy, requests, tqdm and PIL: skipped with the reason printed when they are missing, failed
// under CI=true (.ci/run installs them).
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loupe, modelsDir, repoRoot, serve, type Serving, sharedDir } from "./fixtures/cli.js"

const sdk = path.join(sharedDir, "peers", "nyckel-python-sdk")
const ported = path.join(repoRoot, "packages", "cli", "test", "nyckel")
// Debian's python3 (a pyenv or venv python3 first on PATH lacks Debian's packages).
const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"
const probe = spawnSync(python, ["-c", "import pytest, numpy, requests, tqdm, PIL"], { encoding: "utf8" })
const missing = !fs.existsSync(sdk)
  ? `no Nyckel SDK at ${sdk}`
  : probe.status !== 0
  ? `${python} lacks the SDK's test packages (apt-get install -y python3-pytest python3-numpy python3-requests python3-tqdm python3-pil): ${(probe.stderr ?? String(probe.error)).trim().split("\n").at(-1)}`
  : undefined
if (missing !== undefined) {
  if (process.env.CI === "true") throw new Error(`The Nyckel SDK suite cannot run under CI: ${missing}`)
  console.log(`Skipping the Nyckel SDK suite: ${missing}`)
}

/** Tests deselected by name, each with why. */
const deselected: Record<string, string> = {
  "tests/test_image_tags_function.py::TestSamples::test_create_url": "it fetches images from nyckel.com (no internet here)",
  "tests/test_tags_shared.py::TestSamples::test_update_with_two_samples[image_tags_function-make_random_image-ImageTagsSample]":
    "it expects a sample's tags in the order they were sent; Loupe answers them by name",
  "tests/test_tags_shared.py::TestSamples::test_new_labels[image_tags_function-make_random_image-ImageTagsSample]":
    "it expects Nyckel's explicit `present: false` tags for labels that existed when a sample was posted; a Loupe tag set is the tags a sample has"
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-nyckel-sdk-"))
const env = { LOUPE_CACHE_DIR: path.join(work, "cache"), LOUPE_MODELS_DIR: modelsDir }
let server: Serving | undefined

/** Run pytest on `targets` from the SDK's folder, as its README says; the summary counts and the output. */
const pytest = (targets: ReadonlyArray<string>) => {
  const shim = path.join(work, "shim")
  fs.mkdirSync(shim, { recursive: true })
  // The SDK imports pillow_avif only to register AVIF decoding, which Debian does not package.
  fs.writeFileSync(path.join(shim, "pillow_avif.py"), "")
  const result = spawnSync(python, [
    "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
    ...Object.keys(deselected).flatMap((id) => ["--deselect", id]),
    ...targets
  ], {
    cwd: sdk,
    encoding: "utf8",
    env: { ...process.env, PYTHONPATH: `${shim}:src`, PYTHONDONTWRITEBYTECODE: "1" },
    timeout: 240_000
  })
  const output = `${result.stdout}${result.stderr}`
  const count = (what: string) => Number(new RegExp(`(\\d+) ${what}`).exec(output.split("\n").filter((l) => / in [\d.]+s/.test(l)).at(-1) ?? "")?.[1] ?? 0)
  return { status: result.status, output, passed: count("passed"), failed: count("failed"), errors: count("error") }
}

describe.skipIf(missing !== undefined)("Nyckel's Python SDK against loupe serve", () => {
  beforeAll(async () => {
    for (const [id, why] of Object.entries(deselected)) console.log(`Deselected ${id}: ${why}`)
    const store = path.join(work, "store")
    const key = loupe(["keys", "create", "--store", store, "--name", "python-sdk", "--client-id", "python-sdk-test", "--secret", "secret"], {
      ...env,
      LOUPE_TEST_ALLOW_CHOSEN_SECRET: "1"
    })
    expect(key.status, key.stderr).toBe(0)
    // The fast preset trains the SDK's few random images in seconds; no capture, so invocations add no samples.
    server = await serve([
      "--store", store, "--port", "5000", "--default-preset", "fast",
      "--capture-random", "0", "--capture-low-confidence", "0", "--capture-rare-share", "0"
    ], env)
  }, 180_000)

  afterAll(() => {
    server?.child.kill("SIGTERM")
    fs.rmSync(work, { recursive: true, force: true })
  })

  it("passes the SDK's image tests, unchanged", () => {
    const run = pytest(["tests/test_image_classification_function.py", "tests/test_white_background.py", "tests/test_image_tags_function.py"])
    console.log(run.output.split("\n").filter((l) => /passed|failed|error|SKIPPED|FAILED|ERROR/.test(l)).join("\n"))
    expect(run.status, run.output).toBe(0)
    // test_samples, test_end_to_end, 5 x test_post_sample_overloading, test_white_background, 3 tags sample creates.
    expect(run.passed).toBe(11)
  }, 240_000)

  it("passes the SDK's shared tags tests on image tags functions: labels, samples with their tags, invoke", () => {
    const run = pytest(["tests/test_tags_shared.py", "-k", "image_tags"])
    console.log(run.output.split("\n").filter((l) => /passed|failed|error|FAILED|ERROR/.test(l)).join("\n"))
    expect(run.status, run.output).toBe(0)
    expect(run.passed).toBe(14)
  }, 240_000)

  it("passes Loupe's port of the SDK's label and sample handler tests onto image functions", () => {
    const run = pytest([ported])
    console.log(run.output.split("\n").filter((l) => /passed|failed|error|FAILED|ERROR/.test(l)).join("\n"))
    expect(run.status, run.output).toBe(0)
    expect(run.passed).toBe(8)
  }, 240_000)
})
