/**
 * Editing whole ONNX models for the export: the encoders of `@loupe/backbones`' `OnnxProto` (nodes, initializers,
 * value infos), plus what only the export needs: split a model into its graph and its other fields so the graph can
 * be rewritten as one message, list its tensor names, and add metadata.
 *
 * @internal
 */
import { OnnxProto, Protobuf } from "@loupe/backbones"

export const { floatInitializer, floatValueInfo, GRAPH_INPUT, GRAPH_OUTPUT, int64Initializer, node } = OnnxProto
export const { concat } = Protobuf
const { GRAPH_INITIALIZER, GRAPH_NODE } = OnnxProto

// ModelProto
const MODEL_GRAPH = 7
const MODEL_METADATA = 14

const bytes = Protobuf.message
const str = Protobuf.stringField

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
