/**
 * Fit the best model for a labelled dataset without choosing one: embed with each candidate backbone, search heads
 * and hyperparameters by stratified cross-validation on the embeddings, and refit the winner on every image.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { Scope } from "effect"
import { Dataset, Embedder, Matrix, Pipeline, Registry } from "@loupe/core"
import type { CoreError, Embedder as EmbedderTypes, LoupeConfig, Sample } from "@loupe/core"
import { Classification } from "@loupe/metrics"
import { CrossValidation, LogisticRegression } from "@loupe/trainers"
import { AutomlError } from "./AutomlError.js"

export interface FitOptions {
  /** Backbone ids to consider; default: the registered backbones tagged `default`. */
  readonly backbones?: ReadonlyArray<string>
  /** CV folds; adapted down when the smallest class is smaller. Default 5. */
  readonly folds?: number
  readonly seed?: number
  /** Head kinds to search, each over its parameter grid; default: logistic regression. */
  readonly heads?: ReadonlyArray<string>
  /** Search budget in milliseconds: no new candidate starts once it is spent (the first always runs). */
  readonly timeBudgetMs?: number
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

/** L2 strengths swept for logistic regression (1 is scikit-learn's default C = 1). */
const L2_GRID = [0.1, 1, 10]

const since = (start: number) => Math.round(performance.now() - start)

const failed = (e: { readonly message: string }) => new AutomlError({ reason: "TrainingFailed", message: e.message, cause: e })

/** Rows of `embeddings` for the samples whose ids are in `keep`, in `keep`'s order. */
const alignRows = (embeddings: EmbedderTypes.Embeddings, keep: ReadonlyArray<string>): Matrix.Matrix => {
  const rowOf = new Map(embeddings.samples.map((s, i) => [s.id, i]))
  return Matrix.takeRows(embeddings.vectors, keep.map((id) => rowOf.get(id)!))
}

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

  const embedStart = performance.now()
  const embedded = yield* Effect.forEach(backboneIds, (id) =>
    Effect.gen(function*() {
      const backbone = yield* Registry.loadBackbone(id)
      return { id, backbone, embeddings: yield* Embedder.embedSamples(backbone, dataset.samples) }
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
  const features = new Map(embedded.map((e) => [e.id, alignRows(e.embeddings, keep)]))
  const first = embedded[0]!.embeddings
  const hashOf = new Map(first.samples.map((s, i) => [s.id, first.contentHashes[i]!]))
  const y = yield* Pipeline.labelIndices(labels, samples)

  const trainStart = performance.now()
  const plan = yield* CrossValidation.plan(y, labels.length, {
    folds: options.folds ?? 5,
    seed,
    groups: keep.map((id) => hashOf.get(id)!)
  }).pipe(Effect.mapError(failed))
  const headKinds = options.heads && options.heads.length > 0 ? options.heads : [LogisticRegression.kind]
  const deadline = trainStart + (options.timeBudgetMs ?? Infinity)
  const rows: Array<LeaderboardRow & { readonly proba: Matrix.Matrix }> = []
  for (const backbone of backboneIds) {
    for (const kind of headKinds) {
      const headPlugin = yield* registry.head(kind)
      const grid: ReadonlyArray<Record<string, unknown>> = kind === LogisticRegression.kind ? L2_GRID.map((l2) => ({ l2 })) : [{}]
      for (const raw of grid) {
        if (rows.length > 0 && performance.now() > deadline) break
        const params = yield* Pipeline.decodeHeadParams(headPlugin, raw)
        const data = { x: features.get(backbone)!, y, numClasses: labels.length }
        const cv = yield* CrossValidation.runPlan(headPlugin, params, data, plan, seed).pipe(Effect.mapError(failed))
        const score = (name: string) =>
          Option.getOrThrow(Classification.metricNamed(name)).compute({ yTrue: y, proba: cv.proba, numClasses: labels.length })
        rows.push({
          candidate: { backbone, head: { kind, params: raw } },
          accuracy: score("accuracy"),
          macroF1: score("macroF1"),
          logLoss: score("logLoss"),
          fitMs: Math.round(cv.fitMs),
          proba: cv.proba
        })
      }
    }
  }
  // Best macro-F1 first; log loss breaks ties.
  rows.sort((a, b) => b.macroF1 - a.macroF1 || a.logLoss - b.logLoss)
  const best = rows[0]!
  const chosen = embedded.find((e) => e.id === best.candidate.backbone)!
  const headPlugin = yield* registry.head(best.candidate.head.kind)
  const bestParams = yield* Pipeline.decodeHeadParams(headPlugin, best.candidate.head.params)
  const head = yield* CrossValidation.refit(headPlugin, bestParams, {
    x: features.get(chosen.id)!,
    y,
    numClasses: labels.length
  }, seed).pipe(Effect.mapError(failed))
  const trainMs = since(trainStart)

  const evaluation = yield* Classification.evaluate(y, best.proba, labels).pipe(Effect.mapError(failed))
  return {
    fitted: { labels, backbone: chosen.backbone, backboneOptions: {}, head, embed: {} },
    cv: { ...evaluation, macroF1: evaluation.macro.f1, folds: plan.k },
    selected: best.candidate,
    leaderboard: rows.map(({ proba: _proba, ...row }) => row),
    outOfFold: { samples, proba: best.proba },
    skipped,
    timings: { embedMs, trainMs }
  } satisfies FitResult
})
