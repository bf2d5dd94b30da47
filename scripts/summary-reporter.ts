// Ends the test run with what CI shows of it (its log's tail): the failed tests by name, the slowest files, and then
// the plain line CI counts, `N passed, N failed` (and skipped when there are any).
import type { Reporter, TestModule } from "vitest/node"

/** How many of the slowest files to list. */
const slowest = 12

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0
    let failed = 0
    let skipped = 0
    const failures: Array<string> = []
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === "passed") passed++
        else if (state === "failed") {
          failed++
          const error = test.result().errors?.[0]?.message?.split("\n")[0] ?? ""
          failures.push(`FAILED ${module.moduleId.replace(`${process.cwd()}/`, "")} > ${test.fullName} (${Math.round(test.diagnostic()?.duration ?? 0)} ms): ${error.slice(0, 300)}`)
        } else skipped++
      }
      // A file that failed to load has no tests but still fails the run.
      if (module.state() === "failed" && [...module.children.allTests()].length === 0) {
        failed++
        failures.push(`FAILED ${module.moduleId.replace(`${process.cwd()}/`, "")}: the file did not load`)
      }
    }
    failed += unhandledErrors.length
    for (const error of unhandledErrors) failures.push(`FAILED (unhandled error): ${String((error as Error)?.message ?? error).split("\n")[0]}`)
    const files = [...testModules]
      .map((m) => ({ file: m.moduleId.replace(`${process.cwd()}/`, ""), ms: m.diagnostic().duration }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, slowest)
    process.stdout.write(`\nSlowest files: ${files.map((f) => `${f.file} ${Math.round(f.ms / 1000)} s`).join(", ")}\n`)
    if (failures.length > 0) process.stdout.write(`\n${failures.join("\n")}\n`)
    process.stdout.write(`\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}\n`)
  }
}
