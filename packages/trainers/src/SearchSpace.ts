/**
 * Search spaces with dotted parameter names (`backbone.id`, `head.kind`, `head.l2`, ...), as data.
 *
 * A space is a list of branches; a branch maps each dotted name to its choices (a list) or a numeric range. Branches
 * keep conditional parameters apart: `head.l2` belongs with `head.kind: ["logistic-regression"]`, `head.k` with
 * `knn`. A branch without `backbone.id` spans every backbone the search is given. Names are `backbone.id`,
 * `head.kind` (required in every branch) and `head.<param>` for the head's params.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import * as Random from "./internal/Random.js"
import { TrainerError } from "./TrainerError.js"

/**
 * A value a dimension can take: a string (a backbone id, a head kind, an option), a number or a boolean.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Value = Schema.Union(Schema.String, Schema.Number, Schema.Boolean)
/**
 * A decoded value: string, number or boolean.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Value = typeof Value.Type

/**
 * A numeric range: sampled uniformly (on a log scale with `log`) by random search; `gridPoints` points for grids.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Range = Schema.Struct({
  min: Schema.Number.pipe(Schema.finite()),
  max: Schema.Number.pipe(Schema.finite()),
  /** Log scale (default false). */
  log: Schema.optional(Schema.Boolean),
  /** Round to integers (default false). */
  integer: Schema.optional(Schema.Boolean),
  /** Grid points, ends included (default 3). */
  gridPoints: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)))
})
/**
 * A decoded numeric range.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Range = typeof Range.Type

/**
 * A dimension of a branch: a list of choices (every one a grid point) or a numeric `Range`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Dimension = Schema.Union(Schema.Array(Value), Range)
/**
 * A decoded dimension.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Dimension = typeof Dimension.Type

/**
 * A branch of a space: each dotted name (`backbone.id`, `head.kind`, `head.<param>`) mapped to its dimension.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Branch = Schema.Record({ key: Schema.String, value: Dimension })
/**
 * A decoded branch.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Branch = typeof Branch.Type

/**
 * A search space: a list of branches (decode it with `decode`, which also validates names).
 *
 * @since 0.1.0
 * @category schemas
 */
export const SearchSpace = Schema.Array(Branch)
/**
 * A decoded search space.
 *
 * @since 0.1.0
 * @category schemas
 */
export type SearchSpace = typeof SearchSpace.Type

/**
 * One point of a space: dotted name -> value, every branch key set.
 *
 * @since 0.1.0
 * @category models
 */
export type Candidate = Readonly<Record<string, Value>>

/**
 * Where a candidate's parameters go.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved {
  readonly backboneId: string
  readonly headKind: string
  /** The head's own params (`head.` stripped, `head.kind` removed). */
  readonly headParams: Readonly<Record<string, Value>>
}

const invalid = (field: string, message: string) => new TrainerError({ reason: "InvalidParams", field, message })

/**
 * Decodes a space from JSON-like data and validates it. Fails with `TrainerError` `InvalidParams`: field `space` when
 * it does not decode, else the field named by `validate`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decode = (input: unknown): Effect.Effect<SearchSpace, TrainerError> =>
  Schema.decodeUnknown(SearchSpace)(input).pipe(
    Effect.mapError((e) => invalid("space", `invalid search space: ${e.message}`)),
    Effect.tap(validate)
  )

/**
 * Checks that every branch sets `head.kind`, that names are `backbone.id`, `head.kind` or `head.<param>`, that choice
 * lists are not empty, and that ranges have `max >= min`, a positive `min` when log-scaled, and are not used for
 * `backbone.id` or `head.kind`. Fails with `TrainerError` `InvalidParams` naming `space[<branch>].<name>` (or `space`
 * for an empty space).
 *
 * @since 0.1.0
 * @category utils
 */
export const validate = (space: SearchSpace): Effect.Effect<void, TrainerError> =>
  Effect.suspend(() => {
    if (space.length === 0) return invalid("space", "the search space has no branches")
    for (const [b, branch] of space.entries()) {
      if (!("head.kind" in branch)) return invalid(`space[${b}]`, `branch ${b} does not set head.kind`)
      for (const [name, dim] of Object.entries(branch)) {
        const field = `space[${b}].${name}`
        if (name !== "backbone.id" && !/^head\.[A-Za-z][A-Za-z0-9]*$/.test(name)) {
          return invalid(field, `unknown parameter "${name}": use backbone.id, head.kind or head.<param>`)
        }
        if (Array.isArray(dim) && dim.length === 0) return invalid(field, `"${name}" has no choices`)
        if (!Array.isArray(dim)) {
          const range = dim as Range
          if (!(range.max >= range.min)) return invalid(field, `"${name}" has max < min`)
          if (range.log && range.min <= 0) return invalid(field, `"${name}" is log-scaled but min <= 0`)
          if (name === "backbone.id" || name === "head.kind") return invalid(field, `"${name}" takes a list of names`)
        }
      }
    }
    return Effect.void
  })

/** The point at fraction `t` of a range (geometric on a log scale), rounded for integer ranges. */
const at = (r: Range, t: number): number => {
  const v = t === 0 ? r.min : t === 1 ? r.max : r.log ? r.min * Math.pow(r.max / r.min, t) : r.min + t * (r.max - r.min)
  return r.integer ? Math.round(v) : v
}

const gridValues = (dim: Dimension): ReadonlyArray<Value> => {
  if (Array.isArray(dim)) return dim as ReadonlyArray<Value>
  const r = dim as Range
  const points = r.max === r.min ? 1 : (r.gridPoints ?? 3)
  return [...new Set(Array.from({ length: points }, (_, i) => at(r, points === 1 ? 0 : i / (points - 1))))]
}

const sample = (dim: Dimension, random: Random.Random): Value =>
  Array.isArray(dim) ? (dim as ReadonlyArray<Value>)[random.int(dim.length)]! : at(dim as Range, random.next())

const withBackbones = (branch: Branch, backboneIds: ReadonlyArray<string>): Branch =>
  "backbone.id" in branch ? branch : { "backbone.id": backboneIds, ...branch }

/**
 * A stable text key of a candidate (for de-duplication and tie-breaks).
 *
 * @since 0.1.0
 * @category utils
 */
export const key = (candidate: Candidate): string =>
  JSON.stringify(Object.keys(candidate).sort().map((k) => [k, candidate[k]]))

/**
 * Every grid point, branch by branch, the last name varying fastest; duplicates removed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const grid = (space: SearchSpace, backboneIds: ReadonlyArray<string>): ReadonlyArray<Candidate> => {
  const out = new Map<string, Candidate>()
  for (const raw of space) {
    const branch = withBackbones(raw, backboneIds)
    let partial: Array<Record<string, Value>> = [{}]
    for (const [name, dim] of Object.entries(branch)) {
      partial = partial.flatMap((c) => gridValues(dim).map((v) => ({ ...c, [name]: v })))
    }
    for (const c of partial) out.set(key(c), c)
  }
  return [...out.values()]
}

/**
 * `count` distinct random candidates drawn with `seed` (fewer if the space is smaller, after `20 * count` draws): a
 * branch uniformly, then each name uniformly (ranges on their own scale). Branches without `backbone.id` span
 * `backboneIds`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const randomCandidates = (
  space: SearchSpace,
  backboneIds: ReadonlyArray<string>,
  count: number,
  seed: number
): ReadonlyArray<Candidate> => {
  const random = Random.make(seed)
  const out = new Map<string, Candidate>()
  for (let tries = 0; out.size < count && tries < count * 20; tries++) {
    const branch = withBackbones(space[random.int(space.length)]!, backboneIds)
    const c: Record<string, Value> = {}
    for (const [name, dim] of Object.entries(branch)) c[name] = sample(dim, random)
    if (!out.has(key(c))) out.set(key(c), c)
  }
  return [...out.values()]
}

/**
 * Splits a candidate into backbone id, head kind and the head's params.
 *
 * @since 0.1.0
 * @category utils
 */
export const resolve = (candidate: Candidate): Resolved => {
  const headParams: Record<string, Value> = {}
  for (const [name, value] of Object.entries(candidate)) {
    if (name.startsWith("head.") && name !== "head.kind") headParams[name.slice(5)] = value
  }
  return { backboneId: String(candidate["backbone.id"]), headKind: String(candidate["head.kind"]), headParams }
}

/**
 * The default space: the regularisation sweep of CLIP's linear-probe protocol for logistic regression, a strongly
 * regularised linear SVM, and the two few-shot heads (cosine prototypes and kNN). Sized to finish within 3 s on
 * 200 x 1280 features on 2 cores.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultSearchSpace: SearchSpace = [
  { "head.kind": ["logistic-regression"], "head.l2": [1, 10, 100, 1000] },
  { "head.kind": ["linear-svm"], "head.l2": [100, 1000] },
  { "head.kind": ["nearest-prototype"], "head.scale": [10] },
  { "head.kind": ["knn"], "head.k": [10] }
]

/**
 * The branches for feature sets whose backbone has a text tower (their training sets carry the labels' zero-shot
 * classifier, `Heads.zeroShotHeads`): the zero-shot classifier alone, and Tip-Adapter over a grid of its cache
 * weight `alpha` and sharpness `beta` (the paper's defaults 1 and 5.5 among them; larger `alpha` lets the samples
 * outvote a poor prior).
 *
 * @since 0.2.0
 * @category constructors
 */
export const zeroShotSearchSpace: SearchSpace = [
  { "head.kind": ["zero-shot"] },
  { "head.kind": ["tip-adapter"], "head.alpha": [1, 3, 10], "head.beta": [1, 5.5] }
]
