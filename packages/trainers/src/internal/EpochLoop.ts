/**
 * The epoch loop manual mode shares between its engines (a `WasmDenseNet` head on frozen embeddings, or tfjs
 * layers for partial fine-tuning), in the shape of the PyTorch notebook: per epoch, set the scheduled rate, shuffle,
 * take one augmented view of every image, step through mini-batches (the last one may be short), then evaluate on
 * the validation set and keep the weights of the best epoch (highest validation accuracy, then lowest validation
 * loss; without validation data, the last epoch).
 */
import type { Matrix } from "@loupe/core"
import { Effect, Stream } from "effect"
import * as LrSchedule from "../LrSchedule.js"
import { TrainerError } from "../TrainerError.js"
import * as Random from "./Random.js"

/** One mini-batch: `rows` feature rows with their labels and weights. */
export interface Batch {
  readonly x: Float32Array
  readonly rows: number
  readonly y: Int32Array
  readonly w: Float64Array
}

/** What the loop trains. `S` is a snapshot of the weights. */
export interface Engine<S> {
  /** One optimiser step; returns the batch's weighted mean loss and how many rows it predicted right (before the step). */
  readonly step: (batch: Batch, lr: number) => { readonly loss: number; readonly correct: number }
  readonly predictProba: (x: Matrix.Matrix) => Matrix.Matrix
  readonly snapshot: () => S
}

export interface LoopData {
  /** `views` consecutive rows per training image. */
  readonly features: Matrix.Matrix
  readonly views: number
  /** Per training image. */
  readonly y: Int32Array
  /** Per training image (class weights). */
  readonly weights: Float64Array
  readonly validation?: { readonly x: Matrix.Matrix; readonly y: Int32Array } | undefined
}

export interface LoopOptions {
  readonly epochs: number
  readonly batchSize: number
  readonly lr: number
  readonly schedule: LrSchedule.LrSchedule
  readonly seed: number
}

/** The numbers of one finished epoch. */
export interface EpochStats {
  /** 1-based. */
  readonly epoch: number
  readonly epochs: number
  readonly lr: number
  /** Mean loss and accuracy over the epoch's training views, measured batch by batch before each step. */
  readonly trainLoss: number
  readonly trainAccuracy: number
  /** Mean cross-entropy and accuracy on the validation images; absent without validation data. */
  readonly valLoss?: number
  readonly valAccuracy?: number
  /** Whether this epoch's weights are the ones kept so far. */
  readonly best: boolean
  readonly seconds: number
}

/** Mean cross-entropy and accuracy of probabilities against labels. */
export const score = (proba: Matrix.Matrix, y: Int32Array): { readonly loss: number; readonly accuracy: number } => {
  let loss = 0
  let correct = 0
  for (let i = 0; i < proba.rows; i++) {
    let best = 0
    for (let c = 1; c < proba.cols; c++) if (proba.data[i * proba.cols + c]! > proba.data[i * proba.cols + best]!) best = c
    if (best === y[i]) correct++
    loss -= Math.log(Math.max(proba.data[i * proba.cols + y[i]!]!, 1e-12))
  }
  const n = Math.max(1, proba.rows)
  return { loss: loss / n, accuracy: correct / n }
}

export interface Loop<S> {
  /** Runs one epoch per pull; an engine failure (e.g. non-finite values in tfjs) ends it with `TrainingFailed`. */
  readonly epochs: Stream.Stream<EpochStats, TrainerError>
  /** The kept weights and their 1-based epoch, once at least one epoch ran. */
  readonly best: () => { readonly epoch: number; readonly state: S } | undefined
}

export const make = <S>(engine: Engine<S>, data: LoopData, options: LoopOptions): Loop<S> => {
  const images = data.y.length
  const { cols } = data.features
  const viewOffset = Random.make(Random.derive(options.seed, 1))
  const offsets = Int32Array.from({ length: images }, () => viewOffset.int(data.views))
  let best: { epoch: number; state: S; accuracy: number; loss: number } | undefined

  const runEpoch = (e: number): EpochStats => {
    const started = performance.now()
    const lr = LrSchedule.learningRate(options.schedule, options.lr, e, options.epochs)
    const order = Random.make(Random.derive(options.seed, 2, e)).shuffle(Int32Array.from({ length: images }, (_, i) => i))
    let lossSum = 0
    let correct = 0
    for (let start = 0; start < images; start += options.batchSize) {
      const rows = Math.min(options.batchSize, images - start)
      const x = new Float32Array(rows * cols)
      const y = new Int32Array(rows)
      const w = new Float64Array(rows)
      for (let r = 0; r < rows; r++) {
        const image = order[start + r]!
        const view = (e + offsets[image]!) % data.views
        const row = image * data.views + view
        x.set(data.features.data.subarray(row * cols, (row + 1) * cols), r * cols)
        y[r] = data.y[image]!
        w[r] = data.weights[image]!
      }
      const result = engine.step({ x, rows, y, w }, lr)
      lossSum += result.loss * rows
      correct += result.correct
    }
    if (!Number.isFinite(lossSum)) {
      throw new TrainerError({
        reason: "TrainingFailed",
        field: "lr",
        message: `Training diverged in epoch ${e + 1} (the loss is not finite); lower the learning rate`
      })
    }
    const validation = data.validation ? score(engine.predictProba(data.validation.x), data.validation.y) : undefined
    const improved = validation === undefined || best === undefined ||
      validation.accuracy > best.accuracy ||
      (validation.accuracy === best.accuracy && validation.loss < best.loss)
    if (improved) {
      best = {
        epoch: e + 1,
        state: engine.snapshot(),
        accuracy: validation?.accuracy ?? 0,
        loss: validation?.loss ?? 0
      }
    }
    return {
      epoch: e + 1,
      epochs: options.epochs,
      lr,
      trainLoss: lossSum / images,
      trainAccuracy: correct / images,
      ...(validation === undefined ? {} : { valLoss: validation.loss, valAccuracy: validation.accuracy }),
      best: improved,
      seconds: (performance.now() - started) / 1000
    }
  }

  return {
    epochs: Stream.range(0, options.epochs - 1).pipe(
      Stream.mapEffect((e) =>
        Effect.try({
          try: () => runEpoch(e),
          catch: (cause) =>
            cause instanceof TrainerError ? cause : new TrainerError({
              reason: "TrainingFailed",
              message: `Epoch ${e + 1} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
              cause
            })
        }).pipe(Effect.zipLeft(Effect.yieldNow()))
      )
    ),
    best: () => (best === undefined ? undefined : { epoch: best.epoch, state: best.state })
  }
}
