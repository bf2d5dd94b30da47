// Partial fine-tuning trains convolutions through the tfjs backend in use: gradients on wasm match the cpu backend's.
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as TfjsBackends from "../src/internal/tfjsBackends.js"
import * as TfjsTrainableTail from "../src/internal/TfjsTrainableTail.js"

describe("convolution gradients on wasm", () => {
  // wasm lacks Conv2DBackpropFilter and the depthwise backprop kernels; the trainable tail computes them from kernels it has.
  const cases = [
    { kind: "conv", k: 1, stride: 1, pad: "same" },
    { kind: "conv", k: 3, stride: 2, pad: "same" },
    { kind: "conv", k: 3, stride: 1, pad: "valid" },
    { kind: "conv", k: 3, stride: 1, pad: 1 },
    { kind: "depthwise", k: 3, stride: 1, pad: "same" },
    { kind: "depthwise", k: 3, stride: 2, pad: "same" },
    { kind: "depthwise", k: 3, stride: 2, pad: "valid" }
  ] as const
  const gradients = (c: (typeof cases)[number]) =>
    tf.tidy(() => {
      const x = tf.tensor4d(Float32Array.from({ length: 2 * 9 * 9 * 4 }, (_, i) => Math.sin(i * 0.37)), [2, 9, 9, 4])
      const filter = c.kind === "conv"
        ? tf.tensor4d(Float32Array.from({ length: c.k * c.k * 4 * 3 }, (_, i) => Math.cos(i * 0.11)), [c.k, c.k, 4, 3])
        : tf.tensor4d(Float32Array.from({ length: c.k * c.k * 4 }, (_, i) => Math.cos(i * 0.11)), [c.k, c.k, 4, 1])
      const f = (a: tf.Tensor, b: tf.Tensor) => {
        const [a4, b4] = [a as tf.Tensor4D, b as tf.Tensor4D]
        return tf.sum(tf.square(c.kind === "conv" ? tf.conv2d(a4, b4, c.stride, c.pad) : tf.depthwiseConv2d(a4, b4, c.stride, c.pad)))
      }
      return tf.grads(f)([x, filter]).map((g) => Array.from(g.dataSync()))
    })

  it.effect("match the cpu backend's gradients", () =>
    Effect.gen(function*() {
      yield* TfjsBackends.selectBackend([TfjsBackends.cpuBackend])
      const expected = cases.map(gradients)
      yield* TfjsBackends.selectBackend([TfjsBackends.wasmBackend])
      expect(() => gradients(cases[0])).toThrow(/Conv2DBackpropFilter/)
      TfjsTrainableTail.ensureGradients(tf)
      cases.forEach((c, i) => {
        const [dx, dFilter] = gradients(c)
        expect(dx!.length).toBe(expected[i]![0]!.length)
        dx!.forEach((v, j) => expect(v).toBeCloseTo(expected[i]![0]![j]!, 2))
        dFilter!.forEach((v, j) => expect(v).toBeCloseTo(expected[i]![1]![j]!, 2))
      })
    }))
})
