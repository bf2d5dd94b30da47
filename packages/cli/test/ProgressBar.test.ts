// Progress lines with the time left: the estimate follows the pace since a stage's first report, a stage that starts
// over (the next backbone) starts a new estimate, and a finished stage says how long it took.
import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import { Progress } from "@loupe/core"
import * as ProgressBar from "../src/ProgressBar.js"

/** Report `events` at the given clock times (ms) into a fake stream; returns what was written. */
const written = (isTTY: boolean, events: ReadonlyArray<readonly [number, Progress.ProgressEvent]>): string => {
  let out = ""
  let clock = 0
  const stream = { isTTY, write: (s: string) => (out += s) } as unknown as NodeJS.WriteStream
  const layer = ProgressBar.layer(stream, () => clock)
  Effect.runSync(Effect.forEach(events, ([at, event]) => Effect.sync(() => (clock = at)).pipe(Effect.zipRight(Progress.report(event)))).pipe(Effect.provide(layer)))
  return out
}

describe("ProgressBar", () => {
  it("formats durations for people", () => {
    expect([8, 65, 3725].map(ProgressBar.formatDuration)).toEqual(["8s", "1m05s", "1h02m"])
  })

  it("estimates the time left from the pace since the first report (non-TTY: a line per 10 %)", () => {
    const out = written(false, [
      [0, { stage: "embed", done: 10, total: 100 }],
      [9_000, { stage: "embed", done: 40, total: 100 }],
      [27_000, { stage: "embed", done: 100, total: 100 }]
    ])
    const lines = out.trimEnd().split("\n")
    expect(lines).toHaveLength(3)
    expect(lines[0]).toBe("embed  [###-------------------------] 10/100")
    // 30 images in 9 s: 60 left take 18 s.
    expect(lines[1]).toBe("embed  [###########-----------------] 40/100  eta 18s")
    expect(lines[2]).toBe("embed  [############################] 100/100  in 27s")
  })

  it("starts a new estimate when a stage starts over, and redraws one line on a TTY", () => {
    const out = written(true, [
      [0, { stage: "embed", done: 5, total: 10, detail: "a" }],
      [1_000, { stage: "embed", done: 10, total: 10, detail: "a" }],
      [5_000, { stage: "embed", done: 2, total: 10, detail: "b" }],
      [6_000, { stage: "embed", done: 4, total: 10, detail: "b" }]
    ])
    expect(out.split("\n")[0]).toMatch(/\r.*10\/10 {2}in 1s a\x1b\[K$/)
    expect(out.split("\n")[1]).toMatch(/\rembed .*2\/10 b\x1b\[K\rembed .*4\/10 {2}eta 3s b\x1b\[K$/)
  })
})
