import * as FileSystem from "@effect/platform/FileSystem"
import { Effect } from "effect"
import type * as Tf from "@tensorflow/tfjs"
import { createHash } from "node:crypto"
import * as path from "node:path"
import { BackboneError } from "../BackboneError.js"

/** The TensorFlow.js module, imported on first use (it takes about a second to import). */
export type TfModule = typeof import("@tensorflow/tfjs")

export const importTf: Effect.Effect<TfModule, BackboneError> = Effect.tryPromise({
  try: () => import("@tensorflow/tfjs"),
  catch: (cause) =>
    new BackboneError({ reason: "LoadFailed", field: "@tensorflow/tfjs", message: `Cannot import @tensorflow/tfjs: ${String(cause)}`, cause })
})

/**
 * A TensorFlow.js model saved as `model.json` plus weight shards, read from disk once: the hash, the translation to
 * ONNX and TensorFlow.js itself all take the bytes from here.
 */
export interface TfjsModelFiles {
  readonly modelJson: string
  readonly format: "layers-model" | "graph-model"
  readonly json: Tf.io.ModelJSON
  /** Every weight shard, concatenated in manifest order (how the manifest's offsets count). */
  readonly weightData: ArrayBuffer
  /** sha256 of `model.json` then every shard in manifest order. */
  readonly sha256: string
}

/** Reads `model.json` (given directly or as the folder holding it) and its shards. */
export const readModelFiles = (
  id: string,
  location: string
): Effect.Effect<TfjsModelFiles, BackboneError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const failed = (message: string, file: string) => (cause: unknown) =>
      new BackboneError({ reason: "LoadFailed", field: id, file, message: `${message}: ${errorText(cause)}`, cause })
    const notModel = failed(`${location} is not a TensorFlow.js model.json (or a folder holding one)`, location)
    const info = yield* Effect.mapError(fs.stat(location), notModel)
    const modelJson = info.type === "Directory" ? path.join(location, "model.json") : location
    const bytes = yield* Effect.mapError(fs.readFile(modelJson), notModel)
    const json = yield* Effect.try({
      try: () => {
        const json = JSON.parse(Buffer.from(bytes).toString("utf8")) as Tf.io.ModelJSON
        if (json === null || typeof json !== "object" || json.modelTopology === undefined) {
          throw new Error("it has no modelTopology")
        }
        return json
      },
      catch: notModel
    })
    const dir = path.dirname(modelJson)
    const shards = (json.weightsManifest ?? []).flatMap((group) => group.paths.map((p) => path.resolve(dir, p)))
    const joined = yield* Effect.forEach(shards, (f) => fs.readFile(f)).pipe(
      Effect.map((parts) => Buffer.concat(parts)),
      Effect.mapError(failed(`Cannot read the weights of ${modelJson}`, modelJson))
    )
    const topology = json.modelTopology as { readonly node?: unknown }
    const format = json.format === "graph-model" || (json.format === undefined && Array.isArray(topology.node))
      ? "graph-model"
      : "layers-model"
    return {
      modelJson,
      format,
      json,
      weightData: joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength) as ArrayBuffer,
      sha256: createHash("sha256").update(bytes).update(joined).digest("hex")
    } as const
  })

/** An IO handler that gives TensorFlow.js the model's artifacts and the weight shards already read. */
export const fileHandler = (tf: TfModule, files: TfjsModelFiles): Tf.io.IOHandler => ({
  load: () =>
    tf.io.getModelArtifactsForJSON(files.json, async (manifest) => [tf.io.getWeightSpecs(manifest), files.weightData])
})

/** A weight as float32 values, or why it cannot be one (an int32 or string weight). */
export type FloatWeight =
  | { readonly shape: ReadonlyArray<number>; readonly values: Float32Array }
  | { readonly shape: ReadonlyArray<number>; readonly problem: string }

const bytesPer: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 }

/** A float16 bit pattern as a number (exact). */
const halfToFloat = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1
  const exponent = (h >> 10) & 0x1f
  const fraction = h & 0x3ff
  if (exponent === 0) return sign * fraction * 2 ** -24
  if (exponent === 31) return fraction === 0 ? sign * Infinity : NaN
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15)
}

/**
 * The manifest's weights, by name, decoded from the concatenated shards the way TensorFlow.js decodes them:
 * float32 as stored, uint8/uint16-quantised weights as `q * scale + min`, float16 ones widened. Throws when the
 * data does not match the manifest.
 */
export const decodeFloatWeights = (
  manifest: Tf.io.WeightsManifestConfig,
  data: ArrayBuffer
): ReadonlyMap<string, FloatWeight> => {
  const view = new DataView(data)
  const weights = new Map<string, FloatWeight>()
  let offset = 0
  for (const spec of manifest.flatMap((group) => group.weights)) {
    const shape = spec.shape
    const count = shape.reduce((a, b) => a * b, 1)
    const q = spec.quantization
    const stored = q?.dtype ?? spec.dtype
    const size = bytesPer[stored]
    if (size === undefined) throw new Error(`weight ${spec.name} is stored as ${stored}, which has no fixed size`)
    const end = offset + count * size
    if (end > data.byteLength) throw new Error(`the weight files end before weight ${spec.name} (byte ${end} of ${data.byteLength})`)
    const at = (i: number) => offset + i * size
    const scale = q?.scale ?? NaN
    const min = q?.min ?? NaN
    const readable = spec.dtype === "float32" &&
      (q === undefined || stored === "float16" || ((stored === "uint8" || stored === "uint16") && !isNaN(scale + min)))
    if (!readable) {
      weights.set(spec.name, { shape, problem: `weight ${spec.name} is ${spec.dtype}${q ? ` quantised as ${JSON.stringify(q)}` : ""}` })
    } else {
      const values = new Float32Array(count)
      for (let i = 0; i < count; i++) {
        values[i] = stored === "float32"
          ? view.getFloat32(at(i), true)
          : stored === "float16"
          ? halfToFloat(view.getUint16(at(i), true))
          : (stored === "uint8" ? view.getUint8(at(i)) : view.getUint16(at(i), true)) * scale + min
      }
      weights.set(spec.name, { shape, values })
    }
    offset = end
  }
  return weights
}

export const errorText = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)
