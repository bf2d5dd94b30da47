import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const packages = ["core", "backbones", "trainers", "metrics", "deploy", "functions", "cli"]

// Tests import each workspace package from its sources, so a test run never sees a stale build.
const alias = Object.fromEntries(
  packages.map((p) => [`@loupe/${p}`, fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url))])
)

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: "forks",
    reporters: ["default", "./scripts/summary-reporter.ts"]
  }
})
