/**
 * Writing ONNX models (onnx.proto field numbers): nodes with their attributes, initializers, graph inputs and
 * outputs, metadata, and the model that holds them. Each graph encoder returns one field of a GraphProto, so a
 * graph is the concatenation of what they return, and appending such fields to a model's graph extends it
 * (`OnnxModel.rewriteModel`, `OnnxModel.appendToGraph`).
 *
 * The TensorFlow.js plugin writes whole models with it (Keras layers translated to ONNX), the ONNX plugin appends
 * nodes to existing models, heads write their `toOnnx` graphs and `@loupe/deploy` assembles the exported model.
 *
 * @since 0.2.0
 */
import * as Pb from "./Protobuf.js"

/**
 * The ModelProto field that holds the graph (a GraphProto).
 *
 * @since 0.2.0
 * @category fields
 */
export const MODEL_GRAPH = 7
/**
 * The ModelProto field that holds one metadata_props entry.
 *
 * @since 0.2.0
 * @category fields
 */
export const MODEL_METADATA = 14

/**
 * The GraphProto field of one node (a NodeProto).
 *
 * @since 0.2.0
 * @category fields
 */
export const GRAPH_NODE = 1
/**
 * The GraphProto field of one initializer (a TensorProto).
 *
 * @since 0.2.0
 * @category fields
 */
export const GRAPH_INITIALIZER = 5
/**
 * The GraphProto field of one graph input (a ValueInfoProto).
 *
 * @since 0.2.0
 * @category fields
 */
export const GRAPH_INPUT = 11
/**
 * The GraphProto field of one graph output (a ValueInfoProto).
 *
 * @since 0.2.0
 * @category fields
 */
export const GRAPH_OUTPUT = 12

/**
 * TensorProto.DataType of 32-bit floats.
 *
 * @since 0.2.0
 * @category fields
 */
export const FLOAT = 1
/**
 * TensorProto.DataType of 64-bit signed integers.
 *
 * @since 0.2.0
 * @category fields
 */
export const INT64 = 7

/**
 * A node attribute value.
 *
 * @since 0.2.0
 * @category models
 */
export type Attribute =
  | { readonly kind: "int"; readonly value: number }
  | { readonly kind: "ints"; readonly value: ReadonlyArray<number> }
  | { readonly kind: "float"; readonly value: number }
  | { readonly kind: "floats"; readonly value: ReadonlyArray<number> }
  | { readonly kind: "string"; readonly value: string }

// AttributeProto: name 1, f 2, i 3, s 4, floats 7, ints 8, type 20.
const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, floats: 6, ints: 7 } as const

const attributeValue = (a: Attribute): ReadonlyArray<Uint8Array> => {
  switch (a.kind) {
    case "int":
      return [Pb.varintField(3, a.value)]
    case "float":
      return [Pb.float32Field(2, a.value)]
    case "string":
      return [Pb.stringField(4, a.value)]
    case "ints":
      return a.value.map((v) => Pb.varintField(8, v))
    case "floats":
      return a.value.map((v) => Pb.float32Field(7, v))
  }
}

/**
 * A GraphProto.node field. An empty input name skips an optional input.
 *
 * @since 0.2.0
 * @category encoders
 */
export const node = (
  opType: string,
  inputs: ReadonlyArray<string>,
  outputs: ReadonlyArray<string>,
  name: string,
  attributes: Readonly<Record<string, Attribute>> = {}
): Uint8Array =>
  Pb.message(
    GRAPH_NODE,
    ...inputs.map((i) => Pb.stringField(1, i)),
    ...outputs.map((o) => Pb.stringField(2, o)),
    Pb.stringField(3, name),
    Pb.stringField(4, opType),
    ...Object.entries(attributes).map(([key, a]) =>
      Pb.message(5, Pb.stringField(1, key), ...attributeValue(a), Pb.varintField(20, ATTRIBUTE_TYPE[a.kind]))
    )
  )

const initializer = (name: string, dims: ReadonlyArray<number>, dataType: number, raw: ArrayBufferView): Uint8Array =>
  Pb.message(
    GRAPH_INITIALIZER,
    ...dims.map((d) => Pb.varintField(1, d)),
    Pb.varintField(2, dataType),
    Pb.stringField(8, name),
    Pb.message(9, new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength))
  )

/**
 * A GraphProto.initializer field holding float32 values (little-endian raw data). Empty `dims`: a scalar.
 *
 * @since 0.2.0
 * @category encoders
 */
export const floatInitializer = (name: string, dims: ReadonlyArray<number>, values: ArrayLike<number>): Uint8Array =>
  initializer(name, dims, FLOAT, Float32Array.from(values))

/**
 * A GraphProto.initializer field holding int64 values (a shape, axes, pads).
 *
 * @since 0.2.0
 * @category encoders
 */
export const int64Initializer = (name: string, dims: ReadonlyArray<number>, values: ReadonlyArray<number>): Uint8Array =>
  initializer(name, dims, INT64, BigInt64Array.from(values, (v) => BigInt(v)))

/**
 * A tensor ValueInfoProto of element type `dataType` (`FLOAT`, `INT64`) as a GraphProto field (`GRAPH_INPUT` or
 * `GRAPH_OUTPUT`); a string dim is symbolic.
 *
 * @since 0.2.0
 * @category encoders
 */
export const valueInfo = (
  field: number,
  name: string,
  dims: ReadonlyArray<number | string>,
  dataType: number
): Uint8Array => {
  const shape = dims.map((d) => Pb.message(1, typeof d === "number" ? Pb.varintField(1, d) : Pb.stringField(2, d)))
  const tensorType = Pb.message(1, Pb.varintField(1, dataType), Pb.message(2, ...shape))
  return Pb.message(field, Pb.stringField(1, name), Pb.message(2, tensorType))
}

/**
 * A float tensor ValueInfoProto as a GraphProto field (`GRAPH_INPUT` or `GRAPH_OUTPUT`); a string dim is symbolic.
 *
 * @since 0.2.0
 * @category encoders
 */
export const floatValueInfo = (field: number, name: string, dims: ReadonlyArray<number | string>): Uint8Array =>
  valueInfo(field, name, dims, FLOAT)

/**
 * A whole ModelProto around graph fields, importing the default domain at `opset`.
 *
 * @since 0.2.0
 * @category encoders
 */
export const model = (options: {
  readonly graph: ReadonlyArray<Uint8Array>
  readonly graphName: string
  /** The default domain's opset, with its IR version (7 goes with opset 13). */
  readonly opset: number
  readonly irVersion: number
  readonly producer: string
}): Uint8Array =>
  Pb.concat([
    Pb.varintField(1, options.irVersion),
    Pb.stringField(2, options.producer),
    Pb.message(MODEL_GRAPH, Pb.stringField(2, options.graphName), ...options.graph),
    Pb.message(8, Pb.stringField(1, ""), Pb.varintField(2, options.opset))
  ])

/**
 * A ModelProto.metadata_props entry, to append at model level.
 *
 * @since 0.2.0
 * @category encoders
 */
export const metadata = (key: string, value: string): Uint8Array =>
  Pb.message(MODEL_METADATA, Pb.stringField(1, key), Pb.stringField(2, value))
