// @ts-check
/**
 * Manual mode: the PyTorch notebook's recipe, step for step, on the cats-vs-dogs photos. A frozen MobileNetV2
 * (int8 ONNX) and a linear layer trained with SGD (momentum 0.9, lr 0.001), the rate divided by 10 every 7 epochs,
 * batches of 4 randomly resized, cropped and flipped training views; after every epoch the train and test loss and
 * accuracy are printed and the weights of the best test epoch are kept. Then the model is saved as a bundle, loaded
 * back, and scored on the test photos with a confusion matrix.
 *
 *   pnpm build && node examples/manual-mode/main.mjs [--epochs 25] [--views <per image>] [--out <bundle dir>]
 *
 * Plain Node 20, no TypeScript step. It imports the packages by name, as your own project would: inside this
 * repository they resolve to the workspace's builds (see this folder's package.json).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Catalog } from "@loupe/backbones"
import { Bundle, Dataset, LoupeConfig, Pipeline, Registry } from "@loupe/core"
import { ManualTraining } from "@loupe/trainers"
import { ProgressBar } from "@loupe/cli"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"

const here = path.dirname(fileURLToPath(import.meta.url))
const shared = process.env["LOUPE_SHARED_DIR"] ?? path.resolve(here, "../../../shared")

const { values: args } = parseArgs({
  options: {
    epochs: { type: "string", default: "25" },
    views: { type: "string" },
    dataset: { type: "string", default: path.join(shared, "datasets", "cats-vs-dogs") },
    out: { type: "string", default: path.join(fs.mkdtempSync(path.join(os.tmpdir(), "loupe-manual-")), "bundle") }
  }
})

const percent = (/** @type {number} */ x) => `${(100 * x).toFixed(1)}%`

const program = Effect.gen(function*() {
  const { train, test } = yield* Dataset.fromSplitFolders(String(args.dataset))
  if (test === undefined) throw new Error(`${args.dataset} has no test/ folder`)

  // The notebook's recipe; every field below is also the default.
  const recipe = {
    backbone: "onnx:mobilenetv2-int8",
    head: { kind: /** @type {const} */ ("linear") },
    optimizer: { kind: /** @type {const} */ ("sgd"), momentum: 0.9 },
    lr: 0.001,
    schedule: { kind: /** @type {const} */ ("step"), stepSize: 7, gamma: 0.1 },
    epochs: Number(args.epochs),
    batchSize: 4,
    augment: { randomResizedCrop: true, flipProbability: 0.5 },
    ...(args.views === undefined ? {} : { views: Number(args.views) })
  }
  const started = performance.now()
  // Embedding the augmented views is most of the run: progress bars (with the time left) show it, on stdout here.
  console.log(`Embedding ${recipe.views ?? recipe.epochs} augmented views of ${train.samples.length} training photos and the ${test.samples.length} test photos with ${recipe.backbone}`)
  const result = yield* ManualTraining.runWith(
    ManualTraining.train(recipe, { train, validation: test.samples }),
    (e) =>
      Effect.sync(() =>
        console.log(
          `Epoch ${String(e.epoch).padStart(2)}/${e.epochs}  lr ${e.lr.toExponential(0)}  ` +
            `train loss ${e.trainLoss.toFixed(4)} acc ${percent(e.trainAccuracy)}  ` +
            `test loss ${e.valLoss?.toFixed(4)} acc ${percent(e.valAccuracy ?? 0)}${e.best ? "  *" : ""}`
        )
      )
  )
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  console.log(
    `Training complete in ${seconds} s (embedding the augmented views ${result.timings.prepare.toFixed(1)} s, ` +
      `training ${result.timings.train.toFixed(1)} s). Best test epoch: ${result.bestEpoch}`
  )

  // Save, load back, and evaluate the bundle as a server would use it
  yield* Bundle.save(result.fitted, String(args.out), { recipe, bestEpoch: result.bestEpoch })
  const { fitted } = yield* Bundle.load(String(args.out))
  const { predictions } = yield* Pipeline.predictMany(fitted, test.samples)
  const labels = fitted.labels
  const confusion = labels.map(() => labels.map(() => 0))
  for (const { sample, prediction } of predictions) {
    confusion[labels.indexOf(sample.label ?? "")][labels.indexOf(prediction.labelName)]++
  }
  const correct = labels.reduce((sum, _, i) => sum + confusion[i][i], 0)
  console.log(`test accuracy ${correct}/${predictions.length} (${percent(correct / predictions.length)}); bundle: ${args.out}`)
  console.log("confusion matrix (rows: true label, columns: predicted)")
  const width = Math.max(...labels.map((l) => l.length)) + 2
  console.log(" ".repeat(width) + labels.map((l) => l.padStart(width)).join(""))
  labels.forEach((l, i) => console.log(l.padEnd(width) + confusion[i].map((n) => String(n).padStart(width)).join("")))
})

// The Node file system (datasets are read and bundles written through it), the registry and the config.
const services = Layer.mergeAll(
  NodeContext.layer,
  Registry.Registry.layer({ backbones: Catalog.builtins, heads: ManualTraining.heads }),
  LoupeConfig.LoupeConfig.layer({ modelsDir: path.join(shared, "models") }),
  ProgressBar.layer(process.stdout)
)

await Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(services)))
