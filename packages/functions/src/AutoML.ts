/**
 * Fit the best model for a labelled dataset without choosing one: embed with each candidate backbone, search heads
 * and hyperparameters by stratified cross-validation on the embeddings, and refit the winner on every image.
 *
 * `fit` does it in one go; `search` (the cross-validation and the choice, as plain JSON), `evaluate` (the winner's
 * cross-validated metrics from its out-of-fold predictions) and `refit` (the winner on every image) are its steps
 * apart, which a durable retrain runs as separate activities, possibly on different machines.
 *
 * With several backbones, their concatenated embeddings (one head on all of them, backbone id `a+b+...`) compete
 * with each backbone alone, and optionally (`ensembles`) so does the probability ensemble of each backbone's best
 * head. Optionally (`augmentedViews`) the best candidate is also tried as an augmented probe, trained on augmented
 * views of every image as well (`Search`'s refinements).
 *
 * Optionally (`fineTune`) partial fine-tuning competes too: the first backbone that can be fine-tuned (a TensorFlow.js
 * layers model, `FineTune.prepare`) is cut into a frozen trunk and a trainable tail; the trunk's embeddings are one
 * more feature set, `<backbone>@<cut layer>`, searched only by the `finetune` head (`FineTune.searchHead`), which
 * trains the tail and a head in each fold. It is neither concatenated nor part of the ensembles. When it wins, the
 * pipeline's backbone is the trunk (its `output` option names the cut), as in manual mode.
 *
 * A backbone with a text tower (core's `TextTower`: CLIP, SigLIP) also brings the heads built on the labels'
 * zero-shot classifier (`SearchSpace.zeroShotSearchSpace`): the zero-shot classifier itself, which answers from the
 * label names alone, and Tip-Adapter, which mixes it with a cache of the samples. They are searched on that
 * backbone's embeddings (not on concatenations) and compete under the same cross-validation rule as every head.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { Dataset, Embedder, Matrix, Pipeline, Registry, TextTower } from "@loupe/core"
import type { Backbone, CoreError, Head, LoupeConfig, Sample } from "@loupe/core"
import { Classification } from "@loupe/metrics"
import { AugmentedProbe, CrossValidation, FineTune, MultiBackbone, Search, SearchSpace, ZeroShot } from "@loupe/trainers"
import { FunctionsError } from "./FunctionsError.js"
import { combinedId, membersOf, trunkId } from "./internal/Candidates.js"
import { alignRows, backboneIds as resolveBackboneIds, embeddedByAll, failed, repeatsFor, since, withCombination } from "./internal/Features.js"

/**
 * What `fit` searches: the backbones, the heads and how they are cross-validated. Every field is optional; the
 * defaults are noted on each (a `Preset` resolves to a full set with `Preset.fitOptions`).
 *
 * @since 0.1.0
 * @category models
 */
export interface FitOptions {
  /** Backbone ids to consider; default: the registered backbones tagged `default`. */
  readonly backbones?: ReadonlyArray<string>
  /** CV folds; adapted down when the smallest class is smaller. Default 5. */
  readonly folds?: number
  readonly seed?: number
  /** Head kinds to search (branches of the default search space); default: every searchable head. */
  readonly heads?: ReadonlyArray<string>
  /**
   * How the search visits candidates: successive halving (default; one bracket per feature set) or the full grid on
   * all rows.
   */
  readonly strategy?: "successive-halving" | "grid"
  /**
   * The search's budget in rows scored (`Search.Options.budget`): deterministic, so a busy machine selects the same
   * model as an idle one. Default: no limit.
   */
  readonly searchBudget?: number
  /**
   * Also embed each image's mirror image: heads train on both and predict the mean of both (`Pipeline`'s
   * `mirror`). Costs one more backbone pass per image, no more decoding. Default false.
   */
  readonly mirror?: boolean
  /**
   * The augmented probe: embed this many augmented views of every image with every backbone (random resized crop,
   * flip and colour jitter, `AugmentedProbe.defaultViews`), and retry the best candidate trained on them as well.
   * Costs this many backbone passes per image. 0 (the default) is off.
   */
  readonly augmentedViews?: number
  /** With several backbones, also try the probability ensemble of each backbone's best head. Default false. */
  readonly ensembles?: boolean
  /**
   * Search only this feature set among those embedded: one of `backbones`, or their concatenation, `a+b+...`
   * (a retrain that keeps the previous choice). Default: every backbone alone and, with several, concatenated.
   */
  readonly searchBackbone?: string
  /**
   * With `heads` naming one kind: search only these params of it (a retrain that keeps the previous choice, whose
   * params are re-tuned by the next full search). Default: the kind's whole grid.
   */
  readonly headParams?: Readonly<Record<string, SearchSpace.Value>>
  /**
   * Partial fine-tuning as a candidate: the last `trainableLayers` weight layers of the first backbone that allows
   * it, trained with a linear head for `epochs` epochs per fit (each epoch one view, original or mirror image, of
   * every image). Searched only when `heads` is unset or names `finetune`. Default: off.
   */
  readonly fineTune?: { readonly trainableLayers: number; readonly epochs: number }
}

/**
 * A backbone and a head with its parameters. An ensemble's head has kind `ensemble` and lists its members
 * (`{ backbone, kind, params }`) in `params.members`. `backbone` is a registered backbone id, several joined by
 * `+` for their concatenated embeddings, or `<backbone>@<cut layer>` for a fine-tuned trunk.
 *
 * @since 0.1.0
 * @category models
 */
export interface Candidate {
  readonly backbone: string
  readonly head: { readonly kind: string; readonly params: Record<string, unknown> }
  /** Augmented views per image the head also trained on (the augmented probe). */
  readonly augmentedViews?: number
}

/**
 * One cross-validated candidate of the search, with its out-of-fold scores (accuracy, macro-F1 and log loss, on
 * `rows` rows) and the milliseconds its cross-validation took.
 *
 * @since 0.1.0
 * @category models
 */
export interface LeaderboardRow {
  readonly candidate: Candidate
  /** The candidate in one line (`describeCandidate`). */
  readonly description: string
  /** Training rows it was cross-validated on: all of them, or fewer on an early successive-halving rung. */
  readonly rows: number
  /** The search round it comes from: `rung 1 of 3`, `rung 3 of 3`, `grid`, `augmented probe`, `ensemble`, ... */
  readonly round: string
  readonly accuracy: number
  readonly macroF1: number
  readonly logLoss: number
  /** Out-of-fold mistakes on `rows` rows. */
  readonly mistakes: number
  readonly fitMs: number
}

/**
 * What `fit` returns: the fitted pipeline (refit on every usable image; save it with `Bundle`), its cross-validated
 * evaluation, the selected candidate, the leaderboard, the out-of-fold probabilities, the images skipped and the
 * time spent embedding and training, in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface FitResult {
  readonly fitted: Pipeline.FittedPipeline
  readonly cv: Classification.Evaluation & {
    readonly macroF1: number
    readonly folds: number
    readonly repeats: number
    /**
     * The selected candidate's macro-F1 on each fold alone (`CrossValidation.foldScores`), repeat by repeat.
     *
     * @since 0.2.0
     */
    readonly foldMacroF1: ReadonlyArray<number>
    /**
     * The standard error of macro-F1 across those folds (`CrossValidation.foldStandardError`): how much the estimate
     * would move on other folds of the same data.
     *
     * @since 0.2.0
     */
    readonly macroF1StandardError: number
  }
  readonly selected: Candidate
  /** The candidates scored on all training rows, ranked by the selection rule: the selected one first. */
  readonly leaderboard: ReadonlyArray<LeaderboardRow>
  /** Candidates scored only on early successive-halving rungs (fewer rows), in the order they were evaluated. */
  readonly earlierRungs: ReadonlyArray<LeaderboardRow>
  /** The selected candidate's out-of-fold probabilities, one row per training sample used. */
  readonly outOfFold: { readonly samples: ReadonlyArray<Sample.Sample>; readonly proba: Matrix.Matrix }
  /** Images that could not be decoded, with the reason. */
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>
  readonly timings: { readonly embedMs: number; readonly trainMs: number }
}

/** A backbone id without its runtime (`onnx:mobilenetv2-int8` is `mobilenetv2-int8`); a concatenation as `concat(a, b)`. */
const describeBackbone = (id: string): string => {
  const short = (member: string) => member.slice(member.indexOf(":") + 1)
  const members = membersOf(id)
  return members.length > 1 ? `concat(${members.map(short).join(", ")})` : short(id)
}

/**
 * One line for a candidate: `concat(mobilenetv2-int8, mobilenetv2-0.35) + logistic-regression l2=100`, an ensemble
 * as its members, an augmented probe marked (what `LeaderboardRow.description` holds).
 *
 * @since 0.1.0
 * @category formatting
 */
export const describeCandidate = (c: Candidate): string => {
  const members = c.head.params["members"] as ReadonlyArray<{ readonly backbone: string; readonly kind: string; readonly params: Record<string, unknown> }> | undefined
  if (c.head.kind === MultiBackbone.ensembleKind && members !== undefined) {
    return `ensemble of [${members.map((m) => describeCandidate({ backbone: m.backbone, head: m })).join(", ")}]`
  }
  const params = Object.entries(c.head.params).map(([k, v]) => ` ${k}=${v}`).join("")
  return `${describeBackbone(c.backbone)} + ${c.head.kind}${params}${c.augmentedViews ? ` (augmented probe, ${c.augmentedViews} views)` : ""}`
}

/**
 * The first of `backboneIds` that can be fine-tuned (one with a trainable tail and enough weight layers), cut for
 * `trainableLayers`, under its trunk id; undefined when none can. Why each other one cannot is logged.
 */
const prepareFineTune = (backboneIds: ReadonlyArray<string>, trainableLayers: number) =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    for (const backbone of backboneIds) {
      const plugin = yield* registry.backbone(backbone)
      if (plugin.trainableTail === undefined) continue
      const prepared = yield* Effect.either(FineTune.prepare({ backbone, trainableLayers }))
      if (prepared._tag === "Right") return { id: trunkId(backbone, prepared.right.cut.name), prepared: prepared.right }
      yield* Effect.logWarning(`Not fine-tuning ${backbone}: ${prepared.left.message}`)
    }
    yield* Effect.logWarning(`No backbone of [${backboneIds.join(", ")}] can be fine-tuned`)
    return undefined
  })

const kindsOf = (space: SearchSpace.SearchSpace) => space.flatMap((branch) => (branch["head.kind"] as ReadonlyArray<SearchSpace.Value>).map(String))
const zeroShotKinds = new Set(kindsOf(SearchSpace.zeroShotSearchSpace))

/**
 * The head branches of the search space, for every feature set (`plain`) and for backbones with a text tower
 * (`zeroShot`): one point, `kept`'s params of the one kind in `heads` (a retrain that keeps the previous choice);
 * else the branches of the `heads` kinds, or all of them.
 */
const headBranches = (
  heads: ReadonlyArray<string> | undefined,
  kept: Readonly<Record<string, SearchSpace.Value>> | undefined
): { readonly plain: SearchSpace.SearchSpace; readonly zeroShot: SearchSpace.SearchSpace } => {
  if (kept !== undefined && heads?.length === 1) {
    const point = [{ "head.kind": [heads[0]!], ...Object.fromEntries(Object.entries(kept).map(([k, v]) => [`head.${k}`, [v]])) }]
    return zeroShotKinds.has(heads[0]!) ? { plain: [], zeroShot: point } : { plain: point, zeroShot: [] }
  }
  const pick = (space: SearchSpace.SearchSpace) =>
    heads === undefined || heads.length === 0 ? space : space.filter((branch) => kindsOf([branch]).some((kind) => heads.includes(kind)))
  return { plain: pick(SearchSpace.defaultSearchSpace), zeroShot: pick(SearchSpace.zeroShotSearchSpace) }
}

/**
 * The search space: the plain branches over the feature sets `ids` (the backbones and their concatenation), the
 * zero-shot branches over the backbones with a text tower (`textIds`), and with fine-tuning, the `finetune` head over
 * the trunk's features alone.
 */
const spaceOf = (
  branches: ReturnType<typeof headBranches>,
  ids: ReadonlyArray<string>,
  textIds: ReadonlyArray<string>,
  fineTune: { readonly id: string; readonly epochs: number } | undefined
): SearchSpace.SearchSpace => [
  ...(ids.length === 0 ? [] : branches.plain.map((branch) => ({ "backbone.id": ids, ...branch }))),
  ...(textIds.length === 0 ? [] : branches.zeroShot.map((branch) => ({ "backbone.id": textIds, ...branch }))),
  ...(fineTune === undefined ? [] : [{ "backbone.id": [fineTune.id], "head.kind": [FineTune.headKind], "head.epochs": [fineTune.epochs] }])
]

/**
 * The labels' zero-shot classifier (`ZeroShot.classifier`) of each of `ids` whose backbone has a text tower, loaded
 * in the fit's scope.
 */
const zeroShotPriors = (ids: ReadonlyArray<string>, labels: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const priors = new Map<string, TextTower.ZeroShotPrior>()
    for (const id of ids) {
      if ((yield* registry.backbone(id)).textTower === undefined) continue
      const encoder = yield* TextTower.load(id)
      priors.set(id, yield* ZeroShot.classifier(encoder, labels).pipe(Effect.mapError(failed)))
    }
    return priors
  })

/**
 * `views` augmented views of each of `samples` for every backbone (the same crops for each), as training rows for
 * `samples`' rows; plus their concatenation when every backbone viewed the same images.
 */
const embedTrainingViews = (
  embedded: ReadonlyArray<{ readonly id: string; readonly backbone: Backbone.LoadedBackbone }>,
  samples: ReadonlyArray<Sample.Sample>,
  views: number,
  seed: number
) =>
  Effect.gen(function*() {
    const out = new Map<string, CrossValidation.Views>()
    for (const e of embedded) {
      out.set(e.id, yield* AugmentedProbe.embedTrainingViews(e.backbone, samples, { ...AugmentedProbe.defaultViews, views, seed }))
    }
    const all = [...out.values()]
    const sameImages = all.every((v) => v.image.length === all[0]!.image.length && v.image.every((row, r) => row === all[0]!.image[r]))
    if (all.length > 1 && sameImages) {
      out.set(combinedId([...out.keys()]), { x: Matrix.concatColumns(all.map((v) => v.x)), image: all[0]!.image })
    }
    return out
  })

/** The training rows of a dataset as every step of `fit` needs them: embedded, aligned, with the heads to search. */
interface Embedded {
  readonly labels: ReadonlyArray<string>
  readonly seed: number
  readonly embedded: ReadonlyArray<{ readonly id: string; readonly backbone: Backbone.LoadedBackbone }>
  readonly fineTune: { readonly id: string; readonly prepared: FineTune.Prepared } | undefined
  readonly samples: ReadonlyArray<Sample.Sample>
  readonly skipped: FitResult["skipped"]
  /** Each sample's content hash: the CV groups (copies of an image stay in one fold). */
  readonly groups: ReadonlyArray<string>
  readonly data: Search.Data
  readonly heads: ReadonlyArray<Head.HeadPlugin>
  readonly space: SearchSpace.SearchSpace
  readonly kept: Readonly<Record<string, SearchSpace.Value>> | undefined
  readonly embedMs: number
}

/**
 * Embed the dataset for `options` (through the `EmbeddingCache` when one is provided) and lay out what the search
 * and the refit train on: the feature sets, mirror images, augmented views and zero-shot priors `options` ask for.
 */
const embed = Effect.fnUntraced(function*(dataset: Dataset.Dataset, options: FitOptions) {
  const registry = yield* Registry.Registry
  yield* Dataset.validateForTraining(dataset)
  const labels = dataset.labels
  const seed = options.seed ?? 0

  const backboneIds = yield* resolveBackboneIds(options.backbones)

  const mirror = options.mirror === true
  const embedStart = performance.now()
  const only = options.searchBackbone
  const fineTuneSearched = options.fineTune !== undefined &&
    (options.heads === undefined || options.heads.length === 0 || options.heads.includes(FineTune.headKind))
  const prepared = fineTuneSearched ? yield* prepareFineTune(backboneIds, options.fineTune!.trainableLayers) : undefined
  const trunk = prepared === undefined || (only !== undefined && only !== prepared.id) ? undefined : prepared
  const loaded = yield* Effect.forEach(backboneIds, (id) => Registry.loadBackbone(id))
  // One pass over the images for every backbone (and the trunk): each image is read, hashed and decoded once per
  // decoding.
  const embeddings = yield* Embedder.embedSamplesMany([...loaded, ...(trunk ? [trunk.prepared.trunk] : [])], dataset.samples, { mirror })
  const embedded = backboneIds.map((id, i) => ({ id, backbone: loaded[i]!, embeddings: embeddings[i]! }))
  const fineTune = trunk && { ...trunk, embeddings: embeddings[backboneIds.length]! }

  // An image that fails to decode fails for every backbone; train on the images every backbone embedded.
  const { samples, skipped } = embeddedByAll(dataset.samples, embeddings)
  yield* Dataset.validateForTraining(Dataset.make(samples, { labels }))
  const keep = samples.map((s) => s.id)
  const searched = <V>(all: Map<string, V>): Map<string, V> => only === undefined ? all : new Map([...all].filter(([id]) => id === only))
  const features = searched(withCombination(new Map(embedded.map((e) => [e.id, alignRows(e.embeddings, e.embeddings.vectors, keep)]))))
  const mirrored = mirror
    ? searched(withCombination(new Map(embedded.map((e) => [e.id, alignRows(e.embeddings, e.embeddings.mirrored!, keep)]))))
    : undefined
  const ordinaryIds = [...features.keys()]
  if (fineTune) {
    features.set(fineTune.id, alignRows(fineTune.embeddings, fineTune.embeddings.vectors, keep))
    mirrored?.set(fineTune.id, alignRows(fineTune.embeddings, fineTune.embeddings.mirrored!, keep))
  }
  if (features.size === 0) {
    return yield* new FunctionsError({
      reason: "InvalidOptions",
      field: "searchBackbone",
      message: `"${only}" is neither one of the backbones [${backboneIds.join(", ")}], their concatenation nor a fine-tuned trunk`
    })
  }
  const first = embedded[0]!.embeddings
  const hashOf = new Map(first.samples.map((s, i) => [s.id, first.contentHashes[i]!]))
  const viewCount = options.augmentedViews ?? 0
  const views = viewCount > 0 ? searched(yield* embedTrainingViews(embedded, samples, viewCount, seed)) : undefined
  const embedMs = since(embedStart)
  const y = yield* Pipeline.labelIndices(labels, samples)

  const kept = options.headParams !== undefined && options.heads?.length === 1 ? options.headParams : undefined
  // The zero-shot branches need their heads registered (the CLI registers `Heads.zeroShotHeads`).
  const registered = new Set(registry.heads.map((h) => h.kind))
  const { plain, zeroShot: zeroShotBranches } = headBranches(options.heads, kept)
  const branches = { plain, zeroShot: zeroShotBranches.filter((branch) => kindsOf([branch]).every((kind) => registered.has(kind))) }
  const zeroShot = branches.zeroShot.length === 0
    ? new Map<string, TextTower.ZeroShotPrior>()
    : yield* zeroShotPriors(ordinaryIds.filter((id) => backboneIds.includes(id)), labels)
  const textIds = [...zeroShot.keys()]
  const space = spaceOf(branches, ordinaryIds, textIds, fineTune && { id: fineTune.id, epochs: options.fineTune!.epochs })
  if (space.length === 0) {
    return yield* new FunctionsError({
      reason: "InvalidOptions",
      field: "heads",
      message: `None of the heads [${options.heads!.join(", ")}] is in the search space (searchable: ${
        [
          ...kindsOf(SearchSpace.defaultSearchSpace),
          ...(textIds.length > 0 ? zeroShotKinds : []),
          ...(options.fineTune ? [FineTune.headKind] : [])
        ].join(", ")
      })`
    })
  }
  // Labels weigh the same in training as in the selection metric (macro-F1): each row weighs n / (labels * its label's
  // rows), scikit-learn's class_weight="balanced". On 40 cats and 2 dogs, unweighted heads learned "always cat".
  const perLabel = new Array<number>(labels.length).fill(0)
  for (const label of y) perLabel[label]++
  const weights = Float32Array.from(y, (label) => y.length / (labels.length * perLabel[label]!))
  const data: Search.Data = {
    embeddings: features,
    weights,
    ...(mirrored ? { mirrored } : {}),
    ...(views ? { views } : {}),
    ...(zeroShot.size > 0 ? { zeroShot } : {}),
    y,
    numClasses: labels.length
  }
  return {
    labels,
    seed,
    embedded,
    fineTune: fineTune && { id: fineTune.id, prepared: fineTune.prepared },
    samples,
    skipped,
    groups: keep.map((id) => hashOf.get(id)!),
    data,
    // The `finetune` kind trains the prepared tail here; the registered one only loads bundles.
    heads: fineTune
      ? [...registry.heads.filter((h) => h.kind !== FineTune.headKind), FineTune.searchHead(fineTune.prepared)]
      : registry.heads,
    space,
    kept,
    embedMs
  } satisfies Embedded
})

/**
 * What `search` returns, plain data that survives JSON (a durable retrain stores it between its steps): the
 * selected candidate, the leaderboard, the selected candidate's out-of-fold predictions (`proba`: one row of
 * `labels.length` probabilities per sample in `sampleIds`, whose label index is in `given`) and its per-fold
 * macro-F1, the images skipped and the time spent embedding and searching.
 *
 * @since 0.2.0
 * @category models
 */
export interface Searched {
  readonly labels: ReadonlyArray<string>
  readonly selected: Candidate
  readonly leaderboard: ReadonlyArray<LeaderboardRow>
  readonly earlierRungs: ReadonlyArray<LeaderboardRow>
  readonly outOfFold: {
    readonly sampleIds: ReadonlyArray<string>
    readonly given: ReadonlyArray<number>
    readonly proba: ReadonlyArray<number>
  }
  readonly folds: number
  readonly repeats: number
  readonly foldMacroF1: ReadonlyArray<number>
  readonly macroF1StandardError: number
  readonly skipped: FitResult["skipped"]
  readonly timings: FitResult["timings"]
}

/** The search on embedded rows: its JSON-safe outcome, and the best entry (what `fit` refits in the same process). */
const searchEmbedded = (embedded: Embedded, options: FitOptions) =>
  Effect.gen(function*() {
    const { data, labels, seed, samples, kept } = embedded
    const { y } = data
    const trainStart = performance.now()
    const viewCount = options.augmentedViews ?? 0
    const cvOptions = { folds: options.folds ?? 5, repeats: repeatsFor(samples.length), groups: embedded.groups }
    const plan = yield* CrossValidation.plan(y, labels.length, { ...cvOptions, seed }).pipe(Effect.mapError(failed))
    const ids = embedded.embedded.map((e) => e.id)
    const only = options.searchBackbone
    const selection = yield* Search.select(data, {
      space: embedded.space,
      heads: embedded.heads,
      seed,
      // One candidate: cross-validate it on every row at once, with no subsampled first rung.
      ...(kept !== undefined || options.strategy === "grid" ? { strategy: Search.grid() } : {}),
      ...(options.searchBudget === undefined ? {} : { budget: options.searchBudget }),
      ...(options.ensembles === true && ids.length > 1 && only === undefined ? { ensemble: { members: ids, over: combinedId(ids) } } : {}),
      cv: cvOptions
    }).pipe(Effect.mapError(failed))

    const candidateOf = (entry: Search.Entry): Candidate => {
      if (entry.ensembleOf !== undefined) {
        const members = entry.ensembleOf.map((m) => ({ backbone: m.backboneId, ...candidateOf(m).head }))
        return { backbone: entry.backboneId, head: { kind: entry.headKind, params: { members } } }
      }
      const resolved = SearchSpace.resolve(entry.candidate)
      return {
        backbone: resolved.backboneId,
        head: { kind: resolved.headKind, params: resolved.headParams },
        ...(entry.augmented ? { augmentedViews: viewCount } : {})
      }
    }
    const rowOf = (entry: Search.Entry): LeaderboardRow => {
      const candidate = candidateOf(entry)
      return {
        candidate,
        description: describeCandidate(candidate),
        rows: entry.rows,
        round: Search.describeRound(entry.round),
        accuracy: entry.metrics["accuracy"]!,
        macroF1: entry.metrics["macroF1"]!,
        logLoss: entry.metrics["logLoss"]!,
        mistakes: entry.mistakes,
        fitMs: Math.round(entry.cvMs)
      }
    }
    const best = selection.best
    const foldMacroF1 = CrossValidation.foldScores(best.folds.plan, best.folds.repeatProba, Int32Array.from(best.sampleRows, (i) => y[i]!), Search.macroF1)
    const searched: Searched = {
      labels,
      selected: candidateOf(best),
      leaderboard: selection.leaderboard.filter((entry) => entry.rows === y.length).map(rowOf),
      earlierRungs: selection.leaderboard.filter((entry) => entry.rows < y.length).sort((a, b) => a.order - b.order).map(rowOf),
      outOfFold: { sampleIds: samples.map((s) => s.id), given: Array.from(y), proba: Array.from(best.proba.data) },
      folds: plan.k,
      repeats: plan.repeats,
      foldMacroF1,
      macroF1StandardError: CrossValidation.foldStandardError(best.folds.plan, foldMacroF1),
      skipped: embedded.skipped,
      timings: { embedMs: embedded.embedMs, trainMs: since(trainStart) }
    }
    return { searched, best }
  })

/** Refit the selected candidate on every embedded row, as the pipeline a bundle saves. */
const refitEmbedded = (embedded: Embedded, chosen: Search.Refittable, mirror: boolean) =>
  Effect.gen(function*() {
    const { backboneId } = SearchSpace.resolve(chosen.candidate)
    const { fineTune } = embedded
    const ids = embedded.embedded.map((e) => e.id)
    const head = yield* Search.refit(embedded.data, chosen, { heads: embedded.heads, seed: embedded.seed }).pipe(Effect.mapError(failed))
    // The trunk, the selected backbone, or the backbones whose concatenation was selected, in concatenation order.
    const chosenBackbones = backboneId === fineTune?.id
      ? [{ backbone: fineTune.prepared.trunk, options: fineTune.prepared.trunkOptions }]
      : (backboneId === combinedId(ids) ? embedded.embedded : embedded.embedded.filter((e) => e.id === backboneId))
        .map((e) => ({ backbone: e.backbone, options: {} }))
    const extraBackbones = chosenBackbones.slice(1)
    return {
      labels: embedded.labels,
      backbone: chosenBackbones[0]!.backbone,
      backboneOptions: chosenBackbones[0]!.options,
      head,
      embed: {},
      ...(extraBackbones.length > 0 ? { extraBackbones } : {}),
      ...(mirror ? { mirror } : {})
    } satisfies Pipeline.FittedPipeline
  })

/** A serialized candidate as the search's grid point (an ensemble as its members'), for `Search.refit`. */
const refittable = (c: Candidate): Search.Refittable => {
  const members = c.head.params["members"] as ReadonlyArray<{ readonly backbone: string; readonly kind: string; readonly params: Record<string, unknown> }> | undefined
  const point = (backbone: string, kind: string, params: Record<string, unknown>) =>
    ({ "backbone.id": backbone, "head.kind": kind, ...Object.fromEntries(Object.entries(params).map(([k, v]) => [`head.${k}`, v])) }) as SearchSpace.Candidate
  if (c.head.kind === MultiBackbone.ensembleKind && members !== undefined) {
    return {
      candidate: { "backbone.id": c.backbone, "head.kind": c.head.kind },
      augmented: false,
      ensembleOf: members.map((m) => ({ candidate: point(m.backbone, m.kind, m.params), augmented: false }))
    }
  }
  return { candidate: point(c.backbone, c.head.kind, c.head.params), augmented: (c.augmentedViews ?? 0) > 0 }
}

/**
 * The search of `fit` alone: embeds every image with each backbone (through the `EmbeddingCache` when one is
 * provided), cross-validates the candidates and selects one, without refitting it (`refit` does, `evaluate` scores
 * it). Fails as `fit` does.
 *
 * @since 0.2.0
 * @category constructors
 */
export const search: (
  dataset: Dataset.Dataset,
  options?: FitOptions
) => Effect.Effect<Searched, FunctionsError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> = Effect.fn(
  "AutoML.search"
)(function*(dataset: Dataset.Dataset, options: FitOptions = {}) {
  return (yield* searchEmbedded(yield* embed(dataset, options), options)).searched
})

/**
 * What `searchWithRefit` returns (`TagsAutoML.searchWithRefit` too, with its own `Searched`): the search's outcome,
 * and the refit of its selected candidate on the rows it embedded.
 *
 * @since 0.2.0
 * @category models
 */
export interface SearchedWithRefit<S = Searched> {
  readonly searched: S
  readonly refit: Effect.Effect<Pipeline.FittedPipeline, FunctionsError>
}

/**
 * `search`, keeping the rows it embedded for the refit: `refit` fits the selected candidate on them, as `fit` does,
 * without reading the images and the embedding cache again. For a caller that runs the steps in one process but needs
 * the search's JSON outcome before it refits (the in-process retrain evaluates in between); the rows live as long as
 * the returned value. Fails as `fit` does.
 *
 * @since 0.2.0
 * @category constructors
 */
export const searchWithRefit: (
  dataset: Dataset.Dataset,
  options?: FitOptions
) => Effect.Effect<SearchedWithRefit, FunctionsError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> =
  Effect.fn("AutoML.searchWithRefit")(function*(dataset: Dataset.Dataset, options: FitOptions = {}) {
  const embedded = yield* embed(dataset, options)
  const { best, searched } = yield* searchEmbedded(embedded, options)
  return { searched, refit: refitEmbedded(embedded, best, options.mirror === true) }
})

/**
 * The selected candidate's cross-validated evaluation, from the search's out-of-fold predictions (what
 * `FitResult.cv` holds). Fails with `FunctionsError` `TrainingFailed` when they cannot be evaluated.
 *
 * @since 0.2.0
 * @category constructors
 */
export const evaluate = (searched: Searched): Effect.Effect<FitResult["cv"], FunctionsError> =>
  Effect.gen(function*() {
    const { given, proba, sampleIds } = searched.outOfFold
    const y = Int32Array.from(given)
    const oof = Matrix.make(sampleIds.length, searched.labels.length, Float32Array.from(proba))
    const evaluation = yield* Classification.evaluate(y, oof, searched.labels).pipe(Effect.mapError(failed))
    return {
      ...evaluation,
      macroF1: evaluation.macro.f1,
      folds: searched.folds,
      repeats: searched.repeats,
      foldMacroF1: searched.foldMacroF1,
      macroF1StandardError: searched.macroF1StandardError
    }
  })

/**
 * Refit a candidate `search` selected on every image of the dataset that every backbone embeds, with the options
 * the search had: the pipeline `fit` returns. Only what the candidate trains on is embedded (through the
 * `EmbeddingCache` when one is provided, where the search left it). Fails as `fit` does.
 *
 * @since 0.2.0
 * @category constructors
 */
export const refit: (
  dataset: Dataset.Dataset,
  options: FitOptions,
  selected: Candidate
) => Effect.Effect<Pipeline.FittedPipeline, FunctionsError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> =
  Effect.fn("AutoML.refit")(function*(dataset: Dataset.Dataset, options: FitOptions, selected: Candidate) {
    const chosen = refittable(selected)
    const members = chosen.ensembleOf?.map((m) => SearchSpace.resolve(m.candidate).headKind)
    const embedded = yield* embed(dataset, {
      ...options,
      heads: members ?? [selected.head.kind],
      augmentedViews: selected.augmentedViews ?? 0,
      ...(members === undefined ? { searchBackbone: selected.backbone } : {})
    })
    return yield* refitEmbedded(embedded, chosen, options.mirror === true)
  })

/**
 * Fit the best model for a labelled dataset (see the module's description): embeds every image with each backbone
 * (through the `EmbeddingCache` when one is provided), runs the search and refits the winner on every image that
 * every backbone could embed. Images that cannot be decoded are skipped and reported in `FitResult.skipped`.
 *
 * Fails with `FunctionsError` `NoBackbone` (none given and none tagged `default`), `InvalidOptions` (a
 * `searchBackbone` or `heads` that leaves nothing to search, naming the field) or `TrainingFailed` (the search or the
 * evaluation failed), and with `CoreError` when the dataset cannot be trained on (no images, an unlabelled image,
 * fewer than two labels or a label with fewer than two images) or a backbone is not registered or does not load.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fit: (
  dataset: Dataset.Dataset,
  options?: FitOptions
) => Effect.Effect<
  FitResult,
  FunctionsError | CoreError.CoreError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope
> = Effect.fn("AutoML.fit")(function*(dataset: Dataset.Dataset, options: FitOptions = {}) {
  // The three steps on one embedding: `search`, `evaluate` and `refit` as a durable retrain runs them apart.
  const embedded = yield* embed(dataset, options)
  const trainStart = performance.now()
  const { best, searched } = yield* searchEmbedded(embedded, options)
  const cv = yield* evaluate(searched)
  const fitted = yield* refitEmbedded(embedded, best, options.mirror === true)
  return {
    fitted,
    cv,
    selected: searched.selected,
    leaderboard: searched.leaderboard,
    earlierRungs: searched.earlierRungs,
    outOfFold: { samples: embedded.samples, proba: best.proba },
    skipped: searched.skipped,
    timings: { embedMs: embedded.embedMs, trainMs: since(trainStart) }
  } satisfies FitResult
})
