/**
 * `DenseNet`'s network in float32 inside one WebAssembly instance (`WasmSimd`), for the MLP head, which takes many
 * steps over one fixed matrix: its rows are copied in once, and the weights, the gradient and Adam's moments live in
 * the instance's memory for the whole fit. Steps and predictions name rows by index, so no batch is ever copied.
 *
 * Same model and rules as `DenseNet.gradient` and `Optimizer`'s Adam: the dropout draws come in the same order from
 * the same generator, dropped units are never computed, and the backward pass skips zero deltas. The dense products,
 * ReLU and Adam run in the SIMD kernels; softmax, the loss and the bookkeeping in TypeScript on views of the memory.
 * Rows are stored padded with zeros to a multiple of 4 values (the kernels' contract); padded weights get zero
 * gradients, so they stay zero and never change a result.
 *
 * An instance belongs to one `make`: drop the `Net` and its memory goes with it.
 */
import type * as Optimizer from "../Optimizer.js"
import * as DenseNet from "./DenseNet.js"
import { softmaxInPlace } from "./Linalg.js"
import * as WasmSimd from "./WasmSimd.js"

export interface Net {
  /**
   * Forward and backward over the rows `rows` (at most `batchSize`, each labelled `y[row]` with weight `w[row]`):
   * keeps the gradient of their weighted mean loss and returns that loss.
   */
  readonly gradient: (
    rows: Int32Array,
    y: ArrayLike<number>,
    w: ArrayLike<number>,
    options: DenseNet.StepOptions
  ) => number
  /** One Adam step (L2 weight decay, as `torch.optim.Adam`) with the kept gradient. */
  readonly update: (adam: typeof Optimizer.Adam.Type, lr: number, weightDecay: number) => void
  /** `rows.length x numClasses` probabilities of the rows `rows` (no dropout), in Float64. */
  readonly proba: (rows: Int32Array) => Float64Array
  /** The current weights as `DenseNet` layers (exact copies of the float32 values). */
  readonly layers: () => ReadonlyArray<DenseNet.Layer>
  /** The kept gradient, shaped as layers. */
  readonly gradients: () => ReadonlyArray<DenseNet.Layer>
}

const padded = (n: number) => Math.ceil(n / 4) * 4

/**
 * A network starting from `layers` (rounded to float32) over the rows of `x` (`rows x layers[0].inputs`, row-major),
 * taking at most `batchSize` rows a step.
 */
export const make = (initial: ReadonlyArray<DenseNet.Layer>, x: Float64Array, batchSize: number): Net => {
  const shapes = initial.map(({ inputs, outputs }) => ({ inputs, outputs, width: padded(inputs) }))
  const depth = shapes.length
  const { inputs: dim, width: dimWidth } = shapes[0]!
  const numClasses = shapes[depth - 1]!.outputs
  const widest = Math.max(batchSize, ...shapes.map((s) => s.outputs))
  // Offsets (in values) of each layer's weights and biases within the parameter block.
  let size = 0
  const offsets = shapes.map(({ outputs, width }) => {
    const weights = size
    const bias = weights + outputs * width
    size = bias + padded(outputs)
    return { weights, bias }
  })

  const plan = WasmSimd.layout()
  const xBlock = plan.block((x.length / dim) * dimWidth)
  const [paramsBlock, gradsBlock, firstBlock, secondBlock] = [0, 1, 2, 3].map(() => plan.block(size)) as Array<WasmSimd.Block>
  // The input of each layer l > 0 (after ReLU and dropout) and the loss's gradient with respect to it, a batch each
  // (none for layer 0, whose input rows are in x).
  const hiddenBlocks = shapes.map(({ width }, l) => {
    const length = l === 0 ? 0 : batchSize * width
    return { values: plan.block(length), delta: plan.block(length) }
  })
  const logitsBlock = plan.block(batchSize * numClasses)
  const [keptBlock, allBlock, offsetsBlock, coefficientsBlock] = [0, 1, 2, 3].map(() => plan.block(widest)) as Array<WasmSimd.Block>

  const simd = WasmSimd.instantiate(plan)
  const { adam, addRows, affineAt, maskScale, reluAt } = simd.kernels
  const params = simd.floats(paramsBlock)
  const grads = simd.floats(gradsBlock)
  const logits = simd.floats(logitsBlock)
  const kept = simd.ints(keptBlock)
  simd.ints(allBlock).forEach((_, j, all) => all[j] = j)
  const rowOffsets = simd.ints(offsetsBlock)
  const coefficients = simd.floats(coefficientsBlock)
  const xs = simd.floats(xBlock)
  for (let r = 0; r * dim < x.length; r++) xs.set(x.subarray(r * dim, (r + 1) * dim), r * dimWidth)
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
  const forward = (rows: Int32Array, keep: number, random?: DenseNet.StepOptions["random"]): void => {
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
    for (let i = 0; i < n; i++) {
      // The logits become dLoss/dLogits.
      for (let c = 0; c < numClasses; c++) row[c] = logits[i * numClasses + c]!
      loss += DenseNet.crossEntropy(row, 0, numClasses, y[rows[i]!]!, w[rows[i]!]! * norm, options.labelSmoothing)
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
    return loss
  }

  let t = 0
  const update: Net["update"] = ({ beta1, beta2, eps }, lr, weightDecay) => {
    t++
    const stepSize = lr / (1 - Math.pow(beta1, t))
    const rootC2 = Math.sqrt(1 - Math.pow(beta2, t))
    adam(paramsBlock.address, gradsBlock.address, firstBlock.address, secondBlock.address, size, beta1, 1 - beta1, beta2, 1 - beta2, weightDecay, stepSize, rootC2, eps)
  }

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
  const read = (values: Float32Array): ReadonlyArray<DenseNet.Layer> =>
    shapes.map(({ inputs, outputs, width }, l) => {
      const { bias, weights } = offsets[l]!
      const layer = { inputs, outputs, weights: new Float64Array(outputs * inputs), bias: Float64Array.from(values.subarray(bias, bias + outputs)) }
      for (let j = 0; j < outputs; j++) layer.weights.set(values.subarray(weights + j * width, weights + j * width + inputs), j * inputs)
      return layer
    })

  return { gradient, update, proba, layers: () => read(params), gradients: () => read(grads) }
}

/** Rows per instance in `forward`, which bounds its memory (about 5 MiB for 1,280-d rows). */
const forwardChunk = 1024

/**
 * `DenseNet.forward` in float32: the `rows x numClasses` probabilities (no dropout) of `rows` inputs, row-major, in
 * Float64, through one instance per `forwardChunk` rows.
 */
export const forward = (layers: ReadonlyArray<DenseNet.Layer>, x: Float64Array, rows: number): Float64Array => {
  const dim = layers[0]!.inputs
  const numClasses = layers[layers.length - 1]!.outputs
  const out = new Float64Array(rows * numClasses)
  for (let start = 0; start < rows; start += forwardChunk) {
    const n = Math.min(forwardChunk, rows - start)
    const all = new Int32Array(n).map((_, i) => i)
    out.set(make(layers, x.subarray(start * dim, (start + n) * dim), 128).proba(all), start * numClasses)
  }
  return out
}
