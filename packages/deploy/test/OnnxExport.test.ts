import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Pipeline, Preprocess, Registry } from "@loupe/core"
import type { Head } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { DeployError, OnnxExport, Predictor } from "@loupe/deploy"
import { LogisticRegression } from "@loupe/trainers"
import * as ort from "onnxruntime-node"
import * as fs from "node:fs"
import * as path from "node:path"
import { catsVsDogs, environment, fitBundle, flowers, photos, tempDir } from "./fixtures/shared.js"

describe("OnnxExport", () => {
  const work = tempDir("onnx")
  const bundle = path.join(work, "bundle")
  const out = path.join(work, "onnx")
  const images = [...photos("test", "cats", 6), ...photos("test", "dogs", 6)]

  it.effect("writes one graph whose probabilities equal the predictor's within 1e-4 on real photos", () =>
    Effect.gen(function*() {
      yield* fitBundle(bundle)
      const manifest = yield* OnnxExport.exportBundle(bundle, out, { verifyImages: images.slice(0, 4) })
      expect(manifest.labels).toEqual(["cats", "dogs"])
      expect(manifest.input).toMatchObject({ name: "input", shape: ["batch", 3, 224, 224] })
      expect(manifest.outputs.probabilities).toEqual({ name: "probabilities", shape: ["batch", 2] })
      expect(manifest.verification.maxAbsDiff).toBeLessThanOrEqual(1e-4)
      expect(JSON.parse(fs.readFileSync(path.join(out, "model.json"), "utf8"))).toEqual(manifest)

      // Any runtime: a fresh onnxruntime session on the file alone, fed with the documented preprocessing.
      const session = yield* Effect.promise(() => ort.InferenceSession.create(path.join(out, "model.onnx")))
      expect(session.inputNames).toEqual(["input"])
      expect([...session.outputNames].sort()).toEqual(["embedding", "probabilities"])
      const spec = manifest.input.preprocess
      const rgb = yield* Effect.forEach(images, (f) => Preprocess.loadRgb(f, spec))
      const tensor = new ort.Tensor("float32", Preprocess.toTensor(rgb, spec), [images.length, 3, 224, 224])
      const result = yield* Effect.promise(() => session.run({ input: tensor }))
      const proba = result["probabilities"]!.data as Float32Array
      expect(result["embedding"]!.dims).toEqual([images.length, 1280])

      const predictor = yield* Predictor.load(bundle)
      const predictions = yield* Effect.forEach(images, (f) => predictor.predict(new Uint8Array(fs.readFileSync(f))), {
        concurrency: 4
      })
      let maxDiff = 0
      predictions.forEach((p, i) => {
        for (const { confidence, labelName } of p.labelConfidences) {
          const k = manifest.labels.indexOf(labelName)
          maxDiff = Math.max(maxDiff, Math.abs(proba[i * 2 + k]! - confidence))
        }
        const k = proba[i * 2]! >= proba[i * 2 + 1]! ? 0 : 1
        expect(manifest.labels[k]).toBe(p.labelName)
      })
      expect(maxDiff).toBeLessThanOrEqual(1e-4)
      yield* Effect.promise(() => session.release())
    }).pipe(Effect.scoped, Effect.provide(environment)))

  it.effect("a model trained with mirror images exports the flip and the mean, and any runtime gets the predictor's answers", () =>
    Effect.gen(function*() {
      const mirrorBundle = path.join(work, "mirror-bundle")
      const mirrorOut = path.join(work, "mirror-onnx")
      yield* fitBundle(mirrorBundle, 12, { mirror: true })
      const manifest = yield* OnnxExport.exportBundle(mirrorBundle, mirrorOut, { verifyImages: images.slice(0, 4) })
      expect(manifest.mirror).toBe(true)
      expect(manifest.input).toMatchObject({ name: "image", shape: ["batch", 3, 224, 224] })
      expect(manifest.outputs.embedding).toEqual({ name: "image_embedding", shape: ["batch", 1280] })
      expect(manifest.verification.maxAbsDiff).toBeLessThanOrEqual(1e-4)

      const session = yield* Effect.promise(() => ort.InferenceSession.create(path.join(mirrorOut, "model.onnx")))
      expect(session.inputNames).toEqual(["image"])
      const spec = manifest.input.preprocess
      const rgb = yield* Effect.forEach(images, (f) => Preprocess.loadRgb(f, spec))
      const tensor = new ort.Tensor("float32", Preprocess.toTensor(rgb, spec), [images.length, 3, 224, 224])
      const result = yield* Effect.promise(() => session.run({ image: tensor }))
      const proba = result["probabilities"]!.data as Float32Array
      expect(result["probabilities"]!.dims).toEqual([images.length, 2])

      // The embedding output is each image's own: the same as the plain export's.
      const plain = yield* Effect.promise(() => ort.InferenceSession.create(path.join(out, "model.onnx")))
      const plainResult = yield* Effect.promise(() => plain.run({ input: tensor }))
      const a = result["image_embedding"]!.data as Float32Array
      const b = plainResult["embedding"]!.data as Float32Array
      expect(a.length).toBe(b.length)
      expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeLessThanOrEqual(1e-5)

      const predictor = yield* Predictor.load(mirrorBundle)
      expect(predictor.fitted.mirror).toBe(true)
      const predictions = yield* Effect.forEach(images, (f) => predictor.predict(new Uint8Array(fs.readFileSync(f))), {
        concurrency: 4
      })
      let maxDiff = 0
      predictions.forEach((p, i) => {
        for (const { confidence, labelName } of p.labelConfidences) {
          maxDiff = Math.max(maxDiff, Math.abs(proba[i * 2 + manifest.labels.indexOf(labelName)]! - confidence))
        }
      })
      expect(maxDiff).toBeLessThanOrEqual(1e-4)
      yield* Effect.promise(() => Promise.all([session.release(), plain.release()]))
    }).pipe(Effect.scoped, Effect.provide(environment)))

  it.effect("verifies on synthetic inputs when no images are given", () =>
    Effect.gen(function*() {
      const manifest = yield* OnnxExport.exportBundle(bundle, path.join(work, "onnx-synthetic"))
      expect(manifest.verification.inputs).toBe(4)
      expect(manifest.verification.maxAbsDiff).toBeLessThanOrEqual(1e-4)
    }).pipe(Effect.scoped, Effect.provide(environment)))

  it.effect("exports the linear SVM, nearest-prototype, MLP and manual linear heads, and five classes, within 1e-4", () =>
    Effect.gen(function*() {
      const cases = [
        ["linear-svm", catsVsDogs],
        ["linear-svm", flowers],
        ["nearest-prototype", flowers],
        ["logistic-regression", flowers],
        ["mlp", flowers],
        ["linear", catsVsDogs]
      ] as const
      for (const [head, dataset] of cases) {
        const labels = fs.readdirSync(path.join(dataset, "train")).sort()
        const samples = labels.flatMap((label) => photos("train", label, 5, dataset).map((source) => ({ id: source, source, label })))
        const { fitted } = yield* Pipeline.fit({ backbone: "onnx:mobilenetv2-int8", head: { kind: head } }, { labels, samples })
        const verifyImages = labels.map((label) => photos("test", label, 1, dataset)[0]!)
        const { manifest } = yield* OnnxExport.build(fitted, { verifyImages })
        expect(manifest.head.kind).toBe(head)
        expect(manifest.labels).toEqual(labels)
        expect(manifest.verification.inputs).toBe(labels.length)
        expect(manifest.verification.maxAbsDiff).toBeLessThanOrEqual(1e-4)
      }
    }).pipe(Effect.scoped, Effect.provide(environment)))

  it.effect("refuses backbones and heads without an ONNX form, naming them, before loading anything", () =>
    Effect.gen(function*() {
      const tfjs = yield* Effect.flip(OnnxExport.exportable("tfjs:darknet-tiny", "logistic-regression"))
      expect(tfjs.reason).toBe("NotExportable")
      expect(tfjs.field).toBe("backbone.id")
      expect(tfjs.message).toMatch(/tfjs:darknet-tiny runs on tfjs, not onnxruntime/)
      const knn = yield* Effect.flip(OnnxExport.exportable("onnx:mobilenetv2-int8", "knn"))
      expect(knn.field).toBe("head.kind")
      expect(knn.message).toMatch(/The knn head has no ONNX form; exportable heads: logistic-regression, linear-svm, nearest-prototype, mlp, zero-shot, tip-adapter, linear\./)
      const unknown = yield* Effect.flip(OnnxExport.exportable("onnx:nope", "logistic-regression"))
      expect(unknown.reason).toBe("BundleFailed")
    }).pipe(Effect.provide(environment)))

  it.effect("asks the head plugin for its ONNX form: a head without the toOnnx capability is NotExportable, named", () =>
    Effect.gen(function*() {
      const custom: Head.HeadPlugin = {
        kind: "my-head",
        paramsSchema: Schema.Struct({}),
        fit: () => Effect.die("not fitted here"),
        load: () => Effect.die("not loaded here")
      }
      const registry = Registry.Registry.layer({ backbones: Catalog.builtins, heads: [LogisticRegression.plugin, custom] })
      const error = yield* Effect.flip(OnnxExport.exportable("onnx:mobilenetv2-int8", "my-head")).pipe(Effect.provide(registry))
      expect(error).toBeInstanceOf(DeployError.DeployError)
      expect(error).toMatchObject({ reason: "NotExportable", field: "head.kind" })
      expect(error.message).toMatch(/^The my-head head has no ONNX form; exportable heads: logistic-regression\./)
      const { exporter } = yield* OnnxExport.exportable("onnx:mobilenetv2-int8", "logistic-regression").pipe(Effect.provide(registry))
      // The head's own capability, with its own checks: a head fitted on other embeddings does not export.
      const { fitted } = yield* Pipeline.fit(
        { backbone: "onnx:mobilenetv2-int8", head: { kind: "logistic-regression" } },
        { labels: ["cats", "dogs"], samples: ["cats", "dogs"].flatMap((label) => photos("train", label, 3).map((source) => ({ id: source, source, label }))) }
      ).pipe(Effect.provide(environment))
      const graph = yield* exporter(fitted.head.toJSON(), { embedding: "e", probabilities: "p", dim: fitted.head.dim })
      expect(graph.nodes.length).toBeGreaterThan(0)
      const wrong = yield* Effect.flip(exporter(fitted.head.toJSON(), { embedding: "e", probabilities: "p", dim: 7 }))
      expect(wrong).toMatchObject({ reason: "BundleFailed", field: "head.dim" })
    }).pipe(Effect.scoped))
})
