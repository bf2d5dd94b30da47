import { Effect } from "effect"
import type * as Tf from "@tensorflow/tfjs"
import * as fs from "node:fs"
import * as path from "node:path"
import { BackboneError } from "../BackboneError.js"

/** The TensorFlow.js module, imported on first use (it takes about a second to import). */
export type TfModule = typeof import("@tensorflow/tfjs")

export const importTf: Effect.Effect<TfModule, BackboneError> = Effect.tryPromise({
  try: () => import("@tensorflow/tfjs"),
  catch: (cause) =>
    new BackboneError({ reason: "LoadFailed", field: "@tensorflow/tfjs", message: `Cannot import @tensorflow/tfjs: ${String(cause)}`, cause })
})

/** A TensorFlow.js model saved as `model.json` plus weight shards, read from disk. */
export interface TfjsModelFiles {
  readonly modelJson: string
  /** `model.json` then every shard in manifest order: what the weights hash covers. */
  readonly files: ReadonlyArray<string>
  readonly format: "layers-model" | "graph-model"
  readonly json: Tf.io.ModelJSON
}

/** Reads `model.json` (given directly or as the folder holding it) and lists its shards. */
export const readModelFiles = (id: string, location: string): Effect.Effect<TfjsModelFiles, BackboneError> =>
  Effect.try({
    try: () => {
      const modelJson = fs.statSync(location).isDirectory() ? path.join(location, "model.json") : location
      const json = JSON.parse(fs.readFileSync(modelJson, "utf8")) as Tf.io.ModelJSON
      if (json === null || typeof json !== "object" || json.modelTopology === undefined) {
        throw new Error("it has no modelTopology")
      }
      const dir = path.dirname(modelJson)
      const shards = (json.weightsManifest ?? []).flatMap((group) => group.paths.map((p) => path.resolve(dir, p)))
      const topology = json.modelTopology as { readonly node?: unknown }
      const format = json.format === "graph-model" || (json.format === undefined && Array.isArray(topology.node))
        ? "graph-model"
        : "layers-model"
      return { modelJson, files: [modelJson, ...shards], format, json } as const
    },
    catch: (cause) =>
      new BackboneError({
        reason: "LoadFailed",
        field: id,
        file: location,
        message: `${location} is not a TensorFlow.js model.json (or a folder holding one): ${errorText(cause)}`,
        cause
      })
  })

/** An IO handler that loads the model's artifacts and concatenated weight shards from disk. */
export const fileHandler = (tf: TfModule, files: TfjsModelFiles): Tf.io.IOHandler => ({
  load: () =>
    tf.io.getModelArtifactsForJSON(files.json, async (manifest) => {
      const buffers = await Promise.all(files.files.slice(1).map((f) => fs.promises.readFile(f)))
      const joined = Buffer.concat(buffers)
      const weightData = joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength) as ArrayBuffer
      return [tf.io.getWeightSpecs(manifest), weightData]
    })
})

export const errorText = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)
