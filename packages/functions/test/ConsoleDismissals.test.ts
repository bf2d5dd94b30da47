// The Review page's dismissals outlive the process: written to review.db in the store folder, per function.
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Dismissals from "../src/console/Dismissals.js"

const open = (dir: string) => Dismissals.layer(dir).pipe(Layer.provide(NodeFileSystem.layer))

describe("console Dismissals", () => {
  it.effect("remembers a dismissal across reopening, per function, until the function is forgotten", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-dismissals-"))
      yield* Effect.gen(function*() {
        const d = yield* Dismissals.Dismissals
        yield* d.dismiss("function_a", "suspect", "sample_1")
        yield* d.dismiss("function_a", "duplicate", Dismissals.pairSubject("sample_3", "sample_2"))
        yield* d.dismiss("function_a", "suspect", "sample_1")
        yield* d.dismiss("function_b", "outlier", "sample_9")
      }).pipe(Effect.provide(open(dir)))
      expect((fs.statSync(path.join(dir, "review.db")).mode & 0o777).toString(8)).toBe("600")
      const reopened = yield* Effect.gen(function*() {
        const d = yield* Dismissals.Dismissals
        const a = yield* d.list("function_a")
        yield* d.forget("function_a")
        return { a, afterForget: yield* d.list("function_a"), b: yield* d.list("function_b") }
      }).pipe(Effect.provide(open(dir)))
      expect(reopened.a).toEqual(new Set(["suspect:sample_1", `duplicate:${Dismissals.pairSubject("sample_2", "sample_3")}`]))
      expect(reopened.afterForget.size).toBe(0)
      expect(reopened.b).toEqual(new Set(["outlier:sample_9"]))
    }))
})
