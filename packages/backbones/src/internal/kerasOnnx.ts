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
import * as OnnxProto from "../OnnxProto.js"
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

class Untranslatable extends Error {}

const fail = (reason: string): never => {
  throw new Untranslatable(reason)
}

// ---------------------------------------------------------------------------------------------------------------
// The topology: Sequential and functional models (nested ones too) as one shape.

interface LayerJson {
  readonly class_name: string
  readonly name?: string
  readonly config: Record<string, any>
  readonly inbound_nodes?: unknown
}

interface Net {
  readonly name: string
  readonly layers: ReadonlyMap<string, LayerJson>
  /** The layers each layer is called on. */
  readonly inbound: ReadonlyMap<string, ReadonlyArray<string>>
  readonly inputs: ReadonlyArray<string>
  readonly outputs: ReadonlyArray<string>
  /** The declared input shape (batch first) of a single-input net. */
  readonly inputShape: ReadonlyArray<number | null> | undefined
  /** An input layer added for a Sequential that has none: not a layer a user can name. */
  readonly synthetic?: string
}

const isNet = (layer: LayerJson) => ["Sequential", "Model", "Functional"].includes(layer.class_name)

const nameOf = (layer: LayerJson): string => {
  const name = layer.name ?? layer.config?.["name"]
  return typeof name === "string" ? name : fail(`a ${layer.class_name} layer has no name`)
}

const declaredShape = (layer: LayerJson | undefined): ReadonlyArray<number | null> | undefined =>
  layer?.config?.["batch_input_shape"] ?? layer?.config?.["batch_shape"]

/** A tensor reference `[layer, node index, tensor index, kwargs?]`: only first calls and first outputs. */
const refName = (ref: unknown, where: string): string => {
  if (!Array.isArray(ref) || typeof ref[0] !== "string") return fail(`${where}: a tensor reference in an unknown format`)
  if ((ref[1] ?? 0) !== 0 || (ref[2] ?? 0) !== 0) {
    return fail(`${where} uses call ${ref[1]}, output ${ref[2]} of layer "${ref[0]}" (shared layers are not translated)`)
  }
  return ref[0]
}

/** `input_layers` / `output_layers`: a list of references, or (Keras 3) a single one. */
const refList = (refs: unknown, where: string): ReadonlyArray<string> =>
  Array.isArray(refs) && typeof refs[0] === "string" ? [refName(refs, where)] :
  Array.isArray(refs) ? refs.map((r) => refName(r, where)) :
  fail(`${where}: no input or output layers`)

const functionalNet = (model: LayerJson): Net => {
  const name = nameOf(model)
  const layers = new Map<string, LayerJson>()
  const inbound = new Map<string, ReadonlyArray<string>>()
  for (const layer of (model.config["layers"] ?? []) as ReadonlyArray<LayerJson>) {
    const layerName = nameOf(layer)
    const nodes = layer.inbound_nodes ?? []
    if (!Array.isArray(nodes)) return fail(`layer "${layerName}": inbound nodes in an unknown format`)
    if (nodes.length > 1) return fail(`layer "${layerName}" is called ${nodes.length} times (shared layers are not translated)`)
    const call: unknown = nodes[0] ?? []
    if (!Array.isArray(call)) return fail(`layer "${layerName}": inbound nodes in an unknown format (a Keras 3 model?)`)
    layers.set(layerName, layer)
    inbound.set(layerName, call.map((ref) => refName(ref, `layer "${layerName}"`)))
  }
  const inputs = refList(model.config["input_layers"], `model "${name}"`)
  return {
    name,
    layers,
    inbound,
    inputs,
    outputs: refList(model.config["output_layers"], `model "${name}"`),
    inputShape: inputs.length === 1 ? declaredShape(layers.get(inputs[0]!)) : undefined
  }
}

const sequentialNet = (model: LayerJson): Net => {
  // Old Keras saved a Sequential's config as the bare list of layers.
  const list = (Array.isArray(model.config) ? model.config : model.config["layers"] ?? []) as ReadonlyArray<LayerJson>
  const name = Array.isArray(model.config) ? model.name ?? "sequential" : nameOf(model)
  const first = list[0] ?? fail(`Sequential "${name}" has no layers`)
  const explicit = first.class_name === "InputLayer"
  const input = explicit ? nameOf(first) : `${name}:input`
  const layers = new Map<string, LayerJson>([[input, explicit ? first : { class_name: "InputLayer", config: {} }]])
  const inbound = new Map<string, ReadonlyArray<string>>([[input, []]])
  let previous = input
  for (const layer of explicit ? list.slice(1) : list) {
    const layerName = nameOf(layer)
    layers.set(layerName, layer)
    inbound.set(layerName, [previous])
    previous = layerName
  }
  // Without an InputLayer the shape is declared on the first layer, or inside it when that is a model.
  const inputShape = explicit ? declaredShape(first) : declaredShape(first) ?? (isNet(first) ? netOf(first).inputShape : undefined)
  return { name, layers, inbound, inputs: [input], outputs: [previous], inputShape, ...(explicit ? {} : { synthetic: input }) }
}

const netOf = (model: LayerJson): Net => model.class_name === "Sequential" ? sequentialNet(model) : functionalNet(model)

/** The nested-model layers leading to `name`, then `name`; depth first in layer order, as tfjs searches. */
const pathTo = (net: Net, name: string): ReadonlyArray<string> | undefined => {
  for (const [layerName, layer] of net.layers) {
    if (layerName === net.synthetic) continue
    if (layerName === name) return [name]
    const inner = isNet(layer) ? pathTo(netOf(layer), name) : undefined
    if (inner !== undefined) return [layerName, ...inner]
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// The ONNX graph being written.

/** A tensor in the graph. `shape` is the Keras shape without the batch axis; an H x W x C map is stored NCHW. */
interface Value {
  readonly name: string
  readonly shape: ReadonlyArray<number>
}

type Attributes = Readonly<Record<string, OnnxProto.Attribute>>
const int = (value: number): OnnxProto.Attribute => ({ kind: "int", value })
const ints = (value: ReadonlyArray<number>): OnnxProto.Attribute => ({ kind: "ints", value })
const float = (value: number): OnnxProto.Attribute => ({ kind: "float", value })

const TO_NCHW = [0, 3, 1, 2]
const TO_NHWC = [0, 2, 3, 1]

class Builder {
  readonly fields: Array<Uint8Array> = []
  nodes = 0
  private readonly names = new Set<string>()

  constructor(readonly weights: ReadonlyMap<string, FloatWeight>) {}

  fresh(base: string): string {
    let name = base
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`
    this.names.add(name)
    return name
  }

  op(opType: string, inputs: ReadonlyArray<string>, output: string, attributes: Attributes = {}): string {
    const name = this.fresh(output)
    this.fields.push(OnnxProto.node(opType, inputs, [name], name, attributes))
    this.nodes++
    return name
  }

  floats(name: string, dims: ReadonlyArray<number>, values: ArrayLike<number>): string {
    const fresh = this.fresh(name)
    this.fields.push(OnnxProto.floatInitializer(fresh, dims, values))
    return fresh
  }

  int64s(name: string, values: ReadonlyArray<number>): string {
    const fresh = this.fresh(name)
    this.fields.push(OnnxProto.int64Initializer(fresh, [values.length], values))
    return fresh
  }

  /** A layer's weight `<layer>/<param>`; a nested model's weights may carry its name as a prefix. */
  weight(layer: string, param: string, shape: ReadonlyArray<number>): Float32Array {
    const exact = `${layer}/${param}`
    const candidates = this.weights.has(exact) ? [exact] : [...this.weights.keys()].filter((k) => k.endsWith(`/${exact}`))
    if (candidates.length !== 1) {
      return fail(candidates.length === 0 ? `no weight ${exact} in the manifest` : `several weights match ${exact}: ${candidates.join(", ")}`)
    }
    const found = this.weights.get(candidates[0]!)!
    if ("problem" in found) return fail(found.problem)
    if (found.shape.join() !== shape.join()) {
      return fail(`weight ${candidates[0]} has shape [${found.shape.join(", ")}], expected [${shape.join(", ")}]`)
    }
    return found.values
  }
}

/** A Keras HWIO kernel as ONNX OIHW. A depthwise HWCM kernel is HWIO with I = 1 and O = C x M (index c * M + m). */
const hwioToOihw = (k: Float32Array, h: number, w: number, i: number, o: number): Float32Array => {
  const out = new Float32Array(k.length)
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let a = 0; a < i; a++) {
        for (let b = 0; b < o; b++) out[((b * i + a) * h + y) * w + x] = k[((y * w + x) * i + a) * o + b]!
      }
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Layers.

interface Layer {
  readonly name: string
  readonly className: string
  readonly config: Record<string, any>
  readonly inputs: ReadonlyArray<Value>
  readonly b: Builder
}

const refuse = (l: Layer, why: string): never => fail(`layer "${l.name}" (${l.className}): ${why}`)

const one = (l: Layer): Value => l.inputs.length === 1 ? l.inputs[0]! : refuse(l, `takes ${l.inputs.length} inputs`)

/** The single input, which must be an H x W x C map in channels_last. */
const featureMap = (l: Layer): Value => {
  const x = one(l)
  if (x.shape.length !== 3) refuse(l, `input shape [${x.shape.join(", ")}] is not H x W x C`)
  if ((l.config["data_format"] ?? "channels_last") !== "channels_last") refuse(l, `data_format ${l.config["data_format"]}`)
  return x
}

const pair = (l: Layer, key: string, fallback?: number | ReadonlyArray<number>): [number, number] => {
  const v = l.config[key] ?? fallback
  const p = typeof v === "number" ? [v, v] : v
  return Array.isArray(p) && p.length === 2 && p.every((n) => Number.isInteger(n) && n > 0)
    ? [p[0], p[1]]
    : refuse(l, `${key} ${JSON.stringify(v)}`)
}

/**
 * Explicit ONNX pads `[top, left, bottom, right]` and the output size of a window op on an h x w map. `same` is
 * TensorFlow's: the output is ceil(in / stride) and the odd padding pixel goes at the end (bottom, right).
 */
const window = (
  l: Layer,
  x: Value,
  kernel: readonly [number, number],
  strides: readonly [number, number],
  dilations: readonly [number, number]
): { readonly pads: ReadonlyArray<number>; readonly h: number; readonly w: number } => {
  const padding = l.config["padding"] ?? "valid"
  const sides = [0, 1].map((axis) => {
    const size = x.shape[axis]!
    const span = (kernel[axis]! - 1) * dilations[axis]! + 1
    const stride = strides[axis]!
    if (padding === "valid") return { out: Math.floor((size - span) / stride) + 1, before: 0, after: 0 }
    if (padding !== "same") return refuse(l, `padding ${JSON.stringify(padding)}`)
    const out = Math.ceil(size / stride)
    const total = Math.max((out - 1) * stride + span - size, 0)
    return { out, before: Math.floor(total / 2), after: total - Math.floor(total / 2) }
  })
  const [hs, ws] = sides as [(typeof sides)[0], (typeof sides)[0]]
  if (hs.out < 1 || ws.out < 1) refuse(l, `a ${kernel.join("x")} window does not fit a ${x.shape[0]}x${x.shape[1]} map`)
  return { pads: [hs.before, ws.before, hs.after, ws.after], h: hs.out, w: ws.out }
}

const clip = (l: Layer, x: string, min: number, max: number, output: string) =>
  l.b.op("Clip", [x, l.b.floats(`${l.name}/min`, [], [min]), l.b.floats(`${l.name}/max`, [], [max])], output)

/** The ONNX axis of Keras axis `axis` (batch counted) of a value: NCHW maps move channels to 1. */
const onnxAxis = (l: Layer, x: Value, axis: number): number => {
  const rank = x.shape.length + 1
  const a = axis < 0 ? axis + rank : axis
  if (a < 1 || a >= rank) refuse(l, `axis ${axis}`)
  return rank === 4 ? [0, 2, 3, 1][a]! : a
}

/** A Keras activation by name (tfjs spells some in camelCase). */
const activate = (l: Layer, x: Value, activation: unknown): Value => {
  const name = typeof activation === "string" ? activation.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : activation
  const out = l.name
  const unary = (opType: string, attributes: Attributes = {}) => ({ ...x, name: l.b.op(opType, [x.name], out, attributes) })
  const channels = () => ({ axis: int(onnxAxis(l, x, -1)) })
  switch (name) {
    case undefined:
    case null:
    case "linear":
      return x
    case "relu":
      return unary("Relu")
    case "relu6":
      return { ...x, name: clip(l, x.name, 0, 6, out) }
    case "sigmoid":
      return unary("Sigmoid")
    case "tanh":
      return unary("Tanh")
    case "elu":
      return unary("Elu", { alpha: float(1) })
    case "selu":
      return unary("Selu")
    case "softplus":
      return unary("Softplus")
    case "softsign":
      return unary("Softsign")
    case "hard_sigmoid":
      return unary("HardSigmoid", { alpha: float(0.2), beta: float(0.5) })
    case "softmax":
      return unary("Softmax", channels())
    case "log_softmax":
      return unary("LogSoftmax", channels())
    case "swish":
      return { ...x, name: l.b.op("Mul", [x.name, l.b.op("Sigmoid", [x.name], `${out}/sigmoid`)], out) }
    case "mish": {
      const t = l.b.op("Tanh", [l.b.op("Softplus", [x.name], `${out}/softplus`)], `${out}/tanh`)
      return { ...x, name: l.b.op("Mul", [x.name, t], out) }
    }
    default:
      return refuse(l, `activation ${JSON.stringify(activation)}`)
  }
}

/** Conv2D and DepthwiseConv2D (and SeparableConv2D's depthwise half): one ONNX Conv. */
const convolution = (l: Layer, depthwise: boolean): Value => {
  const x = featureMap(l)
  const [kh, kw] = pair(l, "kernel_size")
  const strides = pair(l, "strides", 1)
  const dilations = pair(l, "dilation_rate", 1)
  const channels = x.shape[2]!
  const multiplier = l.config["depth_multiplier"] ?? 1
  const groups = depthwise ? channels : l.config["groups"] ?? 1
  const filters = depthwise ? channels * multiplier : l.config["filters"]
  if (!Number.isInteger(filters) || !Number.isInteger(groups) || channels % groups !== 0) refuse(l, "filters or groups do not fit the input")
  const [i, o] = depthwise ? [1, filters] : [channels / groups, filters]
  const kernel = depthwise
    ? l.b.weight(l.name, "depthwise_kernel", [kh, kw, channels, multiplier])
    : l.b.weight(l.name, "kernel", [kh, kw, i, o])
  const { h, pads, w } = window(l, x, [kh, kw], strides, dilations)
  const weights = l.b.floats(`${l.name}/${depthwise ? "depthwise_kernel" : "kernel"}`, [o, i, kh, kw], hwioToOihw(kernel, kh, kw, i, o))
  const bias = l.config["use_bias"] !== false && l.className !== "SeparableConv2D"
    ? [l.b.floats(`${l.name}/bias`, [o], l.b.weight(l.name, "bias", [o]))]
    : []
  const y = l.b.op("Conv", [x.name, weights, ...bias], `${l.name}/conv`, {
    kernel_shape: ints([kh, kw]),
    strides: ints(strides),
    dilations: ints(dilations),
    pads: ints(pads),
    group: int(groups)
  })
  return { name: y, shape: [h, w, filters] }
}

const separable = (l: Layer): Value => {
  const d = convolution(l, true)
  const [cin, filters] = [d.shape[2]!, l.config["filters"]]
  const kernel = l.b.weight(l.name, "pointwise_kernel", [1, 1, cin, filters])
  const bias = l.config["use_bias"] !== false ? [l.b.floats(`${l.name}/bias`, [filters], l.b.weight(l.name, "bias", [filters]))] : []
  const weights = l.b.floats(`${l.name}/pointwise_kernel`, [filters, cin, 1, 1], hwioToOihw(kernel, 1, 1, cin, filters))
  const y = l.b.op("Conv", [d.name, weights, ...bias], `${l.name}/pointwise`, { kernel_shape: ints([1, 1]) })
  return { name: y, shape: [d.shape[0]!, d.shape[1]!, filters] }
}

const batchNormalization = (l: Layer): Value => {
  const x = one(l)
  const axis = [l.config["axis"] ?? -1].flat()
  const rank = x.shape.length + 1
  if (axis.length !== 1 || ![-1, rank - 1].includes(axis[0]) || (rank !== 4 && rank !== 2)) {
    refuse(l, `normalises axis ${JSON.stringify(l.config["axis"])} of a rank-${rank} tensor`)
  }
  const c = x.shape[x.shape.length - 1]!
  const param = (key: string, enabled: boolean, fallback: number) =>
    enabled ? l.b.weight(l.name, key, [c]) : new Float32Array(c).fill(fallback)
  const gamma = param("gamma", l.config["scale"] ?? true, 1)
  const beta = param("beta", l.config["center"] ?? true, 0)
  const mean = param("moving_mean", true, 0)
  const variance = param("moving_variance", true, 1)
  const epsilon = l.config["epsilon"] ?? 1e-3
  if (rank === 2) {
    // Vectors: as a scale and shift (onnxruntime's BatchNormalization wants a spatial input).
    const scale = gamma.map((g, k) => g / Math.sqrt(variance[k]! + epsilon))
    const shift = beta.map((b, k) => b - mean[k]! * scale[k]!)
    const scaled = l.b.op("Mul", [x.name, l.b.floats(`${l.name}/scale`, [c], scale)], `${l.name}/scaled`)
    return { ...x, name: l.b.op("Add", [scaled, l.b.floats(`${l.name}/shift`, [c], shift)], l.name) }
  }
  const inputs = [gamma, beta, mean, variance].map((v, k) => l.b.floats(`${l.name}/${["gamma", "beta", "mean", "variance"][k]}`, [c], v))
  return { ...x, name: l.b.op("BatchNormalization", [x.name, ...inputs], l.name, { epsilon: float(epsilon) }) }
}

const relu = (l: Layer): Value => {
  const x = one(l)
  // tfjs 4.22's ReLU layer reads only max_value: translating the others would not match the tfjs engine.
  for (const key of ["threshold", "negative_slope"]) {
    if ((l.config[key] ?? 0) !== 0) refuse(l, `${key} ${l.config[key]} (TensorFlow.js ignores it)`)
  }
  const max = l.config["max_value"]
  return { ...x, name: max === null || max === undefined ? l.b.op("Relu", [x.name], l.name) : clip(l, x.name, 0, max, l.name) }
}

const leakyRelu = (l: Layer): Value => {
  const x = one(l)
  if (l.config["alpha"] === undefined && l.config["negative_slope"] !== undefined) {
    refuse(l, "negative_slope (Keras 3 spelling; TensorFlow.js reads alpha)")
  }
  return { ...x, name: l.b.op("LeakyRelu", [x.name], l.name, { alpha: float(l.config["alpha"] ?? 0.3) }) }
}

const zeroPadding = (l: Layer): Value => {
  const x = featureMap(l)
  const p = l.config["padding"] ?? 1
  const [[top, bottom], [left, right]] = typeof p === "number"
    ? [[p, p], [p, p]]
    : Array.isArray(p) && p.every((v) => typeof v === "number")
    ? [[p[0], p[0]], [p[1], p[1]]]
    : p
  if (![top, bottom, left, right].every((v) => Number.isInteger(v) && v >= 0)) refuse(l, `padding ${JSON.stringify(p)}`)
  const pads = l.b.int64s(`${l.name}/pads`, [0, 0, top, left, 0, 0, bottom, right])
  return { name: l.b.op("Pad", [x.name, pads], l.name), shape: [x.shape[0]! + top + bottom, x.shape[1]! + left + right, x.shape[2]!] }
}

const pooling = (l: Layer, opType: "MaxPool" | "AveragePool"): Value => {
  const x = featureMap(l)
  const size = pair(l, "pool_size", 2)
  const strides = pair(l, "strides", size)
  const { h, pads, w } = window(l, x, size, strides, [1, 1])
  // AveragePool's default count_include_pad = 0 averages over the real pixels only, as TensorFlow does.
  const y = l.b.op(opType, [x.name], l.name, { kernel_shape: ints(size), strides: ints(strides), pads: ints(pads) })
  return { name: y, shape: [h, w, x.shape[2]!] }
}

const globalPooling = (l: Layer, opType: "GlobalAveragePool" | "GlobalMaxPool"): Value => {
  const x = featureMap(l)
  if (l.config["keepdims"] === true) refuse(l, "keepdims (TensorFlow.js ignores it)")
  return { name: l.b.op("Flatten", [l.b.op(opType, [x.name], `${l.name}/pool`)], l.name), shape: [x.shape[2]!] }
}

/** A value in Keras (NHWC) element order. */
const nhwc = (l: Layer, x: Value): string =>
  x.shape.length === 3 ? l.b.op("Transpose", [x.name], `${l.name}/nhwc`, { perm: ints(TO_NHWC) }) : x.name

const flatten = (l: Layer): Value => {
  const x = one(l)
  if (x.shape.length === 1) return x
  return { name: l.b.op("Flatten", [nhwc(l, x)], l.name), shape: [x.shape.reduce((a, b) => a * b, 1)] }
}

const reshape = (l: Layer): Value => {
  const x = one(l)
  const target = l.config["target_shape"] as ReadonlyArray<number>
  const total = x.shape.reduce((a, b) => a * b, 1)
  const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1)
  const shape = target.map((d) => d === -1 ? total / known : d)
  if (shape.reduce((a, b) => a * b, 1) !== total || !shape.every(Number.isInteger)) {
    refuse(l, `cannot reshape [${x.shape.join(", ")}] to [${target.join(", ")}]`)
  }
  const dims = l.b.int64s(`${l.name}/shape`, [0, ...shape])
  const y = l.b.op("Reshape", [nhwc(l, x), dims], shape.length === 3 ? `${l.name}/nhwc_out` : l.name)
  return { name: shape.length === 3 ? l.b.op("Transpose", [y], l.name, { perm: ints(TO_NCHW) }) : y, shape }
}

const dense = (l: Layer): Value => {
  const x = one(l)
  if (x.shape.length !== 1) refuse(l, `input shape [${x.shape.join(", ")}] (only vectors are translated)`)
  const [inputs, units] = [x.shape[0]!, l.config["units"]]
  const kernel = l.b.floats(`${l.name}/kernel`, [inputs, units], l.b.weight(l.name, "kernel", [inputs, units]))
  const bias = l.config["use_bias"] === false ? [] : [l.b.floats(`${l.name}/bias`, [units], l.b.weight(l.name, "bias", [units]))]
  return activate(l, { name: l.b.op("Gemm", [x.name, kernel, ...bias], `${l.name}/dense`), shape: [units] }, l.config["activation"])
}

/** Element-wise merges: inputs of one rank, broadcast as Keras does (the NCHW order keeps that valid). */
const merge = (l: Layer, opType: string, binary: boolean): Value => {
  const rank = l.inputs[0]?.shape.length
  if (l.inputs.length < 2 || l.inputs.some((x) => x.shape.length !== rank)) refuse(l, "inputs of different ranks")
  const shape = l.inputs[0]!.shape.map((_, k) => Math.max(...l.inputs.map((x) => x.shape[k]!)))
  if (l.inputs.some((x) => x.shape.some((d, k) => d !== 1 && d !== shape[k]))) refuse(l, "inputs that do not broadcast")
  if (!binary) return { name: l.b.op(opType, l.inputs.map((x) => x.name), l.name), shape }
  const name = l.inputs.slice(1).reduce((acc, x, k) => l.b.op(opType, [acc, x.name], k === l.inputs.length - 2 ? l.name : `${l.name}/${k}`), l.inputs[0]!.name)
  return { name, shape }
}

const concatenate = (l: Layer): Value => {
  const first = l.inputs[0] ?? refuse(l, "no inputs")
  const axis = onnxAxis(l, first, l.config["axis"] ?? -1)
  const kerasAxis = (l.config["axis"] ?? -1) < 0 ? first.shape.length + (l.config["axis"] ?? -1) : l.config["axis"] - 1
  const fits = l.inputs.every((x) => x.shape.length === first.shape.length && x.shape.every((d, k) => k === kerasAxis || d === first.shape[k]))
  if (!fits) refuse(l, "inputs whose shapes do not concatenate")
  const shape = first.shape.map((d, k) => k === kerasAxis ? l.inputs.reduce((n, x) => n + x.shape[k]!, 0) : d)
  return { name: l.b.op("Concat", l.inputs.map((x) => x.name), l.name, { axis: int(axis) }), shape }
}

const softmax = (l: Layer): Value => {
  const x = one(l)
  // tfjs's Softmax layer defaults to axis 1, not Keras's -1.
  const axis = [l.config["axis"] ?? 1].flat()
  if (axis.length !== 1) refuse(l, `axis ${JSON.stringify(l.config["axis"])}`)
  return { ...x, name: l.b.op("Softmax", [x.name], l.name, { axis: int(onnxAxis(l, x, axis[0])) }) }
}

/** Layers that compute nothing at inference. */
const identity = (l: Layer): Value => one(l)

const converters: Readonly<Record<string, (l: Layer) => Value>> = {
  Conv2D: (l) => activate(l, convolution(l, false), l.config["activation"]),
  DepthwiseConv2D: (l) => activate(l, convolution(l, true), l.config["activation"]),
  SeparableConv2D: (l) => activate(l, separable(l), l.config["activation"]),
  Dense: dense,
  BatchNormalization: batchNormalization,
  ReLU: relu,
  LeakyReLU: leakyRelu,
  Softmax: softmax,
  Activation: (l) => activate(l, one(l), l.config["activation"]),
  ZeroPadding2D: zeroPadding,
  MaxPooling2D: (l) => pooling(l, "MaxPool"),
  AveragePooling2D: (l) => pooling(l, "AveragePool"),
  GlobalAveragePooling2D: (l) => globalPooling(l, "GlobalAveragePool"),
  GlobalMaxPooling2D: (l) => globalPooling(l, "GlobalMaxPool"),
  Add: (l) => merge(l, l.inputs.length === 2 ? "Add" : "Sum", false),
  Multiply: (l) => merge(l, "Mul", true),
  Average: (l) => merge(l, "Mean", false),
  Maximum: (l) => merge(l, "Max", false),
  Minimum: (l) => merge(l, "Min", false),
  Concatenate: concatenate,
  Flatten: flatten,
  Reshape: reshape,
  Dropout: identity,
  SpatialDropout1D: identity,
  GaussianNoise: identity,
  GaussianDropout: identity,
  AlphaDropout: identity
}

// ---------------------------------------------------------------------------------------------------------------
// Walking the graph from the embedding layer back to the input.

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
    const model = OnnxProto.model({
      graph: [
        OnnxProto.floatValueInfo(OnnxProto.GRAPH_INPUT, INPUT, ["N", h, w, c]),
        ...b.fields,
        OnnxProto.floatValueInfo(OnnxProto.GRAPH_OUTPUT, embedding, ["N", size])
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
