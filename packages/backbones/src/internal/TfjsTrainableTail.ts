/**
 * The trainable-tail capability of a TensorFlow.js layers backbone (core's `TrainableTail`). The model is cut where
 * one tensor alone feeds the rest (`TfjsTail`); the tail is rebuilt as a tfjs model of that one input and trained
 * with the caller's dense head: gradients from `tf.variableGrads`, batch-norm layers frozen in inference mode. On
 * the wasm backend, which lacks some convolution backprop kernels, plain-TypeScript versions are registered
 * (`BackpropKernels`). A saved tail is its cut, pooling, tfjs topology, weight specs and weight bytes (base64).
 */
import { Matrix } from "@loupe/core"
import type { LoupeConfig, TrainableTail } from "@loupe/core"
import type * as Tf from "@tensorflow/tfjs"
import { Effect, ParseResult, Schema } from "effect"
import type { Scope } from "effect"
import { BackboneError } from "../BackboneError.js"
import * as BackpropKernels from "./BackpropKernels.js"
import type { TfModule } from "./tfjsFiles.js"
import * as TfjsTail from "./TfjsTail.js"

type Pooling = "none" | "global-average"

/** What the plugin gives the capability: its layers model, loaded with the user's options. */
export interface Source {
  readonly id: string
  /** Decodes the user's options, then loads the whole layers model on the main thread. */
  readonly load: (
    config: LoupeConfig.LoupeConfigShape,
    options: Record<string, unknown>
  ) => Effect.Effect<{ readonly tf: TfModule; readonly model: Tf.LayersModel; readonly output: string | undefined; readonly pooling: Pooling }, BackboneError, Scope.Scope>
  /** TensorFlow.js with a backend selected, to rebuild a saved tail. */
  readonly tf: Effect.Effect<TfModule, BackboneError>
}

const WeightSpec = Schema.Struct({
  name: Schema.String,
  shape: Schema.Array(Schema.Int),
  dtype: Schema.Literal("float32", "int32", "bool")
})

/** A saved tail, as `Tail.save` writes it. */
const Saved = Schema.Struct({
  pooling: Schema.Literal("none", "global-average"),
  cut: Schema.String,
  trainable: Schema.Array(Schema.String),
  topology: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  weightSpecs: Schema.Array(WeightSpec),
  weightData: Schema.Uint8ArrayFromBase64
})

const invalid = (field: string, message: string, cause?: unknown) =>
  new BackboneError({ reason: "InvalidInput", field, message, cause })

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const joinBuffers = (data: Tf.io.WeightData | undefined): Uint8Array => {
  const parts = data === undefined ? [] : Array.isArray(data) ? data : [data]
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let offset = 0
  for (const p of parts) {
    out.set(new Uint8Array(p), offset)
    offset += p.byteLength
  }
  return out
}

/** The trainable tail around a tfjs model of one input (its layers' `trainable` flags already set). */
const tailOf = (tf: TfModule, model: Tf.LayersModel, cut: string, trainable: ReadonlyArray<string>, pooling: Pooling): TrainableTail.Tail => {
  const inputShape = model.inputs[0]!.shape.slice(1) as [number, number, number]
  const outShape = model.outputs[0]!.shape
  const featureDim = outShape.length === 4 && pooling === "global-average"
    ? outShape[3]!
    : outShape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1)
  const variables = model.trainableWeights.map((w) => w.read() as Tf.Variable)
  // The head's variables, kept while the head's shape stays the same; each step writes the caller's weights in.
  let headVariables: Array<Tf.Variable> = []

  /** The tail's features for a batch of activation maps (pooled when the tail ends in a feature map). */
  const tailFeatures = (x: Tf.Tensor): Tf.Tensor2D => {
    const y = model.apply(x, { training: false }) as Tf.Tensor
    const pooled = y.rank === 4 && pooling === "global-average" ? y.mean([1, 2]) : y
    return tf.reshape(pooled, [x.shape[0]!, -1]) as Tf.Tensor2D
  }

  const writeHead = (head: ReadonlyArray<TrainableTail.DenseLayer>) => {
    const shapes = head.flatMap((l) => [[l.outputs, l.inputs], [l.outputs]])
    if (shapes.length !== headVariables.length || shapes.some((s, k) => s.join() !== headVariables[k]!.shape.join())) {
      tf.dispose(headVariables)
      headVariables = shapes.map((s) => tf.variable(tf.zeros(s)))
    }
    head.forEach((l, k) =>
      tf.tidy(() => {
        headVariables[2 * k]!.assign(tf.tensor2d(Float32Array.from(l.weights), [l.outputs, l.inputs]))
        headVariables[2 * k + 1]!.assign(tf.tensor1d(Float32Array.from(l.bias)))
      })
    )
  }

  const step = (batch: TrainableTail.Batch, head: ReadonlyArray<TrainableTail.DenseLayer>, options: TrainableTail.StepOptions) => {
    writeHead(head)
    const all = [...variables, ...headVariables]
    let correct = 0
    const logits = (features: Tf.Tensor2D): Tf.Tensor2D => {
      let a = features
      head.forEach((_, l) => {
        a = tf.add(tf.matMul(a, headVariables[2 * l]!, false, true), headVariables[2 * l + 1]!) as Tf.Tensor2D
        if (l < head.length - 1) {
          a = tf.relu(a)
          if (options.dropout > 0) a = tf.dropout(a, options.dropout, undefined, options.dropoutSeeds[l]) as Tf.Tensor2D
        }
      })
      return a
    }
    const { grads, value } = tf.variableGrads(() =>
      tf.tidy(() => {
        const z = logits(tailFeatures(tf.tensor4d(batch.x, [batch.rows, ...inputShape])))
        const predicted = z.argMax(1).dataSync()
        for (let i = 0; i < batch.rows; i++) if (predicted[i] === batch.y[i]) correct++
        const { labelSmoothing: smoothing, numClasses } = options
        const targets = tf.add(tf.mul(tf.oneHot(tf.tensor1d(batch.y, "int32"), numClasses), 1 - smoothing), smoothing / numClasses)
        const perRow = tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(z)), 1))
        return tf.sum(tf.mul(perRow, tf.tensor1d(Float32Array.from(batch.weights)))) as Tf.Scalar
      }), all)
    const loss = value.dataSync()[0]!
    const gradients = all.map((v) => {
      const g = grads[v.name]
      return g === undefined ? new Float32Array(v.size) : Float32Array.from(g.dataSync() as Float32Array)
    })
    tf.dispose([value, ...Object.values(grads)])
    return { loss, correct, gradients }
  }

  const features = (x: Matrix.Matrix): Matrix.Matrix => {
    const dim = inputShape[0] * inputShape[1] * inputShape[2]
    const out = new Float32Array(x.rows * featureDim)
    for (let start = 0; start < x.rows; start += 64) {
      const rows = Math.min(64, x.rows - start)
      const chunk = tf.tidy(() => {
        const input = tf.tensor4d(x.data.subarray(start * dim, (start + rows) * dim), [rows, ...inputShape])
        return tailFeatures(input).dataSync() as Float32Array
      })
      out.set(chunk, start * featureDim)
    }
    return Matrix.make(x.rows, featureDim, out)
  }

  const save = Effect.tryPromise({
    try: () =>
      new Promise<Tf.io.ModelArtifacts>((resolve, reject) => {
        model.save(tf.io.withSaveHandler(async (a) => {
          resolve(a)
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } }
        })).catch(reject)
      }),
    catch: (cause) => new BackboneError({ reason: "InferenceFailed", message: `Cannot save the layers after ${cut}: ${String(cause)}`, cause })
  }).pipe(Effect.map((artifacts) =>
    Schema.encodeSync(Saved)({
      pooling,
      cut,
      trainable,
      topology: artifacts.modelTopology as Record<string, unknown>,
      weightSpecs: (artifacts.weightSpecs ?? []).map((s) => ({ name: s.name, shape: s.shape, dtype: s.dtype as "float32" })),
      weightData: joinBuffers(artifacts.weightData)
    })
  ))

  return {
    cut,
    trainable,
    inputShape,
    featureDim,
    pretrained: variables.map((v) => Float32Array.from(v.dataSync() as Float32Array)),
    write: (weights) =>
      model.trainableWeights.forEach((w, k) =>
        tf.tidy(() => {
          w.write(tf.tensor(Float32Array.from(weights[k]!), w.shape as Array<number>))
        })
      ),
    features,
    step,
    save: () => save
  }
}

/**
 * The capability for one layers model.
 */
export const make = (source: Source): TrainableTail.TrainableTail => ({
  cut: ({ config, options }, trainableLayers) =>
    Effect.gen(function*() {
      if (!isRecord(options)) return yield* invalid("backboneOptions", "backboneOptions must be an object")
      const { model, output, pooling, tf } = yield* source.load(config, options)
      const layers = TfjsTail.flatten(tf, model, output)
      if (layers === undefined) return yield* invalid("backboneOptions.output", `${source.id} has no layer "${output}"`)
      const cut = TfjsTail.findCut(layers, trainableLayers)
      if (typeof cut === "string") return yield* invalid("trainableLayers", `${source.id}: ${cut}`)
      for (const { layer } of layers.slice(cut.index + 1)) layer.trainable = TfjsTail.isWeighted(layer)
      const tail = yield* Effect.try({
        try: () => TfjsTail.buildTail(tf, layers, cut),
        catch: (cause) => invalid("trainableLayers", `Cannot rebuild the layers after ${cut.name}: ${String(cause)}`, cause)
      })
      BackpropKernels.ensure(tf)
      return {
        tail: tailOf(tf, tail, cut.name, cut.trainable, pooling),
        trunkOptions: { ...options, output: cut.name, pooling: "none" }
      }
    }),
  restore: (saved) =>
    Effect.gen(function*() {
      const state = yield* Schema.decodeUnknown(Saved, { onExcessProperty: "error" })(saved).pipe(
        Effect.mapError((e) => invalid("state", `invalid tail: ${ParseResult.TreeFormatter.formatErrorSync(e)}`, e))
      )
      const tf = yield* source.tf
      const bytes = state.weightData
      const model = yield* Effect.tryPromise({
        try: () =>
          tf.loadLayersModel(tf.io.fromMemory({
            modelTopology: state.topology,
            weightSpecs: state.weightSpecs.map((s) => ({ ...s, shape: [...s.shape] })),
            weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
          })),
        catch: (cause) => invalid("state.topology", `cannot rebuild the fine-tuned layers: ${String(cause)}`, cause)
      })
      return tailOf(tf, model, state.cut, state.trainable, state.pooling)
    })
})

/**
 * Make convolution gradients work on the active tfjs backend: registers plain-TypeScript versions of the backprop
 * kernels it lacks (the wasm backend lacks three), process-wide, never replacing one it has. `cut` calls it.
 */
export const ensureGradients: (tf: TfModule) => void = BackpropKernels.ensure
