/**
 * Reading and editing serialised ONNX models: the nodes, inputs and outputs of a model's graph, every tensor name
 * it uses, and two edits: append graph fields (protobuf merges a repeated `ModelProto.graph` field into the first,
 * so a second graph field holding only new nodes and outputs extends the graph), or rewrite the model around one
 * merged graph.
 *
 * Every function throws `Error` on malformed bytes; callers wrap them in `Effect.try`.
 *
 * @since 0.2.0
 */
import { GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_NODE, GRAPH_OUTPUT, MODEL_GRAPH } from "./OnnxGraph.js"
import * as Pb from "./Protobuf.js"

// NodeProto, ValueInfoProto and TensorProto field numbers.
const NODE_INPUT = 1
const NODE_OUTPUT = 2
const NODE_NAME = 3
const NODE_OP_TYPE = 4
const NODE_DOMAIN = 7
const VALUE_INFO_NAME = 1
const TENSOR_NAME = 8

/**
 * One NodeProto as read from a model: its name, operator (`opType` in `domain`, empty for the default ONNX domain)
 * and the tensor names it reads and writes.
 *
 * @since 0.2.0
 * @category models
 */
export interface Node {
  readonly name: string
  readonly opType: string
  readonly domain: string
  readonly inputs: ReadonlyArray<string>
  readonly outputs: ReadonlyArray<string>
}

/**
 * What `readGraph` reports of a model's graph: its nodes in order and the names of its inputs and outputs.
 *
 * @since 0.2.0
 * @category models
 */
export interface Graph {
  readonly nodes: ReadonlyArray<Node>
  /** Graph inputs that are not initializers (the tensors a caller feeds). */
  readonly inputs: ReadonlyArray<string>
  readonly outputs: ReadonlyArray<string>
}

const readNode = (bytes: Uint8Array, field: Pb.Field): Node => {
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

/** The string field `number` of the message in `field`. */
const nameField = (bytes: Uint8Array, field: Pb.Field, number: number): string | undefined => {
  for (const f of Pb.fields(bytes, field.start, field.end)) {
    if (f.number === number && f.wireType === 2) return Pb.string(bytes, f)
  }
  return undefined
}

/** The length-delimited fields of every graph message of a model (protobuf merges repeated ones into one graph). */
const graphFields = (model: Uint8Array): Array<Pb.Field> =>
  Array.from(Pb.fields(model)).filter((m) => m.number === MODEL_GRAPH && m.wireType === 2).flatMap((m) =>
    Array.from(Pb.fields(model, m.start, m.end)).filter((g) => g.wireType === 2)
  )

/**
 * The graph of a serialised ModelProto, its graph messages merged as protobuf does. Throws an `Error` when the
 * bytes hold no graph (not an ONNX model).
 *
 * @since 0.2.0
 * @category readers
 */
export const readGraph = (model: Uint8Array): Graph => {
  const nodes: Array<Node> = []
  const inputs: Array<string> = []
  const outputs: Array<string> = []
  const initializers = new Set<string>()
  if (!Array.from(Pb.fields(model)).some((m) => m.number === MODEL_GRAPH && m.wireType === 2)) {
    throw new Error("no graph in the file (is it an ONNX model?)")
  }
  for (const g of graphFields(model)) {
    if (g.number === GRAPH_NODE) nodes.push(readNode(model, g))
    else if (g.number === GRAPH_INITIALIZER) initializers.add(nameField(model, g, TENSOR_NAME) ?? "")
    else if (g.number === GRAPH_INPUT) inputs.push(nameField(model, g, VALUE_INFO_NAME) ?? "")
    else if (g.number === GRAPH_OUTPUT) outputs.push(nameField(model, g, VALUE_INFO_NAME) ?? "")
  }
  return { nodes, inputs: inputs.filter((i) => !initializers.has(i)), outputs }
}

/**
 * Every tensor name a model's graph uses: node outputs, initializers and inputs.
 *
 * @since 0.2.0
 * @category readers
 */
export const tensorNames = (model: Uint8Array): ReadonlySet<string> => {
  const names = new Set<string>()
  for (const g of graphFields(model)) {
    if (g.number === GRAPH_NODE) for (const output of readNode(model, g).outputs) names.add(output)
    else if (g.number === GRAPH_INITIALIZER) names.add(nameField(model, g, TENSOR_NAME) ?? "")
    else if (g.number === GRAPH_INPUT) names.add(nameField(model, g, VALUE_INFO_NAME) ?? "")
  }
  names.delete("")
  return names
}

/**
 * A GraphProto.output field naming `tensor`, without a type (onnxruntime infers it).
 *
 * @since 0.2.0
 * @category encoders
 */
export const untypedOutput = (tensor: string): Uint8Array => Pb.message(GRAPH_OUTPUT, Pb.stringField(VALUE_INFO_NAME, tensor))

/**
 * The model extended with `graphFields` (nodes, initializers, outputs), appended as a second graph message.
 *
 * @since 0.2.0
 * @category editing
 */
export const appendToGraph = (model: Uint8Array, ...fields: ReadonlyArray<Uint8Array>): Uint8Array =>
  Pb.concat([model, Pb.message(MODEL_GRAPH, ...fields)])

/**
 * How `rewriteModel` changes a graph: fields to place before and after the model's own, and inputs to drop.
 *
 * @since 0.2.0
 * @category editing
 */
export interface GraphEdit {
  /** Graph fields placed before the model's own (nodes that must run first, so the node list stays sorted). */
  readonly before?: Uint8Array
  /** Graph fields placed after the model's own. */
  readonly after: Uint8Array
  /** Graph inputs to remove (a node in `before` produces the tensor instead). */
  readonly dropInputs?: ReadonlyArray<string>
}

/**
 * Rewrite a model with one graph: `edit.before`, the fields of all its graph messages (merged, as protobuf does)
 * minus the graph outputs and `edit.dropInputs`, then `edit.after`; and `modelFragment` appended at model level
 * (metadata).
 *
 * @since 0.2.0
 * @category editing
 */
export const rewriteModel = (model: Uint8Array, edit: GraphEdit, modelFragment: Uint8Array): Uint8Array => {
  const top = Array.from(Pb.fields(model))
  const fields = top.filter((f) => f.number === MODEL_GRAPH).flatMap((m) => Array.from(Pb.fields(model, m.start, m.end)))
  if (fields.length === 0) throw new Error("the model has no graph")
  const dropped = new Set(edit.dropInputs ?? [])
  const kept = fields
    .filter((f) => f.number !== GRAPH_OUTPUT && !(f.number === GRAPH_INPUT && dropped.has(nameField(model, f, VALUE_INFO_NAME) ?? "")))
    .map((f) => model.subarray(f.at, f.end))
  const graph = Pb.message(MODEL_GRAPH, ...(edit.before ? [edit.before] : []), ...kept, edit.after)
  return Pb.concat([...top.filter((f) => f.number !== MODEL_GRAPH).map((f) => model.subarray(f.at, f.end)), graph, modelFragment])
}
