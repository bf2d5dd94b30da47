/**
 * A small fully connected network in plain TypeScript (Float64): linear layers with ReLU between them, inverted
 * dropout on hidden activations while training, and a softmax cross-entropy loss with label smoothing and per-row
 * weights. One layer is a linear layer (PyTorch's `nn.Linear` head); two are an MLP with one hidden layer.
 *
 * At manual mode's sizes (a 1280-d embedding, batches of 4 to 64) a step takes microseconds to a millisecond, far
 * below the cost of embedding the augmented views, and it needs no tfjs import or backend. Manual mode steps on fresh
 * batches of embedded views with any `Optimizer` (SGD, Adam, AdamW) in Float64; the MLP head trains the same network
 * over one fixed matrix with Adam in float32 WebAssembly SIMD (`WasmDenseNet`, tested against this one). For larger
 * runs the work is cut where it is zero: the units dropout drops are never computed, and the backward pass skips
 * every zero delta (dropped or inactive units); the matrix products share each pass over a row between four (forward)
 * or eight (backward) rows of the other operand.
 */
import type { Matrix } from "@loupe/core"
import { addRowCombination, dotRowsAt, softmaxInPlace } from "./Linalg.js"
import type * as Random from "./Random.js"

/** `outputs x inputs` weights (row-major, PyTorch's layout) and `outputs` biases. */
export interface Layer {
  readonly inputs: number
  readonly outputs: number
  readonly weights: Float64Array<ArrayBuffer>
  readonly bias: Float64Array<ArrayBuffer>
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

/** Deep copy (a snapshot of the best epoch). */
export const copy = (layers: ReadonlyArray<Layer>): ReadonlyArray<Layer> =>
  layers.map((l) => ({ ...l, weights: l.weights.slice(), bias: l.bias.slice() }))

/** Parameter arrays in a fixed order (weights, bias per layer), as the optimiser sees them. */
export const parameters = (layers: ReadonlyArray<Layer>): ReadonlyArray<Float64Array> =>
  layers.flatMap((l) => [l.weights, l.bias])

/**
 * One affine layer over `rows` inputs of width `layer.inputs`: `out = x W^T + b`, into a zeroed `out`. With `scale`
 * (`rows x outputs`), only the entries whose scale is non-zero are computed, and the others stay 0: dropout's dropped
 * units cost nothing.
 */
const affine = (layer: Layer, x: ArrayLike<number>, rows: number, out: Float64Array, scale?: Float64Array): void => {
  const { bias, inputs, outputs, weights } = layer
  const units = new Int32Array(outputs)
  for (let i = 0; i < rows; i++) {
    let count = 0
    for (let j = 0; j < outputs; j++) if (scale === undefined || scale[i * outputs + j] !== 0) units[count++] = j
    dotRowsAt(weights, units, 0, count, inputs, x, i * inputs, out, i * outputs)
    for (let u = 0; u < count; u++) out[i * outputs + units[u]!] += bias[units[u]!]!
  }
}

/** `rows x numClasses` probabilities (no dropout) of `rows` inputs, row-major, in Float64. */
export const forward = (layers: ReadonlyArray<Layer>, x: ArrayLike<number>, rows: number): Float64Array => {
  let input: ArrayLike<number> = x
  let out = new Float64Array(0)
  layers.forEach((layer, l) => {
    out = new Float64Array(rows * layer.outputs)
    affine(layer, input, rows, out)
    if (l < layers.length - 1) for (let k = 0; k < out.length; k++) out[k] = Math.max(0, out[k]!)
    input = out
  })
  const k = layers[layers.length - 1]!.outputs
  for (let i = 0; i < rows; i++) softmaxInPlace(out, i * k, k)
  return out
}

/** `rows x numClasses` probabilities (no dropout). */
export const predictProba = (layers: ReadonlyArray<Layer>, x: Matrix.Matrix): Matrix.Matrix => ({
  rows: x.rows,
  cols: layers[layers.length - 1]!.outputs,
  data: Float32Array.from(forward(layers, x.data, x.rows))
})

/**
 * The weighted softmax cross-entropy of the logits `p[base .. base + k)` against `label`, with label smoothing `e`
 * (targets `(1 - e) * onehot + e / k`); the logits become the loss's gradient `weight * (softmax - target)` in place.
 */
export const crossEntropy = (p: Float64Array, base: number, k: number, label: number, weight: number, e: number): number => {
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

/**
 * Forward and backward over one batch: fills `grads` (same order as `parameters`) with the gradient of the weighted
 * mean loss `sum_i w_i * CE_i / sum_i w_i`.
 */
export const gradient = (
  layers: ReadonlyArray<Layer>,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  w: ArrayLike<number>,
  rows: number,
  grads: ReadonlyArray<Float64Array>,
  options: StepOptions
): StepResult => {
  const depth = layers.length
  const keep = 1 - options.dropout
  // activations[l] is the input of layer l (after ReLU and dropout for l > 0)
  const activations: Array<ArrayLike<number>> = [x]
  const masks: Array<Float64Array> = []
  for (let l = 0; l < depth; l++) {
    const layer = layers[l]!
    const out = new Float64Array(rows * layer.outputs)
    if (l < depth - 1) {
      // The dropout draws come first, so the units they drop are never computed.
      const mask = new Float64Array(out.length)
      for (let k = 0; k < out.length; k++) mask[k] = options.dropout > 0 ? (options.random.next() < keep ? 1 / keep : 0) : 1
      affine(layer, activations[l]!, rows, out, mask)
      for (let k = 0; k < out.length; k++) {
        if (!(out[k]! > 0)) mask[k] = 0
        out[k] = out[k]! * mask[k]!
      }
      masks.push(mask)
    } else {
      affine(layer, activations[l]!, rows, out)
    }
    activations.push(out)
  }
  const numClasses = layers[depth - 1]!.outputs
  const p = activations[depth] as Float64Array
  let weightSum = 0
  for (let i = 0; i < rows; i++) weightSum += w[i]!
  const norm = weightSum > 0 ? 1 / weightSum : 0
  let loss = 0
  let correct = 0
  for (let i = 0; i < rows; i++) {
    const base = i * numClasses
    let best = 0
    for (let c = 1; c < numClasses; c++) if (p[base + c]! > p[base + best]!) best = c
    if (best === y[i]) correct++
    loss += crossEntropy(p, base, numClasses, y[i]!, w[i]! * norm, options.labelSmoothing)
  }
  for (const g of grads) g.fill(0)
  const widest = Math.max(rows, ...layers.map((l) => l.outputs))
  const offsets = new Int32Array(widest)
  const coefficients = new Float64Array(widest)
  let delta: Float64Array = p
  for (let l = depth - 1; l >= 0; l--) {
    const { inputs, outputs, weights } = layers[l]!
    const gW = grads[2 * l]!
    const gB = grads[2 * l + 1]!
    const input = activations[l]!
    // Row j of gW is the delta-weighted sum of the input rows; dropped and inactive units (delta 0) are skipped.
    for (let j = 0; j < outputs; j++) {
      let count = 0
      for (let i = 0; i < rows; i++) {
        const d = delta[i * outputs + j]!
        if (d === 0) continue
        gB[j] += d
        offsets[count] = i * inputs
        coefficients[count++] = d
      }
      addRowCombination(input, offsets, coefficients, count, inputs, gW, j * inputs)
    }
    if (l === 0) break
    const previous = new Float64Array(rows * inputs)
    for (let i = 0; i < rows; i++) {
      let count = 0
      for (let j = 0; j < outputs; j++) {
        const d = delta[i * outputs + j]!
        if (d === 0) continue
        offsets[count] = j * inputs
        coefficients[count++] = d
      }
      addRowCombination(weights, offsets, coefficients, count, inputs, previous, i * inputs)
    }
    const mask = masks[l - 1]!
    for (let k = 0; k < previous.length; k++) previous[k] = previous[k]! * mask[k]!
    delta = previous
  }
  return { loss, correct }
}
