/**
 * Keras layers as ONNX nodes (opset 13): one converter per layer class, each reading its inputs (feature maps kept
 * NCHW) and writing nodes through the `Builder`. A layer whose config TensorFlow.js 4.22 would compute differently
 * from Keras is refused, not translated either way.
 */
import { float, hwioToOihw, int, ints, TO_NCHW, TO_NHWC } from "./KerasGraph.js"
import type { Attributes, Builder, Value } from "./KerasGraph.js"
import { fail } from "./KerasTopology.js"

export interface Layer {
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

export const converters: Readonly<Record<string, (l: Layer) => Value>> = {
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
