/**
 * The dense network every trainable head uses, in float32 inside one WebAssembly instance (`WasmSimd`): linear layers
 * with ReLU between them, inverted dropout on hidden activations while training, and a softmax cross-entropy loss with
 * label smoothing and per-row weights. One layer is a linear layer (PyTorch's `nn.Linear` head); two are an MLP with
 * one hidden layer. The weights, the gradient and the optimiser's moments live in the instance's memory for the whole
 * fit, and input rows are copied in once (the MLP head's fixed matrix) or once a step (manual mode's fresh batches of
 * augmented views, through `input`); steps and predictions name rows of the input by index.
 *
 * The dense products, ReLU, and the updates (`WasmOptimizer`: SGD, Adam, AdamW) run in the SIMD kernels; softmax, the
 * loss and the bookkeeping in TypeScript on views of the memory. The dropout draws come first, so dropped units are
 * never computed, and the backward pass skips zero deltas (dropped or inactive units). Rows are stored padded with
 * zeros to a multiple of 4 values (the kernels' contract); padded weights get zero gradients, so they stay zero and
 * never change a result.
 *
 * An instance belongs to one `make`: drop the `Net` and its memory goes with it.
 */
import type { Matrix } from "@loupe/core"
import type * as Optimizer from "../Optimizer.js"
import { softmaxInPlace } from "./Linalg.js"
import type * as Random from "./Random.js"
import * as WasmOptimizer from "./WasmOptimizer.js"
import * as WasmSimd from "./WasmSimd.js"

/** `outputs x inputs` weights (row-major, PyTorch's layout) and `outputs` biases: a head's state, exact in Float64. */
export interface Layer {
  readonly inputs: number
  readonly outputs: number
  readonly weights: Float64Array<ArrayBuffer>
  readonly bias: Float64Array<ArrayBuffer>
}

/** A layer's values as `make` and `forward` read them (they are rounded to float32). */
export interface LayerValues {
  readonly inputs: number
  readonly outputs: number
  readonly weights: Float64Array | Float32Array
  readonly bias: Float64Array | Float32Array
}

/**
 * Layers of widths `dims[0] -> dims[1] -> ... -> dims[last]`, initialised as PyTorch's `nn.Linear`: weights and
 * biases uniform in `[-1/sqrt(inputs), 1/sqrt(inputs)]`.
 */
export const init = (dims: ReadonlyArray<number>, random: Random.Random): ReadonlyArray<Layer> =>
  dims.slice(1).map((outputs, l) => {
    const inputs = dims[l]!
    const bound = 1 / Math.sqrt(inputs)
    // A plain loop: `Float64Array.from({ length }, f)` takes about 0.2 microseconds a value in V8.
    const uniform = (length: number) => {
      const values = new Float64Array(length)
      for (let k = 0; k < length; k++) values[k] = (2 * random.next() - 1) * bound
      return values
    }
    return { inputs, outputs, weights: uniform(outputs * inputs), bias: uniform(outputs) }
  })

/**
 * The weighted softmax cross-entropy of the logits `p[base .. base + k)` against `label`, with label smoothing `e`
 * (targets `(1 - e) * onehot + e / k`); the logits become the loss's gradient `weight * (softmax - target)` in place.
 */
const crossEntropy = (p: Float64Array, base: number, k: number, label: number, weight: number, e: number): number => {
  const offValue = e / k
  const onValue = 1 - e + offValue
  const logits = p.slice(base, base + k)
  const lse = softmaxInPlace(p, base, k)
  let loss = 0
  for (let c = 0; c < k; c++) {
    const target = c === label ? onValue : offValue
    loss -= weight * target * (logits[c]! - lse)
    p[base + c] = weight * (p[base + c]! - target)
  }
  return loss
}

export interface StepOptions {
  /** Label smoothing: targets are `(1 - e) * onehot + e / numClasses`. */
  readonly labelSmoothing: number
  /** Dropout probability on hidden activations. */
  readonly dropout: number
  readonly random: Random.Random
}

export interface StepResult {
  /** The weighted mean loss of the batch. */
  readonly loss: number
  /** Rows whose largest logit is their label. */
  readonly correct: number
}

export interface Net {
  /** Copies `rows` rows (`layers[0].inputs` values each, row-major) of `x` into the input, from its row 0. */
  readonly input: (x: Float32Array | Float64Array, rows: number) => void
  /**
   * Forward and backward over the input rows `rows` (at most `batchSize`, each labelled `y[row]` with weight
   * `w[row]`): keeps the gradient of their weighted mean loss `sum_i w_i * CE_i / sum_i w_i`.
   */
  readonly gradient: (rows: Int32Array, y: ArrayLike<number>, w: ArrayLike<number>, options: StepOptions) => StepResult
  /** One step of the optimiser `make` was given, with the kept gradient. */
  readonly update: WasmOptimizer.Step
  /** `rows.length x numClasses` probabilities of the input rows `rows` (no dropout), in Float64. */
  readonly proba: (rows: Int32Array) => Float64Array
  /** The current weights as layers (exact copies of the float32 values). */
  readonly layers: () => ReadonlyArray<Layer>
  /** The kept gradient, shaped as layers. */
  readonly gradients: () => ReadonlyArray<Layer>
}

/**
 * A network starting from `initial` (rounded to float32) with room for `capacity` input rows, taking at most
 * `batchSize` rows a step and stepped by `optimizer`.
 */
export const make = (
  initial: ReadonlyArray<LayerValues>,
  capacity: number,
  batchSize: number,
  optimizer: Optimizer.Optimizer
): Net => {
  const shapes = initial.map(({ inputs, outputs }) => ({ inputs, outputs, width: WasmSimd.padded(inputs) }))
  const depth = shapes.length
  const { inputs: dim, width: dimWidth } = shapes[0]!
  const numClasses = shapes[depth - 1]!.outputs
  const widest = Math.max(batchSize, ...shapes.map((s) => s.outputs))
  // Offsets (in values) of each layer's weights and biases within the parameter block.
  let size = 0
  const offsets = shapes.map(({ outputs, width }) => {
    const weights = size
    const bias = weights + outputs * width
    size = bias + WasmSimd.padded(outputs)
    return { weights, bias }
  })

  const plan = WasmSimd.layout()
  const xBlock = plan.block(capacity * dimWidth)
  const optimizerBlocks = WasmOptimizer.plan(plan, size)
  const { grads: gradsBlock, params: paramsBlock } = optimizerBlocks
  // The input of each layer l > 0 (after ReLU and dropout) and the loss's gradient with respect to it, a batch each
  // (none for layer 0, whose input rows are in x).
  const hiddenBlocks = shapes.map(({ width }, l) => {
    const length = l === 0 ? 0 : batchSize * width
    return { values: plan.block(length), delta: plan.block(length) }
  })
  const logitsBlock = plan.block(batchSize * numClasses)
  const [keptBlock, allBlock, offsetsBlock, coefficientsBlock] = [0, 1, 2, 3].map(() => plan.block(widest)) as Array<WasmSimd.Block>

  const simd = WasmSimd.instantiate(plan)
  const { addRows, affineAt, maskScale, reluAt } = simd.kernels
  const params = simd.floats(paramsBlock)
  const grads = simd.floats(gradsBlock)
  const logits = simd.floats(logitsBlock)
  const kept = simd.ints(keptBlock)
  simd.ints(allBlock).forEach((_, j, all) => all[j] = j)
  const rowOffsets = simd.ints(offsetsBlock)
  const coefficients = simd.floats(coefficientsBlock)
  const xs = simd.floats(xBlock)
  const input: Net["input"] = (x, rows) => {
    for (let r = 0; r < rows; r++) xs.set(x.subarray(r * dim, (r + 1) * dim), r * dimWidth)
  }
  initial.forEach((layer, l) => {
    const { inputs, outputs, width } = shapes[l]!
    for (let j = 0; j < outputs; j++) params.set(layer.weights.subarray(j * inputs, (j + 1) * inputs), offsets[l]!.weights + j * width)
    params.set(layer.bias, offsets[l]!.bias)
  })

  const address = (block: WasmSimd.Block, index: number) => block.address + 4 * index
  /** Layer `l`'s input rows: row `i` of the batch `rows` is at `inputOffset(l, rows, i)` (in values) in `inputBlock(l)`. */
  const inputBlock = (l: number) => l === 0 ? xBlock : hiddenBlocks[l]!.values
  const inputOffset = (l: number, rows: Int32Array, i: number) => l === 0 ? rows[i]! * dimWidth : i * shapes[l]!.width

  /** Forward over the batch `rows`, keeping each hidden unit with probability `keep`: leaves the logits in `logits`. */
  const forward = (rows: Int32Array, keep: number, random?: Random.Random): void => {
    const n = rows.length
    for (let l = 0; l < depth; l++) {
      const { outputs, width } = shapes[l]!
      const weights = address(paramsBlock, offsets[l]!.weights)
      const bias = address(paramsBlock, offsets[l]!.bias)
      const input = (i: number) => address(inputBlock(l), inputOffset(l, rows, i))
      if (l === depth - 1) {
        for (let i = 0; i < n; i++) affineAt(weights, bias, width, allBlock.address, outputs, input(i), address(logitsBlock, i * outputs))
        return
      }
      const out = hiddenBlocks[l + 1]!.values
      const outWidth = shapes[l + 1]!.width
      simd.floats(out).fill(0, 0, n * outWidth)
      for (let i = 0; i < n; i++) {
        let count = outputs
        if (random !== undefined) {
          // The dropout draws come first, so the units they drop are never computed.
          count = 0
          for (let j = 0; j < outputs; j++) {
            kept[count] = j
            count += random.next() < keep ? 1 : 0
          }
        }
        const units = random !== undefined ? keptBlock : allBlock
        reluAt(weights, bias, width, units.address, count, input(i), address(out, i * outWidth), 1 / keep)
      }
    }
  }

  const row = new Float64Array(numClasses)

  const gradient: Net["gradient"] = (rows, y, w, options) => {
    const n = rows.length
    const keep = 1 - options.dropout
    forward(rows, keep, options.dropout > 0 ? options.random : undefined)
    let weightSum = 0
    for (let i = 0; i < n; i++) weightSum += w[rows[i]!]!
    const norm = weightSum > 0 ? 1 / weightSum : 0
    let loss = 0
    let correct = 0
    for (let i = 0; i < n; i++) {
      // The logits become dLoss/dLogits.
      let best = 0
      for (let c = 0; c < numClasses; c++) {
        row[c] = logits[i * numClasses + c]!
        if (row[c]! > row[best]!) best = c
      }
      if (best === y[rows[i]!]) correct++
      loss += crossEntropy(row, 0, numClasses, y[rows[i]!]!, w[rows[i]!]! * norm, options.labelSmoothing)
      logits.set(row, i * numClasses)
    }
    grads.fill(0)
    let delta = logits
    let deltaWidth = numClasses
    for (let l = depth - 1; l >= 0; l--) {
      const { outputs, width } = shapes[l]!
      const { bias, weights } = offsets[l]!
      // Row j of the weight gradient is the delta-weighted sum of the input rows; zero deltas are skipped.
      for (let j = 0; j < outputs; j++) {
        let count = 0
        let sum = 0
        for (let i = 0; i < n; i++) {
          const d = delta[i * deltaWidth + j]!
          if (d === 0) continue
          sum += d
          rowOffsets[count] = inputOffset(l, rows, i)
          coefficients[count++] = d
        }
        grads[bias + j] = sum
        addRows(inputBlock(l).address, offsetsBlock.address, coefficientsBlock.address, count, width, address(gradsBlock, weights + j * width))
      }
      if (l === 0) break
      // The gradient with respect to this layer's input: the delta-weighted sum of the weight rows, row by row.
      const previous = hiddenBlocks[l]!.delta
      simd.floats(previous).fill(0, 0, n * width)
      for (let i = 0; i < n; i++) {
        let count = 0
        for (let j = 0; j < outputs; j++) {
          const d = delta[i * deltaWidth + j]!
          if (d === 0) continue
          rowOffsets[count] = weights + j * width
          coefficients[count++] = d
        }
        addRows(paramsBlock.address, offsetsBlock.address, coefficientsBlock.address, count, width, address(previous, i * width))
      }
      // Back through dropout and ReLU: the units dropped or inactive are the ones whose output is not positive.
      maskScale(previous.address, hiddenBlocks[l]!.values.address, n * width, 1 / keep)
      delta = simd.floats(previous)
      deltaWidth = width
    }
    return { loss, correct }
  }

  const update = WasmOptimizer.stepper(optimizer, simd.kernels, optimizerBlocks)

  const proba = (rows: Int32Array): Float64Array => {
    const out = new Float64Array(rows.length * numClasses)
    for (let start = 0; start < rows.length; start += batchSize) {
      const chunk = rows.subarray(start, start + batchSize)
      forward(chunk, 1)
      out.set(logits.subarray(0, chunk.length * numClasses), start * numClasses)
      for (let i = start; i < start + chunk.length; i++) softmaxInPlace(out, i * numClasses, numClasses)
    }
    return out
  }

  /** The layers held in `values` (the parameters or the gradient), without padding. */
  const read = (values: Float32Array): ReadonlyArray<Layer> =>
    shapes.map(({ inputs, outputs, width }, l) => {
      const { bias, weights } = offsets[l]!
      const layer = { inputs, outputs, weights: new Float64Array(outputs * inputs), bias: Float64Array.from(values.subarray(bias, bias + outputs)) }
      for (let j = 0; j < outputs; j++) layer.weights.set(values.subarray(weights + j * width, weights + j * width + inputs), j * inputs)
      return layer
    })

  return { input, gradient, update, proba, layers: () => read(params), gradients: () => read(grads) }
}

/** Rows per step in `forward`, which bounds its memory (about 5 MiB for 1,280-d rows). */
const forwardChunk = 1024

/** Never stepped: `forward`'s instances only predict. */
const noOptimizer: Optimizer.Optimizer = { kind: "sgd", momentum: 0, nesterov: false }

/**
 * The `rows x numClasses` probabilities (no dropout) of `rows` inputs (`x`, row-major), in Float64, through one
 * instance that takes `forwardChunk` rows at a time.
 */
export const forward = (layers: ReadonlyArray<LayerValues>, x: Float32Array | Float64Array, rows: number): Float64Array => {
  const dim = layers[0]!.inputs
  const numClasses = layers[layers.length - 1]!.outputs
  const chunk = Math.max(1, Math.min(forwardChunk, rows))
  const net = make(layers, chunk, 128, noOptimizer)
  const all = Int32Array.from({ length: chunk }, (_, i) => i)
  const out = new Float64Array(rows * numClasses)
  for (let start = 0; start < rows; start += chunk) {
    const n = Math.min(chunk, rows - start)
    net.input(x.subarray(start * dim, (start + n) * dim), n)
    out.set(net.proba(all.subarray(0, n)), start * numClasses)
  }
  return out
}

/** `forward` on a matrix, as a matrix of probabilities. */
export const predictProba = (layers: ReadonlyArray<LayerValues>, x: Matrix.Matrix): Matrix.Matrix => ({
  rows: x.rows,
  cols: layers[layers.length - 1]!.outputs,
  data: Float32Array.from(forward(layers, x.data, x.rows))
})
