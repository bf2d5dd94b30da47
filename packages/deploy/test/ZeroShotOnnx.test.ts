// The ONNX form of the heads built on a text tower's zero-shot classifier (their `toOnnx`, what the exporter asks
// for): run by onnxruntime, it gives the heads' own probabilities, on real coloured photos embedded by the fixture
// CLIP model.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Embedder, LoupeConfig, Matrix, Registry, TextTower } from "@loupe/core"
import { OnnxGraph } from "@loupe/core/onnx"
import { TransformersBackbone } from "@loupe/backbones"
import { Heads, TipAdapter, ZeroShot } from "@loupe/trainers"
import * as ort from "onnxruntime-node"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import { writeColourFolder } from "../../backbones/test/fixtures/colourImages.js"
import { colours, writeHubModel } from "../../backbones/test/fixtures/hubModels.js"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-zero-shot-onnx-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

describe("zero-shot heads as ONNX", () => {
  it.scoped("the zero-shot and Tip-Adapter graphs give the heads' probabilities within 1e-5", () =>
    Effect.gen(function*() {
      const config = LoupeConfig.LoupeConfig.layer({ cacheDir: path.join(tmp, "cache") })
      const plugin = yield* TransformersBackbone.make({ id: "transformers:clip", model: writeHubModel(path.join(tmp, "clip"), "clip") }).pipe(
        Effect.provide(config)
      )
      const environment = Layer.mergeAll(Registry.Registry.layer({ backbones: [plugin] }), config)
      const backbone = yield* Registry.loadBackbone(plugin.info.id).pipe(Effect.provide(environment))
      const encoder = yield* TextTower.load(plugin.info.id).pipe(Effect.provide(environment))
      const labels = Object.keys(colours)
      const files = yield* Effect.promise(() => writeColourFolder(path.join(tmp, "photos"), colours, 3))
      const samples = labels.flatMap((label) => files[label]!.map((source) => ({ id: source, source, label })))
      const { vectors: x } = yield* Embedder.embedSamples(backbone, samples).pipe(Effect.provide(config))
      const set = { x, y: Int32Array.from(samples, (s) => labels.indexOf(s.label)), numClasses: labels.length, zeroShot: yield* ZeroShot.classifier(encoder, labels) }
      const heads = [yield* ZeroShot.fit(set), yield* TipAdapter.fit(set, { alpha: 3, beta: 2 })]
      expect(heads.map((h) => h.kind)).toEqual(Heads.zeroShotHeads.map((h) => h.kind))
      for (const [i, head] of heads.entries()) {
        const graph = yield* Heads.zeroShotHeads[i]!.toOnnx!(head.toJSON(), { embedding: "embedding", probabilities: "probabilities", dim: x.cols })
        const model = OnnxGraph.model({
          graph: [
            ...graph.nodes,
            ...graph.initializers,
            OnnxGraph.floatValueInfo(OnnxGraph.GRAPH_INPUT, "embedding", ["batch", x.cols]),
            OnnxGraph.floatValueInfo(OnnxGraph.GRAPH_OUTPUT, "probabilities", ["batch", labels.length])
          ],
          graphName: head.kind,
          opset: 13,
          irVersion: 7,
          producer: "loupe-test"
        })
        const session = yield* Effect.promise(() => ort.InferenceSession.create(model))
        const out = yield* Effect.promise(() => session.run({ embedding: new ort.Tensor("float32", x.data, [x.rows, x.cols]) }))
        const want = head.predictProba(x)
        const got = Matrix.make(x.rows, labels.length, out["probabilities"]!.data as Float32Array)
        got.data.forEach((p, k) => expect(Math.abs(p - want.data[k]!)).toBeLessThan(1e-5))
        yield* Effect.promise(() => session.release())
      }
    }))
})
