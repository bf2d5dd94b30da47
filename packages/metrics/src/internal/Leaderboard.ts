/** Helpers shared by the terminal and HTML leaderboards. */
import { Option } from "effect"
import { metricNamed } from "../Classification.js"
import type { LeaderboardRow } from "../Report.js"

/** Every metric name in the rows, in order of first appearance. */
export const columns = (rows: ReadonlyArray<LeaderboardRow>): Array<string> => [
  ...new Set(rows.flatMap((r) => Object.keys(r.metrics)))
]

/** The best value of a column (direction from `Classification.metrics`; unknown metrics count as higher-is-better). */
export const best = (rows: ReadonlyArray<LeaderboardRow>, column: string): number | undefined => {
  const higher = Option.match(metricNamed(column), { onNone: () => true, onSome: (m) => m.higherIsBetter })
  const values = rows.map((r) => r.metrics[column]).filter((v): v is number => v !== undefined && Number.isFinite(v))
  if (values.length === 0) return undefined
  return higher ? Math.max(...values) : Math.min(...values)
}
