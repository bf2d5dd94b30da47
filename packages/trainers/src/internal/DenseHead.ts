/**
 * Schemas shared by the heads manual mode trains (the `linear` head and the head on top of fine-tuned layers): the
 * training settings, the head's shape, and its layers as exact Float64 state.
 */
import { Schema } from "effect"
import * as LrSchedule from "../LrSchedule.js"
import * as Optimizer from "../Optimizer.js"
import * as Codec from "./Codec.js"
import * as Random from "./Random.js"
import * as WasmDenseNet from "./WasmDenseNet.js"

export const opt = <S extends Schema.Schema.Any>(schema: S, value: Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: () => value, exact: true })
export const PositiveInt = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
export const Probability = Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.lessThan(1))
export const NonNegative = Schema.Number.pipe(Schema.greaterThanOrEqualTo(0), Schema.finite())

/** The optimisation settings, with the notebook recipe as defaults. */
export const TrainingFields = {
  optimizer: opt(Optimizer.Optimizer, { kind: "sgd", momentum: 0.9, nesterov: false }),
  lr: opt(Schema.Number.pipe(Schema.positive(), Schema.finite()), 0.001),
  weightDecay: opt(NonNegative, 0),
  schedule: opt(LrSchedule.LrSchedule, { kind: "step", stepSize: 7, gamma: 0.1, warmupEpochs: 0 }),
  epochs: opt(PositiveInt, 25),
  batchSize: opt(PositiveInt, 4),
  labelSmoothing: opt(Probability, 0)
}

/** The head's shape (`hidden` 0: one linear layer) and how it was trained. */
export const Params = Schema.Struct({
  hidden: opt(Schema.Int.pipe(Schema.greaterThanOrEqualTo(0)), 0),
  dropout: opt(Probability, 0),
  ...TrainingFields
})
export type Params = typeof Params.Type

export const Layer = Schema.Struct({
  inputs: PositiveInt,
  outputs: PositiveInt,
  /** `outputs x inputs`, row-major. */
  weights: Codec.Float64,
  bias: Codec.Float64
})

/** Layers, input first, ReLU between them. */
export const Layers = Schema.Array(Layer)

/** Fresh layers for `dim` inputs and `numClasses` outputs. */
export const init = (dim: number, numClasses: number, params: Params, seed: number): ReadonlyArray<WasmDenseNet.Layer> =>
  WasmDenseNet.init(params.hidden > 0 ? [dim, params.hidden, numClasses] : [dim, numClasses], Random.make(Random.derive(seed, 4)))

/** The input width and class count of consistent layers, or what is wrong with them. */
export const shape = (layers: ReadonlyArray<WasmDenseNet.Layer>): { readonly numClasses: number; readonly dim: number } | string => {
  if (layers.length === 0) return "no layers"
  for (let l = 0; l < layers.length; l++) {
    const { inputs, outputs, weights, bias } = layers[l]!
    if (weights.length !== inputs * outputs) return `layer ${l} holds ${weights.length} weights, expected ${inputs * outputs}`
    if (bias.length !== outputs) return `layer ${l} holds ${bias.length} biases, expected ${outputs}`
    if (l > 0 && inputs !== layers[l - 1]!.outputs) return `layer ${l} takes ${inputs} inputs after ${layers[l - 1]!.outputs}`
  }
  const numClasses = layers[layers.length - 1]!.outputs
  return numClasses < 2 ? "fewer than 2 classes" : { numClasses, dim: layers[0]!.inputs }
}
