/**
 * Partial fine-tuning of a TensorFlow.js layers backbone: its last layers are trained end to end with the head.
 * Manual mode uses it when `trainableLayers > 0` (`ManualTraining.train({ backbone: "tfjs:mobilenetv2-0.35",
 * trainableLayers: 4, ... })`).
 *
 * The model is cut at the latest point that leaves at least `trainableLayers` layers with weights (convolutions,
 * depthwise convolutions, dense layers) after it and where one tensor alone feeds the rest (never inside a residual
 * block). The part before the cut, the **trunk**, is the same backbone loaded with the plugin option
 * `output: <cut layer>`: it embeds each augmented view once, before the first epoch, into its activation map. The
 * part after the cut, the **tail**, is rebuilt as a tfjs model of that one input and trained with the head (a linear
 * layer or an MLP): gradients from `tf.variableGrads`, updates by `Optimizer` in Float64 (the same rules as the
 * frozen-backbone heads), batch-norm layers frozen in inference mode. On the wasm backend, which lacks some
 * convolution backprop kernels, plain-TypeScript versions are registered for it (`internal/BackpropKernels`).
 *
 * The result is a `FittedPipeline` whose backbone is the trunk (the bundle records its `output` option) and whose
 * head, of kind `finetune`, holds the tail's topology and trained weights and the head layers, so a bundle saves
 * and loads it like any other. Register `headPlugin` (it is in `ManualTraining.heads`) to load such bundles.
 *
 * The search fine-tunes too: the trunk's embeddings are one more feature set, and `searchHead(prepared)` is a
 * `finetune` head plugin whose `fit` trains the tail + head on them by the ordinary head contract, so the search
 * cross-validates it on the same folds, mirror images and selection rule as every other candidate. Every fit starts
 * from the pretrained tail (`Prepared.pretrained`), whatever fit ran before it.
 *
 * @since 0.1.0
 */
import { CoreError, LoupeConfig, Matrix, Registry } from "@loupe/core"
import type { Backbone, Head } from "@loupe/core"
import { TfjsBackbone } from "@loupe/backbones"
import type * as Tf from "@tensorflow/tfjs"
import { Effect, ParseResult, Schema, Stream } from "effect"
import type { Scope } from "effect"
import * as DenseHead from "./internal/DenseHead.js"
import * as DenseNet from "./internal/DenseNet.js"
import * as EpochLoop from "./internal/EpochLoop.js"
import * as Random from "./internal/Random.js"
import * as TfjsTail from "./internal/TfjsTail.js"
import * as BackpropKernels from "./internal/BackpropKernels.js"
import * as LrSchedule from "./LrSchedule.js"
import * as Optimizer from "./Optimizer.js"
import { TrainerError } from "./TrainerError.js"

type TfModule = typeof import("@tensorflow/tfjs")
type Pooling = "none" | "global-average"

/**
 * @since 0.1.0
 * @category head
 */
export const headKind = "finetune"

/**
 * @since 0.1.0
 * @category models
 */
export interface PrepareOptions {
  /** A registered TensorFlow.js layers backbone id, e.g. `tfjs:mobilenetv2-0.35`. */
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
  readonly tf: TfModule
  /** The frozen part, as a backbone whose embedding is the flattened activation map at the cut. */
  readonly trunk: Backbone.LoadedBackbone
  /** The plugin options that load `trunk` (the user's options plus `output` and `pooling: "none"`). */
  readonly trunkOptions: Record<string, unknown>
  /** The trainable part: one input of `inputShape`. Training overwrites its weights. */
  readonly tail: Tf.LayersModel
  /** The tail's trainable weights as loaded (in `tail.trainableWeights` order): where every training starts. */
  readonly pretrained: ReadonlyArray<Float32Array>
  readonly inputShape: readonly [number, number, number]
  /** Pooling applied to the tail's output when it is a feature map (the catalog entry's). */
  readonly pooling: Pooling
  readonly cut: TfjsTail.Cut
}

const invalidParams = (field: string, message: string) => new TrainerError({ reason: "InvalidParams", field, message })

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Load the backbone's layers model, find the cut for `trainableLayers`, build the tail and load the trunk (in the
 * caller's scope: the fitted pipeline uses it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const prepare = (
  options: PrepareOptions
): Effect.Effect<Prepared, TrainerError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope> =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const loupeConfig = yield* LoupeConfig.LoupeConfig
    const plugin = yield* registry.backbone(options.backbone)
    if (!TfjsBackbone.isTfjsPlugin(plugin)) {
      return yield* invalidParams(
        "backbone",
        `Partial fine-tuning needs a TensorFlow.js layers backbone; ${options.backbone} runs on ${plugin.info.runtime}. ` +
          `Use trainableLayers: 0 to train a head on its frozen embeddings`
      )
    }
    const userOptions = options.backboneOptions ?? {}
    if (!isRecord(userOptions)) return yield* invalidParams("backboneOptions", "backboneOptions must be an object")
    const decoded = yield* Schema.decodeUnknown(TfjsBackbone.TfjsOptions, { onExcessProperty: "error" })(userOptions).pipe(
      Effect.mapError((e) => invalidParams("backboneOptions", `Invalid options for ${options.backbone}: ${e.message}`))
    )
    const output = decoded.output ?? plugin.model.output
    const pooling: Pooling = decoded.pooling ?? plugin.model.pooling ?? "none"
    const { tf, model } = yield* TfjsBackbone.loadLayersModel(plugin.model, loupeConfig, decoded.backend).pipe(
      Effect.mapError((e) =>
        new CoreError.CoreError({ reason: "BackboneFailed", field: options.backbone, message: e.message, cause: e })
      )
    )
    const layers = TfjsTail.flatten(tf, model, output)
    if (layers === undefined) return yield* invalidParams("backboneOptions.output", `${options.backbone} has no layer "${output}"`)
    const cut = TfjsTail.findCut(layers, options.trainableLayers)
    if (typeof cut === "string") return yield* invalidParams("trainableLayers", `${options.backbone}: ${cut}`)
    for (const { layer } of layers.slice(cut.index + 1)) layer.trainable = TfjsTail.isWeighted(layer)
    const tail = yield* Effect.try({
      try: () => TfjsTail.buildTail(tf, layers, cut),
      catch: (cause) =>
        new TrainerError({ reason: "TrainingFailed", field: "trainableLayers", message: `Cannot rebuild the layers after ${cut.name}: ${String(cause)}`, cause })
    })
    const inputShape = tail.inputs[0]!.shape.slice(1) as [number, number, number]
    const trunkOptions = { ...userOptions, output: cut.name, pooling: "none" }
    const trunk = yield* Registry.loadBackbone(options.backbone, trunkOptions)
    const size = inputShape[0] * inputShape[1] * inputShape[2]
    if (inputShape.length !== 3 || trunk.info.embeddingSize !== size) {
      return yield* new TrainerError({
        reason: "ShapeMismatch",
        field: "trainableLayers",
        message: `${options.backbone} cut after ${cut.name}: the trunk gives ${trunk.info.embeddingSize} values per image, ` +
          `the tail takes ${JSON.stringify(inputShape)}`
      })
    }
    const pretrained = tail.trainableWeights.map((w) => Float32Array.from(w.read().dataSync() as Float32Array))
    return { tf, trunk, trunkOptions, tail, pretrained, inputShape, pooling, cut }
  })

/** The tail's features for a batch of flattened activation maps (pooled when the tail ends in a feature map). */
const tailFeatures = (tf: TfModule, tail: Tf.LayersModel, pooling: Pooling, x: Tf.Tensor): Tf.Tensor2D => {
  const y = tail.apply(x, { training: false }) as Tf.Tensor
  const pooled = y.rank === 4 && pooling === "global-average" ? y.mean([1, 2]) : y
  return tf.reshape(pooled, [x.shape[0]!, -1]) as Tf.Tensor2D
}

/** Probabilities in chunks of 64 rows: the tail in tfjs, the head layers in TypeScript. */
const predictWith = (
  tf: TfModule,
  tail: Tf.LayersModel,
  inputShape: readonly [number, number, number],
  pooling: Pooling,
  head: ReadonlyArray<DenseNet.Layer>,
  x: Matrix.Matrix
): Matrix.Matrix => {
  const dim = inputShape[0] * inputShape[1] * inputShape[2]
  const featureDim = head[0]!.inputs
  const features = new Float32Array(x.rows * featureDim)
  for (let start = 0; start < x.rows; start += 64) {
    const rows = Math.min(64, x.rows - start)
    const chunk = tf.tidy(() => {
      const input = tf.tensor4d(x.data.subarray(start * dim, (start + rows) * dim), [rows, ...inputShape])
      return tailFeatures(tf, tail, pooling, input).dataSync() as Float32Array
    })
    features.set(chunk, start * featureDim)
  }
  return DenseNet.predictProba(head, { rows: x.rows, cols: featureDim, data: features })
}

/**
 * The weights of one epoch: the tail's trainable tensors (in `tail.trainableWeights` order) and the head layers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly tail: ReadonlyArray<Float32Array>
  readonly head: ReadonlyArray<DenseNet.Layer>
}

/** Write weights (one array per trainable weight, in `tail.trainableWeights` order) into the tail. */
const writeTail = (prepared: Prepared, weights: ReadonlyArray<Float32Array>): void =>
  prepared.tail.trainableWeights.forEach((w, k) =>
    prepared.tf.tidy(() => {
      w.write(prepared.tf.tensor(weights[k]!, w.shape as Array<number>))
    })
  )

/**
 * The epoch loop's engine: tail + head trained with tfjs gradients and `Optimizer` updates, the tail starting from
 * its pretrained weights.
 *
 * @since 0.1.0
 * @category training
 */
export const engine = (
  prepared: Prepared,
  numClasses: number,
  params: DenseHead.Params & { readonly seed: number }
): Effect.Effect<EpochLoop.Engine<Snapshot>, TrainerError> =>
  Effect.try({
    try: () => {
      const { tf, tail, inputShape, pooling } = prepared
      BackpropKernels.ensure(tf)
      writeTail(prepared, prepared.pretrained)
      const outShape = tail.outputs[0]!.shape
      const featureDim = outShape.length === 4 && pooling === "global-average"
        ? outShape[3]!
        : outShape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1)
      const head = DenseHead.init(featureDim, numClasses, params, params.seed)
      const tailVariables = tail.trainableWeights.map((w) => w.read() as Tf.Variable)
      const tailMaster = tailVariables.map((v) => Float64Array.from(v.dataSync()))
      const headVariables = head.flatMap((l) => [
        tf.variable(tf.tensor2d(Float32Array.from(l.weights), [l.outputs, l.inputs])),
        tf.variable(tf.tensor1d(Float32Array.from(l.bias)))
      ])
      const variables = [...tailVariables, ...headVariables]
      const master = [...tailMaster, ...DenseNet.parameters(head)]
      const grads = master.map((p) => new Float64Array(p.length))
      const stepper = Optimizer.make(params.optimizer, master.map((p) => p.length))
      const random = Random.make(Random.derive(params.seed, 5))
      const smoothing = params.labelSmoothing

      const logits = (features: Tf.Tensor2D, training: boolean): Tf.Tensor2D => {
        let a = features
        head.forEach((_, l) => {
          a = tf.add(tf.matMul(a, headVariables[2 * l]!, false, true), headVariables[2 * l + 1]!) as Tf.Tensor2D
          if (l < head.length - 1) {
            a = tf.relu(a)
            if (training && params.dropout > 0) a = tf.dropout(a, params.dropout, undefined, random.int(2 ** 31)) as Tf.Tensor2D
          }
        })
        return a
      }

      const step = (batch: EpochLoop.Batch, lr: number) => {
        let correct = 0
        let wSum = 0
        for (let i = 0; i < batch.rows; i++) wSum += batch.w[i]!
        const { value, grads: named } = tf.variableGrads(() =>
          tf.tidy(() => {
            const input = tf.tensor4d(batch.x, [batch.rows, ...inputShape])
            const z = logits(tailFeatures(tf, tail, pooling, input), true)
            const predicted = z.argMax(1).dataSync()
            for (let i = 0; i < batch.rows; i++) if (predicted[i] === batch.y[i]) correct++
            const targets = tf.add(tf.mul(tf.oneHot(tf.tensor1d(batch.y, "int32"), numClasses), 1 - smoothing), smoothing / numClasses)
            const perRow = tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(z)), 1))
            const w = tf.tensor1d(Float32Array.from(batch.w, (v) => (wSum > 0 ? v / wSum : 0)))
            return tf.sum(tf.mul(perRow, w)) as Tf.Scalar
          }), variables)
        const loss = value.dataSync()[0]!
        variables.forEach((v, k) => {
          const g = named[v.name]
          if (g === undefined) grads[k]!.fill(0)
          else grads[k]!.set(g.dataSync())
        })
        tf.dispose([value, ...Object.values(named)])
        stepper.step(master, grads, lr, params.weightDecay)
        variables.forEach((v, k) => {
          tf.tidy(() => v.assign(tf.tensor(Float32Array.from(master[k]!), v.shape)))
        })
        return { loss, correct }
      }

      return {
        step,
        predictProba: (x) => predictWith(tf, tail, inputShape, pooling, head, x),
        snapshot: () => ({ tail: tailMaster.map((p) => Float32Array.from(p)), head: DenseNet.copy(head) })
      } satisfies EpochLoop.Engine<Snapshot>
    },
    catch: (cause) =>
      new TrainerError({ reason: "TrainingFailed", message: `Cannot set up fine-tuning: ${String(cause)}`, cause })
  })

/**
 * Make convolution gradients work on the active tfjs backend: registers plain-TypeScript versions of the backprop
 * kernels it lacks (the wasm backend lacks three), process-wide, never replacing one it has. `engine` calls it.
 *
 * @since 0.1.0
 * @category training
 */
export const ensureGradients: (tf: TfModule) => void = BackpropKernels.ensure

// ---------------------------------------------------------------------------------------------------------------
// The `finetune` head
// ---------------------------------------------------------------------------------------------------------------

const WeightSpec = Schema.Struct({
  name: Schema.String,
  shape: Schema.Array(Schema.Int),
  dtype: Schema.Literal("float32", "int32", "bool")
})

/**
 * The `finetune` head's state: the tail (tfjs topology, weight specs and weight bytes), its input shape and
 * pooling, which layers were trained, and the head layers on top.
 *
 * @since 0.1.0
 * @category head
 */
export const State = Schema.Struct({
  inputShape: Schema.Tuple(DenseHead.PositiveInt, DenseHead.PositiveInt, DenseHead.PositiveInt),
  pooling: Schema.Literal("none", "global-average"),
  cut: Schema.String,
  trainable: Schema.Array(Schema.String),
  topology: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  weightSpecs: Schema.Array(WeightSpec),
  weightData: Schema.Uint8ArrayFromBase64,
  head: DenseHead.Layers
})
export type State = typeof State.Type

const invalidState = (field: string, message: string, cause?: unknown) =>
  new TrainerError({ reason: "InvalidState", field, message: `${headKind}: ${message}`, cause })

const importTf = Effect.tryPromise({
  try: () => import("@tensorflow/tfjs"),
  catch: (cause) => invalidState("tfjs", `cannot import @tensorflow/tfjs: ${String(cause)}`, cause)
})

const fromState = (params: DenseHead.Params, state: State): Effect.Effect<Head.FittedHead, TrainerError> =>
  Effect.gen(function*() {
    const headShape = DenseHead.shape(state.head)
    if (typeof headShape === "string") return yield* invalidState("state.head", headShape)
    yield* TfjsBackbone.selectBackend().pipe(Effect.mapError((e) => invalidState("tfjs", e.message, e)))
    const tf = yield* importTf
    const bytes = state.weightData
    const tail = yield* Effect.tryPromise({
      try: () =>
        tf.loadLayersModel(tf.io.fromMemory({
          modelTopology: state.topology,
          weightSpecs: state.weightSpecs.map((s) => ({ ...s, shape: [...s.shape] })),
          weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
        })),
      catch: (cause) => invalidState("state.topology", `cannot rebuild the fine-tuned layers: ${String(cause)}`, cause)
    })
    const [h, w, c] = state.inputShape
    const dim = h * w * c
    const modelInput = tail.inputs[0]!.shape.slice(1)
    if (modelInput.join(",") !== [h, w, c].join(",")) {
      return yield* invalidState("state.inputShape", `the layers take ${JSON.stringify(modelInput)}, the state says ${JSON.stringify(state.inputShape)}`)
    }
    const serialized: Head.SerializedHead = {
      kind: headKind,
      params: Schema.encodeSync(DenseHead.Params)(params),
      state: Schema.encodeSync(State)(state)
    }
    return {
      kind: headKind,
      numClasses: headShape.numClasses,
      dim,
      predictProba: (x: Matrix.Matrix) => {
        if (x.cols !== dim) {
          throw new TrainerError({ reason: "ShapeMismatch", field: "x", message: `${headKind}: fitted on ${dim}-d features, got ${x.cols}-d` })
        }
        return predictWith(tf, tail, state.inputShape, state.pooling, state.head, x)
      },
      toJSON: () => serialized
    } satisfies Head.FittedHead
  })

const decode = <A, I>(schema: Schema.Schema<A, I>, field: string, value: unknown) =>
  Schema.decodeUnknown(schema, { onExcessProperty: "error" })(value).pipe(
    Effect.mapError((e) => invalidState(field, `invalid ${field}: ${ParseResult.TreeFormatter.formatErrorSync(e)}`, e))
  )

/**
 * The `finetune` head plugin, for loading bundles. Its `fit` fails: the tail is part of a backbone, so it is
 * trained with `ManualTraining.train` (`trainableLayers > 0`), not on embeddings alone.
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
  load: (serialized) =>
    Effect.gen(function*() {
      if (serialized.kind !== headKind) return yield* invalidState("kind", `cannot load a "${serialized.kind}" head`)
      const params = yield* decode(DenseHead.Params, "params", serialized.params)
      const state = yield* decode(State, "state", serialized.state)
      return yield* fromState(params, state)
    })
}

const joinBuffers = (data: Tf.io.WeightData | undefined): Uint8Array => {
  const parts = data === undefined ? [] : Array.isArray(data) ? data : [data]
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let offset = 0
  for (const p of parts) {
    out.set(new Uint8Array(p), offset)
    offset += p.byteLength
  }
  return out
}

/**
 * The fitted `finetune` head of a snapshot: the snapshot's weights are written into the tail, which is saved (tfjs
 * topology + weights) and loaded back as a separate model, exactly as a bundle will restore it.
 *
 * @since 0.1.0
 * @category head
 */
export const toHead = (
  prepared: Prepared,
  snapshot: Snapshot,
  params: DenseHead.Params
): Effect.Effect<Head.FittedHead, TrainerError> =>
  Effect.gen(function*() {
    const { tf, tail } = prepared
    writeTail(prepared, snapshot.tail)
    const artifacts = yield* Effect.tryPromise({
      try: () =>
        new Promise<Tf.io.ModelArtifacts>((resolve, reject) => {
          tail.save(tf.io.withSaveHandler(async (a) => {
            resolve(a)
            return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } }
          })).catch(reject)
        }),
      catch: (cause) => new TrainerError({ reason: "TrainingFailed", message: `Cannot save the fine-tuned layers: ${String(cause)}`, cause })
    })
    return yield* fromState(params, {
      inputShape: prepared.inputShape,
      pooling: prepared.pooling,
      cut: prepared.cut.name,
      trainable: prepared.cut.trainable,
      topology: artifacts.modelTopology as Record<string, unknown>,
      weightSpecs: (artifacts.weightSpecs ?? []).map((s) => ({ name: s.name, shape: s.shape, dtype: s.dtype as "float32" })),
      weightData: joinBuffers(artifacts.weightData),
      head: snapshot.head
    })
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
 * after another). `load` is `headPlugin.load`.
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
          yield* engine(prepared, data.numClasses, { ...params, seed }),
          asViews(data),
          { epochs: params.epochs, batchSize: params.batchSize, lr: params.lr, schedule: params.schedule, seed }
        )
        yield* Stream.runDrain(loop.epochs)
        return yield* toHead(prepared, loop.best()!.state, params)
      }),
    load: headPlugin.load
  }
}
