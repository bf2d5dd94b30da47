/**
 * Partial fine-tuning of a backbone that offers core's trainable-tail capability (`BackbonePlugin.trainableTail`;
 * TensorFlow.js layers backbones do): its last layers are trained end to end with the head. Manual mode uses it
 * when `trainableLayers > 0` (`ManualTraining.train({ backbone: "tfjs:mobilenetv2-0.35", trainableLayers: 4, ... })`).
 *
 * The model is cut at the latest point that leaves at least `trainableLayers` layers with weights (convolutions,
 * depthwise convolutions, dense layers) after it and where one tensor alone feeds the rest (never inside a residual
 * block). The part before the cut, the **trunk**, is the same backbone loaded with the plugin option
 * `output: <cut layer>`: it embeds each augmented view once, before the first epoch, into its activation map. The
 * part after the cut, the **tail**, is trained with the head (a linear layer or an MLP): the backbone's runtime
 * computes each batch's loss and gradients through tail and head (`TrainableTail.Tail.step`); the training engine
 * (`internal/FineTuneEngine`) keeps the head layers and the float32 master weights, updated by `Optimizer`'s rules in
 * WebAssembly (the same rules as the frozen-backbone heads).
 *
 * The result is a `FittedPipeline` whose backbone is the trunk (the bundle records its `output` option) and whose
 * head, of kind `finetune`, holds the tail's topology and trained weights and the head layers, so a bundle saves
 * and loads it like any other. Register `headPlugin` (it is in `ManualTraining.heads`) to load such bundles: it
 * restores the tail through the bundle's backbone plugin.
 *
 * The search fine-tunes too: the trunk's embeddings are one more feature set, and `searchHead(prepared)` is a
 * `finetune` head plugin whose `fit` trains the tail + head on them by the ordinary head contract, so the search
 * cross-validates it on the same folds, mirror images and selection rule as every other candidate. Every fit starts
 * from the pretrained tail (`Prepared.tail.pretrained`), whatever fit ran before it.
 *
 * @since 0.1.0
 */
import { CoreError, Head, LoupeConfig, Matrix, Registry } from "@loupe/core"
import type { Backbone, TrainableTail } from "@loupe/core"
import { Effect, ParseResult, Schema, Stream } from "effect"
import type { Scope } from "effect"
import * as DenseHead from "./internal/DenseHead.js"
import * as EpochLoop from "./internal/EpochLoop.js"
import * as FineTuneEngine from "./internal/FineTuneEngine.js"
import * as LrSchedule from "./LrSchedule.js"
import * as Optimizer from "./Optimizer.js"
import { TrainerError } from "./TrainerError.js"

/**
 * The kind of the fine-tuned head, `"finetune"`: the backbone's trainable tail with dense head layers on top. Register
 * it (it is in `ManualTraining.heads`) to load what fine-tuning saves.
 *
 * @since 0.1.0
 * @category head
 */
export const headKind = "finetune"

/**
 * What `prepare` needs: a registered backbone with a trainable tail, its options, and the number of weight layers to
 * train, counted from the end of the embedding network.
 *
 * @since 0.1.0
 * @category models
 */
export interface PrepareOptions {
  /** A registered backbone with a trainable tail, e.g. `tfjs:mobilenetv2-0.35`. */
  readonly backbone: string
  readonly backboneOptions?: unknown
  /** At least this many layers with weights are trained, counted from the end of the embedding network. */
  readonly trainableLayers: number
}

/**
 * A backbone split for fine-tuning.
 *
 * @since 0.1.0
 * @category models
 */
export interface Prepared {
  /** The frozen part, as a backbone whose embedding is the flattened activation map at the cut. */
  readonly trunk: Backbone.LoadedBackbone
  /** The plugin options that load `trunk` (the user's options plus the cut). */
  readonly trunkOptions: Readonly<Record<string, unknown>>
  /** The trainable part. Training overwrites its weights. */
  readonly tail: TrainableTail.Tail
  /** The capability that cut it, which restores saved tails. */
  readonly capability: TrainableTail.TrainableTail
  /** The tail's input: the activation map at the cut, height x width x channels. */
  readonly inputShape: readonly [number, number, number]
  /** The last trunk layer, and the tail's layers whose weights train. */
  readonly cut: { readonly name: string; readonly trainable: ReadonlyArray<string> }
}

const invalidParams = (field: string, message: string) => new TrainerError({ reason: "InvalidParams", field, message })

/**
 * Cut the backbone for `trainableLayers` through its trainable-tail capability and load the trunk (in the caller's
 * scope: the fitted pipeline uses it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const prepare = (
  options: PrepareOptions
): Effect.Effect<Prepared, TrainerError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const config = yield* LoupeConfig.LoupeConfig
    const plugin = yield* registry.backbone(options.backbone)
    const capability = plugin.trainableTail
    if (capability === undefined) {
      return yield* invalidParams(
        "backbone",
        `Partial fine-tuning needs a backbone with a trainable tail (a TensorFlow.js layers model); ${options.backbone} ` +
          `runs on ${plugin.info.runtime}. Use trainableLayers: 0 to train a head on its frozen embeddings`
      )
    }
    // The capability names the offending input when the request does not fit the model; otherwise the model failed.
    const { tail, trunkOptions } = yield* capability.cut({ config, options: options.backboneOptions ?? {} }, options.trainableLayers).pipe(
      Effect.mapError((e) =>
        e.field === undefined
          ? new CoreError.CoreError({ reason: "BackboneFailed", field: options.backbone, message: e.message, cause: e })
          : invalidParams(e.field, e.message)
      )
    )
    const trunk = yield* Registry.loadBackbone(options.backbone, trunkOptions)
    const [h, w, c] = tail.inputShape
    if (tail.inputShape.length !== 3 || trunk.info.embeddingSize !== h * w * c) {
      return yield* new TrainerError({
        reason: "ShapeMismatch",
        field: "trainableLayers",
        message: `${options.backbone} cut after ${tail.cut}: the trunk gives ${trunk.info.embeddingSize} values per image, ` +
          `the tail takes ${JSON.stringify(tail.inputShape)}`
      })
    }
    return {
      trunk,
      trunkOptions,
      tail,
      capability,
      inputShape: tail.inputShape,
      cut: { name: tail.cut, trainable: tail.trainable }
    }
  })

/** Probabilities: the tail's features, then the head layers in TypeScript. */
// ---------------------------------------------------------------------------------------------------------------
// The `finetune` head
// ---------------------------------------------------------------------------------------------------------------

/**
 * The `finetune` head's state: the tail's input shape and the head layers on top; beside them, the fields the
 * backbone's capability saved for the tail (its cut, trained layers, topology and weights), which it restores.
 *
 * @since 0.1.0
 * @category head
 */
export const State = Schema.Struct({
  inputShape: Schema.Tuple(DenseHead.PositiveInt, DenseHead.PositiveInt, DenseHead.PositiveInt),
  head: DenseHead.Layers
})
/**
 * The decoded `finetune` head state.
 *
 * @since 0.1.0
 * @category head
 */
export type State = typeof State.Type

const invalidState = (field: string, message: string, cause?: unknown) =>
  new TrainerError({ reason: "InvalidState", field, message: `${headKind}: ${message}`, cause })

/** The fitted head around a tail; `saved` is what the tail saved, stored beside `state` in the head's JSON. */
const fromTail = (
  params: DenseHead.Params,
  state: State,
  tail: TrainableTail.Tail,
  saved: Readonly<Record<string, unknown>>
): Effect.Effect<Head.FittedHead, TrainerError> =>
  Effect.gen(function*() {
    const headShape = DenseHead.shape(state.head)
    if (typeof headShape === "string") return yield* invalidState("state.head", headShape)
    const [h, w, c] = state.inputShape
    if (tail.inputShape.join(",") !== [h, w, c].join(",")) {
      return yield* invalidState("state.inputShape", `the layers take ${JSON.stringify(tail.inputShape)}, the state says ${JSON.stringify(state.inputShape)}`)
    }
    if (tail.featureDim !== headShape.dim) {
      return yield* invalidState("state.head", `the layers give ${tail.featureDim} features, the head takes ${headShape.dim}`)
    }
    const serialized: Head.SerializedHead = {
      kind: headKind,
      params: Schema.encodeSync(DenseHead.Params)(params),
      state: { ...saved, ...Schema.encodeSync(State)(state) }
    }
    return Head.make({ kind: headKind, numClasses: headShape.numClasses, dim: h * w * c, toJSON: () => serialized }, (x) =>
      FineTuneEngine.predictWith(tail, state.head, x))
  })

const decode = <A, I>(schema: Schema.Schema<A, I>, field: string, value: unknown) =>
  Schema.decodeUnknown(schema, { onExcessProperty: "error" })(value).pipe(
    Effect.mapError((e) => invalidState(field, `invalid ${field}: ${ParseResult.TreeFormatter.formatErrorSync(e)}`, e))
  )

/** Load a `finetune` head, restoring its tail with `capability`. */
const load = (serialized: Head.SerializedHead, capability: TrainableTail.TrainableTail | undefined) =>
  Effect.gen(function*() {
    if (serialized.kind !== headKind) return yield* invalidState("kind", `cannot load a "${serialized.kind}" head`)
    if (capability === undefined) {
      return yield* invalidState("backbone", "the tail loads through the backbone it was cut from, which has no trainable tail here")
    }
    const params = yield* decode(DenseHead.Params, "params", serialized.params)
    const raw = serialized.state
    if (typeof raw !== "object" || raw === null) return yield* invalidState("state", "the state is not an object")
    const { head, inputShape, ...saved } = raw as Record<string, unknown>
    const state = yield* decode(State, "state", { head, inputShape })
    const tail = yield* capability.restore(saved).pipe(
      Effect.mapError((e) => invalidState(e.field === undefined ? "state" : e.field, e.message, e))
    )
    return yield* fromTail(params, state, tail, saved)
  })

/**
 * The `finetune` head plugin, for loading bundles (through the bundle's backbone plugin, whose capability restores
 * the tail). Its `fit` fails: the tail is part of a backbone, so it is trained with `ManualTraining.train`
 * (`trainableLayers > 0`), not on embeddings alone.
 *
 * @since 0.1.0
 * @category head
 */
export const headPlugin: Head.HeadPlugin<DenseHead.Params> = {
  kind: headKind,
  paramsSchema: DenseHead.Params,
  fit: () =>
    Effect.fail(
      invalidParams(
        "head.kind",
        `${headKind} heads train with their backbone's last layers: use ManualTraining.train with trainableLayers > 0`
      )
    ),
  load: (serialized, context) => load(serialized, context?.backbone?.trainableTail)
}

/**
 * The fitted `finetune` head of a snapshot: the snapshot's weights are written into the tail, which is saved and
 * restored as a separate model, exactly as a bundle will restore it.
 *
 * @since 0.1.0
 * @category head
 */
export const toHead = (
  prepared: Prepared,
  snapshot: FineTuneEngine.Snapshot,
  params: DenseHead.Params
): Effect.Effect<Head.FittedHead, TrainerError> =>
  Effect.gen(function*() {
    const { capability, tail } = prepared
    tail.write(snapshot.tail)
    const failed = (e: { readonly message: string }) =>
      new TrainerError({ reason: "TrainingFailed", message: `Cannot save the fine-tuned layers: ${e.message}`, cause: e })
    const saved = yield* tail.save().pipe(Effect.mapError(failed))
    const restored = yield* capability.restore(saved).pipe(Effect.mapError(failed))
    return yield* fromTail(params, { inputShape: prepared.inputShape, head: snapshot.head }, restored, saved)
  })

// ---------------------------------------------------------------------------------------------------------------
// Fine-tuning as a search candidate
// ---------------------------------------------------------------------------------------------------------------

/**
 * The `finetune` search head's params: `DenseHead.Params` with defaults for a short fine-tune (Adam at 5e-4 with a
 * cosine schedule, batches of 16, 4 epochs), since a search space can set numbers (`head.epochs`, `head.lr`,
 * `head.batchSize`, `head.hidden`) but not the optimiser or schedule objects.
 *
 * @since 0.1.0
 * @category search
 */
export const SearchParams = Schema.Struct({
  ...DenseHead.Params.fields,
  optimizer: DenseHead.opt(Optimizer.Optimizer, { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8 }),
  lr: DenseHead.opt(Schema.Number.pipe(Schema.positive(), Schema.finite()), 0.0005),
  schedule: DenseHead.opt(LrSchedule.LrSchedule, { kind: "cosine", minLr: 0, warmupEpochs: 0 }),
  epochs: DenseHead.opt(DenseHead.PositiveInt, 4),
  batchSize: DenseHead.opt(DenseHead.PositiveInt, 16)
})

/**
 * A head's training rows as the epoch loop's images and views: the rows of one group (`Head.TrainingSet.groups`,
 * an image and its mirror image) are the views of one image, so an epoch trains on one view of each image, as
 * manual mode does with augmented views, rather than on every row. Groups smaller than the largest cycle through
 * their rows; an image's weight is its first row's.
 */
const asViews = (data: Head.TrainingSet): EpochLoop.LoopData => {
  const rowsOf = new Map<number, Array<number>>()
  for (let r = 0; r < data.x.rows; r++) {
    const group = data.groups?.[r] ?? r
    const rows = rowsOf.get(group)
    if (rows) rows.push(r)
    else rowsOf.set(group, [r])
  }
  const images = [...rowsOf.values()]
  const views = Math.max(...images.map((rows) => rows.length))
  const order = images.flatMap((rows) => Array.from({ length: views }, (_, v) => rows[v % rows.length]!))
  return {
    features: Matrix.takeRows(data.x, order),
    views,
    y: Int32Array.from(images, (rows) => data.y[rows[0]!]!),
    weights: Float64Array.from(images, (rows) => data.weights?.[rows[0]!] ?? 1)
  }
}

/**
 * A `finetune` head plugin for the search: `fit` trains `prepared`'s tail and a head on the trunk's embeddings
 * (every epoch one view of each image, the last epoch kept) and returns the head `toHead` builds, the one a bundle
 * restores. It uses `prepared`'s tail as scratch space, so fits must not run concurrently (the search runs them one
 * after another). `load` restores tails with `prepared`'s capability.
 *
 * @since 0.1.0
 * @category search
 */
export const searchHead = (prepared: Prepared): Head.HeadPlugin<DenseHead.Params> => {
  const [h, w, c] = prepared.inputShape
  return {
    kind: headKind,
    paramsSchema: SearchParams,
    fit: (data, params, seed) =>
      Effect.gen(function*() {
        if (data.x.cols !== h * w * c) {
          return yield* new TrainerError({
            reason: "ShapeMismatch",
            field: "data.x",
            message: `${headKind}: the tail after ${prepared.cut.name} takes ${h}x${w}x${c} = ${h * w * c} values per row, got ${data.x.cols}`
          })
        }
        const loop = EpochLoop.make(
          yield* FineTuneEngine.engine(prepared.tail, data.numClasses, { ...params, seed }),
          asViews(data),
          { epochs: params.epochs, batchSize: params.batchSize, lr: params.lr, schedule: params.schedule, seed }
        )
        yield* Stream.runDrain(loop.epochs)
        return yield* toHead(prepared, loop.best()!.state, params)
      }),
    load: (serialized) => load(serialized, prepared.capability)
  }
}
