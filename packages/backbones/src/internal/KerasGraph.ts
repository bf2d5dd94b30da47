/**
 * The ONNX graph a Keras translation writes: tensors with their Keras shapes, fresh names, nodes and initializers
 * (through `@loupe/core/onnx`), the layers' weights, and kernel layout changes.
 */
import { OnnxGraph } from "@loupe/core/onnx"
import type { FloatWeight } from "./tfjsFiles.js"
import { fail } from "./KerasTopology.js"

/** A tensor in the graph. `shape` is the Keras shape without the batch axis; an H x W x C map is stored NCHW. */
export interface Value {
  readonly name: string
  readonly shape: ReadonlyArray<number>
}

export type Attributes = Readonly<Record<string, OnnxGraph.Attribute>>
export const int = (value: number): OnnxGraph.Attribute => ({ kind: "int", value })
export const ints = (value: ReadonlyArray<number>): OnnxGraph.Attribute => ({ kind: "ints", value })
export const float = (value: number): OnnxGraph.Attribute => ({ kind: "float", value })

export const TO_NCHW = [0, 3, 1, 2]
export const TO_NHWC = [0, 2, 3, 1]

export class Builder {
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
    this.fields.push(OnnxGraph.node(opType, inputs, [name], name, attributes))
    this.nodes++
    return name
  }

  floats(name: string, dims: ReadonlyArray<number>, values: ArrayLike<number>): string {
    const fresh = this.fresh(name)
    this.fields.push(OnnxGraph.floatInitializer(fresh, dims, values))
    return fresh
  }

  int64s(name: string, values: ReadonlyArray<number>): string {
    const fresh = this.fresh(name)
    this.fields.push(OnnxGraph.int64Initializer(fresh, [values.length], values))
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
export const hwioToOihw = (k: Float32Array, h: number, w: number, i: number, o: number): Float32Array => {
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
