/**
 * Stratified k-fold for multi-label data: iterative stratification (Sechidis, Tsoumakas and Vlahavas, "On the
 * Stratification of Multi-Label Data", ECML PKDD 2011), which keeps each fold's share of every tag close to the whole
 * set's, rare tags first.
 *
 * - Each fold should hold `1 / k` of the rows and `1 / k` of each tag's positives (its desired counts).
 * - Repeatedly, the tag with the fewest positives still unassigned is taken; each of its unassigned units (shuffled
 *   with the seed) goes to the fold that most wants that tag, ties broken by the fold that most wants rows, then by
 *   the seed. The unit's rows and tags are taken off that fold's desired counts.
 * - Units with no tag go last, each to the fold that most wants rows (ties by the seed).
 * - **Groups** (optional, one key per row: a content hash) are never split: a group is one unit carrying the union of
 *   its rows' tags.
 * - `k = min(folds, units)`; **repeats** reshuffle with a derived seed. The result is a `CrossValidation.Plan`, so
 *   fold scores and everything else that reads plans apply unchanged.
 *
 * Deterministic for a seed.
 *
 * @since 0.2.0
 */
import type { Matrix } from "@loupe/core"
import { Effect } from "effect"
import type * as CrossValidation from "./CrossValidation.js"
import { toFolds } from "./internal/Folds.js"
import * as Random from "./internal/Random.js"
import { TrainerError } from "./TrainerError.js"

/**
 * How the folds are planned: `folds`, the largest number of folds (an integer >= 2, default 5); `repeats` (an integer
 * >= 1, default 1); `seed` (default 0); `groups`, one key per row, rows sharing a key staying in one fold.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly folds?: number
  readonly repeats?: number
  readonly seed?: number
  readonly groups?: ReadonlyArray<string | number>
}

interface Unit {
  readonly rows: ReadonlyArray<number>
  /** The tags any of its rows has. */
  readonly tags: ReadonlyArray<number>
}

const invalid = (field: string, message: string) => new TrainerError({ reason: "InvalidData", field, message })

const unitsOf = (truth: Matrix.Matrix, groups: Options["groups"]): Array<Unit> => {
  const byKey = new Map<string | number, Array<number>>()
  for (let i = 0; i < truth.rows; i++) {
    const key = groups === undefined ? i : groups[i]!
    const rows = byKey.get(key)
    if (rows) rows.push(i)
    else byKey.set(key, [i])
  }
  return [...byKey.values()].map((rows) => ({
    rows,
    tags: Array.from({ length: truth.cols }, (_, t) => t).filter((t) => rows.some((i) => truth.data[i * truth.cols + t] === 1))
  }))
}

/** The indices of `values`' largest entries (within 1e-9, desired counts being fractions). */
const largest = (candidates: ReadonlyArray<number>, value: (f: number) => number): Array<number> => {
  const best = Math.max(...candidates.map(value))
  return candidates.filter((f) => value(f) >= best - 1e-9)
}

/** One repeat's assignment of units to `k` folds (see the module's description). */
const stratify = (all: ReadonlyArray<Unit>, numTags: number, k: number, seed: number): Int32Array => {
  const random = Random.make(seed)
  const assignment = new Int32Array(all.length).fill(-1)
  const rowsWanted = new Array<number>(k).fill(all.reduce((a, u) => a + u.rows.length, 0) / k)
  const left = new Array<number>(numTags).fill(0)
  for (const u of all) for (const t of u.tags) left[t] += u.rows.length
  const tagWanted = Array.from({ length: k }, () => left.map((count) => count / k))
  const folds = Array.from({ length: k }, (_, f) => f)
  const place = (j: number, f: number) => {
    const u = all[j]!
    assignment[j] = f
    rowsWanted[f] -= u.rows.length
    for (const t of u.tags) {
      tagWanted[f]![t] -= u.rows.length
      left[t] -= u.rows.length
    }
  }
  const pick = (tied: ReadonlyArray<number>) => (tied.length === 1 ? tied[0]! : tied[random.int(tied.length)]!)
  for (;;) {
    let tag = -1
    for (let t = 0; t < numTags; t++) if (left[t]! > 0 && (tag < 0 || left[t]! < left[tag]!)) tag = t
    if (tag < 0) break
    const members = random.shuffle(all.flatMap((u, j) => (assignment[j] < 0 && u.tags.includes(tag) ? [j] : [])))
    for (const j of members) {
      place(j, pick(largest(largest(folds, (f) => tagWanted[f]![tag]!), (f) => rowsWanted[f]!)))
    }
  }
  for (const j of random.shuffle(all.flatMap((_, j) => (assignment[j] < 0 ? [j] : [])))) {
    place(j, pick(largest(folds, (f) => rowsWanted[f]!)))
  }
  return assignment
}

/**
 * The folds for `truth` (`n x tags`, 1 where a row has a tag, else 0), as described above. Fails with `TrainerError`
 * `InvalidData` naming the option out of range, or `truth` when it has fewer than two units.
 *
 * @since 0.2.0
 * @category constructors
 */
export const plan = (truth: Matrix.Matrix, options: Options = {}): Effect.Effect<CrossValidation.Plan, TrainerError> =>
  Effect.suspend((): Effect.Effect<CrossValidation.Plan, TrainerError> => {
    const maxFolds = options.folds ?? 5
    const repeats = options.repeats ?? 1
    const seed = options.seed ?? 0
    if (!Number.isInteger(maxFolds) || maxFolds < 2) return invalid("options.folds", `folds must be an integer >= 2, got ${maxFolds}`)
    if (!Number.isInteger(repeats) || repeats < 1) return invalid("options.repeats", `repeats must be an integer >= 1, got ${repeats}`)
    if (options.groups !== undefined && options.groups.length !== truth.rows) {
      return invalid("options.groups", `${options.groups.length} group keys for ${truth.rows} rows`)
    }
    const all = unitsOf(truth, options.groups)
    if (all.length < 2) return invalid("truth", `${all.length} ${options.groups ? "group" : "sample"}; cross-validation needs at least 2`)
    const k = Math.min(maxFolds, all.length)
    const folds = Array.from({ length: repeats }, (_, r) => toFolds(all, stratify(all, truth.cols, k, Random.derive(seed, r)), k, r)).flat()
    return Effect.succeed({ k, repeats, leaveOneOut: k === truth.rows, folds })
  })
