// Each float32 SIMD kernel of the MLP engine against a plain Float64 reference written here: the forward pass's
// gathered affine products (affineAt, reluAt with dropout's scale), the backward pass's weighted row sums (addRows)
// and its way back through ReLU and dropout (maskScale), and the update (adam, Optimizer's rule). Random normal
// inputs, on counts that are not multiples of the kernels' blocks (1, 3, 5, 7 ... rows) and rows of logical widths
// that are not multiples of 4 (padded with zeros, the kernels' contract). Tolerance: |actual - expected| <=
// 1e-5 * (1 + |expected|), float32 rounding over sums of up to 130 terms.
import { describe, expect, it } from "@effect/vitest"
import * as Random from "../src/internal/Random.js"
import * as WasmSimd from "../src/internal/WasmSimd.js"

const padded = (n: number) => Math.ceil(n / 4) * 4

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

  it("adam: Optimizer's rule, and zero padding stays zero", () => {
    const random = Random.make(7)
    const n = 9
    const plan = WasmSimd.layout()
    const [p, g, m, v] = [0, 1, 2, 3].map(() => plan.block(padded(n)))
    const simd = WasmSimd.instantiate(plan)
    const [P, G, M, V] = [p!, g!, m!, v!].map((b) => simd.floats(b))
    const expected = { p: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) }
    fill(P!, 1, n, random)
    expected.p.set(P!.subarray(0, n))
    const [beta1, beta2, eps, lr, l2] = [0.9, 0.999, 1e-8, 3e-3, 1e-4]
    for (let t = 1; t <= 3; t++) {
      fill(G!, 1, n, random)
      const [stepSize, rootC2] = [lr / (1 - beta1 ** t), Math.sqrt(1 - beta2 ** t)]
      for (let j = 0; j < n; j++) {
        const pj = expected.p[j]!
        const gj = G![j]! + l2 * pj
        expected.m[j] = beta1 * expected.m[j]! + (1 - beta1) * gj
        expected.v[j] = beta2 * expected.v[j]! + (1 - beta2) * gj * gj
        expected.p[j] = pj - (stepSize * expected.m[j]!) / (Math.sqrt(expected.v[j]!) / rootC2 + eps)
      }
      simd.kernels.adam(p!.address, g!.address, m!.address, v!.address, padded(n), beta1, 1 - beta1, beta2, 1 - beta2, l2, stepSize, rootC2, eps)
    }
    for (const [actual, want] of [[P!, expected.p], [M!, expected.m], [V!, expected.v]] as const) {
      expectClose(actual.subarray(0, n), want)
      expect(Array.from(actual.subarray(n))).toEqual([0, 0, 0])
    }
  })
})
