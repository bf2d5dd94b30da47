// Without WebAssembly SIMD the MLP head trains on the Float64 TypeScript engine (DenseNet and Optimizer) and predicts
// with DenseNet.forward.
import { describe, expect, it, vi } from "vitest"
import { Effect } from "effect"
import * as Mlp from "../src/Mlp.js"
import * as DenseNet from "../src/internal/DenseNet.js"
import * as Scaler from "../src/internal/Scaler.js"
import { correct, split } from "./fixtures/helpers.js"

vi.mock("../src/internal/WasmSimd.js", async (importOriginal) => ({
  ...await importOriginal<typeof import("../src/internal/WasmSimd.js")>(),
  available: false
}))

describe("Mlp without WebAssembly SIMD", () => {
  it("fits Float64 weights that classify as well, and predicts with DenseNet.forward", async () => {
    const [train, test] = [await split("cats-vs-dogs", "train"), await split("cats-vs-dogs", "test")]
    const fitted = await Effect.runPromise(Mlp.fit(train.set, {}, 4))
    const { layers, scaler } = fitted.state
    expect(layers.some((l) => l.weights.some((v) => Math.fround(v) !== v))).toBe(true)
    const proba = fitted.predictProba(test.x)
    expect(proba.data).toEqual(Float32Array.from(DenseNet.forward(layers, Scaler.transform(scaler, test.x), test.x.rows)))
    expect(correct(proba, test.y)).toBeGreaterThanOrEqual(36)
  })
})
