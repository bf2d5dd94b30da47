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
 * every parameter, biases included, as PyTorch does by default. The updates run in float32 WebAssembly SIMD
 * kernels (`internal/WasmOptimizer`), for manual mode's heads, partial fine-tuning's tail and head, and the MLP head.
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
