/**
 * Translating a TensorFlow.js layers model (the Keras topology in `model.json` plus its weights) into an ONNX model
 * (opset 13) that computes the same embedding as the tfjs plugin, so that onnxruntime can run it.
 *
 * The ONNX graph takes the plugin's NHWC float32 input, transposes it once to NCHW and keeps every H x W x C feature
 * map in NCHW; kernels are transposed to match. The embedding is the chosen layer's output, averaged over H and W
 * (`global-average`), or else transposed back to NHWC and flattened, as tfjs flattens it. Only the layers the
 * embedding depends on are translated, so an unsupported head after the cut does not stop it.
 *
 * The contract is "the same function as the tfjs engine": where TensorFlow.js 4.22 itself departs from Keras
 * (it ignores `ReLU.threshold` / `negative_slope` and `GlobalAveragePooling2D.keepdims`), the layer is refused
 * rather than translated either way. Fusion (Conv + BatchNormalization + activation, Pad into Conv) is left to
 * onnxruntime's graph optimiser.
 */
import { OnnxGraph } from "@loupe/core/onnx"
import { Builder, ints, TO_NCHW, TO_NHWC } from "./KerasGraph.js"
import type { Value } from "./KerasGraph.js"
import { converters } from "./KerasLayers.js"
import { fail, isNet, netOf, pathTo } from "./KerasTopology.js"
import type { LayerJson, Net } from "./KerasTopology.js"
import type { FloatWeight } from "./tfjsFiles.js"

export interface TranslateOptions {
  /** The layer whose output is the embedding (searched in nested models too); default the model output. */
  readonly output: string | undefined
  readonly pooling: "none" | "global-average"
  /** Height and width for an input the model leaves open. */
  readonly size: number
}

export type Translation =
  | {
    readonly _tag: "Translated"
    readonly model: Uint8Array
    readonly input: string
    readonly output: string
    /** The model's declared input shape, batch first (`null` where open). */
    readonly inputShape: ReadonlyArray<number | null>
    readonly embeddingSize: number
    readonly nodes: number
  }
  | { readonly _tag: "Untranslatable"; readonly reason: string }
  /** `output` names no layer; `layers` are the top-level layer names. */
  | { readonly _tag: "NoSuchLayer"; readonly layers: ReadonlyArray<string> }

class Scope {
  private readonly values = new Map<string, Value>()
  private readonly children = new Map<string, Scope>()

  constructor(readonly net: Net, bound: ReadonlyMap<string, Value>, private readonly b: Builder) {
    for (const [name, value] of bound) this.values.set(name, value)
  }

  value(name: string): Value {
    const known = this.values.get(name)
    if (known !== undefined) return known
    const layer = this.net.layers.get(name) ?? fail(`model "${this.net.name}" has no layer "${name}"`)
    if (layer.class_name === "InputLayer") return fail(`input layer "${name}" of "${this.net.name}" is not connected`)
    const inputs = (this.net.inbound.get(name) ?? []).map((input) => this.value(input))
    const convert = converters[layer.class_name]
    const out = isNet(layer)
      ? this.child(name).output()
      : convert !== undefined
      ? convert({ name, className: layer.class_name, config: layer.config ?? {}, inputs, b: this.b })
      : fail(`unsupported layer "${name}" (${layer.class_name})`)
    this.values.set(name, out)
    return out
  }

  /** The scope inside nested model layer `name`, its inputs bound to what the layer is called on here. */
  child(name: string): Scope {
    const known = this.children.get(name)
    if (known !== undefined) return known
    const layer = this.net.layers.get(name)!
    const net = netOf(layer)
    const args = (this.net.inbound.get(name) ?? []).map((input) => this.value(input))
    if (args.length !== net.inputs.length) fail(`model "${name}" takes ${net.inputs.length} inputs, is called on ${args.length}`)
    const scope = new Scope(net, new Map(net.inputs.map((input, k) => [input, args[k]!])), this.b)
    this.children.set(name, scope)
    return scope
  }

  output(): Value {
    if (this.net.outputs.length !== 1) fail(`model "${this.net.name}" has ${this.net.outputs.length} outputs`)
    return this.value(this.net.outputs[0]!)
  }
}

const INPUT = "input"
const EMBEDDING = "embedding"

/**
 * Translate a layers model's topology and weights. Never throws: a model it cannot translate gives
 * `Untranslatable` with the first reason met.
 */
export const translate = (
  topology: unknown,
  weights: ReadonlyMap<string, FloatWeight>,
  options: TranslateOptions
): Translation => {
  try {
    const wrapper = topology as { readonly model_config?: LayerJson } & LayerJson
    const root = wrapper.model_config ?? wrapper
    if (!isNet(root)) return { _tag: "Untranslatable", reason: `the topology is a ${root.class_name}, not a model` }
    const net = netOf(root)
    const path = options.output === undefined ? [] : pathTo(net, options.output)
    if (path === undefined) return { _tag: "NoSuchLayer", layers: [...net.layers.keys()].filter((n) => n !== net.synthetic) }
    if (net.inputs.length !== 1) fail(`the model has ${net.inputs.length} inputs`)
    const declared = net.inputShape
    if (declared === undefined || declared.length !== 4) fail(`the model input ${JSON.stringify(declared)} is not N x H x W x C`)
    const [h, w, c] = [declared![1] ?? options.size, declared![2] ?? options.size, declared![3] ?? 3]

    const b = new Builder(weights)
    b.fresh(INPUT)
    const nchw = b.op("Transpose", [INPUT], `${INPUT}/nchw`, { perm: ints(TO_NCHW) })
    let scope = new Scope(net, new Map([[net.inputs[0]!, { name: nchw, shape: [h, w, c] }]]), b)
    for (const step of path.slice(0, -1)) scope = scope.child(step)
    const target = path.length === 0 ? scope.output() : scope.value(path[path.length - 1]!)

    let embedding: string
    let size: number
    if (options.pooling === "global-average") {
      if (target.shape.length !== 3) fail(`global-average pooling needs an H x W x C output, not [${target.shape.join(", ")}]`)
      embedding = b.op("Flatten", [b.op("GlobalAveragePool", [target.name], `${EMBEDDING}/pool`)], EMBEDDING)
      size = target.shape[2]!
    } else {
      const ordered = target.shape.length === 3 ? b.op("Transpose", [target.name], `${EMBEDDING}/nhwc`, { perm: ints(TO_NHWC) }) : target.name
      embedding = b.op("Flatten", [ordered], EMBEDDING)
      size = target.shape.reduce((a, d) => a * d, 1)
    }
    const model = OnnxGraph.model({
      graph: [
        OnnxGraph.floatValueInfo(OnnxGraph.GRAPH_INPUT, INPUT, ["N", h, w, c]),
        ...b.fields,
        OnnxGraph.floatValueInfo(OnnxGraph.GRAPH_OUTPUT, embedding, ["N", size])
      ],
      graphName: net.name,
      opset: 13,
      irVersion: 7,
      producer: "loupe (TensorFlow.js layers model)"
    })
    return { _tag: "Translated", model, input: INPUT, output: embedding, inputShape: declared!, embeddingSize: size, nodes: b.nodes }
  } catch (cause) {
    return { _tag: "Untranslatable", reason: cause instanceof Error ? cause.message : String(cause) }
  }
}
