/**
 * Renders Progress events on stderr: a redrawn bar on a TTY, and a line every 10 % otherwise (logs stay readable in
 * CI), each with an estimate of the time left (from the pace so far) and, once finished, the time it took. stdout is
 * left alone so `--json` prints exactly one object there.
 *
 * @since 0.1.0
 */
import { Progress } from "@loupe/core"
import type { Layer } from "effect"

const WIDTH = 28

/**
 * A duration for people: `8s`, `3m05s`, `1h02m`.
 *
 * @since 0.1.0
 */
export const formatDuration = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/**
 * The time left at the pace so far: `elapsed` seconds since the stage's first report, when `done` of `total` were
 * done; `doneAtStart` were done at that first report. Undefined until the pace is known.
 *
 * @since 0.1.0
 */
export const remaining = (elapsed: number, doneAtStart: number, done: number, total: number): number | undefined =>
  done > doneAtStart && elapsed > 0 ? (elapsed * Math.max(0, total - done)) / (done - doneAtStart) : undefined

/**
 * One progress line. With `timing` (seconds since the stage's first report, and the count done then) it ends with
 * `eta 1m05s` while running and `in 33s` once finished.
 *
 * @since 0.1.0
 */
export const render = (
  event: Progress.ProgressEvent,
  timing?: { readonly elapsed: number; readonly doneAtStart: number }
): string => {
  const fraction = event.total > 0 ? Math.min(1, event.done / event.total) : 1
  const filled = Math.round(fraction * WIDTH)
  const bar = "#".repeat(filled) + "-".repeat(WIDTH - filled)
  const detail = event.detail ? ` ${event.detail}` : ""
  const left = timing && remaining(timing.elapsed, timing.doneAtStart, event.done, event.total)
  const time = timing === undefined
    ? ""
    : event.done >= event.total
    ? timing.doneAtStart < event.done ? `  in ${formatDuration(timing.elapsed)}` : ""
    : left === undefined
    ? ""
    : `  eta ${formatDuration(left)}`
  return `${event.stage.padEnd(6)} [${bar}] ${event.done}/${event.total}${time}${detail}`
}

/** A stage's current run: a new one begins when its count goes back or its total changes (the next backbone, head, ...). */
interface Run {
  readonly started: number
  readonly doneAtStart: number
  readonly total: number
  done: number
  decile: number
}

/**
 * The progress layer: bars on `stream` (stderr by default). `now` (milliseconds) is the clock the estimates use.
 *
 * @since 0.1.0
 */
export const layer = (
  stream: NodeJS.WriteStream = process.stderr,
  now: () => number = () => performance.now()
): Layer.Layer<Progress.Progress> => {
  const runs = new Map<string, Run>()
  return Progress.Progress.make((event) => {
    const at = now()
    const previous = runs.get(event.stage)
    const run = previous === undefined || event.done < previous.done || event.total !== previous.total
      ? { started: at, doneAtStart: event.done, total: event.total, done: event.done, decile: -1 }
      : previous
    run.done = event.done
    runs.set(event.stage, run)
    const line = render(event, { elapsed: (at - run.started) / 1000, doneAtStart: run.doneAtStart })
    const finished = event.done >= event.total
    if (stream.isTTY) {
      stream.write(`\r${line}\x1b[K${finished ? "\n" : ""}`)
      return
    }
    const decile = event.total > 0 ? Math.floor((10 * event.done) / event.total) : 10
    if (decile !== run.decile) {
      run.decile = decile
      stream.write(`${line}\n`)
    }
  })
}
