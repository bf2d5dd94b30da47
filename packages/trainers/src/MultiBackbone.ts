/**
 * Several backbones in one pipeline, two ways:
 *
 * - **Concatenated embeddings** (`fitConcat`): each image is embedded by every backbone, the vectors are
 *   concatenated in backbone order, and one head is fitted on the result.
 * - **Probability ensembles** (`ensemble`, `fitEnsemble`): one pipeline per backbone (or any fitted pipelines with
 *   the same labels), whose probabilities are averaged, optionally weighted.
 *
 * Both give a `Pipeline.FittedPipeline`: its `backbone` and `extraBackbones` list every backbone once, so
 * `Pipeline.predictMany` embeds each image once per backbone and the head reads the concatenation. An ensemble's
 * head has kind `ensemble`: it holds its members' heads, each reading its own columns of that concatenation.
 * Register `ensembleHead` (it is in `heads`) to load ensemble bundles; it loads the member heads through the
 * `Registry` in context, so their kinds must be registered too.
 *
 * @since 0.1.0
 */
import { CoreError, Embedder, Head, Matrix, Pipeline, Registry } from "@loupe/core"
import type { LoupeConfig, Sample } from "@loupe/core"
import { Effect, Option, ParseResult, Schema } from "effect"
import type { Scope } from "effect"
import { TrainerError } from "./TrainerError.js"

/**
 * A registered backbone id, or an id with plugin options.
 *
 * @since 0.1.0
 * @category models
 */
export type BackboneChoice = string | { readonly id: string; readonly options?: unknown }

const idOf = (choice: BackboneChoice) => (typeof choice === "string" ? choice : choice.id)
const optionsOf = (choice: BackboneChoice) => (typeof choice === "string" ? {} : choice.options ?? {})

/**
 * @since 0.1.0
 * @category models
 */
export interface Spec {
  /** The backbones, in the order their embeddings are concatenated. At least one. */
  readonly backbones: ReadonlyArray<BackboneChoice>
  /** A registered head kind and its params: the one head (`fitConcat`) or each member's head (`fitEnsemble`). */
  readonly head: { readonly kind: string; readonly params?: unknown }
  readonly seed?: number
  readonly embed?: Embedder.EmbedOptions
}

type Requirements = Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope

/**
 * Load backbones in the current scope (the fitted pipeline keeps using them).
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (
  choices: ReadonlyArray<BackboneChoice>
): Effect.Effect<ReadonlyArray<Pipeline.BackboneUse>, CoreError.CoreError | TrainerError, Requirements> =>
  choices.length === 0
    ? Effect.fail(new TrainerError({ reason: "InvalidParams", field: "backbones", message: "Name at least one backbone" }))
    : Effect.forEach(choices, (choice) =>
      Effect.map(Registry.loadBackbone(idOf(choice), optionsOf(choice)), (backbone) => ({ backbone, options: optionsOf(choice) })))

const pipelineOf = (
  labels: ReadonlyArray<string>,
  backbones: ReadonlyArray<Pipeline.BackboneUse>,
  head: Head.FittedHead,
  embed: Embedder.EmbedOptions
): Pipeline.FittedPipeline => ({
  labels,
  backbone: backbones[0]!.backbone,
  backboneOptions: backbones[0]!.options,
  head,
  embed,
  ...(backbones.length > 1 ? { extraBackbones: backbones.slice(1) } : {})
})

const fitHead = (
  kind: string,
  params: unknown,
  data: Head.TrainingSet,
  seed: number
): Effect.Effect<Head.FittedHead, CoreError.CoreError, Registry.Registry> =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const plugin = yield* registry.head(kind)
    const decoded = yield* Pipeline.decodeHeadParams(plugin, params)
    return yield* plugin.fit(data, decoded, seed).pipe(
      Effect.mapError((e) => new CoreError.CoreError({ reason: "HeadFailed", field: kind, message: e.message, cause: e }))
    )
  })

/**
 * Fit one head on the concatenated embeddings of every backbone.
 *
 * @since 0.1.0
 * @category training
 */
export const fitConcat = Effect.fn("MultiBackbone.fitConcat")(function*(spec: Spec, dataset: Pipeline.LabelledSamples) {
  const backbones = yield* load(spec.backbones)
  const embed = spec.embed ?? {}
  const features = yield* Pipeline.embedFeatures(backbones.map((b) => b.backbone), dataset.samples, embed)
  const y = yield* Pipeline.labelIndices(dataset.labels, features.samples)
  const head = yield* fitHead(spec.head.kind, spec.head.params, { x: features.vectors, y, numClasses: dataset.labels.length }, spec.seed ?? 0)
  return { fitted: pipelineOf(dataset.labels, backbones, head, embed), skipped: features.skipped }
})

// ---------------------------------------------------------------------------------------------------------------
// The `ensemble` head
// ---------------------------------------------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category head
 */
export const ensembleKind = "ensemble"

const Range = Schema.Tuple(Schema.Int.pipe(Schema.nonNegative()), Schema.Int.pipe(Schema.nonNegative()))

/**
 * The `ensemble` head's params: its members, each a head kind and params, the column ranges (`[start, end)`) of the
 * input it reads, concatenated in order, and its weight in the average (default 1).
 *
 * @since 0.1.0
 * @category head
 */
export const EnsembleParams = Schema.Struct({
  members: Schema.NonEmptyArray(Schema.Struct({
    kind: Schema.String,
    params: Schema.optionalWith(Schema.Unknown, { exact: true }),
    columns: Schema.NonEmptyArray(Range),
    weight: Schema.optionalWith(Schema.Number.pipe(Schema.positive(), Schema.finite()), { default: () => 1, exact: true })
  }))
})
export type EnsembleParams = typeof EnsembleParams.Type

/**
 * The `ensemble` head's state: the input width and each member's serialised head.
 *
 * @since 0.1.0
 * @category head
 */
export const EnsembleState = Schema.Struct({
  dim: Schema.Int.pipe(Schema.positive()),
  members: Schema.NonEmptyArray(Schema.Struct({ kind: Schema.String, params: Schema.Unknown, state: Schema.Unknown }))
})

/**
 * A member of an ensemble: a fitted head, the columns it reads, and its weight.
 *
 * @since 0.1.0
 * @category models
 */
export interface Member {
  readonly head: Head.FittedHead
  readonly columns: ReadonlyArray<readonly [number, number]>
  readonly weight: number
}

/** The columns `ranges` of `x`, concatenated. */
const selectColumns = (x: Matrix.Matrix, ranges: ReadonlyArray<readonly [number, number]>): Matrix.Matrix => {
  const cols = ranges.reduce((n, [start, end]) => n + end - start, 0)
  if (ranges.length === 1 && ranges[0]![0] === 0 && ranges[0]![1] === x.cols) return x
  const out = new Float32Array(x.rows * cols)
  for (let i = 0; i < x.rows; i++) {
    let offset = i * cols
    for (const [start, end] of ranges) {
      out.set(x.data.subarray(i * x.cols + start, i * x.cols + end), offset)
      offset += end - start
    }
  }
  return Matrix.make(x.rows, cols, out)
}

const invalid = (reason: "InvalidParams" | "InvalidState" | "InvalidData", field: string, message: string) =>
  new TrainerError({ reason, field, message: `${ensembleKind}: ${message}` })

/**
 * An ensemble head over `dim`-wide inputs: the weighted mean of its members' probabilities. Fails when a member's
 * columns fall outside the input, do not match its head's width, or the members disagree on the class count.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeEnsembleHead = (dim: number, members: ReadonlyArray<Member>): Effect.Effect<Head.FittedHead, TrainerError> =>
  Effect.gen(function*() {
    const numClasses = members[0]?.head.numClasses
    if (numClasses === undefined) return yield* invalid("InvalidParams", "members", "an ensemble needs at least one member")
    for (const [k, m] of members.entries()) {
      const width = m.columns.reduce((n, [start, end]) => n + end - start, 0)
      if (m.columns.some(([start, end]) => start >= end || end > dim)) {
        return yield* invalid("InvalidParams", `members.${k}.columns`, `columns ${JSON.stringify(m.columns)} fall outside 0..${dim}`)
      }
      if (width !== m.head.dim) {
        return yield* invalid("InvalidParams", `members.${k}.columns`, `member ${k} reads ${width} columns but its ${m.head.kind} head takes ${m.head.dim}`)
      }
      if (m.head.numClasses !== numClasses) {
        return yield* invalid("InvalidParams", `members.${k}`, `member ${k} has ${m.head.numClasses} classes, member 0 has ${numClasses}`)
      }
    }
    const total = members.reduce((s, m) => s + m.weight, 0)
    const params = {
      members: members.map((m) => {
        const { kind, params } = m.head.toJSON()
        return { kind, params, columns: m.columns.map(([a, b]) => [a, b] as const), weight: m.weight }
      })
    }
    const toJSON = () => ({ kind: ensembleKind, params, state: { dim, members: members.map((m) => m.head.toJSON()) } })
    return Head.make({ kind: ensembleKind, numClasses, dim, toJSON }, (x) => {
      const out = new Float32Array(x.rows * numClasses)
      for (const m of members) {
        const p = m.head.predictProba(selectColumns(x, m.columns)).data
        const w = m.weight / total
        for (let k = 0; k < out.length; k++) out[k] += w * p[k]!
      }
      return Matrix.make(x.rows, numClasses, out)
    })
  })

const registryFor = (field: string) =>
  Effect.flatMap(Effect.serviceOption(Registry.Registry), Option.match({
    onNone: () => Effect.fail(invalid("InvalidState", field, "loading or fitting member heads needs the Registry in context")),
    onSome: Effect.succeed
  }))

const pluginFor = (registry: Registry.RegistryShape, kind: string, field: string) =>
  registry.head(kind).pipe(Effect.mapError((e) => invalid("InvalidParams", field, e.message)))

const decode = <A, I>(schema: Schema.Schema<A, I>, field: string, value: unknown, reason: "InvalidParams" | "InvalidState") =>
  Schema.decodeUnknown(schema, { onExcessProperty: "error" })(value).pipe(
    Effect.mapError((e) => invalid(reason, field, ParseResult.TreeFormatter.formatErrorSync(e)))
  )

/**
 * The `ensemble` head plugin. `fit` fits each member's head on its columns; `load` loads each member with the
 * plugin of its kind from the `Registry` in context.
 *
 * @since 0.1.0
 * @category head
 */
export const ensembleHead: Head.HeadPlugin<EnsembleParams> = {
  kind: ensembleKind,
  paramsSchema: EnsembleParams,
  fit: (data, params, seed) =>
    Effect.gen(function*() {
      const registry = yield* registryFor("params.members")
      const members = yield* Effect.forEach(params.members, (m, k) =>
        Effect.gen(function*() {
          const plugin = yield* pluginFor(registry, m.kind, `members.${k}.kind`)
          const decoded = yield* Pipeline.decodeHeadParams(plugin, m.params).pipe(
            Effect.mapError((e) => invalid("InvalidParams", `members.${k}.params`, e.message))
          )
          if (m.columns.some(([start, end]) => start >= end || end > data.x.cols)) {
            return yield* invalid("InvalidParams", `members.${k}.columns`, `columns ${JSON.stringify(m.columns)} fall outside 0..${data.x.cols}`)
          }
          const head = yield* plugin.fit({ ...data, x: selectColumns(data.x, m.columns) }, decoded, seed).pipe(
            Effect.mapError((e) => new TrainerError({ reason: "TrainingFailed", field: `members.${k}`, message: e.message, cause: e }))
          )
          return { head, columns: m.columns, weight: m.weight }
        }))
      return yield* makeEnsembleHead(data.x.cols, members)
    }),
  load: (serialized) =>
    Effect.gen(function*() {
      if (serialized.kind !== ensembleKind) return yield* invalid("InvalidState", "kind", `cannot load a "${serialized.kind}" head`)
      const params = yield* decode(EnsembleParams, "params", serialized.params, "InvalidState")
      const state = yield* decode(EnsembleState, "state", serialized.state, "InvalidState")
      if (state.members.length !== params.members.length) {
        return yield* invalid("InvalidState", "state.members", `${state.members.length} member heads for ${params.members.length} members`)
      }
      const registry = yield* registryFor("state.members")
      const members = yield* Effect.forEach(state.members, (s, k) =>
        Effect.gen(function*() {
          const plugin = yield* pluginFor(registry, s.kind, `state.members.${k}.kind`)
          const head = yield* plugin.load(s).pipe(
            Effect.mapError((e) => new TrainerError({ reason: "InvalidState", field: `state.members.${k}`, message: e.message, cause: e }))
          )
          return { head, columns: params.members[k]!.columns, weight: params.members[k]!.weight }
        }))
      return yield* makeEnsembleHead(state.dim, members)
    })
}

/**
 * Head plugins this module's results need at load time.
 *
 * @since 0.1.0
 * @category head
 */
export const heads: ReadonlyArray<Head.HeadPlugin> = [ensembleHead]

// ---------------------------------------------------------------------------------------------------------------
// Ensembles of pipelines
// ---------------------------------------------------------------------------------------------------------------

const keyOf = (use: Pipeline.BackboneUse) =>
  JSON.stringify([use.backbone.info.id, use.backbone.weightsHash, use.options ?? {}])

/**
 * Combine fitted pipelines with the same labels (in the same order) into one whose probabilities are the weighted
 * mean of theirs. A backbone shared by several members is embedded once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ensemble = (
  members: ReadonlyArray<Pipeline.FittedPipeline>,
  weights?: ReadonlyArray<number>
): Effect.Effect<Pipeline.FittedPipeline, TrainerError> =>
  Effect.gen(function*() {
    const first = members[0]
    if (first === undefined) return yield* invalid("InvalidParams", "members", "an ensemble needs at least one pipeline")
    if (weights !== undefined && (weights.length !== members.length || weights.some((w) => !(w > 0 && Number.isFinite(w))))) {
      return yield* invalid("InvalidParams", "weights", `expected ${members.length} positive weights, got ${JSON.stringify(weights)}`)
    }
    for (const [k, m] of members.entries()) {
      if (m.labels.join("\u0000") !== first.labels.join("\u0000")) {
        return yield* invalid("InvalidData", `members.${k}.labels`, `member ${k} has labels [${m.labels.join(", ")}], member 0 has [${first.labels.join(", ")}]`)
      }
    }
    const backbones: Array<Pipeline.BackboneUse> = []
    const offsets = new Map<string, readonly [number, number]>()
    let dim = 0
    for (const m of members) {
      for (const use of Pipeline.backbonesOf(m)) {
        const key = keyOf(use)
        if (offsets.has(key)) continue
        offsets.set(key, [dim, dim + use.backbone.info.embeddingSize])
        dim += use.backbone.info.embeddingSize
        backbones.push(use)
      }
    }
    const head = yield* makeEnsembleHead(dim, members.map((m, k) => ({
      head: m.head,
      columns: Pipeline.backbonesOf(m).map((use) => offsets.get(keyOf(use))!),
      weight: weights?.[k] ?? 1
    })))
    return pipelineOf(first.labels, backbones, head, first.embed)
  })

/**
 * Fit one head per backbone (each on its own embeddings) and average their probabilities.
 *
 * @since 0.1.0
 * @category training
 */
export const fitEnsemble = Effect.fn("MultiBackbone.fitEnsemble")(function*(
  spec: Spec,
  dataset: Pipeline.LabelledSamples,
  weights?: ReadonlyArray<number>
) {
  const backbones = yield* load(spec.backbones)
  const embed = spec.embed ?? {}
  const skipped: Array<Sample.SkippedSample> = []
  const members = yield* Effect.forEach(backbones, (use) =>
    Effect.gen(function*() {
      const embeddings = yield* Embedder.embedSamples(use.backbone, dataset.samples, embed)
      skipped.push(...embeddings.skipped)
      const y = yield* Pipeline.labelIndices(dataset.labels, embeddings.samples)
      const head = yield* fitHead(spec.head.kind, spec.head.params, { x: embeddings.vectors, y, numClasses: dataset.labels.length }, spec.seed ?? 0)
      return pipelineOf(dataset.labels, [use], head, embed)
    }))
  return { fitted: yield* ensemble(members, weights), members, skipped }
})
