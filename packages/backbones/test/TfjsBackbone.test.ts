import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Embedder } from "@loupe/core"
import { BackboneError, Catalog, TfjsBackbone } from "@loupe/backbones"
import * as tf from "@tensorflow/tfjs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { captureLogs, loadPlugin as load, maxAbsDiff, photos, tensorOf } from "./fixtures/helpers.js"
import { modelsDir } from "../../../test/fixtures/shared.mjs"
import * as TfjsBackends from "../src/internal/tfjsBackends.js"
import { graphChannels, graphEmbedding, graphInputSize, graphModelConfig, writeTinyGraphModel } from "./fixtures/tfjsGraphModel.js"

const threePhotos = [...photos("cats", 2), ...photos("dogs", 1)]
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-tfjs-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

describe("TfjsBackends.selectBackend", () => {
  const unavailable = (name: string): TfjsBackends.BackendCandidate => ({
    name,
    prepare: () => Promise.reject(new Error(`${name} is not installed`))
  })

  it.effect("falls back from a missing tfjs-node to wasm and logs the choice with the reason", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const chosen = yield* TfjsBackends.selectBackend([unavailable("tensorflow"), TfjsBackends.wasmBackend]).pipe(
        Effect.provide(captureLogs(logs))
      )
      expect(chosen).toBe("wasm")
      expect(tf.getBackend()).toBe("wasm")
      expect(logs.join("\n")).toMatch(/TensorFlow\.js backend: wasm \(skipped tensorflow: tensorflow is not installed\)/)
    }))

  it.effect("auto on this machine: tfjs-node cannot load its native binary here, so wasm starts offline", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const chosen = yield* TfjsBackends.selectBackend().pipe(Effect.provide(captureLogs(logs)))
      expect(chosen).toBe("wasm")
      expect(logs.join("\n")).toMatch(/skipped tensorflow: /)
    }))

  it.effect("falls back to cpu when wasm fails too, and fails with every reason when nothing starts", () =>
    Effect.gen(function*() {
      expect(yield* TfjsBackends.selectBackend([unavailable("tensorflow"), unavailable("wasm"), TfjsBackends.cpuBackend])).toBe("cpu")
      const error = yield* Effect.flip(TfjsBackends.selectBackend([unavailable("tensorflow"), unavailable("wasm")]))
      expect(error).toBeInstanceOf(BackboneError.BackboneError)
      expect(error.message).toContain("tensorflow: tensorflow is not installed; wasm: wasm is not installed")
      // Leave the process on wasm for the tests below.
      expect(yield* TfjsBackends.selectBackend([TfjsBackends.wasmBackend])).toBe("wasm")
    }))
})

describe("tfjs:mobilenetv2-0.35", () => {
  const plugin = TfjsBackbone.plugin(Catalog.tmMobilenetV2035)

  it.scoped("embeds real photos into finite 1280-d vectors, deterministically, batch-invariantly, no tensors left here", () =>
    Effect.gen(function*() {
      const backbone = yield* load(plugin)
      expect(backbone.weightsHash).toMatch(/^[0-9a-f]{64}$/)
      const input = yield* tensorOf(threePhotos, backbone.info.preprocess)
      const tensorsBefore = tf.memory().numTensors
      const batch = yield* backbone.embedBatch(input, 3)
      expect(batch.length).toBe(3 * 1280)
      expect(batch.every(Number.isFinite)).toBe(true)
      expect(tf.memory().numTensors).toBe(tensorsBefore)
      expect(yield* backbone.embedBatch(input, 3)).toEqual(batch)
      const per = 224 * 224 * 3
      for (let i = 0; i < 3; i++) {
        const alone = yield* backbone.embedBatch(input.slice(i * per, (i + 1) * per), 1)
        expect(maxAbsDiff(alone, batch.slice(i * 1280, (i + 1) * 1280))).toBeLessThan(1e-4)
      }
      // Different photos give different vectors, and the (ReLU6) features are non-negative.
      expect(maxAbsDiff(batch.slice(0, 1280), batch.slice(1280, 2560))).toBeGreaterThan(0.1)
      expect(Math.min(...batch)).toBeGreaterThanOrEqual(0)
      expect(tf.memory().numTensors).toBe(tensorsBefore)
    }))

  it.scoped("runs through the Embedder, and a wrong-length batch is a typed InvalidInput error", () =>
    Effect.gen(function*() {
      const backbone = yield* load(plugin)
      const result = yield* Embedder.embedSamples(backbone, threePhotos.map((f, i) => ({ id: String(i), source: f })), { batchSize: 2 })
      expect(result.vectors.rows).toBe(3)
      expect(result.vectors.cols).toBe(1280)
      const error = yield* Effect.flip(backbone.embedBatch(new Float32Array(100), 1))
      expect(error).toBeInstanceOf(BackboneError.BackboneError)
      expect(error).toMatchObject({ _tag: "BackboneError", reason: "InvalidInput", field: "tfjs:mobilenetv2-0.35" })
    }))
})

describe("tfjs:darknet-tiny", () => {
  // After four 2x2 max-pools a 224 input leaves a 14 x 14 map (the model's README says 7 x 7; the layer says 14).
  it.scoped("its 128-d embedding is the mean over H, W of layer leaky_re_lu_15 (a 14 x 14 x 128 map)", () =>
    Effect.gen(function*() {
      const pooled = yield* load(TfjsBackbone.plugin(Catalog.darknetTiny))
      const raw = yield* load(TfjsBackbone.plugin({
        ...Catalog.darknetTiny,
        id: "tfjs:darknet-tiny-raw",
        pooling: "none",
        embeddingSize: 14 * 14 * 128
      }))
      expect(raw.weightsHash).not.toBe(pooled.weightsHash)
      const input = yield* tensorOf(threePhotos.slice(1), pooled.info.preprocess)
      const vectors = yield* pooled.embedBatch(input, 2)
      const maps = yield* raw.embedBatch(input, 2)
      expect(vectors.length).toBe(2 * 128)
      expect(vectors.every(Number.isFinite)).toBe(true)
      const manual = new Float32Array(2 * 128)
      for (let n = 0; n < 2; n++) {
        for (let p = 0; p < 196; p++) {
          for (let c = 0; c < 128; c++) manual[n * 128 + c]! += maps[n * 196 * 128 + p * 128 + c]! / 196
        }
      }
      expect(maxAbsDiff(vectors, manual)).toBeLessThan(1e-4)
      expect(Math.max(...vectors)).toBeGreaterThan(0)
    }))

  it.scoped("names a missing layer and a wrong embedding size", () =>
    Effect.gen(function*() {
      const noLayer = yield* Effect.flip(load(TfjsBackbone.plugin({ ...Catalog.darknetTiny, output: "no_such_layer" })))
      expect(noLayer.message).toMatch(/has no layer "no_such_layer" \(layers: .*leaky_re_lu_15/)
      const wrongSize = yield* Effect.flip(load(TfjsBackbone.plugin({ ...Catalog.darknetTiny, embeddingSize: 64 })))
      expect(wrongSize.message).toContain("gives 128 values per image from leaky_re_lu_15 (global-average pooled); the config says 64")
    }))
})

describe("tfjs options and whole layers models", () => {
  it.scoped("output and pooling options override the catalog entry, and the embedding size follows", () =>
    Effect.gen(function*() {
      const backbone = yield* load(TfjsBackbone.plugin(Catalog.darknetTiny), { output: "leaky_re_lu_14", pooling: "global-average" })
      expect(backbone.info.embeddingSize).toBe(512)
      const input = yield* tensorOf(threePhotos.slice(0, 1), backbone.info.preprocess)
      expect((yield* backbone.embedBatch(input, 1)).length).toBe(512)
    }))

  it.scoped("loadLayersModel gives the whole layers model, and refuses a graph model", () =>
    Effect.gen(function*() {
      const { model } = yield* TfjsBackbone.loadLayersModel(Catalog.darknetTiny, { modelsDir, cacheDir: os.tmpdir(), offline: true })
      expect(model.getLayer("leaky_re_lu_15").outputShape).toEqual([null, 14, 14, 128])
      const graph = writeTinyGraphModel(path.join(tmp, "graph-for-layers"))
      const error = yield* Effect.flip(TfjsBackbone.loadLayersModel(
        { ...Catalog.darknetTiny, weights: { _tag: "Path", path: graph } },
        { modelsDir, cacheDir: os.tmpdir(), offline: true }
      ))
      expect(error.message).toContain("is a graph model; only layers models have layers to train")
    }))
})

describe("tfjs graph models", () => {
  const dir = writeTinyGraphModel(path.join(tmp, "graph"))
  const base = graphModelConfig("tfjs:tiny-graph", dir)
  const spec = base.preprocess
  const input = Float32Array.from({ length: 3 * graphInputSize * graphInputSize * 3 }, (_, i) => ((i * 7919) % 101) / 101)
  const expected = graphEmbedding(input, 3)

  it.scoped("embeds with the model output, or a named node with global-average pooling, matching tf ops", () =>
    Effect.gen(function*() {
      const output = yield* load(TfjsBackbone.plugin(base))
      expect(maxAbsDiff(yield* output.embedBatch(input, 3), expected)).toBeLessThan(1e-5)
      const node = yield* load(TfjsBackbone.plugin({ ...base, id: "tfjs:tiny-graph-node", output: "features", pooling: "global-average" }))
      expect(maxAbsDiff(yield* node.embedBatch(input, 3), expected)).toBeLessThan(1e-5)
      const rawNode = yield* load(TfjsBackbone.plugin({ ...base, id: "tfjs:tiny-graph-raw", output: "features", embeddingSize: 4 * 4 * graphChannels }))
      expect((yield* rawNode.embedBatch(input, 3)).length).toBe(3 * 64)
    }))

  it.scoped("rejects a model whose input does not match the preprocessing, and an unnamed output among several", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(load(TfjsBackbone.plugin({ ...base, preprocess: { ...spec, size: 16 } })))
      expect(error.message).toMatch(/takes inputs \[\[-1,8,8,3\]\]; tfjs:tiny-graph is configured for one NHWC input of 16x16x3/)
      const twoOutputs = writeTinyGraphModel(path.join(tmp, "graph-two-outputs"), { secondOutput: true })
      const weights = { _tag: "Path", path: twoOutputs } as const
      const unnamed = yield* Effect.flip(load(TfjsBackbone.plugin({ ...base, weights })))
      expect(unnamed.message).toContain("the model has 2 outputs (Identity, aux); name the embedding with `output`")
      const named = yield* load(TfjsBackbone.plugin({ ...base, weights, output: "Identity" }))
      expect(maxAbsDiff(yield* named.embedBatch(input, 3), expected)).toBeLessThan(1e-5)
    }))
})
