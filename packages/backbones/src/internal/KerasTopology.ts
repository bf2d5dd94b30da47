/**
 * The topology of a TensorFlow.js layers model (the Keras `model.json`): Sequential and functional models, nested
 * ones too, as one shape (`Net`), and the failure every part of the translation throws (`fail`), which
 * `KerasOnnx.translate` turns into `Untranslatable`.
 */

export class Untranslatable extends Error {}

export const fail = (reason: string): never => {
  throw new Untranslatable(reason)
}

export interface LayerJson {
  readonly class_name: string
  readonly name?: string
  readonly config: Record<string, any>
  readonly inbound_nodes?: unknown
}

export interface Net {
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

export const isNet = (layer: LayerJson) => ["Sequential", "Model", "Functional"].includes(layer.class_name)

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

export const netOf = (model: LayerJson): Net => model.class_name === "Sequential" ? sequentialNet(model) : functionalNet(model)

/** The nested-model layers leading to `name`, then `name`; depth first in layer order, as tfjs searches. */
export const pathTo = (net: Net, name: string): ReadonlyArray<string> | undefined => {
  for (const [layerName, layer] of net.layers) {
    if (layerName === net.synthetic) continue
    if (layerName === name) return [name]
    const inner = isNet(layer) ? pathTo(netOf(layer), name) : undefined
    if (inner !== undefined) return [layerName, ...inner]
  }
  return undefined
}
