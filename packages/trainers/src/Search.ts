/**
 * Cross-validated search over backbones, heads and their params, on precomputed embeddings (one matrix per backbone
 * id; the search never embeds).
 *
 * Strategies implement one hook, `run(evaluate, context)`: `evaluate(candidates, { rows })` cross-validates each
 * candidate (on a stratified subsample of `rows` when given) and returns its leaderboard entries. Grid, random and
 * successive halving differ only in what they ask for. Every candidate evaluated on the same rows shares one fold
 * plan, so comparisons are paired.
 *
 * The default strategy is successive halving over the grid of the space, one bracket per feature set: every
 * backbone (or concatenation) keeps its own best candidates up to the last rung, so a wide feature set that scores
 * lower on a small early rung is not dropped before it is seen on all rows. With 200 rows it is a grid on 67 rows and
 * the best third of each feature set on all 200; with thousands of rows only the last few candidates pay for
 * full-size fits.
 *
 * Selection (the one-standard-error rule, counted in images): the leader is the highest `metric` (default macro-F1)
 * on out-of-fold predictions. A candidate is tied with it when its out-of-fold mistakes exceed the leader's by at most
 * `max(ties.images, ties.standardErrors * SE)` images, where `SE = sqrt(n p (1 - p))` is the standard error of the
 * leader's mistake count on `n` rows at its error rate `p` (default: one image, one standard error). Mistakes are
 * weighted by label (`Entry.weightedMistakes`: each label weighs the same in all, as in macro-F1); on balanced labels
 * that is the plain count. Among tied candidates log loss decides, which scores every probability and tells them
 * apart better than a mistake or two; but only by more than noise: the tied candidates whose log loss is within
 * `ties.standardErrors` standard errors of the lowest (of the image-by-image paired difference) are equal, and the
 * earliest listed of them wins (spaces list the preferred candidates first: the first backbone, the plainest head).
 * On 10 images every candidate is often perfect out of fold and log losses differ by noise; the rule then keeps the
 * first candidate instead of a lucky one. Entries on fewer rows (early successive-halving rungs) rank below entries
 * on all rows. The best candidate is refit on every row: `run` does both, `select` and `refit` are the two apart.
 *
 * The budget counts work, not time: `budget` is the most rows scored, summed over the candidates cross-validated
 * (a candidate cross-validated on `r` rows costs `r`). A candidate that would pass it is skipped, so the result is the
 * same on a busy machine and an idle one. The selection is always made on all rows: when the budget stopped the
 * strategy before any candidate reached them, the best candidate so far is cross-validated on all rows anyway.
 * Deterministic given the seed.
 *
 * After the strategy, two refinements can join the leaderboard and compete under the same rule:
 *
 * - **Augmented probe** (`Data.views`): the best `augmentTop` full-size candidates whose backbone has augmented
 *   views are cross-validated again, training also on the views of their training images (never scoring them).
 * - **Probability ensemble** (`Options.ensemble`): the mean of the probabilities of the best plain full-size entry
 *   of each member backbone, read from the columns of their concatenation (a member the strategy stopped on fewer
 *   rows is cross-validated on all rows first). Its out-of-fold probabilities are the mean of its members' (same
 *   plan, same fold seeds), so it costs no further fitting until it wins.
 *
 * @since 0.1.0
 */
import type { Head, Metric, TextTower } from "@loupe/core"
import { Matrix, Progress } from "@loupe/core"
import { Classification } from "@loupe/metrics"
import { Clock, Effect } from "effect"
import * as CrossValidation from "./CrossValidation.js"
import * as Heads from "./Heads.js"
import * as Random from "./internal/Random.js"
import * as MultiBackbone from "./MultiBackbone.js"
import * as SearchSpace from "./SearchSpace.js"
import { TrainerError } from "./TrainerError.js"

/**
 * What the search runs on: embeddings per backbone id (rows aligned with `y`), the labels `y` in `0..numClasses - 1`,
 * optional row weights, and optionally the embeddings of the images' mirror images and augmented views per backbone.
 * `run` fails with `TrainerError` `InvalidData` naming `embeddings.<id>` or `mirrored.<id>` when a matrix's rows do
 * not match the labels.
 *
 * @since 0.1.0
 * @category models
 */
export interface Data {
  /** Embeddings per backbone id, rows aligned with `y`. */
  readonly embeddings: ReadonlyMap<string, Matrix.Matrix>
  readonly y: Int32Array
  readonly numClasses: number
  readonly weights?: Float32Array
  /**
   * Embeddings of the images' mirror images per backbone, rows aligned with `embeddings`: when given, every
   * candidate trains on both and scores the mean of both (`CrossValidation.Data.mirrored`).
   */
  readonly mirrored?: ReadonlyMap<string, Matrix.Matrix>
  /** Augmented views of the images per backbone (`CrossValidation.Views`): enables the augmented-probe refinement. */
  readonly views?: ReadonlyMap<string, CrossValidation.Views>
  /**
   * The labels' zero-shot classifier per backbone id with a text tower (`TextTower.ZeroShotPrior`): the training sets
   * of that feature set carry it, for the heads built on it (`Heads.zeroShotHeads`).
   *
   * @since 0.2.0
   */
  readonly zeroShot?: ReadonlyMap<string, TextTower.ZeroShotPrior>
}

/**
 * One leaderboard row: a candidate cross-validated on some rows, with its out-of-fold scores, mistakes and
 * probabilities, its timings, and the round that produced it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly candidate: SearchSpace.Candidate
  readonly backboneId: string
  readonly headKind: string
  /** The head's decoded params. */
  readonly params: unknown
  /** Training rows cross-validated (all rows, or fewer on early successive-halving rungs). */
  readonly rows: number
  /** Which search round produced it: a successive-halving rung, the final rung, or a refinement. */
  readonly round: Round
  /** Out-of-fold scores: `macroF1`, `logLoss`, `accuracy` and the selection metric. */
  readonly metrics: Readonly<Record<string, number>>
  /** Out-of-fold mistakes (rows whose most probable class is not their label). */
  readonly mistakes: number
  /** The mistakes weighted by label: one on a label with `m` of the `rows` rows counts `rows / (labels * m)`. */
  readonly weightedMistakes: number
  /** The selection metric's value. */
  readonly score: number
  /** Mean fit time per fold, ms. */
  readonly fitMs: number
  /** Time to cross-validate the candidate, ms. */
  readonly cvMs: number
  /** `rows x numClasses` out-of-fold probabilities (rows in `sampleRows` order). */
  readonly proba: Matrix.Matrix
  /**
   * The folds it was cross-validated on (over its `sampleRows`), and each repeat's out-of-fold probabilities, so each
   * fold can be scored on its own (`CrossValidation.foldScores`).
   *
   * @since 0.2.0
   */
  readonly folds: { readonly plan: CrossValidation.Plan; readonly repeatProba: ReadonlyArray<Matrix.Matrix> }
  /** The rows of the data this entry used, ascending. */
  readonly sampleRows: Int32Array
  /** Position in the order candidates were listed for evaluation; the last tie-break. */
  readonly order: number
  /** Trained also on augmented views (the augmented-probe refinement). */
  readonly augmented: boolean
  /** For the probability ensemble: its members' entries, in concatenation order. */
  readonly ensembleOf?: ReadonlyArray<Entry>
}

/**
 * `rung`: a successive-halving rung, `index` of `of` (the last rung is on all rows); `grid` and `random`: the
 * strategy's one round; `augmented-probe` and `ensemble`: the refinements after the strategy; `full-size`: a candidate
 * cross-validated on all rows because the budget stopped it earlier.
 *
 * @since 0.2.0
 * @category models
 */
export type Round =
  | { readonly kind: "rung"; readonly index: number; readonly of: number }
  | { readonly kind: "grid" | "random" | "augmented-probe" | "ensemble" | "full-size" }

/**
 * `rung 1 of 3`, `grid`, `augmented probe`, ...
 *
 * @since 0.2.0
 * @category utils
 */
export const describeRound = (round: Round): string =>
  round.kind === "rung" ? `rung ${round.index} of ${round.of}` : round.kind.replace("-", " ")

/**
 * What a strategy calls to cross-validate candidates: on a stratified subsample of `rows` rows when given (else all
 * rows), labelled with `round`. It returns their leaderboard entries; a candidate that would pass the budget is
 * skipped, one whose fit fails numerically is recorded in `Result.failures`.
 *
 * @since 0.1.0
 * @category models
 */
export type Evaluate = (
  candidates: ReadonlyArray<SearchSpace.Candidate>,
  options?: { readonly rows?: number; readonly round?: Round }
) => Effect.Effect<ReadonlyArray<Entry>, TrainerError>

/**
 * What a strategy knows about the search: the space, the backbone ids, the number of rows and classes, the folds per
 * cross-validation, the seed, and `rank`, the selection rule.
 *
 * @since 0.1.0
 * @category models
 */
export interface Context {
  readonly space: SearchSpace.SearchSpace
  readonly backboneIds: ReadonlyArray<string>
  readonly rows: number
  readonly numClasses: number
  readonly folds: number
  readonly seed: number
  /** Sorts entries best first, by the search's selection rule. */
  readonly rank: (entries: ReadonlyArray<Entry>) => ReadonlyArray<Entry>
}

/**
 * A search strategy (`grid`, `random`, `successiveHalving`, or your own): a name for the result and a `run` that asks
 * `evaluate` for the candidates it wants scored.
 *
 * @since 0.1.0
 * @category models
 */
export interface Strategy {
  readonly name: string
  readonly run: (evaluate: Evaluate, context: Context) => Effect.Effect<void, TrainerError>
}

/**
 * Search options; every one has a default: the default space (`SearchSpace.defaultSearchSpace`), successive halving,
 * the built-in heads, macro-F1, ties within one image or one standard error, seed 0, no budget, 5-fold
 * cross-validation, one augmented-probe retry, and no ensemble.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly space?: SearchSpace.SearchSpace
  /** Default: `successiveHalving()` (the plain grid when the data is too small for a second rung). */
  readonly strategy?: Strategy
  /** Head plugins by kind (default: the built-in `Heads.heads`). */
  readonly heads?: ReadonlyArray<Head.HeadPlugin>
  /** Selection metric (default macro-F1); log loss breaks ties. */
  readonly metric?: Metric.Metric
  /**
   * Candidates with at most `max(images, standardErrors * SE)` more out-of-fold mistakes than the leader are tied
   * with it, and log loss decides among them (default `{ images: 1, standardErrors: 1 }`; zeros: only candidates
   * with no more mistakes than the leader tie).
   */
  readonly ties?: { readonly images: number; readonly standardErrors: number }
  readonly seed?: number
  /**
   * The most rows scored, summed over the candidates cross-validated (a candidate on `r` rows costs `r`); a
   * candidate that would pass it is skipped. Default: no limit. The refinements are not counted.
   */
  readonly budget?: number
  readonly cv?: Pick<CrossValidation.Options, "folds" | "repeats" | "groups" | "leaveOneOutBelow">
  /** With `Data.views`: how many of the best full-size candidates to retry with augmented views (default 1). */
  readonly augmentTop?: number
  /**
   * Also try the probability ensemble of the best plain entry of each of `members`, whose embeddings concatenated
   * in that order are `Data.embeddings.get(over)`.
   */
  readonly ensemble?: { readonly members: ReadonlyArray<string>; readonly over: string }
}

/**
 * A candidate whose fit failed (numerical trouble), with the error's message; the search went on without it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure {
  readonly candidate: SearchSpace.Candidate
  readonly message: string
}

/**
 * A search's outcome: the leaderboard (best first; entries scored on all rows rank above those from earlier rungs),
 * the best entry and its head refit on all rows, the strategy's name, the elapsed milliseconds, the rows scored (what
 * `budget` limits), whether the budget made the strategy skip a candidate, and the candidates whose fit failed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Result extends Selection {
  /** The best candidate refit on all rows. */
  readonly fitted: Head.FittedHead
}

/**
 * A search's outcome before the refit (`select`): everything of `Result` but the fitted head.
 *
 * @since 0.2.0
 * @category models
 */
export interface Selection {
  /** Best first. */
  readonly leaderboard: ReadonlyArray<Entry>
  readonly best: Entry
  readonly strategy: string
  readonly elapsedMs: number
  /** Rows scored by the strategy (what `budget` limits). */
  readonly work: number
  /** True when the budget made the strategy skip a candidate. */
  readonly budgetExhausted: boolean
  /** Candidates whose fit failed (numerical trouble); the search goes on without them. */
  readonly failures: ReadonlyArray<Failure>
}

/**
 * Evaluates every grid point of the space.
 *
 * @since 0.1.0
 * @category constructors
 */
export const grid = (): Strategy => ({
  name: "grid",
  run: (evaluate, context) => Effect.asVoid(evaluate(SearchSpace.grid(context.space, context.backboneIds), { round: { kind: "grid" } }))
})

/**
 * Evaluates `candidates` distinct random points (default 20), drawn with the search seed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const random = (options: { readonly candidates?: number } = {}): Strategy => ({
  name: "random",
  run: (evaluate, context) =>
    Effect.asVoid(
      evaluate(SearchSpace.randomCandidates(context.space, context.backboneIds, options.candidates ?? 20, Random.derive(context.seed, 3)), {
        round: { kind: "random" }
      })
    )
})

/**
 * Successive halving (Jamieson & Talwalkar 2016) with training rows as the resource, one bracket per feature set
 * (`backbone.id`): every grid point on `rows / factor^R` rows, the best `1 / factor` of each feature set's on `factor`
 * times more, ..., the last rung on all rows. `minRows` (default `max(30, 4 * folds)` rows per label) bounds the first
 * rung, so every fold of a small rung still sees each label a few times.
 *
 * @since 0.1.0
 * @category constructors
 */
export const successiveHalving = (options: { readonly factor?: number; readonly minRows?: number } = {}): Strategy => ({
  name: "successive-halving",
  run: (evaluate, context) =>
    Effect.gen(function*() {
      const factor = options.factor ?? 3
      const minRows = Math.min(context.rows, options.minRows ?? Math.max(30, 4 * context.numClasses * context.folds))
      const rungs = Math.max(0, Math.floor(Math.log(context.rows / minRows) / Math.log(factor)))
      const featureSet = (c: SearchSpace.Candidate) => String(c["backbone.id"])
      let candidates = SearchSpace.grid(context.space, context.backboneIds)
      for (let r = 0; r <= rungs && candidates.length > 0; r++) {
        const rows = r === rungs ? context.rows : Math.round(context.rows / Math.pow(factor, rungs - r))
        const entries = yield* evaluate(candidates, { rows, round: { kind: "rung", index: r + 1, of: rungs + 1 } })
        if (r < rungs) {
          const brackets = new Map<string, Array<Entry>>()
          for (const e of context.rank(entries)) {
            const bracket = brackets.get(featureSet(e.candidate)) ?? []
            bracket.push(e)
            brackets.set(featureSet(e.candidate), bracket)
          }
          const kept = new Set(
            [...brackets.values()].flatMap((b) => b.slice(0, Math.ceil(b.length / factor))).map((e) => SearchSpace.key(e.candidate))
          )
          // In the order the space lists them, so ties keep preferring the simpler candidate.
          candidates = candidates.filter((c) => kept.has(SearchSpace.key(c)))
        }
      }
    })
})

const fail = (reason: TrainerError["reason"], field: string, message: string) => new TrainerError({ reason, field, message })

/** A stratified subsample of `rows` rows (at least 2 per class), ascending. */
const subsample = (y: Int32Array, numClasses: number, rows: number, seed: number): Int32Array => {
  if (rows >= y.length) return Int32Array.from(y, (_, i) => i)
  const random = Random.make(seed)
  const picked: Array<number> = []
  for (let c = 0; c < numClasses; c++) {
    const members = random.shuffle(Array.from(y, (label, i) => (label === c ? i : -1)).filter((i) => i >= 0))
    const take = Math.min(members.length, Math.max(2, Math.round((rows * members.length) / y.length)))
    picked.push(...members.slice(0, take))
  }
  return Int32Array.from(picked).sort()
}

/**
 * A score every candidate gets, from `@loupe/metrics` without input checks: the search made the probabilities itself
 * and scores thousands of candidates.
 */
const scoreNamed = (name: "accuracy" | "logLoss" | "macroF1"): Metric.Metric =>
  Classification.uncheckedMetrics.find((m) => m.name === name)!

/**
 * Accuracy (`@loupe/metrics`' `Classification.accuracy`), as a selection `metric`.
 *
 * @since 0.1.0
 */
export const accuracy: Metric.Metric = scoreNamed("accuracy")
/**
 * Log loss, probabilities clipped below at 1e-15 (`Classification.logLoss`), as a selection `metric`.
 *
 * @since 0.1.0
 */
export const logLoss: Metric.Metric = scoreNamed("logLoss")
/**
 * Macro-F1 (`Classification.averages(...).macro.f1`), the default selection `metric`.
 *
 * @since 0.1.0
 */
export const macroF1: Metric.Metric = scoreNamed("macroF1")

/** The scores in every entry's `metrics`, in this order, besides the selection metric. */
/** Every row of one backbone's embeddings (and mirror images, and with `augmented` its views), with the labels. */
const rowsOf = (data: Data, backboneId: string, augmented: boolean): CrossValidation.Data => {
  const mirrored = data.mirrored?.get(backboneId)
  const views = augmented ? data.views?.get(backboneId) : undefined
  const zeroShot = data.zeroShot?.get(backboneId)
  return {
    x: data.embeddings.get(backboneId)!,
    y: data.y,
    numClasses: data.numClasses,
    ...(data.weights ? { weights: data.weights } : {}),
    ...(mirrored ? { mirrored } : {}),
    ...(views ? { views } : {}),
    ...(zeroShot ? { zeroShot } : {})
  }
}

const scored = [macroF1, logLoss, accuracy]

/**
 * Runs a search on `data` and refits the best candidate on every row. Deterministic given `options.seed`. Fails with
 * `TrainerError`: `InvalidParams` for an invalid space, `InvalidData` for embeddings whose rows do not match the
 * labels (or an ensemble whose members are not the columns of `over`), `Unknown` for a head kind or backbone id the
 * search does not have, and `TrainingFailed` when no candidate could be evaluated within the budget or the final refit
 * fails.
 *
 * @since 0.1.0
 * @category search
 */
export const run = (data: Data, options: Options = {}): Effect.Effect<Result, TrainerError> =>
  Effect.flatMap(select(data, options), (selection) =>
    Effect.map(refit(data, selection.best, options), (fitted): Result => ({ ...selection, fitted }))).pipe(Effect.withSpan("Search.run"))

/**
 * The search of `run` without its refit: cross-validates the candidates and ranks them; `refit` fits the best one
 * afterwards (possibly elsewhere, from its `Refittable` description). Fails as `run` does, but for the refit.
 *
 * @since 0.2.0
 * @category search
 */
export const select = (data: Data, options: Options = {}): Effect.Effect<Selection, TrainerError> =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const space = options.space ?? SearchSpace.defaultSearchSpace
    yield* SearchSpace.validate(space)
    const strategy = options.strategy ?? successiveHalving()
    const metric = options.metric ?? macroF1
    const seed = options.seed ?? 0
    const n = data.y.length
    const backboneIds = [...data.embeddings.keys()]
    if (backboneIds.length === 0) return yield* fail("InvalidData", "embeddings", "no embeddings to search on")
    for (const [id, x] of data.embeddings) {
      if (x.rows !== n) return yield* fail("InvalidData", `embeddings.${id}`, `${id}: ${x.rows} rows for ${n} labels`)
      const mirrored = data.mirrored?.get(id)
      if (data.mirrored && mirrored?.rows !== n) {
        return yield* fail("InvalidData", `mirrored.${id}`, `${id}: ${mirrored?.rows ?? 0} mirror-image rows for ${n} labels`)
      }
    }
    const dataOf = (backboneId: string, augmented = false) => rowsOf(data, backboneId, augmented)
    /** Out-of-fold scores and mistakes of `proba` (rows `sampleRows`). */
    const scoresOf = (sampleRows: Int32Array, proba: Matrix.Matrix) => {
      const input = { yTrue: Int32Array.from(sampleRows, (i) => data.y[i]!), proba, numClasses: data.numClasses }
      const metrics: Record<string, number> = {}
      for (const m of [...scored, metric]) metrics[m.name] = m.compute(input)
      // A mistake on a label counts `rows / (labels * its rows)` in `weightedMistakes`, so one unit is one average
      // image and a model that ignores a rare label cannot tie with one that learns it.
      const perLabel = new Array<number>(data.numClasses).fill(0)
      for (const label of input.yTrue) perLabel[label]++
      const present = perLabel.filter((count) => count > 0).length
      let mistakes = 0
      let weightedMistakes = 0
      for (let i = 0; i < sampleRows.length; i++) {
        const label = input.yTrue[i]!
        if (Matrix.argmaxRow(proba, i) !== label) {
          mistakes++
          weightedMistakes += sampleRows.length / (present * perLabel[label]!)
        }
      }
      return { metrics, score: metrics[metric.name]!, mistakes, weightedMistakes }
    }
    const headsByKind = new Map((options.heads ?? Heads.heads).map((h) => [h.kind, h]))
    const compare = (a: Entry, b: Entry) =>
      b.rows - a.rows ||
      (metric.higherIsBetter ? b.score - a.score : a.score - b.score) ||
      a.metrics["logLoss"]! - b.metrics["logLoss"]! ||
      a.order - b.order
    const ties = options.ties ?? { images: 1, standardErrors: 1 }
    /** Per-row log losses of an entry's out-of-fold probabilities, kept once computed. */
    const rowLosses = new WeakMap<Entry, Float64Array>()
    const lossesOf = (e: Entry): Float64Array => {
      let losses = rowLosses.get(e)
      if (losses === undefined) {
        losses = Float64Array.from(e.sampleRows, (row, i) => -Math.log(Math.max(e.proba.data[i * e.proba.cols + data.y[row]!]!, 1e-15)))
        rowLosses.set(e, losses)
      }
      return losses
    }
    /** Mean per-row log loss of `e` minus that of `base` (same rows). */
    const logLossGap = (e: Entry, base: Entry) => e.metrics["logLoss"]! - base.metrics["logLoss"]!
    /** Standard error of the mean paired difference of per-row log losses between `e` and `base`. */
    const logLossGapSE = (e: Entry, base: Entry) => {
      const [a, b] = [lossesOf(e), lossesOf(base)]
      const n = a.length
      if (n < 2 || b.length !== n) return 0
      let mean = 0
      for (let i = 0; i < n; i++) mean += (a[i]! - b[i]!) / n
      let squares = 0
      for (let i = 0; i < n; i++) squares += (a[i]! - b[i]! - mean) ** 2
      return Math.sqrt(squares / (n - 1) / n)
    }
    /** How many more mistakes than `leader`'s still tie with it: one image, or one standard error of its count. */
    const tieBand = (leader: Entry) => {
      const p = Math.min(1, leader.weightedMistakes / leader.rows)
      return Math.max(ties.images, ties.standardErrors * Math.sqrt(leader.rows * p * (1 - p)))
    }
    /**
     * Best first: by rows, then score; in each rows group the entries tied with the group's leader (`tieBand`) come
     * first, by log loss.
     */
    const rank = (entries: ReadonlyArray<Entry>): ReadonlyArray<Entry> => {
      const sorted = [...entries].sort(compare)
      const out: Array<Entry> = []
      for (let start = 0; start < sorted.length;) {
        const rows = sorted[start]!.rows
        let end = start
        while (end < sorted.length && sorted[end]!.rows === rows) end++
        const group = sorted.slice(start, end)
        const leader = group[0]!
        const band = tieBand(leader)
        const isTied = (e: Entry) => e.weightedMistakes - leader.weightedMistakes <= band + 1e-9
        const tied = group.filter(isTied).sort((a, b) => a.metrics["logLoss"]! - b.metrics["logLoss"]! || a.order - b.order)
        // Log loss decides among the tied only where its difference is more than noise: those within one standard
        // error of the lowest (paired, image by image) are equal, and the earliest listed of them wins.
        const lowest = tied[0]!
        const close = tied.filter((e) => ties.standardErrors > 0 && logLossGap(e, lowest) <= ties.standardErrors * logLossGapSE(e, lowest))
        const closeSet = new Set(close)
        close.sort((a, b) => a.order - b.order)
        out.push(...close, ...tied.filter((e) => !closeSet.has(e)), ...group.filter((e) => !isTied(e)))
        start = end
      }
      return out
    }

    const plans = new Map<number, { readonly sampleRows: Int32Array; readonly plan: CrossValidation.Plan }>()
    const planFor = (rows: number) =>
      Effect.gen(function*() {
        const cached = plans.get(rows)
        if (cached) return cached
        const sampleRows = subsample(data.y, data.numClasses, rows, Random.derive(seed, 2, rows))
        const groups = options.cv?.groups
        const plan = yield* CrossValidation.plan(Int32Array.from(sampleRows, (i) => data.y[i]!), data.numClasses, {
          ...options.cv,
          ...(groups ? { groups: Array.from(sampleRows, (i) => groups[i]!) } : {}),
          seed: Random.derive(seed, 1)
        })
        const entry = { sampleRows, plan }
        plans.set(rows, entry)
        return entry
      })

    /**
     * The folds one feature set is cross-validated on (rows copied and standardised once), the same value for
     * consecutive candidates of that feature set; only the latest is kept, so one feature set's folds are alive at a
     * time.
     */
    let latestFolds:
      | { readonly backboneId: string; readonly augmented: boolean; readonly sampleRows: Int32Array; readonly folds: CrossValidation.Folds }
      | undefined
    const foldsOf = (backboneId: string, augmented: boolean, sampleRows: Int32Array, plan: CrossValidation.Plan): CrossValidation.Folds => {
      if (latestFolds?.backboneId === backboneId && latestFolds.augmented === augmented && latestFolds.sampleRows === sampleRows) {
        return latestFolds.folds
      }
      const folds = CrossValidation.prepare(CrossValidation.subset(dataOf(backboneId, augmented), sampleRows), plan)
      latestFolds = { backboneId, augmented, sampleRows, folds }
      return folds
    }

    const entries: Array<Entry> = []
    const failures: Array<Failure> = []
    let budgetExhausted = false
    let work = 0
    let order = 0
    const evaluateOne = (candidate: SearchSpace.Candidate, rows: number, round: Round, augmented: boolean, position: number) =>
      Effect.gen(function*() {
        const { backboneId, headKind, headParams } = SearchSpace.resolve(candidate)
        const head = headsByKind.get(headKind)
        if (!head) {
          return yield* fail("Unknown", "head.kind", `unknown head "${headKind}"; known: ${[...headsByKind.keys()].join(", ")}`)
        }
        if (!data.embeddings.has(backboneId)) {
          return yield* fail("Unknown", "backbone.id", `no embeddings for backbone "${backboneId}"; have: ${backboneIds.join(", ")}`)
        }
        const params = yield* Heads.decodeParams(head, headParams)
        const { plan, sampleRows } = yield* planFor(rows)
        const folds = foldsOf(backboneId, augmented, sampleRows, plan)
        const t0 = yield* Clock.currentTimeMillis
        const cv = yield* CrossValidation.runPlan(head, params, folds, Random.derive(seed, 4))
        const cvMs = (yield* Clock.currentTimeMillis) - t0
        const entry: Entry = {
          candidate,
          backboneId,
          headKind,
          params,
          rows: sampleRows.length,
          round,
          ...scoresOf(sampleRows, cv.proba),
          fitMs: cv.fitMs / cv.folds.length,
          cvMs,
          proba: cv.proba,
          folds: { plan, repeatProba: cv.repeatProba },
          sampleRows,
          order: position,
          augmented
        }
        return entry
      })

    /** Cross-validates `candidates` on `rows` rows; `counted` ones are charged to the budget and skipped past it. */
    const evaluateAll = (
      candidates: ReadonlyArray<SearchSpace.Candidate>,
      rows: number,
      round: Round,
      options: { readonly augmented: boolean; readonly counted: boolean }
    ) =>
      Effect.gen(function*() {
        const out: Array<Entry> = []
        const firstOrder = order
        order += candidates.length
        // Grouped by feature set, so its folds are prepared once (`rowsOf`); `order` keeps the listed order.
        const byFeatureSet = [...candidates.entries()].sort(([i, a], [j, b]) =>
          backboneIds.indexOf(String(a["backbone.id"])) - backboneIds.indexOf(String(b["backbone.id"])) || i - j
        )
        for (const [done, [i, candidate]] of byFeatureSet.entries()) {
          if (options.counted) {
            const cost = (yield* planFor(rows)).sampleRows.length
            if (budget !== undefined && work + cost > budget) {
              budgetExhausted = true
              continue
            }
            work += cost
          }
          const result = yield* evaluateOne(candidate, rows, round, options.augmented, firstOrder + i).pipe(
            Effect.map((e) => e as Entry | undefined),
            Effect.catchIf((e) => e.reason === "TrainingFailed", (e) =>
              Effect.sync(() => {
                failures.push({ candidate, message: e.message })
                return undefined
              }))
          )
          if (result) {
            out.push(result)
            entries.push(result)
          }
          yield* Progress.report({ stage: "search", done: done + 1, total: candidates.length, detail: SearchSpace.key(candidate) })
        }
        return out
      })
    const budget = options.budget
    const evaluate: Evaluate = (candidates, evalOptions) =>
      evaluateAll(candidates, Math.min(n, evalOptions?.rows ?? n), evalOptions?.round ?? { kind: "grid" }, { augmented: false, counted: true })

    /** A candidate trained on the images alone: no augmented views, not an ensemble. */
    const isPlain = (e: Entry) => !e.augmented && e.ensembleOf === undefined
    /** The best plain full-size entries, best first. */
    const plainFullSize = () => rank(entries).filter((e) => e.rows === n && isPlain(e))

    /** The probability ensemble of the best plain entry of each member (undefined when one has none). */
    const ensembleEntry = (spec: NonNullable<Options["ensemble"]>) =>
      Effect.gen(function*() {
        const over = data.embeddings.get(spec.over)
        if (!over) return yield* fail("InvalidData", "ensemble.over", `no embeddings for "${spec.over}"; have: ${backboneIds.join(", ")}`)
        const width = spec.members.reduce((sum, id) => sum + (data.embeddings.get(id)?.cols ?? NaN), 0)
        if (width !== over.cols) {
          return yield* fail("InvalidData", "ensemble.members", `[${spec.members.join(", ")}] are not the ${over.cols} columns of "${spec.over}"`)
        }
        // Each member's best plain candidate, cross-validated on all rows if the strategy stopped it on fewer.
        const members: Array<Entry> = []
        for (const id of spec.members) {
          const full = plainFullSize().find((e) => e.backboneId === id)
          const best = full ?? rank(entries).find((e) => e.backboneId === id && isPlain(e))
          const member = full ??
            (best ? (yield* evaluateAll([best.candidate], n, { kind: "full-size" }, { augmented: false, counted: false }))[0] : undefined)
          if (member === undefined) return undefined
          members.push(member)
        }
        if (members.length < 2) return undefined
        const proba = Matrix.make(n, data.numClasses)
        for (const m of members) for (let i = 0; i < proba.data.length; i++) proba.data[i] += m.proba.data[i]! / members.length
        const sampleRows = members[0]!.sampleRows
        // Every member was cross-validated on the same plan (all rows), so the ensemble's repeats are theirs averaged.
        const { plan } = members[0]!.folds
        const repeatProba = members[0]!.folds.repeatProba.map((_, r) => {
          const mean = Matrix.make(n, data.numClasses)
          for (const m of members) {
            const own = m.folds.repeatProba[r]!
            for (let i = 0; i < mean.data.length; i++) mean.data[i] += own.data[i]! / members.length
          }
          return mean
        })
        const entry: Entry = {
          candidate: { "backbone.id": spec.over, "head.kind": MultiBackbone.ensembleKind },
          backboneId: spec.over,
          headKind: MultiBackbone.ensembleKind,
          params: { members: members.map((m) => ({ kind: m.headKind, params: m.params })) },
          rows: n,
          round: { kind: "ensemble" },
          ...scoresOf(sampleRows, proba),
          fitMs: members.reduce((sum, m) => sum + m.fitMs, 0),
          cvMs: 0,
          proba,
          folds: { plan, repeatProba },
          sampleRows,
          order: order++,
          augmented: false,
          ensembleOf: members
        }
        return entry
      })

    const folds = options.cv?.folds ?? 5
    yield* strategy.run(evaluate, { space, backboneIds, rows: n, numClasses: data.numClasses, folds, seed, rank })
    // The selection is made on all rows: if the budget stopped every candidate short of them, the best so far goes on.
    const leading = rank(entries)[0]
    if (leading !== undefined && leading.rows < n) {
      yield* evaluateAll([leading.candidate], n, { kind: "full-size" }, { augmented: false, counted: false })
    }
    if (data.views) {
      const views = data.views
      const top = plainFullSize().filter((e) => views.has(e.backboneId)).slice(0, options.augmentTop ?? 1)
      yield* evaluateAll(top.map((e) => e.candidate), n, { kind: "augmented-probe" }, { augmented: true, counted: false })
    }
    if (options.ensemble) {
      const ensemble = yield* ensembleEntry(options.ensemble)
      if (ensemble) entries.push(ensemble)
    }
    const leaderboard = rank(entries)
    const best = leaderboard[0]
    if (!best) {
      return yield* fail(
        "TrainingFailed",
        "search",
        budgetExhausted ? `the budget (${budget} rows scored) is smaller than one candidate on ${n} rows` : "no candidate could be evaluated"
      )
    }
    const elapsedMs = (yield* Clock.currentTimeMillis) - start
    return { leaderboard, best, strategy: strategy.name, elapsedMs, work, budgetExhausted, failures }
  }).pipe(Effect.withSpan("Search.select"))

/**
 * What `refit` needs of a selected candidate: its grid point, whether it also trained on augmented views, and for
 * the probability ensemble its members (an `Entry` is one).
 *
 * @since 0.2.0
 * @category models
 */
export interface Refittable {
  readonly candidate: SearchSpace.Candidate
  readonly augmented: boolean
  readonly ensembleOf?: ReadonlyArray<Refittable>
}

/**
 * Refit a selected candidate on every row of `data`: its head, or each member's head for the ensemble, with the
 * heads and the seed the search had (`options.heads`, `options.seed`). Fails with `TrainerError` `Unknown` for a
 * head kind or backbone id that `options.heads` or `data` lacks, `InvalidParams` for params the head rejects, and
 * `TrainingFailed` when the fit fails.
 *
 * @since 0.2.0
 * @category search
 */
export const refit = (
  data: Data,
  chosen: Refittable,
  options: Pick<Options, "heads" | "seed"> = {}
): Effect.Effect<Head.FittedHead, TrainerError> =>
  Effect.gen(function*() {
    if (chosen.ensembleOf !== undefined) {
      let offset = 0
      const members = yield* Effect.forEach(chosen.ensembleOf, (m) =>
        Effect.map(refit(data, m, options), (head) => {
          const columns = [[offset, offset + head.dim] as const]
          offset += head.dim
          return { head, columns, weight: 1 }
        }))
      return yield* MultiBackbone.makeEnsembleHead(offset, members)
    }
    const { backboneId, headKind, headParams } = SearchSpace.resolve(chosen.candidate)
    const head = (options.heads ?? Heads.heads).find((h) => h.kind === headKind)
    if (head === undefined) return yield* fail("Unknown", "head.kind", `no head "${headKind}" to refit`)
    if (!data.embeddings.has(backboneId)) return yield* fail("Unknown", "backbone.id", `no embeddings for "${backboneId}" to refit on`)
    const params = yield* Heads.decodeParams(head, headParams)
    return yield* CrossValidation.refit(head, params, rowsOf(data, backboneId, chosen.augmented), Random.derive(options.seed ?? 0, 5))
  }).pipe(Effect.withSpan("Search.refit"))
