// AutoML's steps apart, as a durable retrain runs them (each on any runner, its result stored as JSON between them):
// `search`, `evaluate` and `refit` on real cats-vs-dogs photos with two real backbones give what `fit` gives in one
// go (so does `searchWithRefit`, which keeps the search's rows for the refit), and a refit of any leaderboard
// candidate, the probability ensemble included, is a working pipeline.
import { describe, expect, it } from "@effect/vitest"
import { Dataset, Pipeline } from "@loupe/core"
import type { Sample } from "@loupe/core"
import { AutoML } from "@loupe/functions"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { sharedDir } from "../../../test/fixtures/shared.mjs"
import { functionsEnvironment } from "./fixtures/environment.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-automl-steps-"))

/** The first `perClass` photos of each class of a split. */
const firstOf = (dataset: Dataset.Dataset, perClass: number): ReadonlyArray<Sample.Sample> =>
  dataset.labels.flatMap((label) => dataset.samples.filter((s) => s.label === label).slice(0, perClass))

/** Through JSON and back: what the workflow engine stores between activities. */
const stored = <A>(value: A): A => JSON.parse(JSON.stringify(value))

describe("AutoML's steps apart", () => {
  const options: AutoML.FitOptions = {
    backbones: ["onnx:mobilenetv2-int8", "tfjs:mobilenetv2-0.35"],
    folds: 3,
    mirror: true,
    ensembles: true,
    // Two kinds of heads keep the search short; the ensemble takes each backbone's best of them.
    heads: ["logistic-regression", "nearest-prototype"],
    seed: 3
  }

  it.effect("search, evaluate and refit, stored as JSON between them, give fit's model; an ensemble refits too", () =>
    Effect.gen(function*() {
      const { test, train } = yield* Dataset.fromSplitFolders(path.join(sharedDir, "datasets/cats-vs-dogs"))
      const dataset = Dataset.make(firstOf(train, 5), { labels: train.labels })
      const photos = firstOf(test!, 3)
      const result = yield* AutoML.fit(dataset, options)

      // The embeddings come from the cache `fit` filled, as the retrain's embed step fills it for the search.
      const searched = stored(yield* AutoML.search(dataset, options))
      expect(searched.selected).toEqual(result.selected)
      expect(searched.leaderboard.map((row) => row.candidate)).toEqual(result.leaderboard.map((row) => row.candidate))
      expect(searched.outOfFold.sampleIds).toEqual(result.outOfFold.samples.map((s) => s.id))
      expect(searched.outOfFold.proba).toEqual(Array.from(result.outOfFold.proba.data))
      expect(yield* AutoML.evaluate(searched)).toEqual(result.cv)

      const refit = yield* AutoML.refit(dataset, options, searched.selected)
      const expected = yield* Pipeline.predictMany(result.fitted, photos)
      expect((yield* Pipeline.predictMany(refit, photos)).proba.data).toEqual(expected.proba.data)

      // In one process (the in-process retrain): the search keeps its rows and refits on them, to the same model.
      const kept = yield* AutoML.searchWithRefit(dataset, options)
      expect(kept.searched.selected).toEqual(searched.selected)
      expect(kept.searched.outOfFold).toEqual(searched.outOfFold)
      expect((yield* Pipeline.predictMany(yield* kept.refit, photos)).proba.data).toEqual(expected.proba.data)

      // The ensemble of each backbone's best head, refit from its stored description: both backbones, one head each.
      const ensemble = searched.leaderboard.find((row) => row.candidate.head.kind === "ensemble")!
      const fitted = yield* AutoML.refit(dataset, options, stored(ensemble.candidate))
      expect(fitted.head.kind).toBe("ensemble")
      expect(Pipeline.backbonesOf(fitted).map((b) => b.backbone.info.id)).toEqual(options.backbones)
      const answers = yield* Pipeline.predictMany(fitted, photos)
      const correct = answers.predictions.filter((p) => p.prediction.labelName === p.sample.label).length
      console.log(
        `AutoML steps: selected ${AutoML.describeCandidate(searched.selected)}; ensemble ${ensemble.description} ` +
          `(CV accuracy ${ensemble.accuracy.toFixed(3)}) answers ${correct}/${photos.length} held-out photos`
      )
      expect(correct).toBeGreaterThan(photos.length / 2)
    }).pipe(Effect.scoped, Effect.provide(functionsEnvironment(path.join(work, "cache")))), 300_000)
})
