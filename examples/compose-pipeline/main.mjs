// @ts-check
// Compose a pipeline in code, without the CLI: folder dataset -> MobileNetV2 (ONNX) -> logistic regression.
// Usage (after `pnpm build`): node examples/compose-pipeline/main.mjs <dataset-dir> <models-dir> <bundle-out>
import { Bundle, Dataset, LoupeConfig, Pipeline, Registry } from "@loupe/core"
import { Catalog } from "@loupe/backbones"
import { LogisticRegression } from "@loupe/trainers"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"

const [dataDir = "../shared/datasets/cats-vs-dogs", modelsDir = "../shared/models", out = "out/compose-pipeline"] =
  process.argv.slice(2)

const program = Effect.gen(function*() {
  const { train, test } = yield* Dataset.fromSplitFolders(dataDir)
  const pipeline = Pipeline.make({
    backbone: "onnx:mobilenetv2-int8",
    head: { kind: "logistic-regression", params: { l2: 1 } },
    seed: 0
  })
  const { fitted } = yield* Pipeline.fit(pipeline, yield* Dataset.validateForTraining(train))
  yield* Bundle.save(fitted, out)

  const { fitted: reloaded } = yield* Bundle.load(out)
  const { predictions } = yield* Pipeline.predictMany(reloaded, test?.samples ?? [])
  const correct = predictions.filter((p) => p.prediction.labelName === p.sample.label).length
  console.log(`test accuracy ${correct}/${predictions.length}; bundle saved to ${out}`)
  return { correct, total: predictions.length }
})

// The Node file system (datasets are read and bundles written through it), the registry and the config.
const services = Layer.mergeAll(
  NodeContext.layer,
  Registry.Registry.layer({ backbones: Catalog.builtins, heads: [LogisticRegression.plugin] }),
  LoupeConfig.LoupeConfig.layer({ modelsDir })
)

export const result = await Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(services)))
