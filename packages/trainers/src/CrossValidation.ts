/**
 * Stratified k-fold cross-validation on embeddings, with out-of-fold probabilities kept for metrics, calibration and
 * the data engine.
 *
 * - **k adapts to the data**: `k = folds` (default 5) when every class has at least that many samples; otherwise
 *   leave-one-out when there are at most `leaveOneOutBelow` samples (default 50), else `k` is the size of the
 *   smallest class (at least 2). Every class needs two samples.
 * - **Groups** (optional, one key per row: a content hash, the source image of an augmented view) are never split:
 *   a group is one unit, labelled by its most frequent label, and counts once above. Without groups every row is
 *   its own unit.
 * - **Stratification**: per class, units are shuffled with the seed, then placed largest first into the fold that
 *   holds the fewest rows of that class (then the fewest rows, then the lowest index), so class counts per fold
 *   differ by at most one for single-row units.
 * - **Repeats** reshuffle with a derived seed; out-of-fold probabilities are averaged over repeats. Leave-one-out is
 *   deterministic and runs once.
 * - **Mirror images** (`Data.mirrored`, `Pipeline`'s `mirror`): a fold's head trains on the rows of its images and
 *   of their mirror images, and a held-out image scores the mean of both; an image and its mirror image are never
 *   in different folds.
 * - **Augmented views** (`Data.views`, the augmented probe): extra training rows, each a view of one image. A fold's
 *   head also trains on the views of its training images; views are never scored, and a held-out image's views are
 *   held out with it.
 *
 * @since 0.1.0
 */
import { Head, Matrix, Pipeline, Progress } from "@loupe/core"
import type { Metric } from "@loupe/core"
import { Effect } from "effect"
import { toFolds } from "./internal/Folds.js"
import * as Random from "./internal/Random.js"
import * as Scaler from "./internal/Scaler.js"
import { TrainerError } from "./TrainerError.js"

/**
 * How the folds are planned: `folds`, the largest number of folds (an integer >= 2, default 5); `repeats`, shuffled
 * repetitions of the whole k-fold (an integer >= 1, default 1); `seed` (default 0); `groups`, one key per row, rows
 * sharing a key staying in one fold; `leaveOneOutBelow`, the number of units at or below which leave-one-out replaces
 * a smaller k (default 50). `plan` fails with `TrainerError` `InvalidData` naming the option that is out of range.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The largest number of folds (default 5). */
  readonly folds?: number
  /** Shuffled repetitions of the whole k-fold (default 1). */
  readonly repeats?: number
  readonly seed?: number
  /** One key per row; rows sharing a key stay in one fold. */
  readonly groups?: ReadonlyArray<string | number>
  /** Use leave-one-out when some class is smaller than `folds` and there are at most this many units (default 50). */
  readonly leaveOneOutBelow?: number
}

/**
 * Embedded augmented views: row `r` of `x` is a view of image (row of `Data.x`) `image[r]`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Views {
  readonly x: Matrix.Matrix
  readonly image: Int32Array
}

/**
 * A training set, optionally with the embeddings of its images' mirror images (rows aligned with `x`) and with
 * augmented views that only ever train.
 *
 * @since 0.1.0
 * @category models
 */
export interface Data extends Head.TrainingSet {
  readonly mirrored?: Matrix.Matrix
  readonly views?: Views
}

/** `set` plus the rows of `views`, each with its image's label, weight and group (`image` indexes `set`'s first rows). */
const withViewRows = (set: Head.TrainingSet, views: Views): Head.TrainingSet => {
  const image = views.image
  const groups = set.groups ?? Int32Array.from(set.y, (_, i) => i)
  return {
    ...set,
    x: Matrix.concatRows([set.x, views.x]),
    y: Int32Array.from([...set.y, ...Array.from(image, (i) => set.y[i]!)]),
    ...(set.weights ? { weights: Float32Array.from([...set.weights, ...Array.from(image, (i) => set.weights![i]!)]) } : {}),
    groups: Int32Array.from([...groups, ...Array.from(image, (i) => groups[i]!)])
  }
}

/**
 * The rows a head trains on: the images, their mirror images when there are any (`Head.withMirrorRows`), and their
 * augmented views when there are any.
 *
 * @since 0.1.0
 * @category utils
 */
export const trainingRows = (data: Data): Head.TrainingSet => {
  const { mirrored, views, ...set } = data
  const withMirrors = mirrored === undefined ? set : Head.withMirrorRows(set, mirrored)
  return views === undefined ? withMirrors : withViewRows(withMirrors, views)
}

/** The views of the images `rows`, renumbered to positions in `rows`. */
const viewsOf = (views: Views, rows: ArrayLike<number>): Views => {
  const position = new Map(Array.from(rows, (row, k) => [row, k]))
  const kept = Array.from(views.image.keys()).filter((r) => position.has(views.image[r]!))
  return {
    x: Matrix.takeRows(views.x, kept),
    image: Int32Array.from(kept, (r) => position.get(views.image[r]!)!)
  }
}

/**
 * The rows `rows` of a training set (and of its mirror images and views).
 *
 * @since 0.1.0
 * @category utils
 */
export const subset = (data: Data, rows: ArrayLike<number>): Data => ({
  x: Matrix.takeRows(data.x, rows),
  y: Int32Array.from(rows, (i) => data.y[i]!),
  numClasses: data.numClasses,
  ...(data.weights ? { weights: Float32Array.from(rows, (i) => data.weights![i]!) } : {}),
  ...(data.groups ? { groups: Int32Array.from(rows, (i) => data.groups![i]!) } : {}),
  ...(data.zeroShot ? { zeroShot: data.zeroShot } : {}),
  ...(data.mirrored ? { mirrored: Matrix.takeRows(data.mirrored, rows) } : {}),
  ...(data.views ? { views: viewsOf(data.views, rows) } : {})
})

/**
 * One fold of a plan: its repeat and index within the repeat, and the ascending row indices it trains on (`train`) and
 * holds out (`test`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Fold {
  readonly repeat: number
  readonly index: number
  /** Row indices, ascending. */
  readonly train: Int32Array
  readonly test: Int32Array
}

/**
 * The folds `plan` chose: `k` folds per repeat, `repeats` repetitions (1 for leave-one-out), whether it is
 * leave-one-out, and every fold, repeat by repeat.
 *
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  /** Folds per repeat. */
  readonly k: number
  readonly repeats: number
  readonly leaveOneOut: boolean
  readonly folds: ReadonlyArray<Fold>
}

/**
 * A fold as run, with the time its head took to fit, in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface FoldResult extends Fold {
  readonly fitMs: number
}

/**
 * A cross-validation's outcome: the plan, the out-of-fold probabilities (`n x numClasses`, each row the mean over
 * repeats of the fold that held it out, and each repeat's own), each fold's fit time, and the total fit time in
 * milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Result {
  readonly plan: Plan
  /** `n x numClasses` out-of-fold probabilities, averaged over repeats. */
  readonly proba: Matrix.Matrix
  /**
   * Each repeat's `n x numClasses` out-of-fold probabilities (`proba` is their mean), so each fold can be scored on
   * its own (`foldScores`).
   *
   * @since 0.2.0
   */
  readonly repeatProba: ReadonlyArray<Matrix.Matrix>
  readonly folds: ReadonlyArray<FoldResult>
  /** Total time spent fitting, in milliseconds. */
  readonly fitMs: number
}

interface Unit {
  readonly rows: ReadonlyArray<number>
  readonly label: number
}

const invalid = (field: string, message: string) => new TrainerError({ reason: "InvalidData", field, message })

const units = (y: Int32Array, numClasses: number, groups: Options["groups"]): ReadonlyArray<Unit> => {
  if (groups === undefined) return Array.from(y, (label, i) => ({ rows: [i], label }))
  const byKey = new Map<string | number, Array<number>>()
  groups.forEach((key, i) => {
    const rows = byKey.get(key)
    if (rows) rows.push(i)
    else byKey.set(key, [i])
  })
  return [...byKey.values()].map((rows) => {
    const counts = new Array<number>(numClasses).fill(0)
    for (const i of rows) counts[y[i]!]++
    return { rows, label: counts.indexOf(Math.max(...counts)) }
  })
}

const stratify = (all: ReadonlyArray<Unit>, numClasses: number, k: number, seed: number): Int32Array => {
  const random = Random.make(seed)
  const assignment = new Int32Array(all.length)
  const total = new Array<number>(k).fill(0)
  for (let c = 0; c < numClasses; c++) {
    const members = random.shuffle(all.flatMap((u, j) => (u.label === c ? [j] : [])))
    // Largest first; the sort is stable, so equal sizes keep the shuffled order.
    members.sort((a, b) => all[b]!.rows.length - all[a]!.rows.length)
    const inClass = new Array<number>(k).fill(0)
    for (const j of members) {
      let best = 0
      for (let f = 1; f < k; f++) {
        if (inClass[f]! < inClass[best]! || (inClass[f] === inClass[best] && total[f]! < total[best]!)) best = f
      }
      assignment[j] = best
      inClass[best] += all[j]!.rows.length
      total[best] += all[j]!.rows.length
    }
  }
  return assignment
}

/**
 * The folds for labels `y`, as described above. Fails when a class has fewer than two units.
 *
 * @since 0.1.0
 * @category constructors
 */
export const plan = (y: Int32Array, numClasses: number, options: Options = {}): Effect.Effect<Plan, TrainerError> =>
  Effect.suspend((): Effect.Effect<Plan, TrainerError> => {
    const maxFolds = options.folds ?? 5
    const repeats = options.repeats ?? 1
    const seed = options.seed ?? 0
    if (!Number.isInteger(maxFolds) || maxFolds < 2) return invalid("options.folds", `folds must be an integer >= 2, got ${maxFolds}`)
    if (!Number.isInteger(repeats) || repeats < 1) return invalid("options.repeats", `repeats must be an integer >= 1, got ${repeats}`)
    if (options.groups !== undefined && options.groups.length !== y.length) {
      return invalid("options.groups", `${options.groups.length} group keys for ${y.length} rows`)
    }
    const all = units(y, numClasses, options.groups)
    const perClass = new Array<number>(numClasses).fill(0)
    for (const u of all) perClass[u.label]++
    const smallest = Math.min(...perClass)
    if (smallest < 2) {
      const c = perClass.indexOf(smallest)
      return invalid("data.y", `class ${c} has ${smallest} ${options.groups ? "group" : "sample"}${smallest === 1 ? "" : "s"}; cross-validation needs at least 2`)
    }
    const leaveOneOut = smallest < maxFolds && all.length <= (options.leaveOneOutBelow ?? 50)
    if (leaveOneOut) {
      return Effect.succeed({ k: all.length, repeats: 1, leaveOneOut, folds: toFolds(all, Int32Array.from(all, (_, j) => j), all.length, 0) })
    }
    const k = Math.min(maxFolds, smallest)
    const folds = Array.from({ length: repeats }, (_, r) => toFolds(all, stratify(all, numClasses, k, Random.derive(seed, r)), k, r)).flat()
    return Effect.succeed({ k, repeats, leaveOneOut, folds })
  })

/** A fold's training rows and held-out rows. */
interface FoldRows {
  readonly train: Head.TrainingSet
  readonly held: Data
}

/**
 * A plan and the data it splits, ready to cross-validate heads on (`runPlan`). A search cross-validates every candidate
 * head of a feature set on the same data and plan, so `prepare` copies the folds' rows out once and has each fold's
 * training rows standardised on first use, once (`Scaler.withStandardized`); the search keeps the value while it
 * scores that feature set. Only when all folds' training rows together stay under `keptFoldBytes` (three times that
 * with their Float64 standardised copies), so memory stays bounded on large data, where the heads' fits cost far more
 * than copying anyway; above it each run copies the rows again.
 *
 * @since 0.1.0
 */
export interface Folds {
  readonly data: Data
  readonly plan: Plan
  /** The folds' rows, when kept. */
  readonly rows: ReadonlyArray<FoldRows> | undefined
}

const keptFoldBytes = 64 * 2 ** 20

const foldRowsOf = (data: Data, fold: Fold): FoldRows => ({
  train: trainingRows(subset(data, fold.train)),
  held: subset(data, fold.test)
})

/**
 * `plan`'s folds of `data`, their rows copied out once when they are small enough (see `Folds`).
 *
 * @since 0.1.0
 */
export const prepare = (data: Data, plan: Plan): Folds => {
  const perImage = 1 + (data.mirrored ? 1 : 0) + (data.views ? data.views.x.rows / data.x.rows : 0)
  const bytes = plan.folds.reduce((sum, fold) => sum + fold.train.length, 0) * perImage * data.x.cols * 4
  if (bytes > keptFoldBytes) return { data, plan, rows: undefined }
  const rows = plan.folds.map((fold) => {
    const { held, train } = foldRowsOf(data, fold)
    return { train: Scaler.withStandardized(train), held }
  })
  return { data, plan, rows }
}

const fitFailed = (kind: string, field: string, cause: { readonly message: string }) =>
  new TrainerError({ reason: "TrainingFailed", field, message: `${kind}: ${cause.message}`, cause })

/**
 * Fits `head` on every training fold and predicts its test fold. The head's seed for a fold is derived from
 * `options.seed` (default 0), the repeat and the fold index. Reports progress with stage "cv". Fails with
 * `TrainerError`: `InvalidData` when the folds cannot be planned (see `plan`), `TrainingFailed` naming the fold when a
 * fit or a prediction fails.
 *
 * @since 0.1.0
 * @category cross-validation
 */
export const crossValidate = <P>(
  head: Head.HeadPlugin<P>,
  params: P,
  data: Data,
  options: Options = {}
): Effect.Effect<Result, TrainerError> =>
  Effect.gen(function*() {
    const p = yield* plan(data.y, data.numClasses, options)
    return yield* runPlan(head, params, prepare(data, p), options.seed ?? 0)
  }).pipe(Effect.withSpan("CrossValidation.crossValidate", { attributes: { head: head.kind } }))

/**
 * Runs prepared folds (the search reuses one `Folds` for every candidate of a feature set), each fold's head seeded
 * from `seed` (default 0), the repeat and the fold index. Fails with `TrainerError` `TrainingFailed` naming the fold
 * whose fit or prediction failed.
 *
 * @since 0.1.0
 * @category cross-validation
 */
export const runPlan = <P>(
  head: Head.HeadPlugin<P>,
  params: P,
  folds: Folds,
  seed = 0
): Effect.Effect<Result, TrainerError> =>
  Effect.gen(function*() {
    const { data, plan: p } = folds
    const { numClasses } = data
    const n = data.y.length
    const perRepeat = Array.from({ length: p.repeats }, () => new Float32Array(n * numClasses))
    const results: Array<FoldResult> = []
    let fitMs = 0
    const rows = folds.rows ?? p.folds.map((fold) => foldRowsOf(data, fold))
    for (const [f, fold] of p.folds.entries()) {
      const { train, held } = rows[f]!
      const start = performance.now()
      const fitted = yield* head.fit(train, params, Random.derive(seed, fold.repeat, fold.index)).pipe(
        Effect.mapError((e) => fitFailed(head.kind, `fold ${fold.repeat}.${fold.index}`, e))
      )
      const elapsed = performance.now() - start
      fitMs += elapsed
      const proba = yield* Effect.try({
        try: () => Pipeline.predictProba(fitted, { vectors: held.x, ...(held.mirrored ? { mirrored: held.mirrored } : {}) }),
        catch: (e) => fitFailed(head.kind, `fold ${fold.repeat}.${fold.index}`, { message: String(e) })
      })
      const own = perRepeat[fold.repeat]!
      fold.test.forEach((row, t) => {
        for (let c = 0; c < numClasses; c++) own[row * numClasses + c] = proba.data[t * numClasses + c]!
      })
      results.push({ ...fold, fitMs: elapsed })
      yield* Progress.report({ stage: "cv", done: results.length, total: p.folds.length, detail: head.kind })
    }
    const repeatProba = perRepeat.map((data) => Matrix.make(n, numClasses, data))
    return { plan: p, proba: meanOf(repeatProba), repeatProba, folds: results, fitMs }
  })

/** The element-wise mean of same-shaped matrices (summed in double precision); one matrix is its own mean. */
const meanOf = (matrices: ReadonlyArray<Matrix.Matrix>): Matrix.Matrix => {
  const [first] = matrices
  if (matrices.length === 1) return first!
  const sums = new Float64Array(first!.data.length)
  for (const m of matrices) for (let i = 0; i < sums.length; i++) sums[i] += m.data[i]!
  return Matrix.make(first!.rows, first!.cols, Float32Array.from(sums, (sum) => sum / matrices.length))
}

/**
 * Each fold's own score by `metric`, in `plan.folds` order: the metric of the rows the fold held out, from its
 * repeat's out-of-fold probabilities (`Result.repeatProba`), against their labels `y`. On a leave-one-out plan each
 * fold is one row, so a fold's macro-F1 is 1 (right) or 0 (wrong).
 *
 * @since 0.2.0
 * @category evaluation
 */
export const foldScores = (
  plan: Plan,
  repeatProba: ReadonlyArray<Matrix.Matrix>,
  y: Int32Array,
  metric: Metric.Metric
): ReadonlyArray<number> =>
  plan.folds.map((fold) => {
    const proba = repeatProba[fold.repeat]!
    return metric.compute({
      yTrue: Int32Array.from(fold.test, (row) => y[row]!),
      proba: Matrix.takeRows(proba, fold.test),
      numClasses: proba.cols
    })
  })

/**
 * The standard error of the mean of per-fold `scores` (`foldScores`): their sample standard deviation over the square
 * root of `plan.k`, the folds of one repeat. Repeats score the same rows again, so they add no independent evidence
 * and do not shrink it. 0 when there are fewer than two scores.
 *
 * @since 0.2.0
 * @category evaluation
 */
export const foldStandardError = (plan: Plan, scores: ReadonlyArray<number>): number => {
  const n = scores.length
  if (n < 2) return 0
  const mean = scores.reduce((a, b) => a + b, 0) / n
  const variance = scores.reduce((a, s) => a + (s - mean) ** 2, 0) / (n - 1)
  return Math.sqrt(variance / plan.k)
}

/**
 * The final model: `head` fitted on every sample (and on their mirror images and views when there are any) with `seed`
 * (default 0). Fails with `TrainerError` `TrainingFailed` (field `refit`) when the fit fails.
 *
 * @since 0.1.0
 * @category cross-validation
 */
export const refit = <P>(
  head: Head.HeadPlugin<P>,
  params: P,
  data: Data,
  seed = 0
): Effect.Effect<Head.FittedHead, TrainerError> =>
  head.fit(trainingRows(data), params, seed).pipe(Effect.mapError((e) => fitFailed(head.kind, "refit", e)))
