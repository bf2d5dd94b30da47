/**
 * Fit the best model for a labelled dataset without choosing one: embed with each candidate backbone, search heads
 * and hyperparameters by stratified cross-validation on the embeddings, and refit the winner on every image.
 *
 * With several backbones, their concatenated embeddings (one head on all of them, backbone id `a+b+...`) compete
 * with each backbone alone.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { Dataset, Embedder, Matrix, Pipeline, Registry } from "@loupe/core"
import type { CoreError, Embedder as EmbedderTypes, LoupeConfig, Sample } from "@loupe/core"
import { Classification } from "@loupe/metrics"
import { CrossValidation, Search, SearchSpace } from "@loupe/trainers"
import { AutomlError } from "./AutomlError.js"

export interface FitOptions {
  /** Backbone ids to consider; default: the registered backbones tagged `default`. */
  readonly backbones?: ReadonlyArray<string>
  /** CV folds; adapted down when the smallest class is smaller. Default 5. */
  readonly folds?: number
  readonly seed?: number
  /** Head kinds to search (branches of the default search space); default: every searchable head. */
  readonly heads?: ReadonlyArray<string>
  /** Search budget in milliseconds: no new candidate starts once it is spent (the first always runs). */
  readonly timeBudgetMs?: number
  /**
   * Also embed each image's mirror image: heads train on both and predict the mean of both (`Pipeline`'s
   * `mirror`). Costs one more backbone pass per image, no more decoding. Default false.
   */
  readonly mirror?: boolean
}

/** A backbone and a head with its parameters. */
export interface Candidate {
  readonly backbone: string
  readonly head: { readonly kind: string; readonly params: Record<string, unknown> }
}

export interface LeaderboardRow {
  readonly candidate: Candidate
  readonly accuracy: number
  readonly macroF1: number
  readonly logLoss: number
  readonly fitMs: number
}

export interface FitResult {
  readonly fitted: Pipeline.FittedPipeline
  readonly cv: Classification.Evaluation & { readonly macroF1: number; readonly folds: number }
  readonly selected: Candidate
  /** Every candidate tried, best first. */
  readonly leaderboard: ReadonlyArray<LeaderboardRow>
  /** The selected candidate's out-of-fold probabilities, one row per training sample used. */
  readonly outOfFold: { readonly samples: ReadonlyArray<Sample.Sample>; readonly proba: Matrix.Matrix }
  /** Images that could not be decoded, with the reason. */
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>
  readonly timings: { readonly embedMs: number; readonly trainMs: number }
}

const since = (start: number) => Math.round(performance.now() - start)

const failed = (e: { readonly message: string }) => new AutomlError({ reason: "TrainingFailed", message: e.message, cause: e })

/** Rows of `vectors` (one per embedded sample) for the samples whose ids are in `keep`, in `keep`'s order. */
const alignRows = (embeddings: EmbedderTypes.Embeddings, vectors: Matrix.Matrix, keep: ReadonlyArray<string>): Matrix.Matrix => {
  const rowOf = new Map(embeddings.samples.map((s, i) => [s.id, i]))
  return Matrix.takeRows(vectors, keep.map((id) => rowOf.get(id)!))
}

/** The backbone id the search knows the concatenation of several backbones' embeddings by. */
export const combinedId = (ids: ReadonlyArray<string>): string => ids.join("+")

/** The member backbones of a (possibly combined) backbone id. */
export const membersOf = (id: string): ReadonlyArray<string> => id.split("+")

/** `features` plus, with more than one backbone, their concatenation under `combinedId`. */
const withCombination = (features: Map<string, Matrix.Matrix>): Map<string, Matrix.Matrix> =>
  features.size < 2 ? features : features.set(combinedId([...features.keys()]), Matrix.concatColumns([...features.values()]))

export const fit: (
  dataset: Dataset.Dataset,
  options?: FitOptions
) => Effect.Effect<
  FitResult,
  AutomlError | CoreError.CoreError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope
> = Effect.fn("AutoML.fit")(function*(dataset: Dataset.Dataset, options: FitOptions = {}) {
  const registry = yield* Registry.Registry
  yield* Dataset.validateForTraining(dataset)
  const labels = dataset.labels
  const seed = options.seed ?? 0

  const backboneIds = options.backbones && options.backbones.length > 0
    ? options.backbones
    : registry.backbonesWithTags(["default"]).map((p) => p.info.id)
  if (backboneIds.length === 0) {
    return yield* new AutomlError({ reason: "NoBackbone", message: "No backbone selected and none is tagged `default`" })
  }

  const mirror = options.mirror === true
  const embedStart = performance.now()
  const embedded = yield* Effect.forEach(backboneIds, (id) =>
    Effect.gen(function*() {
      const backbone = yield* Registry.loadBackbone(id)
      return { id, backbone, embeddings: yield* Embedder.embedSamples(backbone, dataset.samples, { mirror }) }
    }))
  const embedMs = since(embedStart)

  // An image that fails to decode fails for every backbone; train on the images every backbone embedded.
  const embeddedBy = embedded.map((e) => new Set(e.embeddings.samples.map((s) => s.id)))
  const samples = dataset.samples.filter((s) => embeddedBy.every((ids) => ids.has(s.id)))
  const skipped = dataset.samples
    .filter((s) => !embeddedBy.every((ids) => ids.has(s.id)))
    .map((s) => ({
      file: s.id,
      reason: embedded.flatMap((e) => e.embeddings.skipped).find((k) => k.sample.id === s.id)?.reason ?? "not embedded"
    }))
  yield* Dataset.validateForTraining(Dataset.make(samples, { labels }))
  const keep = samples.map((s) => s.id)
  const features = withCombination(new Map(embedded.map((e) => [e.id, alignRows(e.embeddings, e.embeddings.vectors, keep)])))
  const mirrored = mirror
    ? withCombination(new Map(embedded.map((e) => [e.id, alignRows(e.embeddings, e.embeddings.mirrored!, keep)])))
    : undefined
  const first = embedded[0]!.embeddings
  const hashOf = new Map(first.samples.map((s, i) => [s.id, first.contentHashes[i]!]))
  const y = yield* Pipeline.labelIndices(labels, samples)

  const trainStart = performance.now()
  const folds = options.folds ?? 5
  const space = options.heads && options.heads.length > 0
    ? SearchSpace.defaultSearchSpace.filter((branch) => {
      const kinds = branch["head.kind"]
      return Array.isArray(kinds) && kinds.some((kind) => options.heads!.includes(String(kind)))
    })
    : SearchSpace.defaultSearchSpace
  if (space.length === 0) {
    return yield* new AutomlError({
      reason: "InvalidOptions",
      field: "heads",
      message: `None of the heads [${options.heads!.join(", ")}] is in the search space (searchable: ${
        SearchSpace.defaultSearchSpace.map((b) => b["head.kind"]).join(", ")
      })`
    })
  }
  const cvOptions = { folds, groups: keep.map((id) => hashOf.get(id)!) }
  const plan = yield* CrossValidation.plan(y, labels.length, { ...cvOptions, seed }).pipe(Effect.mapError(failed))
  const search = yield* Search.run({ embeddings: features, ...(mirrored ? { mirrored } : {}), y, numClasses: labels.length }, {
    space,
    heads: registry.heads,
    seed,
    ...(options.timeBudgetMs === undefined ? {} : { timeBudgetMs: options.timeBudgetMs }),
    cv: cvOptions
  }).pipe(Effect.mapError(failed))
  const trainMs = since(trainStart)

  const candidateOf = (entry: Search.Entry): Candidate => {
    const resolved = SearchSpace.resolve(entry.candidate)
    return { backbone: resolved.backboneId, head: { kind: resolved.headKind, params: resolved.headParams } }
  }
  const best = search.best
  // The selected backbone, or the backbones whose concatenation was selected, in concatenation order.
  const chosen = best.backboneId === combinedId(embedded.map((e) => e.id))
    ? embedded
    : embedded.filter((e) => e.id === best.backboneId)
  const evaluation = yield* Classification.evaluate(y, best.proba, labels).pipe(Effect.mapError(failed))
  const extraBackbones = chosen.slice(1).map((e) => ({ backbone: e.backbone, options: {} }))
  return {
    fitted: {
      labels,
      backbone: chosen[0]!.backbone,
      backboneOptions: {},
      head: search.fitted,
      embed: {},
      ...(extraBackbones.length > 0 ? { extraBackbones } : {}),
      ...(mirror ? { mirror } : {})
    },
    cv: { ...evaluation, macroF1: evaluation.macro.f1, folds: plan.k },
    selected: candidateOf(best),
    leaderboard: search.leaderboard.map((entry) => ({
      candidate: candidateOf(entry),
      accuracy: entry.metrics["accuracy"]!,
      macroF1: entry.metrics["macroF1"]!,
      logLoss: entry.metrics["logLoss"]!,
      fitMs: Math.round(entry.cvMs)
    })),
    outOfFold: { samples, proba: best.proba },
    skipped,
    timings: { embedMs, trainMs }
  } satisfies FitResult
})
