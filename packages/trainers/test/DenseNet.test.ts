// The Float64 dense engine under manual mode's heads, and the reference the MLP head's WebAssembly engine is tested
// against: its gradient against central finite differences, with and without dropout (the backward pass skips
// dropped and inactive units, so it must still match the loss it reports).
import { describe, expect, it } from "@effect/vitest"
import * as DenseNet from "../src/internal/DenseNet.js"
import * as Random from "../src/internal/Random.js"
import { denseBatch } from "./fixtures/denseBatch.js"

const dim = 9
const rows = 6
const numClasses = 3
const data = denseBatch(rows, dim, numClasses)

/** Loss and gradients of one batch; the same seed gives the same dropout masks. */
const evaluate = (layers: ReadonlyArray<DenseNet.Layer>, dropout: number) => {
  const grads = DenseNet.parameters(layers).map((p) => new Float64Array(p.length))
  const options = { labelSmoothing: 0.1, dropout, random: Random.make(5) }
  const { loss } = DenseNet.gradient(layers, data.x, data.y, data.w, rows, grads, options)
  return { loss, grads }
}

describe("DenseNet.gradient", () => {
  for (const [dims, dropout] of [[[dim, numClasses], 0], [[dim, 7, numClasses], 0], [[dim, 16, numClasses], 0.5]] as const) {
    it(`matches finite differences: layers ${dims.join(" -> ")}, dropout ${dropout}`, () => {
      const layers = DenseNet.init(dims, Random.make(3))
      const { grads } = evaluate(layers, dropout)
      const h = 1e-6
      let checked = 0
      DenseNet.parameters(layers).forEach((p, k) => {
        for (let j = 0; j < p.length; j++) {
          const saved = p[j]!
          p[j] = saved + h
          const up = evaluate(layers, dropout).loss
          p[j] = saved - h
          const down = evaluate(layers, dropout).loss
          p[j] = saved
          expect(grads[k]![j]!).toBeCloseTo((up - down) / (2 * h), 6)
          if (grads[k]![j]! !== 0) checked++
        }
      })
      expect(checked).toBeGreaterThan(dims[1] * 2)
    })
  }

  it("predicts what the training forward pass computes without dropout", () => {
    const layers = DenseNet.init([dim, 7, numClasses], Random.make(3))
    const proba = DenseNet.forward(layers, data.x, rows)
    const { loss } = evaluate(layers, 0)
    let weighted = 0
    let weight = 0
    for (let i = 0; i < rows; i++) {
      for (let c = 0; c < numClasses; c++) {
        const target = c === data.y[i] ? 1 - 0.1 + 0.1 / numClasses : 0.1 / numClasses
        weighted -= data.w[i]! * target * Math.log(proba[i * numClasses + c]!)
      }
      weight += data.w[i]!
    }
    expect(loss).toBeCloseTo(weighted / weight, 12)
  })
})
