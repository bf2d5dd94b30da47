import { availableParallelism } from "node:os"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import { BaseSequencer, type TestSpecification } from "vitest/node"

const packages = ["core", "backbones", "trainers", "metrics", "deploy", "functions", "cli"]

const source = (file: string) => fileURLToPath(new URL(`./packages/${file}`, import.meta.url))

// Tests import each workspace package from its sources, so a test run never sees a stale build. An array, so the
// subpath entry `@loupe/core/onnx` is matched before the `@loupe/core` prefix.
const alias = [
  { find: "@loupe/core/onnx", replacement: source("core/src/onnx.ts") },
  ...packages.map((p) => ({ find: `@loupe/${p}`, replacement: source(`${p}/src/index.ts`) }))
]

// The files that take longest start first, so that the run does not end with one worker on a long file and the other
// idle. Vitest orders by the last run's durations when it has them; a fresh clone (CI) has none, and falls back to
// file size, which does not put them first. From the summary reporter's "Slowest files" of CI runs.
const longestFirst = ["packages/cli/test/DatasetMatrixBalanced.test.ts", "packages/cli/test/DatasetMatrix.test.ts"]

class LongestFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const rank = (file: TestSpecification) => {
      const i = longestFirst.findIndex((long) => file.moduleId.endsWith(long))
      return i === -1 ? longestFirst.length : i
    }
    // Array.prototype.sort is stable: the other files keep vitest's order.
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b))
  }
}

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts"],
    // Hang guards, not speed bars (speed is measured in bench/): with two files at a time beside CI's Node 24 run,
    // a 2-core machine runs a test up to 1.5-2x slower than alone (loupe train --preset best: 80 s alone, 179 s there).
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: "forks",
    // Two test files at a time even on 2 cores (vitest's default is cores - 1): most files spend their time in one
    // single-threaded search or waiting on a child process or server, so one file at a time leaves a core idle.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // No test reaches a real model hub: the default one is a loopback port where nothing listens, so a preset's hub
    // probe fails at once; tests that pull point HF_ENDPOINT or hubUrl at their own loopback hub.
    env: { HF_ENDPOINT: "http://127.0.0.1:9" },
    reporters: ["default", "./scripts/summary-reporter.ts"],
    sequence: { sequencer: LongestFirst }
  }
})
