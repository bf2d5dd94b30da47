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
import { Effect, ParseResult, Schema } from "effect"
import { Registry } from "@loupe/core"
import type * as AutoML from "./AutoML.js"
import { FunctionsError } from "./FunctionsError.js"

const PositiveInt = Schema.Int.pipe(Schema.positive())

/** How backbones are chosen: every registered backbone carrying all `tags`, in registration order, at most `max`. */
const BackboneSelection = Schema.Struct({
  tags: Schema.Array(Schema.String),
  max: Schema.optional(PositiveInt),
  /** Explicit backbone ids; when given, they replace the tag selection (a user override, never in a preset). */
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
 * One fast offline backbone and the linear heads (logistic regression, linear SVM), budget 500,000 rows scored:
 * trains in seconds.
 *
 * @since 0.1.0
 * @category presets
 */
export const fast: Preset = {
  name: "fast",
  version: 3,
  description: "One fast offline backbone and linear heads: trains in seconds",
  settings: {
    backbones: { tags: ["fast", "offline"], max: 1 },
    heads: ["logistic-regression", "linear-svm"],
    searchBudget: 500_000
  }
}

/**
 * Every offline backbone, alone and concatenated, every head, and mirror images. The default (`defaultPreset`).
 *
 * @since 0.1.0
 * @category presets
 */
export const balanced: Preset = {
  name: "balanced",
  version: 3,
  description: "Every offline backbone, alone and concatenated, every head, and mirror images",
  settings: {
    backbones: { tags: ["offline"] },
    heads: "all",
    mirror: true
  }
}

/**
 * `balanced` plus augmented probes (4 views per image), probability ensembles and partial fine-tuning
 * (`fineTuneRecipe`), with 10-fold cross-validation and a budget of 10,000,000 rows scored.
 *
 * @since 0.1.0
 * @category presets
 */
export const best: Preset = {
  name: "best",
  version: 5,
  description: "Balanced plus augmented probes (4 views per image), probability ensembles and partial fine-tuning " +
    "(the last layer of the first TensorFlow.js backbone, 2 epochs), with 10-fold cross-validation and a 5x larger search budget",
  settings: {
    backbones: { tags: ["offline"] },
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

/** The dotted path of the first problem in a parse error (`backbones.tagz`), for the error's `field`. */
const firstPath = (error: ParseResult.ParseError): string => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  return issue && issue.path.length > 0 ? issue.path.join(".") : "overrides"
}

/** Validate user overrides; an unknown or ill-typed key fails with `InvalidOptions` naming it. */
const decodeOverrides = (overrides: unknown): Effect.Effect<Overrides, FunctionsError> =>
  Schema.decodeUnknown(Overrides, { onExcessProperty: "error", errors: "all" })(overrides ?? {}).pipe(
    Effect.mapError((error) => {
      const field = firstPath(error)
      return new FunctionsError({
        reason: "InvalidOptions",
        field,
        message: `Invalid preset override "${field}": ${ParseResult.TreeFormatter.formatErrorSync(error)}`
      })
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
 * then the overrides, later ones winning and nested objects merged key by key. Fails with `FunctionsError`
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

/** The backbone ids a settings' selection picks from the registry; none is a `NoBackbone` error. */
const selectBackbones = (settings: Settings): Effect.Effect<ReadonlyArray<string>, FunctionsError, Registry.Registry> =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const { ids, max, tags } = settings.backbones
    if (ids !== undefined && ids.length > 0) {
      yield* Effect.forEach(ids, (id) =>
        registry.backbone(id).pipe(
          Effect.mapError((e) => new FunctionsError({ reason: "InvalidOptions", field: "backbones.ids", message: e.message }))
        ))
      return ids
    }
    const chosen = registry.backbonesWithTags(tags).map((p) => p.info.id).slice(0, max ?? Infinity)
    if (chosen.length === 0) {
      return yield* new FunctionsError({
        reason: "NoBackbone",
        field: "backbones.tags",
        message: `No registered backbone has every tag of [${tags.join(", ")}]`
      })
    }
    return chosen
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
 * What `AutoML.fit` takes for a resolved preset: the backbones and heads its settings select from the registry, and
 * the rest of its settings. Logs a warning for deprecated overrides, which are ignored. Fails with `FunctionsError`
 * `NoBackbone` (field `backbones.tags`) when no registered backbone has every tag, or `InvalidOptions` (field
 * `backbones.ids` or `heads`) when a named backbone or head is not registered or none of a preset's heads is.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fitOptions = (resolved: Resolved): Effect.Effect<AutoML.FitOptions, FunctionsError, Registry.Registry> =>
  Effect.gen(function*() {
    const { settings } = resolved
    if (resolved.deprecated.length > 0) {
      yield* Effect.logWarning(`Ignoring the deprecated override ${resolved.deprecated.join(", ")}: the search budget is now searchBudget (rows scored)`)
    }
    const heads = yield* selectHeads(resolved)
    return {
      backbones: yield* selectBackbones(settings),
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
