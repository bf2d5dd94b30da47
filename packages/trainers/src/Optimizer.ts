/**
 * Optimisers for manual training, with PyTorch's update rules (`torch.optim`):
 *
 * - `sgd`: `v = momentum * v + g` (`v = g` on the first step), then `p -= lr * v`, or with `nesterov`
 *   `p -= lr * (g + momentum * v)`; weight decay adds `weightDecay * p` to the gradient (L2);
 * - `adam`: bias-corrected first and second moments, `p -= lr * m^ / (sqrt(v^) + eps)`; weight decay is L2 added to
 *   the gradient, as `torch.optim.Adam`;
 * - `adamw`: Adam with decoupled weight decay, `p *= 1 - lr * weightDecay` before the Adam step.
 *
 * The rate and the weight decay come with each step (the rate follows an `LrSchedule`). Weight decay applies to
 * every parameter, biases included, as PyTorch does by default. `make` returns the plain-TypeScript (Float64)
 * stepper that manual mode uses for its heads; partial fine-tuning applies the same rules to tfjs variables, and the
 * MLP head's float32 engine applies Adam's in a WebAssembly SIMD kernel (`internal/WasmSimd`).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

const Rate = Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.lessThan(1))
const Epsilon = Schema.Number.pipe(Schema.positive(), Schema.finite())
const opt = <S extends Schema.Schema.Any>(schema: S, value: Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: () => value, exact: true })

/**
 * SGD with momentum, as `torch.optim.SGD`: `momentum` in [0, 1) (default 0.9; 0 is plain SGD) and `nesterov` (default
 * false). Weight decay is added to the gradient (L2).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Sgd = Schema.Struct({
  kind: Schema.Literal("sgd"),
  momentum: opt(Rate, 0.9),
  nesterov: opt(Schema.Boolean, false)
})

/**
 * Adam, as `torch.optim.Adam`: `beta1` and `beta2` in [0, 1) (defaults 0.9 and 0.999) and `eps` (positive, default
 * 1e-8). Weight decay is added to the gradient (L2).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Adam = Schema.Struct({
  kind: Schema.Literal("adam"),
  beta1: opt(Rate, 0.9),
  beta2: opt(Rate, 0.999),
  eps: opt(Epsilon, 1e-8)
})

/**
 * AdamW, as `torch.optim.AdamW`: Adam's settings and defaults, with weight decay decoupled from the gradient (the
 * weights shrink by `lr * weightDecay` each step).
 *
 * @since 0.1.0
 * @category schemas
 */
export const AdamW = Schema.Struct({
  kind: Schema.Literal("adamw"),
  beta1: opt(Rate, 0.9),
  beta2: opt(Rate, 0.999),
  eps: opt(Epsilon, 1e-8)
})

/**
 * An optimiser and its settings, decoded with defaults (`{ kind: "sgd" }` is SGD with momentum 0.9).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Optimizer = Schema.Union(Sgd, Adam, AdamW)
/**
 * A decoded optimiser, every default filled in.
 *
 * @since 0.1.0
 * @category schemas
 */
export type Optimizer = typeof Optimizer.Type

/**
 * Updates a fixed list of parameter arrays in place from gradients of the same shapes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stepper {
  readonly step: (
    params: ReadonlyArray<Float64Array>,
    grads: ReadonlyArray<Float64Array>,
    lr: number,
    weightDecay: number
  ) => void
}

/**
 * A stepper for parameters of the given sizes (its moment buffers are allocated once).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (config: Optimizer, sizes: ReadonlyArray<number>): Stepper => {
  const first = sizes.map((n) => new Float64Array(n))
  let t = 0
  if (config.kind === "sgd") {
    const { momentum, nesterov } = config
    return {
      step: (params, grads, lr, weightDecay) => {
        t++
        params.forEach((p, k) => {
          const g = grads[k]!
          const v = first[k]!
          for (let j = 0; j < p.length; j++) {
            const gj = g[j]! + weightDecay * p[j]!
            if (momentum === 0) {
              p[j] -= lr * gj
              continue
            }
            const vj = t === 1 ? gj : momentum * v[j]! + gj
            v[j] = vj
            p[j] -= lr * (nesterov ? gj + momentum * vj : vj)
          }
        })
      }
    }
  }
  const second = sizes.map((n) => new Float64Array(n))
  const { beta1, beta2, eps } = config
  const decoupled = config.kind === "adamw"
  return {
    step: (params, grads, lr, weightDecay) => {
      t++
      // torch.optim.Adam's arithmetic: p -= (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps)
      const stepSize = lr / (1 - Math.pow(beta1, t))
      const rootC2 = Math.sqrt(1 - Math.pow(beta2, t))
      const shrink = decoupled ? 1 - lr * weightDecay : 1
      const l2 = decoupled ? 0 : weightDecay
      for (let k = 0; k < params.length; k++) {
        const p = params[k]!
        const g = grads[k]!
        const m = first[k]!
        const v = second[k]!
        for (let j = 0; j < p.length; j++) {
          const pj = p[j]! * shrink
          const gj = g[j]! + l2 * pj
          const mj = beta1 * m[j]! + (1 - beta1) * gj
          const vj = beta2 * v[j]! + (1 - beta2) * gj * gj
          m[j] = mj
          v[j] = vj
          p[j] = pj - (stepSize * mj) / (Math.sqrt(vj) / rootC2 + eps)
        }
      }
    }
  }
}
