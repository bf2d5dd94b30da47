/**
 * Splitting a tfjs layers model into a frozen trunk and a trainable tail. Nested models (Teachable Machine's
 * `Sequential[Model, GlobalAveragePooling]`) are flattened into one list of layers, each with the names of the
 * layers feeding it. A cut after layer `j` is valid when every later layer reads only `j`'s output or outputs of
 * later layers (never a trunk tensor that skips past the cut, such as a residual branch), so the tail is a model
 * of one input. The tail is rebuilt by applying the existing layer objects to a new input, which shares their
 * weights.
 */
import type * as Tf from "@tensorflow/tfjs"

type TfModule = typeof import("@tensorflow/tfjs")

export interface FlatLayer {
  readonly layer: Tf.layers.Layer
  /** Names of the layers whose outputs this one reads (after flattening). */
  readonly inputs: ReadonlyArray<string>
}

/** Layers whose kernels fine-tuning trains (batch-norm layers stay frozen, in inference mode). */
const weighted = new Set(["Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense", "Conv1D"])

export const isWeighted = (layer: Tf.layers.Layer): boolean => weighted.has(layer.getClassName())

const isModel = (tf: TfModule, layer: Tf.layers.Layer): layer is Tf.LayersModel => layer instanceof tf.LayersModel

/**
 * The layers of `model` and of the models nested in it, in topological order, up to and including the layer named
 * `until` (undefined when there is no such layer). Call it before `buildTail`, which adds nodes to the layers.
 */
export const flatten = (
  tf: TfModule,
  model: Tf.LayersModel,
  until: string | undefined
): ReadonlyArray<FlatLayer> | undefined => {
  const out: Array<FlatLayer> = []
  const alias = new Map<string, string>()
  const resolve = (name: string): string => {
    let current = name
    while (alias.has(current)) current = alias.get(current)!
    return current
  }
  const walk = (m: Tf.LayersModel): void => {
    for (const layer of m.layers) {
      const node = layer.inboundNodes[0]
      const inputs = (node?.inboundLayers ?? []).map((l) => resolve(l.name))
      if (layer.getClassName() === "InputLayer") continue
      if (isModel(tf, layer)) {
        walk(layer)
        alias.set(layer.name, resolve(layer.outputLayers[0]!.name))
        continue
      }
      out.push({ layer, inputs })
    }
  }
  walk(model)
  if (until === undefined) return out
  const end = out.findIndex((f) => f.layer.name === until)
  return end < 0 ? undefined : out.slice(0, end + 1)
}

export interface Cut {
  /** The last trunk layer: its output is the tail's input. */
  readonly index: number
  readonly name: string
  /** Names of the tail's weighted layers (the ones trained). */
  readonly trainable: ReadonlyArray<string>
}

/** The latest valid cut that leaves at least `trainableLayers` weighted layers in the tail, or why there is none. */
export const findCut = (layers: ReadonlyArray<FlatLayer>, trainableLayers: number): Cut | string => {
  const weightedAt = layers.flatMap((f, i) => (isWeighted(f.layer) ? [i] : []))
  if (trainableLayers > weightedAt.length) {
    return `the model has ${weightedAt.length} layers with trainable weights; asked for ${trainableLayers}`
  }
  const first = weightedAt[weightedAt.length - trainableLayers]!
  for (let j = first - 1; j >= 0; j--) {
    const known = new Set([layers[j]!.layer.name])
    let ok = true
    for (let k = j + 1; k < layers.length && ok; k++) {
      ok = layers[k]!.inputs.length > 0 && layers[k]!.inputs.every((name) => known.has(name))
      known.add(layers[k]!.layer.name)
    }
    if (ok) {
      return {
        index: j,
        name: layers[j]!.layer.name,
        trainable: layers.slice(j + 1).filter((f) => isWeighted(f.layer)).map((f) => f.layer.name)
      }
    }
  }
  return `no layer before the last ${trainableLayers} weighted layers has an output that alone feeds the rest of the model`
}

/** The tail after `cut` as a model of one input, sharing the original layers' weights. */
export const buildTail = (tf: TfModule, layers: ReadonlyArray<FlatLayer>, cut: Cut): Tf.LayersModel => {
  const shape = layers[cut.index]!.layer.outputShape as Array<number | null>
  const input = tf.input({ shape: shape.slice(1) as Array<number> })
  const built = new Map<string, Tf.SymbolicTensor>([[cut.name, input]])
  let last: Tf.SymbolicTensor = input
  for (const { layer, inputs } of layers.slice(cut.index + 1)) {
    const args = inputs.map((name) => built.get(name)!)
    last = layer.apply(args.length === 1 ? args[0]! : args) as Tf.SymbolicTensor
    built.set(layer.name, last)
  }
  return tf.model({ inputs: input, outputs: last })
}
