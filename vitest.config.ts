import { availableParallelism } from "node:os"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const packages = ["core", "backbones", "trainers", "metrics", "deploy", "functions", "cli"]

const source = (file: string) => fileURLToPath(new URL(`./packages/${file}`, import.meta.url))

// Tests import each workspace package from its sources, so a test run never sees a stale build. An array, so the
// subpath entry `@loupe/core/onnx` is matched before the `@loupe/core` prefix.
const alias = [
  { find: "@loupe/core/onnx", replacement: source("core/src/onnx.ts") },
  ...packages.map((p) => ({ find: `@loupe/${p}`, replacement: source(`${p}/src/index.ts`) }))
]

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
    reporters: ["default", "./scripts/summary-reporter.ts"]
  }
})
