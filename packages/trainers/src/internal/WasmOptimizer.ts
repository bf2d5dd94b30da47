/**
 * `Optimizer`'s update rules (PyTorch's `torch.optim` SGD, Adam, AdamW) over float32 parameters in WebAssembly
 * memory, through `WasmSimd`'s `sgd` and `adam` kernels: `stepper` steps parameters a network already holds in its
 * instance (`WasmDenseNet`); `make` holds a list of parameter arrays of its own (partial fine-tuning: the tail's
 * tensors and the head's layers, whose gradients come from tfjs).
 *
 * Weight decay applies to every parameter, biases included, as PyTorch does by default; SGD's momentum buffer is the
 * gradient itself on the first step (`torch.optim.SGD`), Adam's moments are bias-corrected.
 */
import type * as Optimizer from "../Optimizer.js"
import * as WasmSimd from "./WasmSimd.js"

/** The blocks one optimiser works on: parameters, gradient and two moment buffers, each `length` values (a multiple of 4). */
export interface Blocks {
  readonly params: WasmSimd.Block
  readonly grads: WasmSimd.Block
  readonly first: WasmSimd.Block
  readonly second: WasmSimd.Block
}

/** One update of `blocks.params` from `blocks.grads` at rate `lr`; each call is the next step (`t = 1, 2, ...`). */
export type Step = (lr: number, weightDecay: number) => void

export const stepper = (config: Optimizer.Optimizer, kernels: WasmSimd.Kernels, blocks: Blocks): Step => {
  const { first, grads, params, second } = blocks
  const n = params.length
  let t = 0
  if (config.kind === "sgd") {
    const { momentum, nesterov } = config
    return (lr, weightDecay) => {
      t++
      kernels.sgd(params.address, grads.address, first.address, n, t === 1 ? 0 : momentum, weightDecay, lr, nesterov ? 1 : 0, nesterov ? momentum : 1)
    }
  }
  const { beta1, beta2, eps } = config
  const decoupled = config.kind === "adamw"
  return (lr, weightDecay) => {
    t++
    // torch.optim.Adam's arithmetic: p -= (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps)
    const stepSize = lr / (1 - Math.pow(beta1, t))
    const rootC2 = Math.sqrt(1 - Math.pow(beta2, t))
    const shrink = decoupled ? 1 - lr * weightDecay : 1
    const l2 = decoupled ? 0 : weightDecay
    kernels.adam(params.address, grads.address, first.address, second.address, n, beta1, 1 - beta1, beta2, 1 - beta2, shrink, l2, stepSize, rootC2, eps)
  }
}

/** Blocks of `size` values (rounded up to a multiple of 4) for one optimiser, from `plan`. */
export const plan = (layout: WasmSimd.Layout, size: number): Blocks => {
  const [params, grads, first, second] = [0, 1, 2, 3].map(() => layout.block(WasmSimd.padded(size))) as [WasmSimd.Block, WasmSimd.Block, WasmSimd.Block, WasmSimd.Block]
  return { params, grads, first, second }
}

/** Parameter arrays of their own, with their gradients, stepped together. */
export interface Parameters {
  /** One float32 view per array, in `make`'s order: write the initial values here, read the updated ones. */
  readonly values: ReadonlyArray<Float32Array>
  /** One view per array: write each step's gradient here. */
  readonly grads: ReadonlyArray<Float32Array>
  readonly step: Step
}

/** Zeroed parameter arrays of `sizes` values, back to back (each padded to 4 values, which stay zero), in a fresh instance. */
export const make = (config: Optimizer.Optimizer, sizes: ReadonlyArray<number>): Parameters => {
  const starts: Array<number> = []
  let size = 0
  for (const n of sizes) {
    starts.push(size)
    size += WasmSimd.padded(n)
  }
  const layout = WasmSimd.layout()
  const blocks = plan(layout, size)
  const simd = WasmSimd.instantiate(layout)
  const views = (block: WasmSimd.Block) => {
    const all = simd.floats(block)
    return sizes.map((n, k) => all.subarray(starts[k]!, starts[k]! + n))
  }
  return { values: views(blocks.params), grads: views(blocks.grads), step: stepper(config, simd.kernels, blocks) }
}
