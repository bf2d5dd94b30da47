/**
 * Exposing an intermediate tensor of an ONNX model as a graph output, so that onnxruntime (which only returns graph
 * outputs) can return it. The model is extended, never rewritten (`OnnxModel.appendToGraph`); the new output carries
 * no type, onnxruntime infers it.
 */
import { OnnxGraph, OnnxModel } from "@loupe/core/onnx"

/**
 * For ops whose output is quantized: the input positions of the output's scale and zero point
 * (ONNX and com.microsoft contrib ops, as written by onnxruntime's quantizer).
 */
const outputQuantization: Record<string, readonly [scale: number, zeroPoint: number]> = {
  QuantizeLinear: [1, 2],
  QLinearConv: [6, 7],
  QLinearMatMul: [6, 7],
  QLinearAdd: [6, 7],
  QLinearMul: [6, 7],
  QLinearGlobalAveragePool: [3, 4],
  QLinearAveragePool: [3, 4],
  QLinearLeakyRelu: [3, 4],
  QLinearSigmoid: [3, 4],
  QLinearSoftmax: [3, 4],
  QLinearConcat: [0, 1],
  QGemm: [7, 8]
}

/** Ops that move quantized values around without changing their scale: trace through them to the quantizing op. */
const quantizationPreserving = new Set(["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "MaxPool", "Identity"])

/** The scale and zero-point tensors of a quantized tensor, or undefined when it is not (known to be) quantized. */
const quantizationOf = (graph: OnnxModel.Graph, tensor: string): readonly [string, string] | undefined => {
  const producer = graph.nodes.find((n) => n.outputs.includes(tensor))
  if (producer === undefined || producer.outputs[0] !== tensor) return undefined
  const slots = outputQuantization[producer.opType]
  if (slots !== undefined) {
    const scale = producer.inputs[slots[0]]
    const zeroPoint = producer.inputs[slots[1]]
    return scale && zeroPoint ? [scale, zeroPoint] : undefined
  }
  const source = producer.inputs[0]
  return quantizationPreserving.has(producer.opType) && source !== undefined ? quantizationOf(graph, source) : undefined
}

/** The node that `ref` names: a node name, or the name of a tensor that a node produces. */
export const findNode = (graph: OnnxModel.Graph, ref: string): { readonly node: OnnxModel.Node; readonly tensor: string } | undefined => {
  const byName = graph.nodes.find((n) => n.name === ref && n.outputs.length > 0)
  if (byName !== undefined) return { node: byName, tensor: byName.outputs[0]! }
  const byOutput = graph.nodes.find((n) => n.outputs.includes(ref))
  return byOutput === undefined ? undefined : { node: byOutput, tensor: ref }
}

export interface ExposedTensor {
  /** The model bytes with the tensor added as a graph output (the input bytes when it already was one). */
  readonly model: Uint8Array
  /** The graph output to request. */
  readonly output: string
  /** True when a DequantizeLinear node was appended to turn a quantized tensor into float. */
  readonly dequantized: boolean
}

/**
 * Make `tensor` a graph output. A quantized tensor (the output of a QLinear op, or of a reshape of one) is first
 * dequantized to float32 with an appended DequantizeLinear node, using its own scale and zero point.
 */
export const exposeTensor = (model: Uint8Array, graph: OnnxModel.Graph, tensor: string): ExposedTensor => {
  const quantization = quantizationOf(graph, tensor)
  if (quantization === undefined) {
    if (graph.outputs.includes(tensor)) return { model, output: tensor, dequantized: false }
    return { model: OnnxModel.appendToGraph(model, OnnxModel.untypedOutput(tensor)), output: tensor, dequantized: false }
  }
  const output = `${tensor}__loupe_float`
  const node = OnnxGraph.node("DequantizeLinear", [tensor, ...quantization], [output], `${tensor}__loupe_dequantize`)
  return { model: OnnxModel.appendToGraph(model, node, OnnxModel.untypedOutput(output)), output, dequantized: true }
}
