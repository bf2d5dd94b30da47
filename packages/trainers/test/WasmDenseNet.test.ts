// The dense engine (float32, WebAssembly SIMD) against a plain Float64 network written here, on the same weights and
// the same dropout draws: loss, accuracy count, gradient, probabilities and the optimisers' steps agree to float32
// precision (|actual - expected| <= 1e-5 * (1 + |expected|), 1e-4 after several steps), at widths that are not
// multiples of 4, batches of one row or of rows in any order, and per-step input batches. The reference's gradient is
// itself checked against central finite differences.
import { describe, expect, it } from "@effect/vitest"
import type * as Optimizer from "../src/Optimizer.js"
import * as Random from "../src/internal/Random.js"
import * as WasmDenseNet from "../src/internal/WasmDenseNet.js"
import { denseBatch } from "./fixtures/denseBatch.js"

const dim = 9
const rows = 12
const numClasses = 3
const adam = { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8 } as const
const data = denseBatch(rows, dim, numClasses)

type Layer = WasmDenseNet.Layer
interface Options {
  readonly labelSmoothing: number
  readonly dropout: number
  readonly random: Random.Random
}

/** Layers whose values are float32 numbers, so both networks start from the same weights. */
const layersOf = (dims: ReadonlyArray<number>): ReadonlyArray<Layer> =>
  WasmDenseNet.init(dims, Random.make(3)).map((l) => ({ ...l, weights: l.weights.map(Math.fround), bias: l.bias.map(Math.fround) }))

const parameters = (layers: ReadonlyArray<Layer>) => layers.flatMap((l) => [l.weights, l.bias])
const flat = (layers: ReadonlyArray<Layer>) => parameters(layers).flatMap((p) => [...p])

/**
 * The reference: the batch `batch` of `data` through the layers (ReLU and inverted dropout on hidden layers, drawn unit
 * by unit, row by row, before the layer is computed), the weighted label-smoothed cross-entropy, and its gradient by
 * plain backpropagation, all in Float64.
 */
const reference = (layers: ReadonlyArray<Layer>, batch: Int32Array, options: Options) => {
  const keep = 1 - options.dropout
  const activations: Array<Array<Float64Array>> = [Array.from(batch, (r) => data.x.subarray(r * dim, (r + 1) * dim))]
  const masks: Array<Array<Float64Array>> = []
  layers.forEach((layer, l) => {
    const hidden = l < layers.length - 1
    const mask = activations[l]!.map(() =>
      Float64Array.from({ length: layer.outputs }, () => hidden && options.dropout > 0 ? (options.random.next() < keep ? 1 / keep : 0) : 1)
    )
    activations.push(activations[l]!.map((x, i) =>
      Float64Array.from({ length: layer.outputs }, (_, j) => {
        let z = layer.bias[j]!
        for (let k = 0; k < layer.inputs; k++) z += layer.weights[j * layer.inputs + k]! * x[k]!
        return hidden ? Math.max(0, z) * mask[i]![j]! : z
      })
    ))
    masks.push(mask)
  })
  const logits = activations[layers.length]!
  const weightSum = Array.from(batch, (r) => data.w[r]!).reduce((a, b) => a + b, 0)
  let loss = 0
  let correct = 0
  const proba: Array<Float64Array> = []
  let delta = logits.map((z, i) => {
    const r = batch[i]!
    const max = Math.max(...z)
    const lse = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0))
    proba.push(z.map((v) => Math.exp(v - lse)))
    if (z.indexOf(max) === data.y[r]) correct++
    const weight = data.w[r]! / weightSum
    return z.map((v, c) => {
      const target = (c === data.y[r] ? 1 - options.labelSmoothing : 0) + options.labelSmoothing / numClasses
      loss -= weight * target * (v - lse)
      return weight * (Math.exp(v - lse) - target)
    })
  })
  const grads = layers.map((l) => ({ ...l, weights: new Float64Array(l.weights.length), bias: new Float64Array(l.bias.length) }))
  for (let l = layers.length - 1; l >= 0; l--) {
    const { inputs, outputs, weights } = layers[l]!
    delta.forEach((d, i) => {
      for (let j = 0; j < outputs; j++) {
        grads[l]!.bias[j] += d[j]!
        for (let k = 0; k < inputs; k++) grads[l]!.weights[j * inputs + k] += d[j]! * activations[l]![i]![k]!
      }
    })
    if (l === 0) break
    // Back through dropout and ReLU: a unit dropped or inactive has output 0.
    delta = delta.map((d, i) =>
      Float64Array.from({ length: inputs }, (_, k) => {
        if (!(activations[l]![i]![k]! > 0)) return 0
        let sum = 0
        for (let j = 0; j < outputs; j++) sum += d[j]! * weights[j * inputs + k]!
        return sum * masks[l - 1]![i]![k]!
      })
    )
  }
  return { loss, correct, grads, proba: Float64Array.from(proba.flatMap((p) => [...p])) }
}

/** torch.optim's rules in Float64 over the reference's parameter arrays. */
const referenceOptimizer = (config: Optimizer.Optimizer, params: ReadonlyArray<Float64Array>) => {
  const state = params.map((p) => ({ m: new Float64Array(p.length), v: new Float64Array(p.length) }))
  let t = 0
  return (grads: ReadonlyArray<Float64Array>, lr: number, decay: number) => {
    t++
    params.forEach((p, k) => {
      const { m, v } = state[k]!
      for (let j = 0; j < p.length; j++) {
        if (config.kind === "sgd") {
          const g = grads[k]![j]! + decay * p[j]!
          m[j] = t === 1 ? g : config.momentum * m[j]! + g
          p[j] -= lr * (config.nesterov ? g + config.momentum * m[j]! : m[j]!)
          continue
        }
        const pj = config.kind === "adamw" ? p[j]! * (1 - lr * decay) : p[j]!
        const g = grads[k]![j]! + (config.kind === "adamw" ? 0 : decay * pj)
        m[j] = config.beta1 * m[j]! + (1 - config.beta1) * g
        v[j] = config.beta2 * v[j]! + (1 - config.beta2) * g * g
        p[j] = pj - (lr * m[j]! / (1 - config.beta1 ** t)) / (Math.sqrt(v[j]! / (1 - config.beta2 ** t)) + config.eps)
      }
    })
  }
}

const expectClose = (actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5) => {
  expect(actual.length).toBe(expected.length)
  for (let k = 0; k < expected.length; k++) expect(Math.abs(actual[k]! - expected[k]!)).toBeLessThanOrEqual(tolerance * (1 + Math.abs(expected[k]!)))
}

/** A network over all of `data`'s rows. */
const net = (layers: ReadonlyArray<Layer>, optimizer: Optimizer.Optimizer = adam) => {
  const wasm = WasmDenseNet.make(layers, rows, 8, optimizer)
  wasm.input(data.x, rows)
  return wasm
}

const batches = [Int32Array.of(4), Int32Array.of(7, 0, 3, 11, 5), Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8)]

describe("the reference network", () => {
  for (const [dims, dropout] of [[[dim, numClasses], 0], [[dim, 7, numClasses], 0], [[dim, 16, numClasses], 0.5]] as const) {
    it(`matches finite differences: layers ${dims.join(" -> ")}, dropout ${dropout}`, () => {
      const layers = WasmDenseNet.init(dims, Random.make(3))
      // The same seed gives the same dropout masks.
      const evaluate = () => reference(layers, batches[2]!, { labelSmoothing: 0.1, dropout, random: Random.make(5) })
      const { grads } = evaluate()
      const h = 1e-6
      let checked = 0
      parameters(layers).forEach((p, k) => {
        const g = parameters(grads)[k]!
        for (let j = 0; j < p.length; j++) {
          const saved = p[j]!
          p[j] = saved + h
          const up = evaluate().loss
          p[j] = saved - h
          const down = evaluate().loss
          p[j] = saved
          expect(g[j]!).toBeCloseTo((up - down) / (2 * h), 6)
          if (g[j]! !== 0) checked++
        }
      })
      expect(checked).toBeGreaterThan(dims[1] * 2)
    })
  }
})

describe("WasmDenseNet", () => {
  const cases = [[[dim, numClasses], 0, 0], [[dim, 7, numClasses], 0, 0.1], [[dim, 16, numClasses], 0.5, 0], [[dim, 6, 5, numClasses], 0.3, 0.1]] as const
  for (const [dims, dropout, labelSmoothing] of cases) {
    it(`matches the reference's loss and gradient: layers ${dims.join(" -> ")}, dropout ${dropout}, label smoothing ${labelSmoothing}`, () => {
      const layers = layersOf(dims)
      const wasm = net(layers)
      // Two generators with the same seed: both networks draw the same dropout masks.
      const [mine, theirs] = [Random.make(5), Random.make(5)]
      for (const batch of batches) {
        const result = wasm.gradient(batch, data.y, data.w, { labelSmoothing, dropout, random: mine })
        const expected = reference(layers, batch, { labelSmoothing, dropout, random: theirs })
        expect(result.loss).toBeCloseTo(expected.loss, 5)
        expect(result.correct).toBe(expected.correct)
        expectClose(flat(wasm.gradients()), flat(expected.grads))
      }
    })
  }

  it("takes a fresh input batch each step, as manual mode does", () => {
    const layers = layersOf([dim, 7, numClasses])
    const wasm = WasmDenseNet.make(layers, 8, 8, adam)
    for (const batch of batches) {
      const x = Float32Array.from({ length: batch.length * dim }, (_, k) => data.x[batch[Math.floor(k / dim)]! * dim + (k % dim)]!)
      wasm.input(x, batch.length)
      const first = Int32Array.from(batch, (_, i) => i)
      const result = wasm.gradient(first, Int32Array.from(batch, (r) => data.y[r]!), Float64Array.from(batch, (r) => data.w[r]!), { labelSmoothing: 0, dropout: 0, random: Random.make(0) })
      const expected = reference(layers, batch, { labelSmoothing: 0, dropout: 0, random: Random.make(0) })
      expect(result.loss).toBeCloseTo(expected.loss, 5)
      expectClose(flat(wasm.gradients()), flat(expected.grads))
    }
  })

  it("predicts what the reference gives, in chunks of the batch size", () => {
    const layers = layersOf([dim, 7, numClasses])
    const all = Int32Array.from({ length: rows }, (_, i) => rows - 1 - i)
    expectClose(net(layers).proba(all), reference(layers, all, { labelSmoothing: 0, dropout: 0, random: Random.make(0) }).proba)
  })

  it("forward matches the reference across its chunks of 1,024 rows", () => {
    const layers = layersOf([dim, 7, numClasses])
    const many = denseBatch(2100, dim, numClasses).x
    const expected = WasmDenseNet.forward(layers, many.subarray(0, rows * dim), rows)
    expectClose(expected, reference(layers, Int32Array.from({ length: rows }, (_, i) => i), { labelSmoothing: 0, dropout: 0, random: Random.make(0) }).proba)
    // Rows past the first chunk come out as they would alone.
    const all = WasmDenseNet.forward(layers, many, 2100)
    const tail = WasmDenseNet.forward(layers, many.subarray(2000 * dim), 100)
    expectClose(all.subarray(2000 * numClasses), tail)
  })

  const optimizers: ReadonlyArray<Optimizer.Optimizer> = [
    adam,
    { kind: "adamw", beta1: 0.9, beta2: 0.999, eps: 1e-8 },
    { kind: "sgd", momentum: 0.9, nesterov: false },
    { kind: "sgd", momentum: 0.9, nesterov: true },
    { kind: "sgd", momentum: 0, nesterov: false }
  ]
  for (const optimizer of optimizers) {
    it(`steps as torch.optim's ${optimizer.kind}${optimizer.kind === "sgd" ? ` (momentum ${optimizer.momentum}${optimizer.nesterov ? ", nesterov" : ""})` : ""} does, and reads back its layers`, () => {
      const layers = layersOf([dim, 7, numClasses])
      const wasm = net(layers, optimizer)
      const step = referenceOptimizer(optimizer, parameters(layers))
      expect(wasm.layers()).toEqual(layers)
      for (const batch of batches) {
        wasm.gradient(batch, data.y, data.w, { labelSmoothing: 0, dropout: 0, random: Random.make(0) })
        wasm.update(1e-2, 1e-3)
        step(parameters(reference(layers, batch, { labelSmoothing: 0, dropout: 0, random: Random.make(0) }).grads), 1e-2, 1e-3)
      }
      expectClose(flat(wasm.layers()), flat(layers), 1e-4)
    })
  }
})
