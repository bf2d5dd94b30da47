/**
 * Renders Progress events on stderr: a redrawn bar on a TTY, and a line every 10 % otherwise (logs stay readable in
 * CI). stdout is left alone so `--json` prints exactly one object there.
 *
 * @since 0.1.0
 */
import { Progress } from "@loupe/core"
import type { Layer } from "effect"

const WIDTH = 28

export const render = (event: Progress.ProgressEvent): string => {
  const fraction = event.total > 0 ? Math.min(1, event.done / event.total) : 1
  const filled = Math.round(fraction * WIDTH)
  const bar = "#".repeat(filled) + "-".repeat(WIDTH - filled)
  const detail = event.detail ? ` ${event.detail}` : ""
  return `${event.stage.padEnd(6)} [${bar}] ${event.done}/${event.total}${detail}`
}

export const layer = (stream: NodeJS.WriteStream = process.stderr): Layer.Layer<Progress.Progress> => {
  const lastDecile = new Map<string, number>()
  return Progress.Progress.make((event) => {
    const finished = event.done >= event.total
    if (stream.isTTY) {
      stream.write(`\r${render(event)}\x1b[K${finished ? "\n" : ""}`)
      return
    }
    const decile = event.total > 0 ? Math.floor((10 * event.done) / event.total) : 10
    const key = `${event.stage}:${event.detail ?? ""}`
    if (decile !== lastDecile.get(key)) {
      lastDecile.set(key, decile)
      stream.write(`${render(event)}\n`)
    }
  })
}
