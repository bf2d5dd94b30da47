/**
 * Manual mode: the PyTorch notebook flow, with the user choosing every knob. A backbone (frozen, or with its last
 * layers trainable when it is a tfjs layers model, see `FineTune`) feeds a head (a linear layer or a one-hidden-layer
 * MLP) trained with SGD (momentum), Adam or AdamW, a learning-rate schedule (step, cosine, warm-up), mini-batches,
 * weight decay, label smoothing and class weights. Training views are augmented (random resized crop and flip, plus
 * optional colour jitter); validation images get the backbone's standard preprocessing. `train` emits one event per
 * epoch with train/validation loss and accuracy and the learning rate; the best epoch (validation accuracy, then
 * validation loss) is kept, and the result is a `Pipeline.FittedPipeline`, the type AutoML produces, so bundles,
 * prediction, evaluation and serving are shared. The defaults are the notebook's recipe: SGD momentum 0.9,
 * lr 0.001, step 7 x 0.1, 25 epochs, batch size 4, random resized crop + flip.
 *
 * **Where the time goes, and how views are made.** With a frozen backbone the head costs next to nothing (a step
 * is microseconds in WebAssembly SIMD); embedding augmented views is the cost. Before the first epoch every image
 * is read and decoded once, and `views` augmented views are cut from that decode and embedded (the decode is shared,
 * so a view costs a crop, a resize and a backbone call). Epoch `e` uses view `(e + offset_i) mod views` of image
 * `i`, with a random per-image offset. `views` defaults to `epochs`, which gives every epoch fresh views as
 * PyTorch's `DataLoader` does; a smaller pool repeats views and embeds proportionally less. The pool is held in
 * memory: `images x views x embeddingSize` float32 values (200 x 25 x 1280 is 26 MB).
 *
 * @example
 * ```ts
 * const events = ManualTraining.train(
 *   { backbone: "onnx:mobilenetv2-int8", epochs: 10 },
 *   { train, validation: test.samples }
 * )
 * const result = yield* ManualTraining.runWith(events, (e) => Effect.log(`epoch ${e.epoch}: ${e.valAccuracy}`))
 * yield* Bundle.save(result.fitted, "out/model")
 * ```
 *
 * @since 0.1.0
 */
import { Augment, CoreError, Embedder, Pipeline, Registry } from "@loupe/core"
import type { Backbone, Head, LoupeConfig, Sample } from "@loupe/core"
import { Effect, Option, ParseResult, Schema, Stream } from "effect"
import type { Scope } from "effect"
import * as FineTune from "./FineTune.js"
import * as EpochLoop from "./internal/EpochLoop.js"
import * as FineTuneEngine from "./internal/FineTuneEngine.js"
import * as DenseHead from "./internal/DenseHead.js"
import * as HeadKit from "./internal/HeadKit.js"
import * as OnnxHead from "./internal/OnnxHead.js"
import * as Random from "./internal/Random.js"
import * as Views from "./internal/Views.js"
import * as WasmDenseNet from "./internal/WasmDenseNet.js"
import { TrainerError } from "./TrainerError.js"

const { opt, PositiveInt, Probability, NonNegative } = DenseHead

/**
 * Training settings shared by manual mode and the `linear` head's own `fit` (the notebook recipe by default).
 *
 * @since 0.1.0
 * @category schemas
 */
export const TrainingFields = DenseHead.TrainingFields

// ---------------------------------------------------------------------------------------------------------------
// The `linear` head: what manual mode trains, as a registered head kind
// ---------------------------------------------------------------------------------------------------------------

/**
 * The kind of the head manual mode trains, `"linear"` (a linear layer, or an MLP when `hidden > 0`); register it with
 * `heads` to load what manual mode saves.
 *
 * @since 0.1.0
 * @category head
 */
export const headKind = "linear"

/**
 * The `linear` head's params: its shape (`hidden` 0 is one linear layer; `hidden > 0` adds a ReLU hidden layer of
 * that width, an MLP, with `dropout` on it) and how `fit` trains it on fixed embeddings (the same settings as manual
 * mode; views are not augmented there). Defaults: a linear layer, the notebook's SGD recipe.
 *
 * @since 0.1.0
 * @category head
 */
export const HeadParams = DenseHead.Params
/**
 * The decoded `linear` head params, every default filled in.
 *
 * @since 0.1.0
 * @category head
 */
export type HeadParams = DenseHead.Params

/**
 * Fitted state: the layers, input first (ReLU between them), weights `outputs x inputs` row-major, Float64.
 *
 * @since 0.1.0
 * @category head
 */
export const HeadState = Schema.Struct({ layers: DenseHead.Layers })
/**
 * The decoded `linear` head state.
 *
 * @since 0.1.0
 * @category head
 */
export type HeadState = typeof HeadState.Type

/** The dense engine: a `WasmDenseNet` stepped by its `Optimizer`, one fresh batch of views at a time. */
const denseEngine = (
  layers: ReadonlyArray<WasmDenseNet.Layer>,
  params: HeadParams,
  seed: number
): EpochLoop.Engine<ReadonlyArray<WasmDenseNet.Layer>> => {
  const net = WasmDenseNet.make(layers, params.batchSize, params.batchSize, params.optimizer)
  const all = Int32Array.from({ length: params.batchSize }, (_, i) => i)
  const random = Random.make(Random.derive(seed, 3))
  const stepOptions = { labelSmoothing: params.labelSmoothing, dropout: params.dropout, random }
  return {
    step: (batch, lr) => {
      net.input(batch.x, batch.rows)
      const result = net.gradient(all.subarray(0, batch.rows), batch.y, batch.w, stepOptions)
      net.update(lr, params.weightDecay)
      return result
    },
    predictProba: (x) => WasmDenseNet.predictProba(net.layers(), x),
    snapshot: () => net.layers()
  }
}

/**
 * The `linear` head plugin. Its `fit` trains on fixed embeddings (no augmentation, no validation: the last epoch is
 * kept) with the same engine as manual mode; manual mode itself builds the fitted head from its best epoch.
 *
 * @since 0.1.0
 * @category head
 */
export const headPlugin: HeadKit.Plugin<HeadParams, HeadState> = HeadKit.make({
  kind: headKind,
  paramsSchema: HeadParams,
  stateSchema: HeadState,
  train: (data, params, seed) => {
    const layers = DenseHead.init(data.x.cols, data.numClasses, params, seed)
    const loop = EpochLoop.make(denseEngine(layers, params, seed), {
      features: data.x,
      views: 1,
      y: data.y,
      weights: data.weights ? Float64Array.from(data.weights) : new Float64Array(data.y.length).fill(1)
    }, { epochs: params.epochs, batchSize: params.batchSize, lr: params.lr, schedule: params.schedule, seed })
    return Stream.runDrain(loop.epochs).pipe(Effect.map(() => ({ layers: loop.best()!.state })))
  },
  predict: (state, _params, x) => WasmDenseNet.predictProba(state.layers, x),
  shape: (state) => DenseHead.shape(state.layers),
  // The notebook's `Linear(d, classes)` (or MLP) on the raw embedding, through a softmax.
  toOnnx: (state, _params, io) =>
    OnnxHead.denseGraph({ l2: false, scaler: undefined, renormalize: false, layers: OnnxHead.transposed(state.layers), activation: "softmax" }, io)
})

/** A fitted `linear` head from trained layers (through `load`, so it is exactly what a bundle restores). */
const linearHead = (params: HeadParams, layers: ReadonlyArray<WasmDenseNet.Layer>): Effect.Effect<Head.FittedHead, TrainerError> =>
  headPlugin.load({
    kind: headKind,
    params: Schema.encodeSync(HeadParams)(params),
    state: Schema.encodeSync(HeadState)({ layers })
  })

// ---------------------------------------------------------------------------------------------------------------
// Manual mode
// ---------------------------------------------------------------------------------------------------------------

/**
 * Augmentation of training views (`Augment.AugmentOptions`); `false` embeds each image once with the standard
 * preprocessing.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AugmentConfig = Schema.Struct({
  randomResizedCrop: Schema.optionalWith(Schema.Boolean, { exact: true }),
  scale: Schema.optionalWith(Schema.Tuple(Schema.Number, Schema.Number), { exact: true }),
  ratio: Schema.optionalWith(Schema.Tuple(Schema.Number, Schema.Number), { exact: true }),
  flipProbability: Schema.optionalWith(Schema.Number, { exact: true }),
  brightness: Schema.optionalWith(Schema.Number, { exact: true }),
  contrast: Schema.optionalWith(Schema.Number, { exact: true }),
  saturation: Schema.optionalWith(Schema.Number, { exact: true })
})

/**
 * The head manual mode trains: `{ kind: "linear" }` (the default) or `{ kind: "mlp", hidden, dropout }` with one ReLU
 * hidden layer of `hidden` units (a positive integer, default 256) and `dropout` on it (a probability, default 0.2).
 *
 * @since 0.1.0
 * @category schemas
 */
export const HeadConfig = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("linear") }),
  Schema.Struct({
    kind: Schema.Literal("mlp"),
    hidden: opt(PositiveInt, 256),
    dropout: opt(Probability, 0.2)
  })
)

/**
 * Manual-mode settings; every field but `backbone` has a default (the notebook's recipe). Unknown keys are errors.
 *
 * - `backbone`, `backboneOptions`: a registered backbone id and its plugin options.
 * - `trainableLayers`: 0 freezes the backbone; `n > 0` trains its last `n` weight layers with the head (tfjs layers
 *   backbones only; see `FineTune`).
 * - `head`: `{ kind: "linear" }` or `{ kind: "mlp", hidden, dropout }`.
 * - `optimizer`, `lr`, `weightDecay`, `schedule`, `epochs`, `batchSize`, `labelSmoothing`: as in PyTorch.
 * - `augment`: training-view augmentation, or `false`. Default random resized crop (scale 0.08..1) + flip.
 * - `views`: augmented views embedded per image (default `epochs`: fresh views every epoch).
 * - `classWeights`: `"balanced"` (`n / (classes * n_c)`) or one weight per label; each sample's loss is weighted by
 *   its class's weight.
 * - `seed`: all randomness (views, shuffling, initialisation, dropout) derives from it.
 * - `embed`: batching of backbone calls (`Embedder.EmbedOptions`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Config = Schema.Struct({
  backbone: Schema.String,
  backboneOptions: Schema.optional(Schema.Unknown),
  trainableLayers: opt(Schema.Int.pipe(Schema.greaterThanOrEqualTo(0)), 0),
  head: opt(HeadConfig, { kind: "linear" }),
  ...TrainingFields,
  augment: opt(Schema.Union(Schema.Literal(false), AugmentConfig), { randomResizedCrop: true, flipProbability: 0.5 }),
  views: Schema.optional(PositiveInt),
  classWeights: Schema.optional(Schema.Union(Schema.Literal("balanced"), Schema.Array(NonNegative))),
  seed: opt(Schema.Int, 0),
  embed: Schema.optional(Schema.Struct({
    batchSize: Schema.optionalWith(PositiveInt, { exact: true }),
    decodeConcurrency: Schema.optionalWith(PositiveInt, { exact: true })
  }))
})
/**
 * A decoded manual-mode config, every default filled in.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Config = typeof Config.Type
/**
 * What a caller writes for `Config` (before defaults): only `backbone` is required.
 *
 * @since 0.1.0
 * @category schemas
 */
export type ConfigInput = typeof Config.Encoded

const invalidParams = (field: string, message: string) => new TrainerError({ reason: "InvalidParams", field, message })

/**
 * Decode a config with defaults; an unknown key or a bad value fails with `InvalidParams` naming the field.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decodeConfig = (input: unknown): Effect.Effect<Config, TrainerError> =>
  Schema.decodeUnknown(Config, { onExcessProperty: "error" })(input).pipe(
    Effect.mapError((error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const field = issue?.path.map(String).join(".") || "config"
      return invalidParams(field, `Invalid manual-training config at ${field}: ${issue?.message ?? error.message}`)
    }),
    Effect.tap((config) =>
      config.augment === false ? Effect.void : Augment.resolveOptions(config.augment).pipe(
        Effect.mapError((e) => invalidParams(e.field ?? "augment", e.message))
      )
    )
  )

/**
 * What to train on: labelled samples, and optionally validation images (labelled with the same label names) that
 * pick the best epoch. The notebook validates on its test split.
 *
 * @since 0.1.0
 * @category models
 */
export interface TrainData {
  readonly train: Pipeline.LabelledSamples
  readonly validation?: ReadonlyArray<Sample.Sample>
}

/**
 * Emitted once the training views and validation images are embedded.
 *
 * @since 0.1.0
 * @category events
 */
export interface Prepared {
  readonly _tag: "Prepared"
  readonly trainImages: number
  readonly views: number
  readonly validationImages: number
  readonly skipped: ReadonlyArray<Sample.SkippedSample>
  readonly seconds: number
}

/**
 * Emitted after each epoch: its 1-based number out of `epochs`, the learning rate, the training loss and accuracy, the
 * validation loss and accuracy when there is validation data, whether its weights are the best so far, and its
 * seconds.
 *
 * @since 0.1.0
 * @category events
 */
export interface Epoch extends EpochLoop.EpochStats {
  readonly _tag: "Epoch"
}

/**
 * The outcome of manual training: the fitted pipeline (backbone and the best epoch's head), the kept epoch (1-based),
 * every epoch's statistics, the images that could not be used, and the seconds spent preparing (embedding views and
 * validation images) and training.
 *
 * @since 0.1.0
 * @category models
 */
export interface Result {
  readonly fitted: Pipeline.FittedPipeline
  /** The kept epoch, 1-based. */
  readonly bestEpoch: number
  readonly history: ReadonlyArray<EpochLoop.EpochStats>
  /** Training and validation images that could not be used, with the reason. */
  readonly skipped: ReadonlyArray<Sample.SkippedSample>
  /** Seconds embedding views and validation images, and seconds training. */
  readonly timings: { readonly prepare: number; readonly train: number }
}

/**
 * Emitted last, with the result.
 *
 * @since 0.1.0
 * @category events
 */
export interface Done {
  readonly _tag: "Done"
  readonly result: Result
}

/**
 * What the `train` stream emits: `Prepared` once, one `Epoch` per epoch, then `Done`.
 *
 * @since 0.1.0
 * @category events
 */
export type Event = Prepared | Epoch | Done

/** What the epoch loop needs from either engine. */
interface Setup<S> {
  readonly backbone: Backbone.LoadedBackbone
  readonly backboneOptions: unknown
  readonly engine: (dim: number, numClasses: number) => Effect.Effect<EpochLoop.Engine<S>, TrainerError>
  readonly toHead: (state: S) => Effect.Effect<Head.FittedHead, TrainerError>
}

const classWeightsOf = (
  config: Config,
  labels: ReadonlyArray<string>,
  y: Int32Array
): Effect.Effect<Float64Array, TrainerError> => {
  const counts = new Array<number>(labels.length).fill(0)
  for (let i = 0; i < y.length; i++) counts[y[i]!]++
  const perClass = config.classWeights === undefined
    ? counts.map(() => 1)
    : config.classWeights === "balanced"
    ? counts.map((c) => (c > 0 ? y.length / (labels.length * c) : 0))
    : config.classWeights
  if (perClass.length !== labels.length) {
    return Effect.fail(
      invalidParams("classWeights", `classWeights has ${perClass.length} entries for ${labels.length} labels (${labels.join(", ")})`)
    )
  }
  return Effect.succeed(Float64Array.from(y, (k) => perClass[k]!))
}

const headParamsOf = (config: Config): HeadParams => ({
  hidden: config.head.kind === "mlp" ? config.head.hidden : 0,
  dropout: config.head.kind === "mlp" ? config.head.dropout : 0,
  optimizer: config.optimizer,
  lr: config.lr,
  weightDecay: config.weightDecay,
  schedule: config.schedule,
  epochs: config.epochs,
  batchSize: config.batchSize,
  labelSmoothing: config.labelSmoothing
})

const frozenSetup = (config: Config): Effect.Effect<
  Setup<ReadonlyArray<WasmDenseNet.Layer>>,
  CoreError.CoreError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope
> =>
  Effect.map(Registry.loadBackbone(config.backbone, config.backboneOptions ?? {}), (backbone) => {
    const params = headParamsOf(config)
    return {
      backbone,
      backboneOptions: config.backboneOptions ?? {},
      engine: (dim, numClasses) => Effect.sync(() => denseEngine(DenseHead.init(dim, numClasses, params, config.seed), params, config.seed)),
      toHead: (layers) => linearHead(params, layers)
    }
  })

const fineTuneSetup = (config: Config) =>
  Effect.map(
    FineTune.prepare({ backbone: config.backbone, backboneOptions: config.backboneOptions, trainableLayers: config.trainableLayers }),
    (prepared): Setup<FineTuneEngine.Snapshot> => ({
      backbone: prepared.trunk,
      backboneOptions: prepared.trunkOptions,
      engine: (_dim, numClasses) => FineTuneEngine.engine(prepared.tail, numClasses, { ...headParamsOf(config), seed: config.seed }),
      toHead: (snapshot) => FineTune.toHead(prepared, snapshot, headParamsOf(config))
    })
  )

const seconds = (since: number) => (performance.now() - since) / 1000

const run = <S>(
  config: Config,
  data: TrainData,
  setup: Setup<S>
): Stream.Stream<Event, TrainerError | CoreError.CoreError> =>
  Stream.unwrap(Effect.gen(function*() {
    const started = performance.now()
    const { labels } = data.train
    const { backbone } = setup
    const embedOptions: Embedder.EmbedOptions = config.embed ?? {}
    const augmented = config.augment !== false
    const views = augmented ? config.views ?? config.epochs : 1
    const trainViews = config.augment === false
      ? yield* Effect.map(Embedder.embedSamples(backbone, data.train.samples, embedOptions), (e) => ({
        vectors: e.vectors,
        kept: e.samples,
        skipped: e.skipped
      }))
      : yield* Effect.map(
        Views.embedViews(backbone, data.train.samples, {
          views,
          augment: config.augment,
          seed: config.seed,
          ...(embedOptions.batchSize === undefined ? {} : { batchSize: embedOptions.batchSize }),
          ...(embedOptions.decodeConcurrency === undefined ? {} : { decodeConcurrency: embedOptions.decodeConcurrency })
        }),
        (e) => ({ vectors: e.vectors, kept: e.kept.map((i) => data.train.samples[i]!), skipped: e.skipped })
      )
    const y = yield* Pipeline.labelIndices(labels, trainViews.kept)
    const weights = yield* classWeightsOf(config, labels, y)
    const validation = data.validation === undefined || data.validation.length === 0
      ? undefined
      : yield* Embedder.embedSamples(backbone, data.validation, embedOptions)
    const validationY = validation ? yield* Pipeline.labelIndices(labels, validation.samples) : undefined
    const skipped = [...trainViews.skipped, ...(validation?.skipped ?? [])]
    if (y.length === 0) {
      return yield* new TrainerError({ reason: "InvalidData", field: "data.train", message: "No training image could be used" })
    }
    const engine = yield* setup.engine(backbone.info.embeddingSize, labels.length)
    const loop = EpochLoop.make(engine, {
      features: trainViews.vectors,
      views,
      y,
      weights,
      validation: validation && validationY && validationY.length > 0 ? { x: validation.vectors, y: validationY } : undefined
    }, { epochs: config.epochs, batchSize: config.batchSize, lr: config.lr, schedule: config.schedule, seed: config.seed })
    const prepare = seconds(started)
    const trainStarted = performance.now()
    const history: Array<EpochLoop.EpochStats> = []

    const done = Effect.suspend(() => {
      const best = loop.best()!
      return Effect.map(setup.toHead(best.state), (head): Event => ({
        _tag: "Done",
        result: {
          fitted: { labels, backbone, backboneOptions: setup.backboneOptions, head, embed: embedOptions },
          bestEpoch: best.epoch,
          history,
          skipped,
          timings: { prepare, train: seconds(trainStarted) }
        }
      }))
    })

    const prepared: Event = {
      _tag: "Prepared",
      trainImages: y.length,
      views,
      validationImages: validationY?.length ?? 0,
      skipped,
      seconds: prepare
    }
    return Stream.make(prepared).pipe(
      Stream.concat(loop.epochs.pipe(
        Stream.map((stats): Event => {
          history.push(stats)
          return { _tag: "Epoch", ...stats }
        })
      )),
      Stream.concat(Stream.fromEffect(done))
    )
  }))

/**
 * Train in manual mode. The stream emits `Prepared` once the views are embedded, one `Epoch` per epoch, then `Done`
 * with the fitted pipeline (the best epoch's weights). The backbone stays loaded in the caller's scope, since the
 * fitted pipeline uses it.
 *
 * @since 0.1.0
 * @category training
 */
export const train = (
  config: ConfigInput,
  data: TrainData
): Stream.Stream<Event, TrainerError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> =>
  Stream.unwrap(Effect.gen(function*() {
    const decoded = yield* decodeConfig(config)
    if (decoded.trainableLayers > 0) return run(decoded, data, yield* fineTuneSetup(decoded))
    return run(decoded, data, yield* frozenSetup(decoded))
  }))

/**
 * Run a training stream to its end, calling `onEpoch` for each epoch, and return the result.
 *
 * @since 0.1.0
 * @category training
 */
export const runWith = <E, R, E2 = never, R2 = never>(
  events: Stream.Stream<Event, E, R>,
  onEpoch: (epoch: Epoch) => Effect.Effect<void, E2, R2> = () => Effect.void
): Effect.Effect<Result, E | E2 | TrainerError, R | R2> =>
  Stream.runFoldEffect(events, Option.none<Result>(), (last, event) =>
    event._tag === "Epoch"
      ? Effect.as(onEpoch(event), last)
      : Effect.succeed(event._tag === "Done" ? Option.some(event.result) : last)).pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail(new TrainerError({ reason: "TrainingFailed", message: "Training ended without a result" })),
        onSome: Effect.succeed
      }))
    )

/**
 * Train in manual mode and return the result (see `train`).
 *
 * @since 0.1.0
 * @category training
 */
export const fit = (config: ConfigInput, data: TrainData) => runWith(train(config, data))

/**
 * Head plugins this module's results need at load time: register them beside the built-in heads.
 *
 * @since 0.1.0
 * @category head
 */
export const heads: ReadonlyArray<Head.HeadPlugin> = [headPlugin, FineTune.headPlugin]
