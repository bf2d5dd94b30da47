/**
 * AutoML presets as versioned data. A preset names which backbones to embed with (chosen by tags, never by id, so a
 * user plugin tagged `fast` joins `fast` with no code change), which heads the search tries, how it
 * cross-validates, its search strategy and its budget (counted in work, so a result never depends on machine load).
 *
 * Settings resolve in three layers, later ones winning: `defaults`, then the preset, then the user's overrides.
 * Nested objects (`backbones`, `fineTune`) merge key by key. Overrides are validated with
 * `onExcessProperty: "error"`, so a misspelt key is an error that names it.
 *
 * @since 0.1.0
 */
import { Effect, ParseResult, Schema, SchemaAST } from "effect"
import { LoupeConfig, Registry } from "@loupe/core"
import { Download } from "@loupe/backbones"
import type * as AutoML from "./AutoML.js"
import { FunctionsError } from "./FunctionsError.js"

const PositiveInt = Schema.Int.pipe(Schema.positive())

/** How backbones are chosen: every registered backbone carrying all `tags`, in registration order, at most `max`. */
const BackboneSelection = Schema.Struct({
  tags: Schema.Array(Schema.String),
  max: Schema.optional(PositiveInt),
  /**
   * Tags of a backbone to search first, beside the tag selection: the first registered one carrying them all whose
   * weights are here (present or cached) or, unless offline, that a reachable hub can provide (pulled when it
   * loads). When none is, the tag selection alone, with one log line saying so (see `chooseBackbones`).
   */
  prefer: Schema.optional(Schema.Array(Schema.String)),
  /**
   * Explicit backbone ids; when given, they replace the tag selection (a user override, never in a preset): any
   * registered id, a hub model `hf:org/name[@revision]` or a model folder path.
   */
  ids: Schema.optional(Schema.Array(Schema.String))
})

/**
 * Partial fine-tuning as a search candidate (`AutoML.FitOptions.fineTune`): the schema of `Settings.fineTune`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FineTuneRecipe = Schema.Struct({
  /** Weight layers trained, counted from the end of the backbone (`FineTune.prepare`). */
  trainableLayers: PositiveInt,
  /** Epochs per fit; each epoch trains on one view (the image or its mirror image) of every image. */
  epochs: PositiveInt
})
/**
 * A fine-tuning recipe: weight layers trained (counted from the end of the backbone) and epochs per fit.
 *
 * @since 0.1.0
 * @category models
 */
export type FineTuneRecipe = typeof FineTuneRecipe.Type

/**
 * What `fineTune: true` turns on: the last weight layer (MobileNetV2's 1 x 1 convolution to 1280 channels) for 2
 * epochs, measured on 200 photos at about 2.5 minutes of 10-fold cross-validation on 2 cores. The `best` preset uses it.
 *
 * @since 0.1.0
 * @category presets
 */
export const fineTuneRecipe: FineTuneRecipe = { trainableLayers: 1, epochs: 2 }

/**
 * The schema of every setting, all present: what `defaults` holds and `resolve` returns.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Settings = Schema.Struct({
  backbones: BackboneSelection,
  /**
   * Head kinds the search tries (each over its own parameter grid), or `"all"` for every head the search supports
   * (`AutoML.fit`'s default space). A preset's list is a preference: kinds not registered are left out. A user's list
   * is strict: each kind must be registered.
   */
  heads: Schema.Union(Schema.Literal("all"), Schema.Array(Schema.String)),
  /** Cross-validation folds (reduced automatically when the smallest class is smaller). */
  folds: Schema.Int.pipe(Schema.greaterThanOrEqualTo(2)),
  /**
   * How candidates are searched: `successive-halving` (every candidate on a subsample, the best of each feature set
   * on more rows, the last rung on all rows) or `grid` (every candidate on all rows).
   */
  strategy: Schema.Literal("successive-halving", "grid"),
  /**
   * The search's budget in rows scored: the sum, over the candidates cross-validated, of the rows each was scored on
   * (`Search.Options.budget`). Work, not time, so the same data and seed give the same model on any machine.
   */
  searchBudget: PositiveInt,
  /** Train and predict on each image and its mirror image (`AutoML.FitOptions.mirror`). */
  mirror: Schema.Boolean,
  /** Augmented views per image for the augmented probe; 0 is off (`AutoML.FitOptions.augmentedViews`). */
  augmentedViews: Schema.Int.pipe(Schema.between(0, 16)),
  /** Try the probability ensemble of each backbone's best head (`AutoML.FitOptions.ensembles`). */
  ensembles: Schema.Boolean,
  /** Partial fine-tuning of the first backbone that allows it, as one more candidate; `false` is off. */
  fineTune: Schema.Union(Schema.Literal(false), FineTuneRecipe),
  seed: Schema.Int,
  /**
   * Which retrained model serves: `always` the newest; `if-not-worse` keeps a retrain unserved (in the history, with
   * the reason) when its cross-validated macro-F1 is below the serving model's by more than the standard error of
   * their difference, `sqrt(se_new^2 + se_serving^2)`, each estimated across folds. Not a training setting: it
   * decides what happens after training.
   *
   * @since 0.2.0
   */
  promote: Schema.Literal("always", "if-not-worse"),
  /**
   * How many model versions a function keeps: the newest `keepVersions`, and the serving one whatever its age. After
   * each retrain, older versions are removed with their bundles (the folders Loupe wrote them to in the blob store).
   *
   * @since 0.2.0
   */
  keepVersions: PositiveInt
})
/**
 * Every setting, all present (see the `Settings` schema for each field's meaning).
 *
 * @since 0.1.0
 * @category models
 */
export type Settings = typeof Settings.Type

/**
 * The schema of user overrides: any subset of the settings; `backbones` and `fineTune` may themselves be partial.
 * `resolve` decodes with it and rejects unknown keys.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Overrides = Schema.Struct({
  /** A (partial) selection. `resolve` also takes a list of ids: `["hf:Xenova/dinov2-small"]` is `{ ids: [...] }`. */
  backbones: Schema.optional(Schema.partialWith(BackboneSelection, { exact: true })),
  heads: Schema.optional(Settings.fields.heads),
  folds: Schema.optional(Settings.fields.folds),
  strategy: Schema.optional(Settings.fields.strategy),
  searchBudget: Schema.optional(Settings.fields.searchBudget),
  /**
   * Deprecated and ignored: the budget used to be wall-clock time, which made the result depend on machine load.
   * Still accepted so functions created with it keep retraining; `searchBudget` replaces it.
   */
  timeBudgetSeconds: Schema.optional(Schema.Number.pipe(Schema.positive())),
  mirror: Schema.optional(Settings.fields.mirror),
  augmentedViews: Schema.optional(Settings.fields.augmentedViews),
  ensembles: Schema.optional(Settings.fields.ensembles),
  /** `false` turns fine-tuning off; `true` or a (partial) recipe turns it on, over the preset's recipe or `fineTuneRecipe`. */
  fineTune: Schema.optional(Schema.Union(Schema.partialWith(FineTuneRecipe, { exact: true }), Schema.Boolean)),
  seed: Schema.optional(Settings.fields.seed),
  promote: Schema.optional(Settings.fields.promote),
  keepVersions: Schema.optional(Settings.fields.keepVersions)
})
/**
 * Any subset of the settings, as a preset or a user sets them.
 *
 * @since 0.1.0
 * @category models
 */
export type Overrides = typeof Overrides.Type

/**
 * A named, versioned set of overrides over `defaults`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Preset {
  readonly name: string
  /** Bumped whenever the preset's settings change; recorded with every model trained from it. */
  readonly version: number
  readonly description: string
  readonly settings: Overrides
}

/**
 * The base every preset starts from: offline backbones, every head, 5 folds, successive halving with a budget of
 * 2,000,000 rows scored, no mirror images, augmented views, ensembles or fine-tuning, seed 0; every retrain promoted
 * (`promote: "always"`, as Nyckel does: new data is what the user asked the model to learn) and the last 10 versions
 * kept.
 *
 * @since 0.1.0
 * @category presets
 */
export const defaults: Settings = {
  backbones: { tags: ["offline"] },
  heads: "all",
  folds: 5,
  strategy: "successive-halving",
  searchBudget: 2_000_000,
  mirror: false,
  augmentedViews: 0,
  ensembles: false,
  fineTune: false,
  seed: 0,
  promote: "always",
  keepVersions: 10
}

/**
 * One fast offline backbone and the linear heads (logistic regression, linear SVM, and the class-mean head
 * nearest-prototype, which still learns a label with very few images where the others learn "never"), budget 500,000
 * rows scored: trains in seconds.
 *
 * @since 0.1.0
 * @category presets
 */
export const fast: Preset = {
  name: "fast",
  version: 4,
  description: "One fast offline backbone and linear heads: trains in seconds",
  settings: {
    backbones: { tags: ["fast", "offline"], max: 1 },
    heads: ["logistic-regression", "linear-svm", "nearest-prototype"],
    searchBudget: 500_000
  }
}

/**
 * Every offline backbone, plus the first `strong` backbone (a hub model such as DINOv2) whose weights are here or a
 * reachable hub provides, alone and concatenated, every head, and mirror images. The default (`defaultPreset`).
 *
 * @since 0.1.0
 * @category presets
 */
export const balanced: Preset = {
  name: "balanced",
  version: 4,
  description: "Every offline backbone plus a strong one when its weights are here or a hub provides them " +
    "(never with --offline), alone and concatenated, every head, and mirror images",
  settings: {
    backbones: { tags: ["offline"], prefer: ["strong"] },
    heads: "all",
    mirror: true
  }
}

/**
 * `balanced` (a `strong` backbone included when available) plus augmented probes (4 views per image), probability ensembles and partial fine-tuning
 * (`fineTuneRecipe`), with 10-fold cross-validation and a budget of 10,000,000 rows scored.
 *
 * @since 0.1.0
 * @category presets
 */
export const best: Preset = {
  name: "best",
  version: 6,
  description: "Balanced plus augmented probes (4 views per image), probability ensembles and partial fine-tuning " +
    "(the last layer of the first TensorFlow.js backbone, 2 epochs), with 10-fold cross-validation and a 5x larger search budget",
  settings: {
    backbones: { tags: ["offline"], prefer: ["strong"] },
    heads: "all",
    folds: 10,
    searchBudget: 10_000_000,
    mirror: true,
    augmentedViews: 4,
    ensembles: true,
    fineTune: fineTuneRecipe
  }
}

/**
 * The built-in presets: `fast`, `balanced`, `best`.
 *
 * @since 0.1.0
 * @category presets
 */
export const presets: ReadonlyArray<Preset> = [fast, balanced, best]

/**
 * The name of the preset functions and `loupe train` use when none is named: `"balanced"`.
 *
 * @since 0.1.0
 * @category presets
 */
export const defaultPreset = "balanced"

/**
 * Find a preset by name among `available` (default: the built-in `presets`). An unknown name fails with
 * `FunctionsError` `InvalidOptions` (field `preset`) listing the known ones.
 *
 * @since 0.1.0
 * @category constructors
 */
export const named = (name: string, available: ReadonlyArray<Preset> = presets): Effect.Effect<Preset, FunctionsError> => {
  const preset = available.find((p) => p.name === name)
  return preset
    ? Effect.succeed(preset)
    : Effect.fail(
      new FunctionsError({
        reason: "InvalidOptions",
        field: "preset",
        message: `Unknown preset "${name}". Known presets: ${available.map((p) => p.name).join(", ")}`
      })
    )
}

/** The first unexpected key in a parse issue: its path, and the keys the object holding it accepts. */
const unexpectedKey = (
  issue: ParseResult.ParseIssue,
  at: ReadonlyArray<PropertyKey> = [],
  accepted: ReadonlyArray<string> = []
): { readonly path: ReadonlyArray<PropertyKey>; readonly accepted: ReadonlyArray<string> } | undefined => {
  switch (issue._tag) {
    case "Unexpected":
      return { path: at, accepted }
    case "Pointer":
      return unexpectedKey(issue.issue, [...at, ...(Array.isArray(issue.path) ? issue.path : [issue.path])], accepted)
    case "Refinement":
    case "Transformation":
      return unexpectedKey(issue.issue, at, accepted)
    case "Composite": {
      const keys = SchemaAST.isTypeLiteral(issue.ast) ? issue.ast.propertySignatures.map((p) => String(p.name)) : accepted
      for (const child of Array.isArray(issue.issues) ? issue.issues : [issue.issues]) {
        const found = unexpectedKey(child, at, keys)
        if (found !== undefined) return found
      }
      return undefined
    }
    default:
      return undefined
  }
}

const overrideKeys = Object.keys(Overrides.fields).join(", ")

/** `backbones` given as a list of ids is `backbones.ids`. */
const idsListed = (overrides: unknown): unknown => {
  if (typeof overrides !== "object" || overrides === null || !("backbones" in overrides)) return overrides
  const { backbones } = overrides as { readonly backbones: unknown }
  return Array.isArray(backbones) ? { ...overrides, backbones: { ids: backbones } } : overrides
}

/**
 * Validate user overrides; an unknown or ill-typed key fails with `InvalidOptions` naming it, in one line: an unknown
 * key with the keys accepted where it stands, an ill-typed one with what was expected (never the whole schema).
 */
const decodeOverrides = (overrides: unknown): Effect.Effect<Overrides, FunctionsError> =>
  Schema.decodeUnknown(Overrides, { onExcessProperty: "error", errors: "all" })(idsListed(overrides ?? {})).pipe(
    Effect.mapError((error) => {
      const unexpected = unexpectedKey(error.issue)
      if (unexpected !== undefined) {
        const field = unexpected.path.join(".")
        const parent = unexpected.path.slice(0, -1).join(".")
        return new FunctionsError({
          reason: "InvalidOptions",
          field,
          message: `Unknown preset override "${field}"; accepted keys${parent === "" ? "" : ` of "${parent}"`}: ${unexpected.accepted.join(", ")}`
        })
      }
      const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
      if (issue === undefined || issue.path.length === 0) {
        return new FunctionsError({
          reason: "InvalidOptions",
          field: "overrides",
          message: `Preset overrides must be an object of settings; accepted keys: ${overrideKeys}`
        })
      }
      const field = issue.path.join(".")
      return new FunctionsError({ reason: "InvalidOptions", field, message: `Invalid preset override "${field}": ${issue.message}` })
    })
  )

const mergeFineTune = (base: Settings["fineTune"], layer: Overrides["fineTune"]): Settings["fineTune"] =>
  layer === undefined ? base : layer === false ? false : { ...(base === false ? fineTuneRecipe : base), ...(layer === true ? {} : layer) }

const merge = (base: Settings, layer: Overrides): Settings => ({
  backbones: { ...base.backbones, ...layer.backbones },
  heads: layer.heads ?? base.heads,
  folds: layer.folds ?? base.folds,
  strategy: layer.strategy ?? base.strategy,
  searchBudget: layer.searchBudget ?? base.searchBudget,
  mirror: layer.mirror ?? base.mirror,
  augmentedViews: layer.augmentedViews ?? base.augmentedViews,
  ensembles: layer.ensembles ?? base.ensembles,
  fineTune: mergeFineTune(base.fineTune, layer.fineTune),
  seed: layer.seed ?? base.seed,
  promote: layer.promote ?? base.promote,
  keepVersions: layer.keepVersions ?? base.keepVersions
})

/**
 * A preset resolved with the user's overrides: which preset (name and version, recorded with every model trained
 * from it), the settings, and which keys the overrides set.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved {
  readonly preset: { readonly name: string; readonly version: number }
  readonly settings: Settings
  /** The top-level keys the user's overrides set. */
  readonly overridden: ReadonlyArray<keyof Settings>
  /** Deprecated keys the overrides set, which are ignored. */
  readonly deprecated: ReadonlyArray<string>
}

/**
 * Resolve the preset `name` with user `overrides` (an unknown value, e.g. parsed JSON): `defaults`, then the preset,
 * then the overrides, later ones winning and nested objects merged key by key. `backbones` may be a list of ids,
 * short for `{ ids: [...] }` (`'{"backbones": ["hf:Xenova/clip-vit-base-patch32"]}'`). Fails with `FunctionsError`
 * `InvalidOptions` for an unknown preset (field `preset`) or an unknown or ill-typed override (the field names its
 * path, e.g. `backbones.tagz`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = (name: string, overrides: unknown = {}): Effect.Effect<Resolved, FunctionsError> =>
  Effect.gen(function*() {
    const preset = yield* named(name)
    const user = yield* decodeOverrides(overrides)
    return {
      preset: { name: preset.name, version: preset.version },
      settings: merge(merge(defaults, preset.settings), user),
      overridden: Object.keys(user).filter((k): k is keyof Settings => k in defaults),
      deprecated: Object.keys(user).filter((k) => !(k in defaults))
    }
  })

/**
 * The settings that only mean something for a function, since they decide what happens after each retrain (which
 * model serves, how many versions are kept): `promote` and `keepVersions`.
 *
 * @since 0.2.0
 * @category constants
 */
export const functionOnly: ReadonlyArray<keyof Settings> = ["promote", "keepVersions"]

/**
 * `resolved`, for a one-off training run (`loupe train`), which has no retrains to steer: fails with `FunctionsError`
 * `InvalidOptions`, in one line naming the key, when the user's overrides set a `functionOnly` setting, rather than
 * taking it and ignoring it.
 *
 * @since 0.2.0
 * @category constructors
 */
export const forTraining = (resolved: Resolved): Effect.Effect<Resolved, FunctionsError> => {
  const key = resolved.overridden.find((k) => functionOnly.includes(k))
  return key === undefined
    ? Effect.succeed(resolved)
    : Effect.fail(
      new FunctionsError({
        reason: "InvalidOptions",
        field: key,
        message: `Preset override "${key}" applies to functions (what happens after each retrain), not to a training run; ` +
          "set it with `loupe function create --overrides`"
      })
    )
}

/**
 * Which backbones a run searches, and why, in words: recorded in `loupe train --json`, its report and each model's
 * metrics.
 *
 * @since 0.2.0
 * @category models
 */
export interface BackboneChoice {
  readonly backbones: ReadonlyArray<string>
  readonly reason: string
}

/**
 * The backbones a resolved preset searches, and why: the user's ids when given (each must be registered or resolve:
 * `hf:org/name[@revision]`, a model folder); else the tag selection, led by the first `prefer`red backbone whose
 * weights are here or that a reachable hub provides (probed once, 600 ms at most, never in offline mode). When a
 * preference finds none, the tag selection alone, logged in one line. Fails with `FunctionsError` `NoBackbone` (field
 * `backbones.tags`) when no registered backbone has every tag, `InvalidOptions` (field `backbones.ids`) for an id
 * that is not registered and does not resolve.
 *
 * @since 0.2.0
 * @category constructors
 */
export const chooseBackbones = (
  resolved: Resolved
): Effect.Effect<BackboneChoice, FunctionsError, Registry.Registry | LoupeConfig.LoupeConfig> =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const { ids, max, prefer, tags } = resolved.settings.backbones
    if (ids !== undefined && ids.length > 0) {
      yield* Effect.forEach(ids, (id) =>
        registry.backbone(id).pipe(
          Effect.mapError((e) => new FunctionsError({ reason: "InvalidOptions", field: "backbones.ids", message: e.message }))
        ))
      return { backbones: ids, reason: `named by the user (backbones.ids / --backbone)` }
    }
    const chosen = registry.backbonesWithTags(tags).map((p) => p.info.id).slice(0, max ?? Infinity)
    if (chosen.length === 0) {
      return yield* new FunctionsError({
        reason: "NoBackbone",
        field: "backbones.tags",
        message: `No registered backbone has every tag of [${tags.join(", ")}]`
      })
    }
    const selection = `preset ${resolved.preset.name} selects the backbones tagged [${tags.join(", ")}]`
    if (prefer === undefined || prefer.length === 0) return { backbones: chosen, reason: selection }
    const config = yield* LoupeConfig.LoupeConfig
    const preferred = registry.backbonesWithTags(prefer).filter((p) => !chosen.includes(p.info.id))
    const listed = yield* Download.listModels(preferred, config)
    const lead = (id: string, how: string) => ({
      backbones: [id, ...chosen],
      reason: `${id} is the first backbone tagged [${prefer.join(", ")}] available: ${how}; and ${selection}`
    })
    const here = listed.find((m) => m.present)
    if (here !== undefined) return lead(here.id, `its weights are here (${here.localPath})`)
    // Nothing here: one probe of the hub for the first that a hub provides (at most 600 ms), unless offline.
    const first = preferred.find((p) => p.info.weights._tag === "Hub")
    const probed = first === undefined ? undefined : yield* Download.availability(first, config)
    if (first !== undefined && probed?._tag === "pullable") {
      return lead(first.info.id, `its weights are pulled from ${probed.hubUrl} when it loads`)
    }
    const why = first === undefined
      ? `no registered backbone tagged [${prefer.join(", ")}] comes from a hub`
      : `${first.info.id}: ${probed?._tag === "unavailable" ? probed.reason : "not here"}`
    const reason = `no backbone tagged [${prefer.join(", ")}] is available (${why}), so the offline set: ${selection}`
    yield* Effect.logInfo(`Preset ${resolved.preset.name}: ${reason}`)
    return { backbones: chosen, reason }
  })

/**
 * The head kinds a resolved preset picks, or `undefined` for `"all"` (the search's own default space). Kinds the user
 * named must be registered (else `InvalidOptions` naming `heads`); kinds a preset names are kept when registered.
 * None left is an `InvalidOptions` error.
 */
const selectHeads = (
  resolved: Resolved
): Effect.Effect<ReadonlyArray<string> | undefined, FunctionsError, Registry.Registry> =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const { heads } = resolved.settings
    if (heads === "all") return undefined
    if (resolved.overridden.includes("heads")) {
      yield* Effect.forEach(heads, (kind) =>
        registry.head(kind).pipe(
          Effect.mapError((e) => new FunctionsError({ reason: "InvalidOptions", field: "heads", message: e.message }))
        ))
      return heads
    }
    const registered = new Set(registry.heads.map((h) => h.kind))
    const chosen = heads.filter((kind) => registered.has(kind))
    if (chosen.length === 0) {
      return yield* new FunctionsError({
        reason: "InvalidOptions",
        field: "heads",
        message: `Preset ${resolved.preset.name} wants heads [${heads.join(", ")}], and none is registered ` +
          `(registered: ${[...registered].join(", ") || "none"})`
      })
    }
    return chosen
  })

/**
 * What `AutoML.fit` takes for a resolved preset: the backbones its settings choose (`chooseBackbones`, whose answer
 * comes along as `backboneChoice`), the heads they select from the registry, and the rest of its settings. Logs a
 * warning for deprecated overrides, which are ignored. Fails with `FunctionsError` `NoBackbone` (field
 * `backbones.tags`) when no registered backbone has every tag, or `InvalidOptions` (field `backbones.ids` or `heads`)
 * when a named backbone or head is not registered or none of a preset's heads is.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fitOptions = (
  resolved: Resolved
): Effect.Effect<AutoML.FitOptions & { readonly backboneChoice: BackboneChoice }, FunctionsError, Registry.Registry | LoupeConfig.LoupeConfig> =>
  Effect.gen(function*() {
    const { settings } = resolved
    if (resolved.deprecated.length > 0) {
      yield* Effect.logWarning(`Ignoring the deprecated override ${resolved.deprecated.join(", ")}: the search budget is now searchBudget (rows scored)`)
    }
    const heads = yield* selectHeads(resolved)
    const backboneChoice = yield* chooseBackbones(resolved)
    return {
      backbones: backboneChoice.backbones,
      backboneChoice,
      ...(heads === undefined ? {} : { heads }),
      folds: settings.folds,
      strategy: settings.strategy,
      searchBudget: settings.searchBudget,
      mirror: settings.mirror,
      augmentedViews: settings.augmentedViews,
      ensembles: settings.ensembles,
      ...(settings.fineTune === false ? {} : { fineTune: settings.fineTune }),
      seed: settings.seed
    }
  })
