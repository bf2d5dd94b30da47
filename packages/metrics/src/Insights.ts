/**
 * Every data analysis of this package at once, on one set of images: class health, label-noise suspects, exact and
 * near-duplicates (with leakage and label conflicts) and outliers, named by image id and label name, as plain data
 * ready for JSON (`loupe inspect --json`), the terminal and HTML reports (`InsightsReport`) and an HTTP response.
 *
 * The input is what training already computes: the images' embeddings, their content hashes, and the cross-validated
 * (out-of-fold) probabilities with each image's fold. Nothing is trained or embedded here, so a caller that keeps those
 * (a function's store, a training run) gets the insights for the cost of the analyses alone.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import { Matrix } from "@loupe/core"
import * as ClassHealth from "./ClassHealth.js"
import * as Duplicates from "./Duplicates.js"
import * as Check from "./internal/Check.js"
import * as LabelNoise from "./LabelNoise.js"
import { MetricsError } from "./MetricsError.js"
import * as Outliers from "./Outliers.js"

/**
 * The images to analyse, one row each, and what training computed for them.
 *
 * @since 0.2.0
 * @category models
 */
export interface Input {
  /** The label names; `y` indexes them. */
  readonly labels: ReadonlyArray<string>
  /** Each image's id (a path relative to the dataset, a sample id), used to name it in the results. */
  readonly ids: ReadonlyArray<string>
  /** Each image's label, -1 for an unlabelled image. */
  readonly y: Int32Array
  readonly embeddings: Matrix.Matrix
  /** sha256 (or any hash) of each image's bytes, for exact duplicates. */
  readonly contentHashes?: ReadonlyArray<string>
  /** Each image's split (`train`, `test`): copies across splits leak. */
  readonly splits?: ReadonlyArray<string>
  /**
   * Cross-validation of the labelled training images: `rows` are the rows of the input it covers (each labelled),
   * `proba` their out-of-fold probabilities (one column per label) and `folds`, when known, the fold that held each
   * one out. Without it there are no suspects and no recall.
   */
  readonly outOfFold?: {
    readonly rows: ReadonlyArray<number>
    readonly proba: Matrix.Matrix
    readonly folds?: Int32Array
  }
}

/**
 * Settings of `analyse`, one group per analysis.
 *
 * @since 0.2.0
 * @category options
 */
export interface Options {
  readonly health?: ClassHealth.Options
  readonly duplicates?: Duplicates.Options
  readonly outliers?: Outliers.Options
}

/**
 * A label-noise suspect, named.
 *
 * @since 0.2.0
 * @category models
 */
export interface Suspect {
  readonly id: string
  readonly given: string
  readonly suggested: string
  readonly selfConfidence: number
  readonly suggestedConfidence: number
}

/**
 * A duplicate pair, named; `labelA`/`labelB` are `null` for unlabelled images.
 *
 * @since 0.2.0
 * @category models
 */
export interface DuplicatePair {
  readonly a: string
  readonly b: string
  readonly labelA: string | null
  readonly labelB: string | null
  readonly kind: "exact" | "near"
  readonly similarity: number
  readonly leak: Duplicates.Leak | null
  readonly conflict: boolean
}

/**
 * An outlier, named; `label` is `null` for an unlabelled image.
 *
 * @since 0.2.0
 * @category models
 */
export interface Outlier {
  readonly id: string
  readonly label: string | null
  readonly nearest: string
  readonly similarity: number
  readonly score: number
}

/**
 * A class-health warning in one sentence, with its kind and the label it is about (if one).
 *
 * @since 0.2.0
 * @category models
 */
export interface Warning {
  readonly kind: ClassHealth.Warning["kind"]
  readonly label: string | null
  readonly message: string
}

/**
 * The insights: plain JSON-ready data; `version` changes when the shape does.
 *
 * @since 0.2.0
 * @category models
 */
export interface Insights {
  readonly version: 1
  readonly images: number
  readonly labels: ReadonlyArray<string>
  readonly health: {
    readonly perLabel: ReadonlyArray<{ readonly label: string; readonly count: number; readonly recall: number | null }>
    readonly unlabelled: number
    readonly imbalanceRatio: number
    readonly warnings: ReadonlyArray<Warning>
  }
  /** `null` without out-of-fold probabilities; lowest self-confidence first. */
  readonly suspects: ReadonlyArray<Suspect> | null
  /** Most similar first. */
  readonly duplicates: ReadonlyArray<DuplicatePair>
  /** Farthest first. */
  readonly outliers: ReadonlyArray<Outlier>
}

const describeWarning = (w: ClassHealth.Warning, labels: ReadonlyArray<string>): Warning => {
  switch (w.kind) {
    case "Empty":
      return { kind: w.kind, label: labels[w.label]!, message: `"${labels[w.label]}" has no images` }
    case "TooFew":
      return {
        kind: w.kind,
        label: labels[w.label]!,
        message: `"${labels[w.label]}" has ${w.count} image${w.count === 1 ? "" : "s"}; at least ${w.minimum} give a usable model`
      }
    case "Imbalance":
      return {
        kind: w.kind,
        label: null,
        message: `"${labels[w.largest]}" has ${w.ratio.toFixed(1)} times as many images as "${labels[w.smallest]}"`
      }
  }
}

const compute = (input: Input, options: Options): Insights => {
  const { embeddings, ids, labels, y } = input
  const n = y.length
  Check.aligned(ids, n, "ids")
  Check.matrix(embeddings, n, "embeddings")
  Check.labels(y, labels.length, "y", true)
  const oof = input.outOfFold
  // The out-of-fold rows' labels, and every row's probabilities and fold where cross-validation covered it.
  let yOof: Int32Array | undefined
  let folds: Int32Array | undefined
  let fullProba: Matrix.Matrix | undefined
  if (oof !== undefined) {
    Check.matrix(oof.proba, oof.rows.length, "outOfFold.proba")
    Check.aligned(oof.folds, oof.rows.length, "outOfFold.folds")
    if (oof.proba.cols !== labels.length) Check.fail("ShapeMismatch", "outOfFold.proba", `outOfFold.proba has ${oof.proba.cols} columns for ${labels.length} labels`)
    yOof = Int32Array.from(oof.rows, (row, k) => {
      if (!(Number.isInteger(row) && row >= 0 && row < n)) Check.fail("ShapeMismatch", "outOfFold.rows", `outOfFold.rows[${k}] is ${row}, not a row`)
      if (y[row]! < 0) Check.fail("InvalidLabel", "outOfFold.rows", `outOfFold.rows[${k}] (${ids[row]}) has no label`)
      return y[row]!
    })
    if (oof.folds !== undefined) {
      folds = new Int32Array(n).fill(-1)
      oof.rows.forEach((row, k) => (folds![row] = oof.folds![k]!))
    }
    // Rows outside the cross-validation predict nothing: they count as unlabelled for recall.
    fullProba = Matrix.make(n, labels.length)
    oof.rows.forEach((row, k) => fullProba!.data.set(Matrix.row(oof.proba, k), row * labels.length))
  }
  const counts = ClassHealth.check(y, labels.length, undefined, options.health)
  const inCv = new Set(oof?.rows ?? [])
  const recall = oof === undefined
    ? counts
    : ClassHealth.check(Int32Array.from(y, (c, i) => (inCv.has(i) ? c : -1)), labels.length, fullProba, options.health)
  const name = (c: number): string | null => (c < 0 ? null : labels[c]!)
  const suspects = oof === undefined ? null : LabelNoise.find(yOof!, oof.proba).suspects.map((s) => ({
    id: ids[oof.rows[s.index]!]!,
    given: labels[s.given]!,
    suggested: labels[s.suggested]!,
    selfConfidence: s.selfConfidence,
    suggestedConfidence: s.suggestedConfidence
  }))
  const pairs = Duplicates.find({
    embeddings,
    y,
    ...(input.contentHashes ? { contentHashes: input.contentHashes } : {}),
    ...(input.splits ? { splits: input.splits } : {}),
    ...(folds ? { folds } : {})
  }, options.duplicates)
  const outliers = Outliers.find(embeddings, y, labels.length, options.outliers)
  return {
    version: 1,
    images: n,
    labels: [...labels],
    health: {
      // Counts over every image; recall over the cross-validated ones.
      perLabel: counts.perLabel.map((l, c) => ({ label: labels[c]!, count: l.count, recall: recall.perLabel[c]!.recall })),
      unlabelled: counts.unlabelled,
      imbalanceRatio: counts.imbalanceRatio,
      warnings: counts.warnings.map((w) => describeWarning(w, labels))
    },
    suspects,
    duplicates: pairs.map((p) => ({
      a: ids[p.a]!,
      b: ids[p.b]!,
      labelA: name(y[p.a]!),
      labelB: name(y[p.b]!),
      kind: p.kind,
      similarity: p.similarity,
      leak: p.leak ?? null,
      conflict: p.conflict
    })),
    outliers: outliers.map((o) => ({
      id: ids[o.index]!,
      label: name(y[o.index]!),
      nearest: labels[o.nearest]!,
      similarity: o.similarity,
      score: o.score
    }))
  }
}

/**
 * Runs every analysis on `input`. Fails with the `MetricsError` of the first check that does not hold (shapes that do
 * not agree, a label index out of range, an out-of-fold row without a label, an option out of range), naming the field.
 *
 * @example
 * const insights = yield* Insights.analyse({ labels, ids, y, embeddings, contentHashes, outOfFold: { rows, proba, folds } })
 * insights.suspects?.[0] // { id: "cats/cat.17.jpg", given: "cats", suggested: "dogs", ... }
 *
 * @since 0.2.0
 * @category analyses
 */
export const analyse = (input: Input, options: Options = {}): Effect.Effect<Insights, MetricsError> =>
  Effect.try({
    try: () => compute(input, options),
    catch: (e) => e instanceof MetricsError ? e : new MetricsError({ reason: "InvalidOption", message: String(e), cause: e })
  }).pipe(Effect.withSpan("Insights.analyse"))
