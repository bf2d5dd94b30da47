/**
 * The TensorFlow.js plugin's onnxruntime engine (Keras layers translated to ONNX) against its tfjs engine: the same
 * embeddings within 1e-4 on real photos for both catalog models, at their catalog outputs and at intermediate
 * layers; a tiny model exercising the other translated layers; and the fallback when a layer has no translation.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Preprocess } from "@loupe/core"
import type { Backbone } from "@loupe/core"
import { BackboneError, Catalog, TfjsBackbone } from "@loupe/backbones"
import * as tf from "@tensorflow/tfjs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { loadPlugin as load, maxAbsDiff, photos, tensorOf } from "./fixtures/helpers.js"
import { writeTinyGraphModel } from "./fixtures/tfjsGraphModel.js"

const eightPhotos = [...photos("cats", 4), ...photos("dogs", 4)]
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-tfjs-onnx-"))
const maxDiffs: Array<string> = []
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true })
  console.log(`max abs diff, onnxruntime vs tfjs engine:\n  ${maxDiffs.join("\n  ")}`)
})

const engineOf = (backbone: Backbone.LoadedBackbone) => (backbone.info as TfjsBackbone.TfjsLoadedInfo).engine

/**
 * Embeds `input` with both engines and checks they agree within 1e-4, or, for an unpooled map (`relative`), within
 * 1e-5 of its largest value: float32 convolutions summed in another order differ by a few ulps of values up to 300.
 * Returns the onnxruntime vectors.
 */
const compareEngines = (
  plugin: Backbone.BackbonePlugin,
  options: Record<string, unknown>,
  input: Float32Array,
  count: number,
  label: string,
  relative = false
) =>
  Effect.gen(function*() {
    const viaTfjs = yield* load(plugin, { ...options, engine: "tfjs" })
    const viaOnnx = yield* load(plugin, { ...options, engine: "onnxruntime" })
    expect(engineOf(viaTfjs)).toBe("tfjs")
    expect(engineOf(viaOnnx)).toBe("onnxruntime")
    expect(viaOnnx.info.embeddingSize).toBe(viaTfjs.info.embeddingSize)
    expect(viaOnnx.weightsHash).toBe(viaTfjs.weightsHash)
    const a = yield* viaTfjs.embedBatch(input, count)
    const b = yield* viaOnnx.embedBatch(input, count)
    expect(b.length).toBe(a.length)
    const diff = maxAbsDiff(a, b)
    const scale = a.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
    maxDiffs.push(`${label}: ${diff.toExponential(2)} (values up to ${scale.toFixed(2)}, ${a.length / count}-d)`)
    expect(diff).toBeLessThan(relative ? 1e-5 * Math.max(1, scale) : 1e-4)
    return b
  })

const photoTensor = (spec: Preprocess.PreprocessSpec) => tensorOf(eightPhotos, spec)

describe("tfjs:mobilenetv2-0.35 (Sequential[Model, GlobalAveragePooling2D]) on onnxruntime", () => {
  const plugin = TfjsBackbone.plugin(Catalog.tmMobilenetV2035)

  it.scoped("auto picks onnxruntime and says so", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const backbone = yield* load(plugin, {}, logs)
      expect(engineOf(backbone)).toBe("onnxruntime")
      expect(logs.join("\n")).toMatch(/tfjs:mobilenetv2-0\.35: engine onnxruntime \(Keras layers translated to \d+ ONNX nodes, 2 intra-op threads\)/)
    }))

  it.scoped("the catalog output (1280-d) and intermediate layers inside the nested model match tfjs within 1e-4", () =>
    Effect.gen(function*() {
      const input = yield* photoTensor(plugin.info.preprocess)
      const vectors = yield* compareEngines(plugin, {}, input, 8, "mobilenetv2-0.35 catalog (out_relu GAP)")
      expect(vectors.length).toBe(8 * 1280)
      yield* compareEngines(plugin, { output: "block_13_expand_relu", pooling: "global-average" }, input, 8, "mobilenetv2-0.35 block_13_expand_relu GAP")
      // Not pooled: a 7 x 7 x 56 map, flattened in NHWC order as tfjs flattens it.
      yield* compareEngines(plugin, { output: "block_16_project_BN", pooling: "none" }, input, 8, "mobilenetv2-0.35 block_16_project_BN map", true)
    }))
})

describe("tfjs:darknet-tiny (functional, output leaky_re_lu_15) on onnxruntime", () => {
  const plugin = TfjsBackbone.plugin(Catalog.darknetTiny)

  it.scoped("the catalog embedding and other layers, pooled or not, match tfjs within 1e-4", () =>
    Effect.gen(function*() {
      const input = yield* photoTensor(plugin.info.preprocess)
      const logs: Array<string> = []
      expect(engineOf(yield* load(plugin, {}, logs))).toBe("onnxruntime")
      yield* compareEngines(plugin, {}, input, 8, "darknet-tiny catalog (leaky_re_lu_15 GAP)")
      yield* compareEngines(plugin, { output: "leaky_re_lu_14", pooling: "global-average" }, input, 8, "darknet-tiny leaky_re_lu_14 GAP")
      yield* compareEngines(plugin, { pooling: "none" }, input, 8, "darknet-tiny leaky_re_lu_15 map", true)
      // The whole model: conv2d_16 (with bias) and its GlobalAveragePooling2D, 1000 ImageNet scores.
      yield* compareEngines(plugin, { output: "global_average_pooling2d_1", pooling: "none" }, input, 8, "darknet-tiny model output")
    }))

  it.scoped("a missing layer fails the same way on both engines", () =>
    Effect.gen(function*() {
      for (const engine of ["auto", "tfjs"]) {
        const error = yield* Effect.flip(load(plugin, { engine, output: "no_such_layer" }))
        expect(error.message).toMatch(/has no layer "no_such_layer" \(layers: .*leaky_re_lu_15/)
      }
    }))
})

/** Saves a tfjs layers model as `model.json` + `weights.bin` in `dir`, as `model.save` would to files, and disposes it. */
const save = (model: tf.LayersModel, dir: string) =>
  Effect.promise(async () => {
    fs.mkdirSync(dir, { recursive: true })
    await model.save(tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData ?? new ArrayBuffer(0)
      fs.writeFileSync(path.join(dir, "weights.bin"), Buffer.concat([data].flat().map((b) => Buffer.from(b))))
      const manifest = [{ paths: ["weights.bin"], weights: artifacts.weightSpecs ?? [] }]
      const json = { format: "layers-model", generatedBy: "loupe test", convertedBy: null, modelTopology: artifacts.modelTopology, weightsManifest: manifest }
      fs.writeFileSync(path.join(dir, "model.json"), JSON.stringify(json))
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } }
    }))
    model.dispose()
    return dir
  })

const tinySpec = (size: number): Preprocess.PreprocessSpec => ({ size, resize: "squash", layout: "NHWC", scale: 255, mean: [0, 0, 0], std: [1, 1, 1] })
const tinyPlugin = (id: string, dir: string, size: number, embeddingSize: number) =>
  TfjsBackbone.plugin({
    id,
    description: "a tiny layers model written by the test",
    weights: { _tag: "Path", path: dir },
    embeddingSize,
    preprocess: tinySpec(size),
    tags: ["tfjs"],
    license: "MIT"
  })
const noise = (n: number) => Float32Array.from({ length: n }, (_, i) => (((i * 7919) % 211) / 211) * 2 - 1)

describe("the translation, layer by layer, on a tiny functional model", () => {
  // 15 x 15 input: odd sizes make TensorFlow's SAME padding asymmetric at stride 2.
  const build = () => {
    const L = tf.layers
    const input = tf.input({ shape: [15, 15, 3], name: "image" })
    const padded = L.zeroPadding2d({ padding: [[0, 1], [2, 1]], name: "pad" }).apply(input) as tf.SymbolicTensor
    const c1 = L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: "same", activation: "relu6", name: "c1" }).apply(padded) as tf.SymbolicTensor
    const bn = L.batchNormalization({ center: false, name: "bn" }).apply(c1) as tf.SymbolicTensor
    const dw = L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, strides: 2, padding: "same", name: "dw" }).apply(bn) as tf.SymbolicTensor
    const sep = L.separableConv2d({ filters: 16, kernelSize: 3, dilationRate: 2, padding: "same", activation: "tanh", name: "sep" })
      .apply(dw) as tf.SymbolicTensor
    const dilated = L.conv2d({ filters: 16, kernelSize: 2, dilationRate: 2, padding: "same", useBias: false, activation: "sigmoid", name: "dilated" })
      .apply(dw) as tf.SymbolicTensor
    const sum = L.add({ name: "sum" }).apply([dw, sep, dilated]) as tf.SymbolicTensor
    const gated = L.multiply({ name: "gated" }).apply([sum, dilated]) as tf.SymbolicTensor
    const leaky = L.leakyReLU({ alpha: 0.2, name: "leaky" }).apply(gated) as tf.SymbolicTensor
    const bn2 = L.batchNormalization({ scale: false, epsilon: 0.01, name: "bn2" }).apply(leaky) as tf.SymbolicTensor
    const avg = L.averagePooling2d({ poolSize: 3, strides: 2, padding: "same", name: "avg" }).apply(bn2) as tf.SymbolicTensor
    const max = L.maxPooling2d({ poolSize: 2, strides: 2, padding: "same", name: "max" }).apply(bn2) as tf.SymbolicTensor
    const cat = L.concatenate({ name: "cat" }).apply([avg, max]) as tf.SymbolicTensor
    const capped = L.reLU({ maxValue: 0.5, name: "capped" }).apply(cat) as tf.SymbolicTensor
    const elu = L.activation({ activation: "elu", name: "elu" }).apply(capped) as tf.SymbolicTensor
    const dropped = L.dropout({ rate: 0.5, name: "dropped" }).apply(elu) as tf.SymbolicTensor
    const gap = L.globalAveragePooling2d({ name: "gap" }).apply(dropped) as tf.SymbolicTensor
    const gmp = L.globalMaxPooling2d({ name: "gmp" }).apply(dropped) as tf.SymbolicTensor
    const tokens = L.reshape({ targetShape: [6, 32], name: "tokens" }).apply(dropped) as tf.SymbolicTensor
    const flat = L.flatten({ name: "flat" }).apply(tokens) as tf.SymbolicTensor
    const pooled = L.concatenate({ name: "pooled" }).apply([gap, gmp]) as tf.SymbolicTensor
    const bn3 = L.batchNormalization({ name: "bn3" }).apply(pooled) as tf.SymbolicTensor
    const dense = L.dense({ units: 6, activation: "softmax", name: "dense" }).apply(L.concatenate({ name: "both" }).apply([bn3, flat])) as tf.SymbolicTensor
    const model = tf.model({ inputs: input, outputs: dense })
    // Batch-norm statistics away from their 0 / 1 defaults, so that the translation of each one counts.
    for (const layer of model.layers.filter((l) => l.name.startsWith("bn"))) {
      tf.tidy(() => layer.setWeights(layer.getWeights().map((w) => tf.randomUniform(w.shape, 0.5, 1.5))))
    }
    return model
  }

  it.scoped("every output matches the tfjs engine within 1e-4", () =>
    Effect.gen(function*() {
      const dir = yield* save(build(), path.join(tmp, "kitchen-sink"))
      const plugin = tinyPlugin("tfjs:kitchen-sink", dir, 15, 6)
      const input = noise(3 * 15 * 15 * 3)
      yield* compareEngines(plugin, {}, input, 3, "tiny model output (Dense softmax)")
      for (const output of ["pad", "c1", "bn", "dw", "sep", "sum", "gated", "bn2", "avg", "max", "cat", "elu", "tokens", "flat", "bn3"]) {
        yield* compareEngines(plugin, { output, pooling: "none" }, input, 3, `tiny model ${output}`)
      }
      yield* compareEngines(plugin, { output: "elu", pooling: "global-average" }, input, 3, "tiny model elu GAP")
    }), 300_000) // 34 model loads on two engines: 60-125 s on 2 cores, over the 120 s default on a busy machine
})

describe("the translation of a Sequential, the other activations and merges", () => {
  // No InputLayer: the Sequential's input shape is declared on its first layer.
  const sequential = () =>
    tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [7, 7, 3], filters: 4, kernelSize: 3, activation: "selu", name: "s1" }),
        tf.layers.activation({ activation: "softplus", name: "softplus" }),
        tf.layers.activation({ activation: "softsign", name: "softsign" }),
        tf.layers.activation({ activation: "hardSigmoid", name: "hard" }),
        tf.layers.activation({ activation: "swish", name: "swish" }),
        tf.layers.activation({ activation: "mish", name: "mish" }),
        tf.layers.reshape({ targetShape: [5, 10, 2], name: "remap" }),
        tf.layers.softmax({ axis: -1, name: "softmax" }),
        tf.layers.dropout({ rate: 0.5, name: "dropout" }),
        tf.layers.flatten({ name: "flat" }),
        tf.layers.dense({ units: 5, useBias: false, activation: "sigmoid", name: "dense" })
      ]
    })
  const merges = () => {
    const input = tf.input({ shape: [6, 6, 3] })
    const a = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: "same", name: "a" }).apply(input) as tf.SymbolicTensor
    const b = tf.layers.conv2d({ filters: 4, kernelSize: 1, activation: "tanh", name: "b" }).apply(input) as tf.SymbolicTensor
    const merged = [
      tf.layers.average({ name: "avg" }).apply([a, b]),
      tf.layers.maximum({ name: "maxi" }).apply([a, b]),
      tf.layers.minimum({ name: "mini" }).apply([a, b])
    ] as Array<tf.SymbolicTensor>
    return tf.model({ inputs: input, outputs: tf.layers.concatenate({ axis: 3, name: "all" }).apply(merged) as tf.SymbolicTensor })
  }

  it.scoped("match the tfjs engine within 1e-4", () =>
    Effect.gen(function*() {
      const seq = tinyPlugin("tfjs:sequential", yield* save(sequential(), path.join(tmp, "sequential")), 7, 5)
      yield* compareEngines(seq, {}, noise(2 * 7 * 7 * 3), 2, "tiny Sequential output (Dense sigmoid)")
      yield* compareEngines(seq, { output: "softmax", pooling: "none" }, noise(2 * 7 * 7 * 3), 2, "tiny Sequential softmax map")
      yield* compareEngines(seq, { output: "mish", pooling: "global-average" }, noise(2 * 7 * 7 * 3), 2, "tiny Sequential mish GAP")
      const merged = tinyPlugin("tfjs:merges", yield* save(merges(), path.join(tmp, "merges")), 6, 6 * 6 * 12)
      yield* compareEngines(merged, {}, noise(2 * 6 * 6 * 3), 2, "tiny merges (Average, Maximum, Minimum)")
    }))
})

/**
 * A copy of a saved model with its weights stored quantised, the way tensorflowjs_converter writes them
 * (`--quantize_uint8` / `--quantize_float16`): both engines must read `q * scale + min` / float16 alike.
 */
const quantised = (from: string, to: string, dtype: "uint8" | "float16") => {
  const json = JSON.parse(fs.readFileSync(path.join(from, "model.json"), "utf8"))
  const data = fs.readFileSync(path.join(from, "weights.bin"))
  const floats = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength))
  const parts: Array<Buffer> = []
  let offset = 0
  for (const spec of json.weightsManifest[0].weights) {
    const values = floats.subarray(offset, offset += spec.shape.reduce((a: number, b: number) => a * b, 1))
    if (dtype === "float16") {
      const halves = Uint16Array.from(values, (v) => {
        const f = new Float32Array([v])
        const bits = new Uint32Array(f.buffer)[0]!
        const sign = (bits >>> 16) & 0x8000
        const exponent = ((bits >>> 23) & 0xff) - 127 + 15
        // Weights here are small normal numbers or zero; the mantissa is truncated.
        return exponent <= 0 ? sign : sign | (exponent << 10) | ((bits & 0x7fffff) >>> 13)
      })
      parts.push(Buffer.from(halves.buffer))
      spec.quantization = { dtype: "float16" }
    } else {
      const min = Math.min(...values)
      const scale = (Math.max(...values) - min) / 255 || 1
      parts.push(Buffer.from(Uint8Array.from(values, (v) => Math.round((v - min) / scale))))
      spec.quantization = { dtype: "uint8", min, scale }
    }
  }
  fs.mkdirSync(to, { recursive: true })
  fs.writeFileSync(path.join(to, "weights.bin"), Buffer.concat(parts))
  fs.writeFileSync(path.join(to, "model.json"), JSON.stringify(json))
  return to
}

describe("quantised weights", () => {
  const build = () => {
    const input = tf.input({ shape: [9, 9, 3] })
    const c1 = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: "same", name: "c1" }).apply(input) as tf.SymbolicTensor
    const bn = tf.layers.batchNormalization({ name: "bn" }).apply(c1) as tf.SymbolicTensor
    return tf.model({ inputs: input, outputs: tf.layers.activation({ activation: "relu", name: "act" }).apply(bn) as tf.SymbolicTensor })
  }

  it.scoped("uint8 and float16 weights are dequantised as tfjs dequantises them", () =>
    Effect.gen(function*() {
      const dir = yield* save(build(), path.join(tmp, "to-quantise"))
      for (const dtype of ["uint8", "float16"] as const) {
        const plugin = tinyPlugin(`tfjs:${dtype}`, quantised(dir, path.join(tmp, dtype), dtype), 9, 5 * 5 * 6)
        yield* compareEngines(plugin, {}, noise(2 * 9 * 9 * 3), 2, `tiny model, ${dtype} weights`)
      }
    }))
})

describe("models the translation does not cover", () => {
  const build = () => {
    const input = tf.input({ shape: [8, 8, 3] })
    const c1 = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: "same", activation: "relu", name: "c1" }).apply(input) as tf.SymbolicTensor
    const up = tf.layers.upSampling2d({ size: [2, 2], name: "up" }).apply(c1) as tf.SymbolicTensor
    return tf.model({ inputs: input, outputs: tf.layers.globalAveragePooling2d({ name: "gap" }).apply(up) as tf.SymbolicTensor })
  }

  it.scoped("auto falls back to tfjs and logs why; onnxruntime fails naming the layer; a cut before it still translates", () =>
    Effect.gen(function*() {
      const dir = yield* save(build(), path.join(tmp, "upsampling"))
      const plugin = tinyPlugin("tfjs:upsampling", dir, 8, 4)
      const logs: Array<string> = []
      const auto = yield* load(plugin, {}, logs)
      expect(engineOf(auto)).toBe("tfjs")
      expect(logs.join("\n")).toMatch(/tfjs:upsampling: engine tfjs \(TensorFlow\.js \w+\); not translated to ONNX: unsupported layer "up" \(UpSampling2D\)/)
      expect((yield* auto.embedBatch(noise(2 * 8 * 8 * 3), 2)).length).toBe(8)

      const error = yield* Effect.flip(load(plugin, { engine: "onnxruntime" }))
      expect(error.cause).toBeInstanceOf(BackboneError.BackboneError)
      expect(error.cause).toMatchObject({ reason: "LoadFailed", field: "tfjs:upsampling" })
      expect(error.message).toContain('engine "onnxruntime" cannot run')
      expect(error.message).toContain('unsupported layer "up" (UpSampling2D)')

      // Only the layers the embedding needs are translated.
      const cut = yield* load(plugin, { output: "c1", pooling: "global-average" })
      expect(engineOf(cut)).toBe("onnxruntime")
    }))

  it.scoped("a graph model runs on tfjs under auto and is refused under onnxruntime", () =>
    Effect.gen(function*() {
      const dir = writeTinyGraphModel(path.join(tmp, "graph"))
      const plugin = tinyPlugin("tfjs:graph", dir, 8, 4)
      expect(engineOf(yield* load(plugin))).toBe("tfjs")
      const error = yield* Effect.flip(load(plugin, { engine: "onnxruntime" }))
      expect(error.message).toContain("it is a graph model (only layers models are translated)")
    }))
})
