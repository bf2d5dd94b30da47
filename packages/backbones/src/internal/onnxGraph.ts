/**
 * Reading an ONNX model's graph (nodes, inputs, outputs) and exposing an intermediate tensor as a graph output, so
 * that onnxruntime (which only returns graph outputs) can return it.
 *
 * The model is extended, never rewritten: protobuf merges a repeated occurrence of an embedded message field into
 * the first one, so appending a second `ModelProto.graph` field that holds only the new nodes and outputs appends
 * them to the graph. The new output carries no type; onnxruntime infers it.
 */
import * as OnnxProto from "../OnnxProto.js"
import * as Pb from "../Protobuf.js"

// Field numbers from onnx.proto.
const MODEL_GRAPH = 7
const { GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_NODE, GRAPH_OUTPUT } = OnnxProto
const NODE_INPUT = 1
const NODE_OUTPUT = 2
const NODE_NAME = 3
const NODE_OP_TYPE = 4
const NODE_DOMAIN = 7
const VALUE_INFO_NAME = 1
const TENSOR_NAME = 8

export interface OnnxNode {
  readonly name: string
  readonly opType: string
  readonly domain: string
  readonly inputs: ReadonlyArray<string>
  readonly outputs: ReadonlyArray<string>
}

export interface OnnxGraph {
  readonly nodes: ReadonlyArray<OnnxNode>
  /** Graph inputs that are not initializers (the tensors a caller feeds). */
  readonly inputs: ReadonlyArray<string>
  readonly outputs: ReadonlyArray<string>
}

const readNode = (bytes: Uint8Array, field: Pb.Field): OnnxNode => {
  const inputs: Array<string> = []
  const outputs: Array<string> = []
  let name = ""
  let opType = ""
  let domain = ""
  for (const f of Pb.fields(bytes, field.start, field.end)) {
    if (f.wireType !== 2) continue
    if (f.number === NODE_INPUT) inputs.push(Pb.string(bytes, f))
    else if (f.number === NODE_OUTPUT) outputs.push(Pb.string(bytes, f))
    else if (f.number === NODE_NAME) name = Pb.string(bytes, f)
    else if (f.number === NODE_OP_TYPE) opType = Pb.string(bytes, f)
    else if (f.number === NODE_DOMAIN) domain = Pb.string(bytes, f)
  }
  return { name, opType, domain, inputs, outputs }
}

const nameField = (bytes: Uint8Array, field: Pb.Field, number: number): string | undefined => {
  for (const f of Pb.fields(bytes, field.start, field.end)) {
    if (f.number === number && f.wireType === 2) return Pb.string(bytes, f)
  }
  return undefined
}

/** The graph of a serialised ModelProto. Throws on malformed bytes. */
export const readGraph = (model: Uint8Array): OnnxGraph => {
  const nodes: Array<OnnxNode> = []
  const inputs: Array<string> = []
  const outputs: Array<string> = []
  const initializers = new Set<string>()
  let graphs = 0
  for (const m of Pb.fields(model)) {
    if (m.number !== MODEL_GRAPH || m.wireType !== 2) continue
    graphs++
    for (const g of Pb.fields(model, m.start, m.end)) {
      if (g.wireType !== 2) continue
      if (g.number === GRAPH_NODE) nodes.push(readNode(model, g))
      else if (g.number === GRAPH_INITIALIZER) initializers.add(nameField(model, g, TENSOR_NAME) ?? "")
      else if (g.number === GRAPH_INPUT) inputs.push(nameField(model, g, VALUE_INFO_NAME) ?? "")
      else if (g.number === GRAPH_OUTPUT) outputs.push(nameField(model, g, VALUE_INFO_NAME) ?? "")
    }
  }
  if (graphs === 0) throw new Error("no graph in the file (is it an ONNX model?)")
  return { nodes, inputs: inputs.filter((i) => !initializers.has(i)), outputs }
}

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
const quantizationOf = (graph: OnnxGraph, tensor: string): readonly [string, string] | undefined => {
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
export const findNode = (graph: OnnxGraph, ref: string): { readonly node: OnnxNode; readonly tensor: string } | undefined => {
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
export const exposeTensor = (model: Uint8Array, graph: OnnxGraph, tensor: string): ExposedTensor => {
  const quantization = quantizationOf(graph, tensor)
  if (quantization === undefined) {
    if (graph.outputs.includes(tensor)) return { model, output: tensor, dequantized: false }
    const fragment = Pb.message(GRAPH_OUTPUT, Pb.stringField(VALUE_INFO_NAME, tensor))
    return { model: Pb.concat([model, Pb.message(MODEL_GRAPH, fragment)]), output: tensor, dequantized: false }
  }
  const output = `${tensor}__loupe_float`
  const node = OnnxProto.node("DequantizeLinear", [tensor, ...quantization], [output], `${tensor}__loupe_dequantize`)
  const fragment = Pb.concat([node, Pb.message(GRAPH_OUTPUT, Pb.stringField(VALUE_INFO_NAME, output))])
  return { model: Pb.concat([model, Pb.message(MODEL_GRAPH, fragment)]), output, dequantized: true }
}
