// Each float32 SIMD kernel of the MLP engine against a plain Float64 reference written here: the forward pass's
// gathered affine products (affineAt, reluAt with dropout's scale), the backward pass's weighted row sums (addRows)
// and its way back through ReLU and dropout (maskScale), and the updates (adam for Adam and AdamW, sgd with and
// without momentum or Nesterov's, against torch.optim's rules over three steps). Random normal
// inputs, on counts that are not multiples of the kernels' blocks (1, 3, 5, 7 ... rows) and rows of logical widths
// that are not multiples of 4 (padded with zeros, the kernels' contract). Tolerance: |actual - expected| <=
// 1e-5 * (1 + |expected|), float32 rounding over sums of up to 130 terms.
import { describe, expect, it } from "@effect/vitest"
import * as Random from "../src/internal/Random.js"
import * as WasmSimd from "../src/internal/WasmSimd.js"

const { padded } = WasmSimd

/** `rows x width` values, zero in the columns from `inputs` on. */
const fill = (values: Float32Array, rows: number, inputs: number, random: Random.Random) => {
  const width = padded(inputs)
  for (let i = 0; i < rows; i++) for (let k = 0; k < inputs; k++) values[i * width + k] = random.normal()
}

const expectClose = (actual: ArrayLike<number>, expected: ArrayLike<number>) => {
  expect(actual.length).toBe(expected.length)
  for (let k = 0; k < expected.length; k++) expect(Math.abs(actual[k]! - expected[k]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(expected[k]!)))
}

describe("WasmSimd", () => {
  // Addresses are unsigned: a row that starts below 2 GiB and ends above it (a fit of a few hundred thousand rows) must
  // not stop early, as a signed comparison of its pointers would.
  it("affineAt on a row that crosses the 2 GiB address", () => {
    const random = Random.make(7)
    const inputs = 130
    const width = padded(inputs)
    const plan = WasmSimd.layout()
    const [w, bias, units] = [width, 1, 1].map((n) => plan.block(n)) as Array<WasmSimd.Block>
    plan.block(2 ** 29 - 16 - plan.bytes() / 4) // untouched filler up to 64 bytes below 2 GiB
    const x = plan.block(width)
    const out = plan.block(1)
    expect(x.address).toBeLessThan(2 ** 31)
    expect(x.address + 4 * width).toBeGreaterThan(2 ** 31)
    const simd = WasmSimd.instantiate(plan)
    fill(simd.floats(w!), 1, inputs, random)
    fill(simd.floats(x), 1, inputs, random)
    simd.floats(bias!)[0] = 0.5
    simd.kernels.affineAt(w!.address, bias!.address, width, units!.address, 1, x.address, out.address)
    const [W, xs] = [simd.floats(w!), simd.floats(x)]
    let expected = 0.5
    for (let k = 0; k < width; k++) expected += W[k]! * xs[k]!
    expectClose(simd.floats(out), [expected])
  })

  for (const inputs of [1, 4, 9, 13, 130]) {
    for (const count of [0, 1, 3, 4, 5, 7, 9]) {
      for (const relu of [false, true]) {
        it(`${relu ? "reluAt" : "affineAt"}: ${count} of 11 rows, ${inputs} inputs`, () => {
          const random = Random.make(inputs * 100 + count)
          const width = padded(inputs)
          const outputs = 11
          const scale = 2.5
          const plan = WasmSimd.layout()
          const [w, bias, x, out] = [outputs * width, outputs, width, outputs].map((n) => plan.block(n)) as Array<WasmSimd.Block>
          const unitsBlock = plan.block(count)
          const simd = WasmSimd.instantiate(plan)
          fill(simd.floats(w!), outputs, inputs, random)
          fill(simd.floats(bias!), 1, outputs, random)
          fill(simd.floats(x!), 1, inputs, random)
          // Chosen rows in no particular order; the others must stay untouched (zero).
          const units = Int32Array.from(random.shuffle(Array.from({ length: outputs }, (_, j) => j)).slice(0, count))
          simd.ints(unitsBlock).set(units)
          const args = [w!.address, bias!.address, width, unitsBlock.address, count, x!.address, out!.address] as const
          if (relu) simd.kernels.reluAt(...args, scale)
          else simd.kernels.affineAt(...args)
          const [W, b, xs] = [simd.floats(w!), simd.floats(bias!), simd.floats(x!)]
          const expected = new Float64Array(outputs)
          for (const u of units) {
            let sum = b[u]!
            for (let k = 0; k < width; k++) sum += W[u * width + k]! * xs[k]!
            expected[u] = relu ? Math.max(0, sum) * scale : sum
          }
          expectClose(simd.floats(out!), expected)
        })
      }

      it(`addRows: ${count} weighted rows of 10, ${inputs} inputs`, () => {
        const random = Random.make(inputs * 100 + count + 50)
        const width = padded(inputs)
        const rows = 10
        const plan = WasmSimd.layout()
        const [src, dst] = [rows * width, width].map((n) => plan.block(n)) as Array<WasmSimd.Block>
        const [offsets, coefficients] = [plan.block(count), plan.block(count)]
        const simd = WasmSimd.instantiate(plan)
        fill(simd.floats(src!), rows, inputs, random)
        fill(simd.floats(dst!), 1, inputs, random)
        // Rows may repeat and come in any order.
        simd.ints(offsets).set(Int32Array.from({ length: count }, () => random.int(rows) * width))
        fill(simd.floats(coefficients), 1, count, random)
        const expected = Float64Array.from(simd.floats(dst!))
        const [S, o, c] = [simd.floats(src!), simd.ints(offsets), simd.floats(coefficients)]
        for (let t = 0; t < count; t++) for (let k = 0; k < width; k++) expected[k] += c[t]! * S[o[t]! + k]!
        simd.kernels.addRows(src!.address, offsets.address, coefficients.address, count, width, dst!.address)
        expectClose(simd.floats(dst!), expected)
      })
    }
  }

  for (const n of [4, 12, 40]) {
    it(`maskScale: ${n} values`, () => {
      const random = Random.make(n)
      const plan = WasmSimd.layout()
      const [values, mask] = [plan.block(n), plan.block(n)]
      const simd = WasmSimd.instantiate(plan)
      fill(simd.floats(values), 1, n, random)
      fill(simd.floats(mask), 1, n, random)
      simd.floats(mask)[1] = 0
      const expected = Float64Array.from(simd.floats(values), (v, k) => simd.floats(mask)[k]! > 0 ? v * 2 : 0)
      simd.kernels.maskScale(values.address, mask.address, n, 2)
      expectClose(simd.floats(values), expected)
    })
  }

  // torch.optim's rules, written plainly in Float64, against the kernels over three steps.
  const optimizerCase = (name: string, update: (simd: WasmSimd.Instance, blocks: ReadonlyArray<WasmSimd.Block>, t: number) => void, reference: (p: number, g: number, state: Float64Array, t: number) => number) =>
    it(`${name}: torch.optim's rule, and zero padding stays zero`, () => {
      const random = Random.make(7)
      const n = 9
      const plan = WasmSimd.layout()
      const blocks = [0, 1, 2, 3].map(() => plan.block(padded(n)))
      const simd = WasmSimd.instantiate(plan)
      const [P, G, M, V] = blocks.map((b) => simd.floats(b))
      fill(P!, 1, n, random)
      const expected = Float64Array.from(P!.subarray(0, n))
      const state = Array.from({ length: n }, () => new Float64Array(2))
      for (let t = 1; t <= 3; t++) {
        fill(G!, 1, n, random)
        for (let j = 0; j < n; j++) expected[j] = reference(expected[j]!, G![j]!, state[j]!, t)
        update(simd, blocks, t)
      }
      expectClose(P!.subarray(0, n), expected)
      expectClose(M!.subarray(0, n), state.map((s) => s[0]!))
      if (name.startsWith("adam")) expectClose(V!.subarray(0, n), state.map((s) => s[1]!))
      for (const values of [P!, M!, V!]) expect(Array.from(values.subarray(n))).toEqual([0, 0, 0])
    })

  const [beta1, beta2, eps, lr] = [0.9, 0.999, 1e-8, 3e-3]
  for (const [name, decay, decoupled] of [["adam", 1e-4, false], ["adamw", 0.5, true]] as const) {
    optimizerCase(name, (simd, [p, g, m, v], t) => {
      const [stepSize, rootC2] = [lr / (1 - beta1 ** t), Math.sqrt(1 - beta2 ** t)]
      const [shrink, l2] = decoupled ? [1 - lr * decay, 0] : [1, decay]
      simd.kernels.adam(p!.address, g!.address, m!.address, v!.address, padded(9), beta1, 1 - beta1, beta2, 1 - beta2, shrink, l2, stepSize, rootC2, eps)
    }, (p, g, state, t) => {
      // Adam: L2 added to the gradient; AdamW: the weight decays first.
      const pj = decoupled ? p * (1 - lr * decay) : p
      const gj = decoupled ? g : g + decay * pj
      state[0] = beta1 * state[0]! + (1 - beta1) * gj
      state[1] = beta2 * state[1]! + (1 - beta2) * gj * gj
      const mHat = state[0]! / (1 - beta1 ** t)
      const vHat = state[1]! / (1 - beta2 ** t)
      return pj - (lr * mHat) / (Math.sqrt(vHat) + eps)
    })
  }

  for (const [momentum, nesterov] of [[0, false], [0.9, false], [0.9, true]] as const) {
    const decay = 1e-2
    optimizerCase(`sgd (momentum ${momentum}${nesterov ? ", nesterov" : ""})`, (simd, [p, g, b], t) => {
      simd.kernels.sgd(p!.address, g!.address, b!.address, padded(9), t === 1 ? 0 : momentum, decay, lr, nesterov ? 1 : 0, nesterov ? momentum : 1)
    }, (p, g, state, t) => {
      const gj = g + decay * p
      state[0] = t === 1 ? gj : momentum * state[0]! + gj
      return p - lr * (nesterov ? gj + momentum * state[0]! : state[0]!)
    })
  }
})
