/**
 * Just enough of the ONNX protobuf format (onnx.proto, proto3 field numbers) to append nodes to a model: encode
 * nodes, tensors, attributes and value infos, and split a model into its graph and its other fields so the graph
 * can be rewritten as one message.
 *
 * @internal
 */
import { Protobuf } from "@loupe/backbones"

// ModelProto
const MODEL_GRAPH = 7
const MODEL_METADATA = 14
// GraphProto
export const GRAPH_NODE = 1
export const GRAPH_INITIALIZER = 5
export const GRAPH_INPUT = 11
export const GRAPH_OUTPUT = 12
// TensorProto.DataType
export const FLOAT = 1
export const INT64 = 7

const encoder = new TextEncoder()

export const { concat } = Protobuf
/** A varint field (int64, enum). */
export const uint = Protobuf.varintField
/** A length-delimited field: bytes, a string or a nested message. */
export const bytes = Protobuf.message
export const str = (field: number, value: string): Uint8Array => bytes(field, encoder.encode(value))

/** A float attribute value (fixed32). */
const float32 = (field: number, value: number): Uint8Array => {
  const out = new Uint8Array(5)
  out[0] = field * 8 + 5
  new DataView(out.buffer).setFloat32(1, value, true)
  return out
}

export type Attribute =
  | { readonly kind: "int"; readonly value: number }
  | { readonly kind: "ints"; readonly value: ReadonlyArray<number> }
  | { readonly kind: "float"; readonly value: number }

// AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7).
const attribute = (name: string, a: Attribute): Uint8Array =>
  concat([
    str(1, name),
    ...(a.kind === "int"
      ? [uint(3, a.value), uint(20, 2)]
      : a.kind === "float"
      ? [float32(2, a.value), uint(20, 1)]
      : [...a.value.map((v) => uint(8, v)), uint(20, 7)])
  ])

/** A GraphProto.node field. */
export const node = (
  opType: string,
  inputs: ReadonlyArray<string>,
  outputs: ReadonlyArray<string>,
  name: string,
  attributes: Readonly<Record<string, Attribute>> = {}
): Uint8Array =>
  bytes(
    GRAPH_NODE,
    ...inputs.map((i) => str(1, i)),
    ...outputs.map((o) => str(2, o)),
    str(3, name),
    str(4, opType),
    ...Object.entries(attributes).map(([k, v]) => bytes(5, attribute(k, v)))
  )

/** A GraphProto.initializer field holding float32 values (raw little-endian data). */
export const floatInitializer = (name: string, dims: ReadonlyArray<number>, values: ArrayLike<number>): Uint8Array => {
  const data = Float32Array.from(values as ArrayLike<number>)
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return bytes(GRAPH_INITIALIZER, ...dims.map((d) => uint(1, d)), uint(2, FLOAT), str(8, name), bytes(9, raw))
}

/** A GraphProto.initializer field holding int64 values (raw little-endian data), e.g. a shape or indices. */
export const int64Initializer = (name: string, dims: ReadonlyArray<number>, values: ReadonlyArray<number>): Uint8Array => {
  const data = BigInt64Array.from(values, (v) => BigInt(v))
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return bytes(GRAPH_INITIALIZER, ...dims.map((d) => uint(1, d)), uint(2, INT64), str(8, name), bytes(9, raw))
}

/** A float tensor value info (for GraphProto.input / output); a string dim is symbolic. */
export const floatValueInfo = (field: number, name: string, dims: ReadonlyArray<number | string>): Uint8Array => {
  const shape = dims.map((d) => bytes(1, typeof d === "number" ? uint(1, d) : str(2, d)))
  const tensorType = concat([uint(1, FLOAT), bytes(2, ...shape)])
  return bytes(field, str(1, name), bytes(2, bytes(1, tensorType)))
}

/** A ModelProto.metadata_props entry. */
export const metadata = (key: string, value: string): Uint8Array => bytes(MODEL_METADATA, str(1, key), str(2, value))

interface RawField {
  readonly number: number
  /** The whole field, key included. */
  readonly raw: Uint8Array
  /** The payload of a length-delimited field. */
  readonly payload: Uint8Array
}

/** The top-level fields of a message, in order. Throws on malformed input. */
export const fields = (b: Uint8Array): Array<RawField> =>
  Array.from(Protobuf.fields(b), (f) => ({
    number: f.number,
    raw: b.subarray(f.at, f.end),
    payload: b.subarray(f.start, f.end)
  }))

/** Every tensor name a model's graph uses: node outputs, initializers and inputs. */
export const tensorNames = (model: Uint8Array): ReadonlySet<string> => {
  const names = new Set<string>()
  const decoder = new TextDecoder()
  for (const g of fields(model).filter((f) => f.number === MODEL_GRAPH)) {
    for (const f of fields(g.payload)) {
      if (f.number === GRAPH_NODE) {
        for (const n of fields(f.payload)) if (n.number === 2) names.add(decoder.decode(n.payload))
      } else if (f.number === GRAPH_INITIALIZER || f.number === GRAPH_INPUT) {
        const nameField = f.number === GRAPH_INITIALIZER ? 8 : 1
        for (const n of fields(f.payload)) if (n.number === nameField) names.add(decoder.decode(n.payload))
      }
    }
  }
  return names
}

export interface GraphEdit {
  /** Graph fields placed before the model's own (nodes that must run first, so the node list stays sorted). */
  readonly before?: Uint8Array
  /** Graph fields placed after the model's own. */
  readonly after: Uint8Array
  /** Graph inputs to remove (a node in `before` produces the tensor instead). */
  readonly dropInputs?: ReadonlyArray<string>
}

/** The name of a ValueInfoProto (a graph input or output). */
const valueInfoName = (payload: Uint8Array): string | undefined => {
  const name = fields(payload).find((f) => f.number === 1)
  return name && new TextDecoder().decode(name.payload)
}

/**
 * Rewrite a model with one graph: `edit.before`, the fields of all its graph messages (merged, as protobuf does)
 * minus the graph outputs and `edit.dropInputs`, then `edit.after`; and `modelFragment` appended at model level
 * (metadata).
 */
export const rewriteModel = (model: Uint8Array, edit: GraphEdit, modelFragment: Uint8Array): Uint8Array => {
  const top = fields(model)
  const graphFields = top.filter((f) => f.number === MODEL_GRAPH).flatMap((f) => fields(f.payload))
  if (graphFields.length === 0) throw new Error("the model has no graph")
  const dropped = new Set(edit.dropInputs ?? [])
  const kept = graphFields
    .filter((f) => f.number !== GRAPH_OUTPUT && !(f.number === GRAPH_INPUT && dropped.has(valueInfoName(f.payload) ?? "")))
    .map((f) => f.raw)
  const graph = bytes(MODEL_GRAPH, ...(edit.before ? [edit.before] : []), ...kept, edit.after)
  return concat([...top.filter((f) => f.number !== MODEL_GRAPH).map((f) => f.raw), graph, modelFragment])
}
