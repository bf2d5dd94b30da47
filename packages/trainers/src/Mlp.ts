/**
 * A multi-layer perceptron with one hidden layer (ReLU), dropout on the hidden units, Adam, and early stopping on a
 * held-out split.
 *
 * Features are L2-normalised, then standardised (fitted state). A stratified `validationFraction` of the rows is held
 * out (seeded); training runs mini-batch Adam for at most `maxEpochs` epochs and stops when the held-out log loss has
 * not improved for `patience` epochs; the weights of the best epoch are kept. When a class has fewer than two rows
 * nothing is held out and the training loss is watched instead.
 *
 * Engine: float32 in WebAssembly SIMD (`WasmDenseNet`: the standardised rows copied into wasm memory once per fit,
 * dense products, ReLU and Adam in 128-bit SIMD kernels), 3.5-7x less CPU than the plain-TypeScript Float64 engine
 * it replaced, with the same epochs and test accuracy on `node bench/search/run.mjs mlp` (about 0.3 s instead of
 * 1.1-1.3 s on 2,000 x 1,280); every supported Node has WebAssembly SIMD, so there is no other engine. Predictions use the same engine as training. The defaults (batch 128, rate 3e-3, patience 3,
 * rather than 32, 1e-3 and 5) were chosen with `node bench/search/run.mjs mlp`: a quarter of the Adam steps per
 * epoch and two fewer epochs spent waiting after the best one, with the same held-out accuracy on cats-vs-dogs and
 * slightly better on flowers-5.
 *
 * @since 0.1.0
 */
import type { Head, Matrix } from "@loupe/core"
import { Effect, Schema } from "effect"
import * as Check from "./internal/Check.js"
import * as DenseHead from "./internal/DenseHead.js"
import * as HeadKit from "./internal/HeadKit.js"
import * as OnnxHead from "./internal/OnnxHead.js"
import * as Random from "./internal/Random.js"
import * as Scaler from "./internal/Scaler.js"
import * as WasmDenseNet from "./internal/WasmDenseNet.js"
import * as Optimizer from "./Optimizer.js"
import type { TrainerError } from "./TrainerError.js"

/**
 * The head kind, `"mlp"`: the `kind` of its `SerializedHead`s, of `head.kind` in a search space, and of the plugin.
 *
 * @since 0.1.0
 * @category head
 */
export const kind = "mlp"

/**
 * - `hidden`: hidden units (default 64). `dropout`: on hidden units while training (default 0.5).
 * - `lr`, `weightDecay`: Adam's rate (default 3e-3) and L2 weight decay (default 1e-4).
 * - `batchSize` (default 128), `maxEpochs` (default 100), `patience` (default 3).
 * - `validationFraction`: share of rows held out for early stopping (default 0.15).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Params = Schema.Struct({
  hidden: HeadKit.withDefault(Schema.Int.pipe(Schema.positive()), 64),
  dropout: HeadKit.withDefault(Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.lessThan(1)), 0.5),
  lr: HeadKit.withDefault(Schema.Number.pipe(Schema.positive(), Schema.finite()), 3e-3),
  weightDecay: HeadKit.withDefault(Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.finite()), 1e-4),
  batchSize: HeadKit.withDefault(Schema.Int.pipe(Schema.positive()), 128),
  maxEpochs: HeadKit.withDefault(Schema.Int.pipe(Schema.positive()), 100),
  patience: HeadKit.withDefault(Schema.Int.pipe(Schema.positive()), 3),
  validationFraction: HeadKit.withDefault(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(1)), 0.15)
})
/**
 * The decoded MLP params, every default filled in.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Params = typeof Params.Type

/**
 * The fitted MLP state as serialised in a `SerializedHead`: the scaler, the two dense layers, the epochs run and the
 * (1-based) epoch whose weights were kept. Float arrays are encoded as base64 by the codec, so a state round-trips
 * through JSON exactly.
 *
 * @since 0.1.0
 * @category schemas
 */
export const State = Schema.Struct({
  scaler: Scaler.Scaler,
  /** Input to hidden, hidden to classes. */
  layers: DenseHead.Layers,
  /** Epochs run, and the (1-based) epoch whose weights were kept. */
  epochs: Schema.Int,
  bestEpoch: Schema.Int
})
/**
 * The decoded fitted MLP state.
 *
 * @since 0.1.0
 * @category schemas
 */
export type State = typeof State.Type

/**
 * A fitted MLP head: the core `FittedHead` contract plus its typed params and state.
 *
 * @since 0.1.0
 * @category models
 */
export type Fitted = HeadKit.Fitted<Params, State>

const adam = Schema.decodeSync(Optimizer.Adam)({ kind: "adam" })

/**
 * A stratified, seeded held-out split of the groups (an image and its views; each row its own group without
 * `groups`): `validation` is empty when some class has fewer than two groups.
 */
const holdOut = (y: Int32Array, groups: Int32Array | undefined, numClasses: number, fraction: number, random: Random.Random) => {
  const rowsOf = new Map<number, Array<number>>()
  y.forEach((_, i) => {
    const key = groups ? groups[i]! : i
    const rows = rowsOf.get(key)
    if (rows) rows.push(i)
    else rowsOf.set(key, [i])
  })
  const byClass = Array.from({ length: numClasses }, () => [] as Array<Array<number>>)
  for (const rows of rowsOf.values()) byClass[y[rows[0]!]!]!.push(rows)
  if (byClass.some((units) => units.length < 2)) return { train: Int32Array.from(y, (_, i) => i), validation: new Int32Array(0) }
  const train: Array<number> = []
  const validation: Array<number> = []
  for (const units of byClass) {
    random.shuffle(units)
    const held = Math.min(units.length - 1, Math.max(1, Math.round(units.length * fraction)))
    validation.push(...units.slice(0, held).flat())
    train.push(...units.slice(held).flat())
  }
  return { train: Int32Array.from(train).sort(), validation: Int32Array.from(validation).sort() }
}


/** The mean weighted log loss of `rows`, whose probabilities are `proba`. */
const meanLogLoss = (proba: Float64Array, rows: Int32Array, y: Int32Array, w: Float64Array, numClasses: number): number => {
  let loss = 0
  let weight = 0
  rows.forEach((r, t) => {
    loss -= w[r]! * Math.log(Math.max(proba[t * numClasses + y[r]!]!, 1e-15))
    weight += w[r]!
  })
  return weight > 0 ? loss / weight : 0
}

const train = (data: Head.TrainingSet, params: Params, seed: number): Effect.Effect<State, TrainerError> =>
  HeadKit.attempt(kind, () => {
    const { numClasses, y } = data
    const dim = data.x.cols
    const random = Random.make(Random.derive(seed, 0))
    const { scaler, z } = Scaler.fitTransform(data)
    const w = Check.rowWeights(data)
    const split = holdOut(y, data.groups, numClasses, params.validationFraction, random)
    const watched = split.validation.length > 0 ? split.validation : split.train
    const layers = WasmDenseNet.init([dim, params.hidden, numClasses], Random.make(Random.derive(seed, 1)))
    const net = WasmDenseNet.make(layers, data.x.rows, params.batchSize, adam)
    net.input(z, data.x.rows)
    const options = { labelSmoothing: 0, dropout: params.dropout, random }
    const order = Int32Array.from(split.train)
    let best = { loss: Infinity, epoch: 0, layers: net.layers() }
    let epoch = 0
    while (epoch < params.maxEpochs && epoch - best.epoch < params.patience) {
      epoch++
      random.shuffle(order)
      for (let start = 0; start < order.length; start += params.batchSize) {
        net.gradient(order.subarray(start, start + params.batchSize), y, w, options)
        net.update(params.lr, params.weightDecay)
      }
      const loss = meanLogLoss(net.proba(watched), watched, y, w, numClasses)
      if (!Number.isFinite(loss)) break
      if (loss < best.loss) best = { loss, epoch, layers: net.layers() }
    }
    return { scaler, layers: best.layers, epochs: epoch, bestEpoch: best.epoch }
  })

/** With the engine `train` uses: float32 in WebAssembly SIMD. */
const predict = (state: State, _params: Params, x: Matrix.Matrix): Matrix.Matrix => ({
  rows: x.rows,
  cols: state.layers[state.layers.length - 1]!.outputs,
  data: Float32Array.from(WasmDenseNet.forward(state.layers, Scaler.transform(state.scaler, x), x.rows))
})

/**
 * The MLP head plugin, for `Registry.layer({ heads })`, the search and `Pipeline.fit`. `fit` checks the params and the
 * training set and fails with `TrainerError` (`InvalidParams`, `InvalidData`, or `TrainingFailed`); `load` fails with
 * `InvalidState` on a serialised head of another kind or with an invalid state; `toOnnx` writes the head as an ONNX
 * graph and fails with `ShapeMismatch` when the backbone's width differs.
 *
 * @since 0.1.0
 * @category head
 */
export const plugin: HeadKit.Plugin<Params, State> = HeadKit.make({
  kind,
  paramsSchema: Params,
  stateSchema: State,
  train,
  predict,
  shape: (state) => {
    const shape = DenseHead.shape(state.layers)
    if (typeof shape === "string") return shape
    if (state.layers.length !== 2) return `expected 2 layers, got ${state.layers.length}`
    if (state.scaler.mean.length !== shape.dim || state.scaler.scale.length !== shape.dim) return "scaler width differs"
    return shape
  },
  toOnnx: (state, _params, io) =>
    OnnxHead.denseGraph({ l2: true, scaler: state.scaler, renormalize: false, layers: OnnxHead.transposed(state.layers), activation: "softmax" }, io)
})

/**
 * Fits a MLP head on a training set: `fit(data, params?, seed?)`, the params not given taking their defaults and the
 * seed 0. Fails with `TrainerError` (`InvalidParams`, `InvalidData` or `TrainingFailed`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fit = HeadKit.fitWithDefaults(plugin, Params)

/**
 * Loads a MLP head from its `SerializedHead` (the output of `FittedHead.serialize`). Fails with `TrainerError`
 * `InvalidState`, naming `kind`, `params` or `state`, when the head is of another kind or does not decode.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = plugin.load
