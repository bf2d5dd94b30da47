/**
 * The ONNX runtime plugin: any image model file, configured by data (file, input and output names, embedding size,
 * preprocessing). Sessions run on onnxruntime-node's CPU provider.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import type { Backbone, Preprocess } from "@loupe/core"
import * as ort from "onnxruntime-node"
import { BackboneError } from "./BackboneError.js"
import { hashFiles, resolveLocalPath } from "./internal/weights.js"

export interface OnnxModelConfig {
  readonly id: string
  readonly description: string
  readonly weights: Backbone.WeightsSource
  readonly inputName: string
  readonly outputName: string
  readonly embeddingSize: number
  readonly preprocess: Preprocess.PreprocessSpec
  readonly tags: ReadonlyArray<string>
  readonly license: string
}

export const OnnxOptions = Schema.Struct({
  /** Threads for one inference call. Default: 2 (this is a 2-core machine class; set to your cores). */
  intraOpNumThreads: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 256)), { default: () => 2 }),
  /** Largest batch per call. */
  maxBatchSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1024)), { default: () => 32 })
})
export type OnnxOptions = typeof OnnxOptions.Type

export const plugin = (config: OnnxModelConfig): Backbone.BackbonePlugin => {
  const info: Backbone.BackboneInfo = {
    id: config.id,
    runtime: "onnx",
    description: config.description,
    embeddingSize: config.embeddingSize,
    preprocess: config.preprocess,
    tags: config.tags,
    license: config.license,
    weights: config.weights
  }
  return {
    info,
    optionsSchema: OnnxOptions,
    load: ({ config: loupeConfig, options }) =>
      Effect.gen(function*() {
        const opts = options as OnnxOptions
        const file = yield* resolveLocalPath(config.id, config.weights, loupeConfig)
        const weightsHash = yield* hashFiles([file])
        const session = yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: () =>
              ort.InferenceSession.create(file, {
                intraOpNumThreads: opts.intraOpNumThreads,
                interOpNumThreads: 1,
                graphOptimizationLevel: "all"
              }),
            catch: (cause) =>
              new BackboneError({ reason: "LoadFailed", file, field: config.id, message: `Cannot load ${file}: ${String(cause)}`, cause })
          }),
          (s) => Effect.promise(() => s.release())
        )
        if (!session.outputNames.includes(config.outputName) || !session.inputNames.includes(config.inputName)) {
          return yield* new BackboneError({
            reason: "LoadFailed",
            file,
            field: config.id,
            message: `${file} has inputs [${session.inputNames}] and outputs [${session.outputNames}]; ` +
              `the config asks for input ${config.inputName} and output ${config.outputName}`
          })
        }
        const { size, layout } = config.preprocess
        const embedBatch = (batch: Float32Array, count: number) =>
          Effect.gen(function*() {
            const per = size * size * 3
            if (batch.length !== count * per) {
              return yield* new BackboneError({
                reason: "InvalidInput",
                field: config.id,
                message: `Expected ${count} x ${per} input values for ${config.id}, got ${batch.length}`
              })
            }
            const dims = layout === "NCHW" ? [count, 3, size, size] : [count, size, size, 3]
            const result = yield* Effect.tryPromise({
              try: () => session.run({ [config.inputName]: new ort.Tensor("float32", batch, dims) }, [config.outputName]),
              catch: (cause) =>
                new BackboneError({ reason: "InferenceFailed", field: config.id, message: `${config.id}: ${String(cause)}`, cause })
            })
            const out = result[config.outputName]!
            return out.data as Float32Array
          })
        return { info, weightsHash, maxBatchSize: opts.maxBatchSize, embedBatch } satisfies Backbone.LoadedBackbone
      })
  }
}
