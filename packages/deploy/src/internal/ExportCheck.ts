/**
 * Running an exported graph for its verification: onnxruntime sessions (released with the scope), and the input
 * tensors it is checked on (synthetic images, and mirror images).
 */
import { Preprocess } from "@loupe/core"
import { Effect } from "effect"
import type * as Ort from "onnxruntime-node"
import { DeployError } from "../DeployError.js"

/** A graph loaded in onnxruntime: `run` feeds one float input and returns one output. */
export interface Session {
  readonly run: (input: string, data: Float32Array, dims: ReadonlyArray<number>, output: string) => Effect.Effect<Ort.Tensor, DeployError>
}

// Imported when an export runs, so that a server which never exports does not load onnxruntime for it.
const importOrt = Effect.tryPromise({
  try: () => import("onnxruntime-node"),
  catch: (cause) => new DeployError({ reason: "ExportFailed", message: `Cannot import onnxruntime-node: ${String(cause)}`, cause })
})

/** An onnxruntime session for `model` (from `file`), released with the scope. */
export const session = (model: Uint8Array, file: string) =>
  Effect.flatMap(importOrt, (ort) =>
    Effect.acquireRelease(
      Effect.tryPromise({
        try: () => ort.InferenceSession.create(model, { intraOpNumThreads: 2, graphOptimizationLevel: "all" }),
        catch: (cause) =>
          new DeployError({ reason: "ExportFailed", file, message: `onnxruntime cannot load the exported graph: ${String(cause)}`, cause })
      }),
      (s) => Effect.promise(() => s.release())
    ).pipe(Effect.map((s): Session => ({
      run: (input, data, dims, output) =>
        Effect.tryPromise({
          try: () => s.run({ [input]: new ort.Tensor("float32", data, dims) }, [output]),
          catch: (cause) => new DeployError({ reason: "ExportFailed", message: `onnxruntime failed: ${String(cause)}`, cause })
        }).pipe(Effect.map((result) => result[output]!))
    }))))

/** `batch` normalised images flipped left to right (the tensor of their mirror images). */
export const mirrorTensor = (batch: Float32Array, spec: Preprocess.PreprocessSpec): Float32Array => {
  const out = new Float32Array(batch.length)
  const w = spec.size
  // Both layouts are rows of `w` pixels, each pixel `step` values wide: NCHW rows of one channel, NHWC rows of RGB.
  const step = spec.layout === "NCHW" ? 1 : 3
  const rowLength = w * step
  for (let row = 0; row < batch.length / rowLength; row++) {
    const base = row * rowLength
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < step; c++) out[base + (w - 1 - x) * step + c] = batch[base + x * step + c]!
    }
  }
  return out
}

/** Deterministic image-like inputs: smooth colour gradients with noise, normalised per `spec`. */
export const syntheticInputs = (spec: Preprocess.PreprocessSpec, count: number): Float32Array => {
  let seed = 12345
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
  }
  const images = Array.from({ length: count }, (_, n) => {
    const rgb = new Uint8Array(spec.size * spec.size * 3)
    for (let y = 0; y < spec.size; y++) {
      for (let x = 0; x < spec.size; x++) {
        for (let c = 0; c < 3; c++) {
          const base = ((x * (c + 1) + y * (n + 1)) / (2 * spec.size)) * 255
          rgb[(y * spec.size + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base + (next() - 0.5) * 60)))
        }
      }
    }
    return rgb
  })
  return Preprocess.toTensor(images, spec)
}
