// The heads built on a text tower's zero-shot classifier (zero-shot, Tip-Adapter), on real coloured photos embedded by
// the fixture CLIP model, whose text tower points each colour name where a plain image of that colour lies.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Embedder, LoupeConfig, Matrix, Registry, TextTower } from "@loupe/core"
import type { Head } from "@loupe/core"
import { TransformersBackbone } from "@loupe/backbones"
import { Heads, Search, SearchSpace, TipAdapter, ZeroShot } from "@loupe/trainers"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import { writeColourFolder } from "../../backbones/test/fixtures/colourImages.js"
import { colours, writeHubModel } from "../../backbones/test/fixtures/hubModels.js"
import { correct, throughJson } from "./fixtures/helpers.js"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-zero-shot-"))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))
const config = LoupeConfig.LoupeConfig.layer({ cacheDir: path.join(tmp, "cache") })
const labels = ["red", "green", "blue", "yellow"]

/** The fixture CLIP model's text encoder, and 6 photos per colour embedded by it (labels in `labels` order). */
const setup = Effect.gen(function*() {
  const plugin = yield* TransformersBackbone.make({ id: "transformers:fixture-clip", model: writeHubModel(path.join(tmp, "clip"), "clip") })
  const environment = Layer.mergeAll(Registry.Registry.layer({ backbones: [plugin] }), config)
  const backbone = yield* Registry.loadBackbone(plugin.info.id).pipe(Effect.provide(environment))
  const encoder = yield* TextTower.load(plugin.info.id).pipe(Effect.provide(environment))
  const files = yield* Effect.promise(() => writeColourFolder(path.join(tmp, "photos"), colours, 6))
  const samples = labels.flatMap((label) => files[label]!.map((source) => ({ id: source, source, label })))
  const embedded = yield* Embedder.embedSamples(backbone, samples)
  const y = Int32Array.from(samples, (s) => labels.indexOf(s.label))
  return { encoder, x: embedded.vectors, y }
}).pipe(Effect.provide(config))

const unitRow = (m: Matrix.Matrix, i: number) => {
  const row = Array.from(Matrix.row(m, i))
  const norm = Math.hypot(...row)
  return row.map((v) => v / norm)
}
const dot = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => a.reduce((s, v, i) => s + v * b[i]!, 0)
const softmax = (logits: ReadonlyArray<number>) => {
  const max = Math.max(...logits)
  const e = logits.map((l) => Math.exp(l - max))
  const sum = e.reduce((s, v) => s + v, 0)
  return e.map((v) => v / sum)
}

describe("ZeroShot", () => {
  it.scoped("builds the labels' classifier from the prompt templates: unit rows, one per label", () =>
    Effect.gen(function*() {
      const { encoder } = yield* setup
      expect(ZeroShot.prompt(ZeroShot.templates[0]!, "golden_retriever")).toBe("a photo of a golden retriever.")
      const prior = yield* ZeroShot.classifier(encoder, labels)
      expect([prior.classifier.rows, prior.classifier.cols]).toEqual([4, encoder.embeddingSize])
      expect(prior.logitScale).toBe(100)
      // Every template carries the colour's direction alone: the average is the colour's own text embedding.
      const plain = yield* encoder.embedTexts(labels)
      for (let c = 0; c < 4; c++) {
        expect(Math.hypot(...Matrix.row(prior.classifier, c))).toBeCloseTo(1, 6)
        unitRow(prior.classifier, c).forEach((v, j) => expect(v).toBeCloseTo(unitRow(plain, c)[j]!, 5))
      }
    }))

  it.scoped("answers from label names alone: every coloured photo right, probabilities softmax(100 cos)", () =>
    Effect.gen(function*() {
      const { encoder, x, y } = yield* setup
      const head = yield* ZeroShot.fromEncoder(encoder, labels)
      const proba = head.predictProba(x)
      expect(correct(proba, y)).toBe(y.length)
      const prior = yield* ZeroShot.classifier(encoder, labels)
      for (const i of [0, 7, 23]) {
        const want = softmax(labels.map((_, c) => 100 * dot(unitRow(x, i), unitRow(prior.classifier, c))))
        want.forEach((p, c) => expect(proba.data[i * 4 + c]!).toBeCloseTo(p, 5))
      }
      const loaded = yield* ZeroShot.load(throughJson(head.toJSON()) as Head.SerializedHead)
      expect(loaded.predictProba(x).data).toEqual(proba.data)
    }))

  it.scoped("needs the zero-shot prior, of the data's classes and width, naming data.zeroShot", () =>
    Effect.gen(function*() {
      const { encoder, x, y } = yield* setup
      const set = { x, y, numClasses: 4 }
      for (const head of Heads.zeroShotHeads) {
        const missing = yield* Effect.flip(head.fit(set, yield* Heads.decodeParams(head, {}), 0))
        expect(missing).toMatchObject({ reason: "InvalidData", field: "data.zeroShot" })
        expect(missing.message).toContain("needs the labels' zero-shot classifier")
        const three = yield* ZeroShot.classifier(encoder, labels.slice(0, 3))
        const wrong = yield* Effect.flip(head.fit({ ...set, zeroShot: three }, yield* Heads.decodeParams(head, {}), 0))
        expect(wrong.message).toContain("the zero-shot classifier is 3 x 8; the data has 4 classes of 8-d embeddings")
      }
    }))
})

describe("TipAdapter", () => {
  it.scoped("is the formula: zero-shot logits plus alpha exp(-beta (1 - cos)) per cached sample, and alpha 0 is zero-shot", () =>
    Effect.gen(function*() {
      const { encoder, x, y } = yield* setup
      const zeroShot = yield* ZeroShot.classifier(encoder, labels)
      const train = [0, 1, 6, 7, 12, 13, 18, 19]
      const set = { x: Matrix.takeRows(x, train), y: Int32Array.from(train, (i) => y[i]!), numClasses: 4, zeroShot }
      const head = yield* TipAdapter.fit(set, { alpha: 2, beta: 3 })
      const proba = head.predictProba(x)
      for (const i of [2, 9, 20]) {
        const logits = labels.map((_, c) => 100 * dot(unitRow(x, i), unitRow(zeroShot.classifier, c)))
        train.forEach((r) => (logits[y[r]!]! += 2 * Math.exp(-3 * (1 - dot(unitRow(x, i), unitRow(x, r))))))
        softmax(logits).forEach((p, c) => expect(proba.data[i * 4 + c]!).toBeCloseTo(p, 5))
      }
      const plain = (yield* TipAdapter.fit(set, { alpha: 0 })).predictProba(x)
      const zero = (yield* ZeroShot.fit(set)).predictProba(x)
      plain.data.forEach((p, i) => expect(p).toBeCloseTo(zero.data[i]!, 6))
      const loaded = yield* TipAdapter.load(throughJson(head.toJSON()) as Head.SerializedHead)
      expect(loaded.predictProba(x).data).toEqual(proba.data)
    }))

  it.scoped("learns from its samples when the label names tell the text tower nothing", () =>
    Effect.gen(function*() {
      const { encoder, x, y } = yield* setup
      // Names the fixture's tokenizer does not know: every prompt embeds to zero and the prior says nothing.
      const zeroShot = yield* ZeroShot.classifier(encoder, ["crimson", "lime", "navy", "gold"])
      const train = Array.from(y.keys()).filter((i) => i % 6 < 3)
      const test = Array.from(y.keys()).filter((i) => i % 6 >= 3)
      const set = { x: Matrix.takeRows(x, train), y: Int32Array.from(train, (i) => y[i]!), numClasses: 4, zeroShot }
      const xTest = Matrix.takeRows(x, test)
      const yTest = Int32Array.from(test, (i) => y[i]!)
      expect(correct((yield* ZeroShot.fit(set)).predictProba(xTest), yTest)).toBeLessThan(yTest.length)
      expect(correct((yield* TipAdapter.fit(set, { alpha: 3, beta: 5.5 })).predictProba(xTest), yTest)).toBe(yTest.length)
    }))
})

describe("Search with a text tower", () => {
  it.scoped("cross-validates the zero-shot and Tip-Adapter candidates beside the other heads, under one rule", () =>
    Effect.gen(function*() {
      const { encoder, x, y } = yield* setup
      const zeroShot = yield* ZeroShot.classifier(encoder, labels)
      const result = yield* Search.run(
        { embeddings: new Map([["clip", x]]), y, numClasses: 4, zeroShot: new Map([["clip", zeroShot]]) },
        {
          space: [...SearchSpace.defaultSearchSpace, ...SearchSpace.zeroShotSearchSpace],
          heads: [...Heads.heads, ...Heads.zeroShotHeads],
          strategy: Search.grid(),
          cv: { folds: 3 }
        }
      )
      const kinds = result.leaderboard.map((e) => e.headKind)
      expect(kinds).toContain("zero-shot")
      expect(kinds.filter((k) => k === "tip-adapter")).toHaveLength(6)
      const zero = result.leaderboard.find((e) => e.headKind === "zero-shot")!
      expect(zero.mistakes).toBe(0)
      expect(result.failures).toEqual([])
    }))
})
