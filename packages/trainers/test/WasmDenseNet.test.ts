// The MLP head's float32 WebAssembly network against DenseNet's Float64 one on the same weights and the same dropout
// draws: loss, gradient, probabilities and Adam's step agree to float32 precision, at widths that are not multiples
// of 4 and batches of one row or of rows in any order.
import { describe, expect, it } from "@effect/vitest"
import * as Optimizer from "../src/Optimizer.js"
import * as DenseNet from "../src/internal/DenseNet.js"
import * as Random from "../src/internal/Random.js"
import { denseBatch } from "./fixtures/denseBatch.js"
import * as WasmDenseNet from "../src/internal/WasmDenseNet.js"

const dim = 9
const rows = 12
const numClasses = 3
const adam = { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8 } as const
const data = denseBatch(rows, dim, numClasses)

/** Layers whose values are float32 numbers, so both engines start from the same weights. */
const layersOf = (dims: ReadonlyArray<number>) =>
  DenseNet.init(dims, Random.make(3)).map((l) => ({ ...l, weights: l.weights.map(Math.fround), bias: l.bias.map(Math.fround) }))

const gather = (batch: Int32Array) => ({
  x: Float64Array.from({ length: batch.length * dim }, (_, k) => data.x[batch[Math.floor(k / dim)]! * dim + (k % dim)]!),
  y: Int32Array.from(batch, (r) => data.y[r]!),
  w: Float64Array.from(batch, (r) => data.w[r]!)
})

const expectClose = (actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5) => {
  expect(actual.length).toBe(expected.length)
  for (let k = 0; k < expected.length; k++) expect(Math.abs(actual[k]! - expected[k]!)).toBeLessThanOrEqual(tolerance * (1 + Math.abs(expected[k]!)))
}

const net = (layers: ReadonlyArray<DenseNet.Layer>) => WasmDenseNet.make(layers, data.x, 8)

describe("WasmDenseNet", () => {
  const batches = [Int32Array.of(4), Int32Array.of(7, 0, 3, 11, 5), Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8)]
  const cases = [[[dim, numClasses], 0, 0], [[dim, 7, numClasses], 0, 0.1], [[dim, 16, numClasses], 0.5, 0], [[dim, 6, 5, numClasses], 0.3, 0.1]] as const
  for (const [dims, dropout, labelSmoothing] of cases) {
    it(`matches DenseNet.gradient: layers ${dims.join(" -> ")}, dropout ${dropout}, label smoothing ${labelSmoothing}`, () => {
      const layers = layersOf(dims)
      const wasm = net(layers)
      // Two generators with the same seed: both engines draw the same dropout masks.
      const [mine, theirs] = [Random.make(5), Random.make(5)]
      for (const batch of batches) {
        const loss = wasm.gradient(batch, data.y, data.w, { labelSmoothing, dropout, random: mine })
        const grads = DenseNet.parameters(layers).map((p) => new Float64Array(p.length))
        const b = gather(batch)
        const expected = DenseNet.gradient(layers, b.x, b.y, b.w, batch.length, grads, { labelSmoothing, dropout, random: theirs })
        expect(loss).toBeCloseTo(expected.loss, 5)
        expectClose(DenseNet.parameters(wasm.gradients()).flatMap((p) => [...p]), grads.flatMap((p) => [...p]))
      }
    })
  }

  it("predicts what DenseNet.forward gives, in chunks of the batch size", () => {
    const layers = layersOf([dim, 7, numClasses])
    const all = Int32Array.from({ length: rows }, (_, i) => rows - 1 - i)
    expectClose(net(layers).proba(all), DenseNet.forward(layers, gather(all).x, rows))
  })

  it("forward matches DenseNet.forward across its chunks of 1,024 rows", () => {
    const layers = layersOf([dim, 7, numClasses])
    const many = denseBatch(2100, dim, numClasses).x
    expectClose(WasmDenseNet.forward(layers, many, 2100), DenseNet.forward(layers, many, 2100))
  })

  it("steps as Optimizer's Adam does, and reads back its layers", () => {
    const layers = layersOf([dim, 7, numClasses])
    const wasm = net(layers)
    const weights = DenseNet.parameters(layers)
    const stepper = Optimizer.make(adam, weights.map((p) => p.length))
    const grads = weights.map((p) => new Float64Array(p.length))
    expect(wasm.layers()).toEqual(layers)
    for (const batch of batches) {
      wasm.gradient(batch, data.y, data.w, { labelSmoothing: 0, dropout: 0, random: Random.make(0) })
      wasm.update(adam, 1e-2, 1e-3)
      const b = gather(batch)
      DenseNet.gradient(layers, b.x, b.y, b.w, batch.length, grads, { labelSmoothing: 0, dropout: 0, random: Random.make(0) })
      stepper.step(weights, grads, 1e-2, 1e-3)
    }
    expectClose(DenseNet.parameters(wasm.layers()).flatMap((p) => [...p]), weights.flatMap((p) => [...p]), 1e-4)
  })
})
