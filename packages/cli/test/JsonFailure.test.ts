// `--json` failures: every command family prints exactly one JSON object on stdout when it fails, naming the error's
// tag, reason, message and the field or file at fault; the one-line message still goes to stderr.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { loupe, modelsDir, sharedDir } from "./fixtures/cli.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-json-failure-"))
const env = { LOUPE_CACHE_DIR: path.join(work, "cache"), LOUPE_STORE_DIR: path.join(work, "store"), LOUPE_MODELS_DIR: modelsDir }
const dataset = path.join(sharedDir, "datasets/cats-vs-dogs")
const photo = path.join(dataset, "test/cats", fs.readdirSync(path.join(dataset, "test/cats")).sort()[0]!)

/** Runs a failing command with `--json`; returns the one error object it printed on stdout. */
const failure = (args: ReadonlyArray<string>) => {
  const run = loupe([...args, "--json"], env)
  expect(run.status).toBe(1)
  const lines = run.stdout.split("\n").filter((l) => l.trim() !== "")
  expect(lines).toHaveLength(1)
  const printed = JSON.parse(lines[0]!)
  expect(Object.keys(printed)).toEqual(["error"])
  expect(typeof printed.error.message).toBe("string")
  expect(run.stderr).toContain(printed.error.message.split("\n")[0])
  return printed.error
}

describe("--json on failure: exactly one JSON object on stdout", () => {
  it("train: a bad --overrides key, and a usage error", () => {
    expect(failure(["train", dataset, "--out", path.join(work, "t"), "--overrides", '{"foldz": 3}'])).toMatchObject({
      _tag: "FunctionsError",
      reason: "InvalidOptions",
      field: "foldz"
    })
    expect(failure(["train"])).toMatchObject({ _tag: "ValidationError", message: "Missing argument <dir>" })
  })

  it("predict and evaluate: a folder that is not a bundle", () => {
    const notBundle = fs.mkdtempSync(path.join(work, "not-bundle-"))
    expect(failure(["predict", notBundle, photo])).toMatchObject({ _tag: "CoreError", reason: "Io", file: path.join(notBundle, "manifest.json") })
    expect(failure(["evaluate", notBundle, path.join(dataset, "test")])).toMatchObject({ _tag: "CoreError", file: path.join(notBundle, "manifest.json") })
  })

  it("models: an unknown backbone", () => {
    expect(failure(["models", "pull", "onnx:nope"])).toMatchObject({ _tag: "CoreError", reason: "UnknownPlugin" })
  })

  it("function and export: an unknown function", () => {
    expect(failure(["function", "metrics", "fn_missing"])).toMatchObject({ _tag: "FunctionsError", reason: "NotFound", field: "functionId" })
    expect(failure(["export", "fn_missing", "--format", "onnx", "--out", path.join(work, "e")])).toMatchObject({
      _tag: "FunctionsError",
      reason: "NotFound",
      field: "functionId"
    })
  })

  it("keys: an unknown key id", () => {
    expect(failure(["keys", "revoke", "key_missing"])).toMatchObject({ _tag: "DeployError", reason: "NotFound", field: "id" })
  })

  it("serve: an option it does not take", () => {
    expect(failure(["serve", "--port", "0", "--no-such-option"])).toMatchObject({ _tag: "ValidationError" })
  })
})
