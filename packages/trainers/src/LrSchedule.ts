/**
 * Learning-rate schedules for manual training, stepped once per epoch as PyTorch's `lr_scheduler`s usually are:
 *
 * - `constant`: the base rate every epoch;
 * - `step`: multiply by `gamma` every `stepSize` epochs (`StepLR`; the notebook recipe is step 7 x 0.1);
 * - `cosine`: anneal from the base rate to `minLr` over the epochs after warm-up (`CosineAnnealingLR`).
 *
 * Any of them takes `warmupEpochs`: the first `w` epochs ramp linearly up to the scheduled rate
 * (`(epoch + 1) / (w + 1)` of it), so `{ kind: "constant", warmupEpochs: 3 }` is a plain warm-up.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

const NonNegativeInt = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))
const warmupEpochs = Schema.optionalWith(NonNegativeInt, { default: () => 0, exact: true })

/**
 * The constant schedule: the base rate every epoch after the warm-up (`warmupEpochs`, an integer >= 0, default 0).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Constant = Schema.Struct({ kind: Schema.Literal("constant"), warmupEpochs })

/**
 * The step schedule (PyTorch's `StepLR`): the base rate multiplied by `gamma` (positive, default 0.1) every `stepSize`
 * epochs (an integer >= 1, default 7), after `warmupEpochs` of warm-up (default 0).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Step = Schema.Struct({
  kind: Schema.Literal("step"),
  stepSize: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { default: () => 7, exact: true }),
  gamma: Schema.optionalWith(Schema.Number.pipe(Schema.positive(), Schema.finite()), { default: () => 0.1, exact: true }),
  warmupEpochs
})

/**
 * The cosine schedule (PyTorch's `CosineAnnealingLR`): the rate annealed from the base rate down to `minLr` (>= 0,
 * default 0) over the epochs after the warm-up (`warmupEpochs`, default 0).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Cosine = Schema.Struct({
  kind: Schema.Literal("cosine"),
  minLr: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.finite()), { default: () => 0, exact: true }),
  warmupEpochs
})

/**
 * A schedule, decoded with defaults (`{ kind: "step" }` is step 7 x 0.1).
 *
 * @since 0.1.0
 * @category schemas
 */
export const LrSchedule = Schema.Union(Constant, Step, Cosine)
/**
 * A decoded schedule, every default filled in.
 *
 * @since 0.1.0
 * @category schemas
 */
export type LrSchedule = typeof LrSchedule.Type

/**
 * The learning rate of epoch `epoch` (0-based) out of `epochs`.
 *
 * @since 0.1.0
 * @category functions
 */
export const learningRate = (schedule: LrSchedule, baseLr: number, epoch: number, epochs: number): number => {
  const warm = schedule.warmupEpochs
  const ramp = epoch < warm ? (epoch + 1) / (warm + 1) : 1
  switch (schedule.kind) {
    case "constant":
      return baseLr * ramp
    case "step":
      return baseLr * ramp * Math.pow(schedule.gamma, Math.floor(epoch / schedule.stepSize))
    case "cosine": {
      const span = Math.max(1, epochs - warm)
      const t = Math.min(Math.max(epoch - warm, 0), span)
      return ramp * (schedule.minLr + (baseLr - schedule.minLr) * (1 + Math.cos((Math.PI * t) / span)) / 2)
    }
  }
}
