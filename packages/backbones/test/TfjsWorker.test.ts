/**
 * The TensorFlow.js plugin's tfjs engine runs in a worker thread: the same embeddings as TensorFlow.js on the main
 * thread, the main thread free while a batch runs, the backend chosen (and logged) by the worker, and a worker that
 * fails to load or dies mid-batch turned into a typed error, never a hang.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { vi } from "vitest"
import { Effect, Fiber } from "effect"
import { BackboneError, Catalog, TfjsBackbone } from "@loupe/backbones"
import * as tf from "@tensorflow/tfjs"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { TransferListItem, Worker } from "node:worker_threads"
import { loadPlugin as load, maxAbsDiff, photos, tensorOf } from "./fixtures/helpers.js"
import { modelsDir } from "../../../test/fixtures/shared.mjs"
import { graphEmbedding, graphInputSize, graphModelConfig, writeTinyGraphModel } from "./fixtures/tfjsGraphModel.js"

// Every worker the plugin starts, and the Embed requests posted to it, so that a test can kill one mid-batch.
// @effect/platform posts a request as [0, [id, 0, payload, span]].
const { isEmbedRequest, tracked } = vi.hoisted(() => ({
  tracked: { workers: [] as Array<Worker>, requests: 0 },
  isEmbedRequest: (value: unknown) =>
    Array.isArray(value) && value[0] === 0 && (value[1]?.[2] as { _tag?: string } | undefined)?._tag === "Embed"
}))
vi.mock("node:worker_threads", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:worker_threads")>()
  class TrackedWorker extends actual.Worker {
    constructor(...args: ConstructorParameters<typeof actual.Worker>) {
      super(...args)
      tracked.workers.push(this)
    }
    override postMessage(value: unknown, transferList?: ReadonlyArray<TransferListItem>) {
      if (isEmbedRequest(value)) tracked.requests++
      super.postMessage(value, transferList)
    }
  }
  return { ...actual, Worker: TrackedWorker }
})

const sixteenPhotos = [...photos("cats", 8), ...photos("dogs", 8)]
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-tfjs-worker-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))
const loupeConfig = { modelsDir, cacheDir: tmp, offline: true }

/** The embedding computed here, on the main thread, with TensorFlow.js on wasm: the tfjs engine before the worker. */
const onMainThread = (config: TfjsBackbone.TfjsModelConfig, input: Float32Array, count: number) =>
  Effect.gen(function*() {
    const { model } = yield* TfjsBackbone.loadLayersModel(config, loupeConfig, "wasm")
    const { size } = config.preprocess
    const net = config.output === undefined
      ? model
      : tf.model({ inputs: model.inputs, outputs: model.getLayer(config.output).output as tf.SymbolicTensor })
    return tf.tidy(() => {
      const y = net.predict(tf.tensor4d(input, [count, size, size, 3])) as tf.Tensor
      const pooled = config.pooling === "global-average" ? y.mean([1, 2]) : y
      return new Float32Array(pooled.reshape([count, -1]).dataSync())
    })
  })

describe("the tfjs engine in a worker thread", () => {
  for (const config of [Catalog.tmMobilenetV2035, Catalog.darknetTiny]) {
    it.scoped(`${config.id}: the same embeddings as TensorFlow.js on the main thread, 16 photos in one batch`, () =>
      Effect.gen(function*() {
        const logs: Array<string> = []
        const backbone = yield* load(TfjsBackbone.plugin(config), { engine: "tfjs", backend: "wasm" }, logs)
        expect((backbone.info as TfjsBackbone.TfjsLoadedInfo).engine).toBe("tfjs")
        expect(logs).toContain(`${config.id}: engine tfjs (TensorFlow.js wasm)`)
        const input = yield* tensorOf(sixteenPhotos, backbone.info.preprocess)
        const copy = input.slice()
        const inWorker = yield* backbone.embedBatch(input, 16)
        // The caller's batch is copied to the worker, never taken from it (detached or changed).
        expect(input.length).toBe(copy.length)
        expect(maxAbsDiff(input, copy)).toBe(0)
        const expected = yield* onMainThread(config, input, 16)
        expect(inWorker.length).toBe(16 * config.embeddingSize)
        expect(maxAbsDiff(inWorker, expected)).toBeLessThan(1e-6)
      }))
  }

  it.scoped("the main thread stays free while a batch of 16 runs: a timer fires during the embed call", () =>
    Effect.gen(function*() {
      const backbone = yield* load(TfjsBackbone.plugin(Catalog.darknetTiny), { engine: "tfjs" })
      const input = yield* tensorOf(sixteenPhotos, backbone.info.preprocess)
      let ticks = 0
      const timer = yield* Effect.acquireRelease(
        Effect.sync(() => setInterval(() => ticks++, 1)),
        (t) => Effect.sync(() => clearInterval(t))
      )
      const before = ticks
      const vectors = yield* backbone.embedBatch(input, 16)
      const during = ticks - before
      clearInterval(timer)
      expect(vectors.length).toBe(16 * 128)
      expect(during).toBeGreaterThan(0)
    }))

  it.scoped("a graph model runs in the worker, on the backend the options name, and the worker logs its choice", () =>
    Effect.gen(function*() {
      const plugin = TfjsBackbone.plugin(graphModelConfig("tfjs:tiny-graph", writeTinyGraphModel(path.join(tmp, "graph"))))
      const input = Float32Array.from({ length: 2 * graphInputSize * graphInputSize * 3 }, (_, i) => ((i * 31) % 17) / 17)
      const expected = graphEmbedding(input, 2)
      for (const backend of ["auto", "cpu"] as const) {
        const logs: Array<string> = []
        const backbone = yield* load(plugin, { engine: "tfjs", backend }, logs)
        const chosen = backend === "auto" ? "wasm" : "cpu"
        expect(logs).toContain(`tfjs:tiny-graph: engine tfjs (TensorFlow.js ${chosen})`)
        // tfjs-node cannot load its native binary here, so auto skips it and says why.
        expect(logs.join("\n")).toMatch(backend === "auto" ? /TensorFlow\.js backend: wasm \(skipped tensorflow: / : /TensorFlow\.js backend: cpu$/m)
        expect(maxAbsDiff(yield* backbone.embedBatch(input, 2), expected)).toBeLessThan(1e-5)
      }
    }))
})

describe("errors in the tfjs worker", () => {
  it.scoped("truncated weights fail the load with LoadFailed naming model.json", () =>
    Effect.gen(function*() {
      const from = path.join(modelsDir, "tm-mobilenetv2-0.35-tfjs")
      const dir = path.join(tmp, "truncated")
      fs.mkdirSync(dir)
      fs.copyFileSync(path.join(from, "model.json"), path.join(dir, "model.json"))
      const weights = fs.readFileSync(path.join(from, "weights.bin"))
      fs.writeFileSync(path.join(dir, "weights.bin"), weights.subarray(0, weights.length >> 1))
      const plugin = TfjsBackbone.plugin({ ...Catalog.tmMobilenetV2035, id: "tfjs:truncated", weights: { _tag: "Path", path: dir } })
      const error = (yield* Effect.flip(load(plugin, { engine: "tfjs" }))).cause
      expect(error).toBeInstanceOf(BackboneError.BackboneError)
      expect(error).toMatchObject({ reason: "LoadFailed", field: "tfjs:truncated", file: path.join(dir, "model.json") })
      expect((error as BackboneError.BackboneError).message).toMatch(/^Cannot load .*truncated\/model\.json: /)
    }))

  it.scoped("no backend that starts is a LoadFailed naming the backend and each reason", () =>
    Effect.gen(function*() {
      const error = (yield* Effect.flip(load(TfjsBackbone.plugin(Catalog.darknetTiny), { engine: "tfjs", backend: "tensorflow" }))).cause
      expect(error).toBeInstanceOf(BackboneError.BackboneError)
      expect(error).toMatchObject({ reason: "LoadFailed", field: "backend" })
      expect((error as BackboneError.BackboneError).message).toMatch(/^No TensorFlow\.js backend could start: tensorflow: /)
    }))

  it.scoped("an error inside the worker during a batch is InferenceFailed naming model.json", () =>
    Effect.gen(function*() {
      const dir = writeTinyGraphModel(path.join(tmp, "graph-two-outputs"), { secondOutput: true })
      const plugin = TfjsBackbone.plugin(graphModelConfig("tfjs:two-outputs", dir))
      const error = (yield* Effect.flip(load(plugin))).cause
      expect(error).toBeInstanceOf(BackboneError.BackboneError)
      expect(error).toMatchObject({ reason: "InferenceFailed", field: "tfjs:two-outputs", file: path.join(dir, "model.json") })
      expect((error as BackboneError.BackboneError).message).toContain("the model has 2 outputs (Identity, aux)")
    }))

  it.scoped("a worker that dies mid-batch fails that batch and every later one with InferenceFailed, and closes", () =>
    Effect.gen(function*() {
      const backbone = yield* load(TfjsBackbone.plugin(Catalog.darknetTiny), { engine: "tfjs" })
      const worker = tracked.workers.at(-1)!
      const input = yield* tensorOf(sixteenPhotos, backbone.info.preprocess)
      const requested = tracked.requests
      const batch = yield* Effect.fork(backbone.embedBatch(input, 16))
      yield* Effect.promise(() => vi.waitFor(() => expect(tracked.requests).toBe(requested + 1)))
      yield* Effect.promise(() => worker.terminate())
      const error = yield* Effect.flip(Fiber.join(batch))
      const file = path.join(modelsDir, "darknet-tiny-tfjs", "model.json")
      expect(error).toBeInstanceOf(BackboneError.BackboneError)
      expect(error).toMatchObject({ reason: "InferenceFailed", field: "tfjs:darknet-tiny", file })
      expect(error.message).toMatch(/the TensorFlow\.js worker exited with code 1/)
      const later = yield* Effect.flip(backbone.embedBatch(input.subarray(0, 224 * 224 * 3), 1))
      expect(later).toMatchObject({ reason: "InferenceFailed", file })
    }))
})
