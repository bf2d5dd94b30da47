/**
 * Fine-tuning's training engine: a backbone's trainable tail and dense head layers stepped together by the epoch
 * loop (`ManualTraining` with `trainableLayers > 0`, and `FineTune.searchHead`).
 */
import type { Matrix, TrainableTail } from "@loupe/core"
import { Effect } from "effect"
import { TrainerError } from "../TrainerError.js"
import * as DenseHead from "./DenseHead.js"
import type * as EpochLoop from "./EpochLoop.js"
import * as Random from "./Random.js"
import * as WasmDenseNet from "./WasmDenseNet.js"
import * as WasmOptimizer from "./WasmOptimizer.js"

/** Class probabilities of trunk embeddings `x` through the tail and the head layers. */
export const predictWith = (
  tail: TrainableTail.Tail,
  head: ReadonlyArray<WasmDenseNet.LayerValues>,
  x: Matrix.Matrix
): Matrix.Matrix => WasmDenseNet.predictProba(head, tail.features(x))

/**
 * The weights of one epoch: the tail's trainable tensors (in `tail.trainableWeights` order) and the head layers.
 */
export interface Snapshot {
  readonly tail: ReadonlyArray<Float32Array>
  readonly head: ReadonlyArray<WasmDenseNet.Layer>
}

/**
 * The epoch loop's engine: tail + head trained with the tail's gradients and `Optimizer`'s rules in WebAssembly
 * (`WasmOptimizer`, float32 master weights), the tail starting from its pretrained weights.
 */
export const engine = (
  tail: TrainableTail.Tail,
  numClasses: number,
  params: DenseHead.Params & { readonly seed: number }
): Effect.Effect<EpochLoop.Engine<Snapshot>, TrainerError> =>
  Effect.try({
    try: () => {
      tail.write(tail.pretrained)
      const initial = DenseHead.init(tail.featureDim, numClasses, params, params.seed)
      // The master weights, tail tensors then each head layer's weights and bias, live in the optimiser's memory.
      const start = [...tail.pretrained, ...initial.flatMap((l) => [l.weights, l.bias])]
      const master = WasmOptimizer.make(params.optimizer, start.map((p) => p.length))
      start.forEach((p, k) => master.values[k]!.set(p))
      const tailMaster = master.values.slice(0, tail.pretrained.length)
      const head = initial.map(({ inputs, outputs }, l) => {
        const k = tail.pretrained.length + 2 * l
        return { inputs, outputs, weights: master.values[k]!, bias: master.values[k + 1]! }
      })
      const random = Random.make(Random.derive(params.seed, 5))
      const hidden = initial.length - 1

      const step = (batch: EpochLoop.Batch, lr: number) => {
        let wSum = 0
        for (let i = 0; i < batch.rows; i++) wSum += batch.w[i]!
        const result = tail.step(
          { x: batch.x, rows: batch.rows, y: batch.y, weights: Float64Array.from(batch.w, (v) => (wSum > 0 ? v / wSum : 0)) },
          head,
          {
            numClasses,
            labelSmoothing: params.labelSmoothing,
            dropout: params.dropout,
            dropoutSeeds: params.dropout > 0 ? Array.from({ length: hidden }, () => random.int(2 ** 31)) : []
          }
        )
        result.gradients.forEach((g, k) => master.grads[k]!.set(g))
        master.step(lr, params.weightDecay)
        tail.write(tailMaster)
        return { loss: result.loss, correct: result.correct }
      }

      return {
        step,
        predictProba: (x) => predictWith(tail, head, x),
        snapshot: () => ({
          tail: tailMaster.map((p) => p.slice()),
          head: head.map((l) => ({ ...l, weights: Float64Array.from(l.weights), bias: Float64Array.from(l.bias) }))
        })
      } satisfies EpochLoop.Engine<Snapshot>
    },
    catch: (cause) =>
      new TrainerError({ reason: "TrainingFailed", message: `Cannot set up fine-tuning: ${String(cause)}`, cause })
  })
