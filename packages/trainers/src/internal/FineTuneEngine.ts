/**
 * Fine-tuning's training engine: a backbone's trainable tail and dense head layers stepped together by the epoch
 * loop (`ManualTraining` with `trainableLayers > 0`, and `FineTune.searchHead`).
 */
import type { Matrix, TrainableTail } from "@loupe/core"
import { Effect } from "effect"
import * as Optimizer from "../Optimizer.js"
import { TrainerError } from "../TrainerError.js"
import * as DenseHead from "./DenseHead.js"
import * as DenseNet from "./DenseNet.js"
import type * as EpochLoop from "./EpochLoop.js"
import * as Random from "./Random.js"

/** Class probabilities of trunk embeddings `x` through the tail and the head layers. */
export const predictWith = (tail: TrainableTail.Tail, head: ReadonlyArray<DenseNet.Layer>, x: Matrix.Matrix): Matrix.Matrix =>
  DenseNet.predictProba(head, tail.features(x))

/**
 * The weights of one epoch: the tail's trainable tensors (in `tail.trainableWeights` order) and the head layers.
 */
export interface Snapshot {
  readonly tail: ReadonlyArray<Float32Array>
  readonly head: ReadonlyArray<DenseNet.Layer>
}

/**
 * The epoch loop's engine: tail + head trained with the tail's gradients and `Optimizer` updates, the tail starting
 * from its pretrained weights.
 */
export const engine = (
  tail: TrainableTail.Tail,
  numClasses: number,
  params: DenseHead.Params & { readonly seed: number }
): Effect.Effect<EpochLoop.Engine<Snapshot>, TrainerError> =>
  Effect.try({
    try: () => {
      tail.write(tail.pretrained)
      const head = DenseHead.init(tail.featureDim, numClasses, params, params.seed)
      const tailMaster = tail.pretrained.map((p) => Float64Array.from(p))
      // The head layers' arrays are their master weights: the optimiser updates them in place.
      const master = [...tailMaster, ...DenseNet.parameters(head)]
      const grads = master.map((p) => new Float64Array(p.length))
      const stepper = Optimizer.make(params.optimizer, master.map((p) => p.length))
      const random = Random.make(Random.derive(params.seed, 5))
      const hidden = head.length - 1

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
        result.gradients.forEach((g, k) => grads[k]!.set(g))
        stepper.step(master, grads, lr, params.weightDecay)
        tail.write(tailMaster)
        return { loss: result.loss, correct: result.correct }
      }

      return {
        step,
        predictProba: (x) => predictWith(tail, head, x),
        snapshot: () => ({ tail: tailMaster.map((p) => Float32Array.from(p)), head: DenseNet.copy(head) })
      } satisfies EpochLoop.Engine<Snapshot>
    },
    catch: (cause) =>
      new TrainerError({ reason: "TrainingFailed", message: `Cannot set up fine-tuning: ${String(cause)}`, cause })
  })
