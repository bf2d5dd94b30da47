// The same scripted run on the SQLite store and on the Postgres store: a function, labels, 16 cats-vs-dogs photos
// (one re-annotated, one left unlabelled), a retrain with the `fast` preset and a fixed seed, invokes of 4 test
// photos. Both give the same samples, labels, model choice and cross-validated figures, and the same predictions to
// within 1e-6. Ids are random, so samples and labels are compared by what they hold. The debounce (1 s) outlasts the
// script's writes, so each run trains once, on the same data. Each store keeps its blobs as a server keeps them: in a
// folder beside the SQLite store, in the database for Postgres.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Layer } from "effect"
import { Functions, StoreLocation } from "@loupe/functions"
import type { BlobStore, Store } from "@loupe/functions"
import type { LoupeConfig } from "@loupe/core"
import type { FunctionsError, Retrainer } from "@loupe/functions"
import type { FileSystem } from "@effect/platform"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { startPostgres } from "../../../test/fixtures/postgres.mjs"
import { catsVsDogsPhotos as photos, functionsEnvironment } from "./fixtures/environment.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-parity-"))
let postgres: Awaited<ReturnType<typeof startPostgres>>

beforeAll(async () => {
  postgres = await startPostgres()
  if ("skipped" in postgres) console.warn(`Parity test skipped: ${postgres.skipped}`)
}, 300_000)

afterAll(async () => {
  if (!("skipped" in postgres)) await postgres.stop()
  fs.rmSync(work, { recursive: true, force: true })
})

/** The function API on a store and its blobs (`Functions.layerStorage`, as the servers open them), each run with an
 * embedding cache of its own: a disk cache for the folder, the database's for Postgres. */
const functionsOn = (
  stores: Layer.Layer<Store.Store | BlobStore.BlobStore, FunctionsError.FunctionsError, FileSystem.FileSystem | LoupeConfig.LoupeConfig>,
  name: string
) =>
  Functions.layer({ debounce: "1 second" }).pipe(
    Layer.provideMerge(stores),
    Layer.provide(functionsEnvironment(path.join(work, `cache-${name}`)))
  )

/** The scripted run; what it answers is what must not depend on the store. */
const script = Effect.gen(function*() {
  const functions = yield* Functions.Functions
  const fn = yield* functions.create("Parity", { preset: "fast", overrides: { folds: 3, seed: 7 } })
  yield* functions.createLabels(fn.id, ["cats", { name: "dogs", description: "good boys", metadata: { kind: "animal" } }])
  const inputs = (label: "cats" | "dogs") =>
    photos("train", label, 0, 8).map((data) => ({ data, label, externalId: `${label}/${path.basename(data)}` }))
  const added = yield* functions.createSamples(fn.id, [...inputs("cats"), ...inputs("dogs")])
  // One sample moves to the other label and one loses its label: the run trains on 15.
  yield* functions.updateAnnotation(fn.id, added[0]!.sample.id, { labelName: "dogs" })
  yield* functions.updateAnnotation(fn.id, added[15]!.sample.id, null)
  const status = yield* functions.awaitTrained(fn.id)
  const version = (yield* functions.models(fn.id))[0]!
  const metrics = version.metrics as Retrainer.ModelMetrics
  const labels = yield* functions.listLabels(fn.id)
  const labelName = new Map(labels.map((l) => [l.id, l.name]))
  const samples = yield* functions.listSamples(fn.id, { limit: 100 })
  const probes = [...photos("test", "cats", 0, 2), ...photos("test", "dogs", 0, 2)]
  const predictions = yield* Effect.forEach(probes, (probe) => functions.invoke(fn.id, probe))
  return {
    labels: labels.map((l) => ({ name: l.name, description: l.description, metadata: l.metadata })),
    samples: samples.map((s) => ({
      externalId: s.externalId,
      contentHash: s.contentHash,
      annotation: s.annotation === null ? null : { labelName: s.annotation.labelName, sameId: labelName.get(s.annotation.labelId) }
    })),
    function: {
      labels: status.labels.map((l) => ({ name: l.name, sampleCount: l.sampleCount })),
      upToDate: status.model?.upToDate,
      trainError: status.trainError
    },
    model: {
      serving: status.model?.id === version.id,
      promoted: version.promoted,
      labels: version.labels.map((l) => l.name),
      sampleCount: version.sampleCount,
      revision: version.revision,
      selected: metrics.selected,
      cv: { accuracy: metrics.cv.accuracy, macroF1: metrics.cv.macroF1, logLoss: metrics.cv.logLoss, confusionMatrix: metrics.cv.confusionMatrix },
      // The search's ranking, less how long each fit took.
      leaderboard: metrics.leaderboard.map((entry) => {
        const { fitMs: _, ...rest } = entry as { readonly fitMs?: number }
        return rest
      })
    },
    predictions: predictions.map((p) => ({
      labelName: p.labelName,
      confidence: p.confidence,
      labelConfidences: p.labelConfidences.map((c) => ({ labelName: c.labelName, confidence: c.confidence })),
      byServingModel: p.modelId === version.id
    }))
  }
})

type Run = Effect.Effect.Success<typeof script>

/** Every number of a prediction within 1e-6, the rest equal. */
const expectSamePredictions = (a: Run["predictions"], b: Run["predictions"]) => {
  expect(b.map((p) => p.labelName)).toEqual(a.map((p) => p.labelName))
  a.forEach((p, i) => {
    const q = b[i]!
    expect(q.byServingModel).toBe(true)
    expect(Math.abs(q.confidence - p.confidence)).toBeLessThanOrEqual(1e-6)
    expect(q.labelConfidences.map((c) => c.labelName)).toEqual(p.labelConfidences.map((c) => c.labelName))
    p.labelConfidences.forEach((c, k) => expect(Math.abs(q.labelConfidences[k]!.confidence - c.confidence)).toBeLessThanOrEqual(1e-6))
  })
}

describe("the SQLite and Postgres stores", () => {
  it("give the same samples, labels, model and predictions for the same scripted run", async (ctx) => {
    if ("skipped" in postgres) return ctx.skip(postgres.skipped)
    const sqliteDir = path.join(work, "sqlite")
    const sqlite = await Effect.runPromise(
      Effect.provide(script, functionsOn(Functions.layerStorage(StoreLocation.directory(sqliteDir)), "sqlite"))
    )
    const onPostgres = await Effect.runPromise(
      Effect.provide(script, functionsOn(Functions.layerStorage(StoreLocation.postgres(postgres.url)), "postgres"))
    )
    expect(sqlite.samples).toHaveLength(16)
    expect(sqlite.model.sampleCount).toBe(15)
    expect(sqlite.function).toMatchObject({ upToDate: true, trainError: null })
    expect(onPostgres.labels).toEqual(sqlite.labels)
    expect(onPostgres.samples).toEqual(sqlite.samples)
    expect(onPostgres.function).toEqual(sqlite.function)
    const { cv: cvA, leaderboard: boardA, ...modelA } = sqlite.model
    const { cv: cvB, leaderboard: boardB, ...modelB } = onPostgres.model
    expect(modelB).toEqual({ ...modelA, serving: true, promoted: true })
    expect(boardB).toEqual(boardA)
    expect(cvB.confusionMatrix).toEqual(cvA.confusionMatrix)
    for (const key of ["accuracy", "macroF1", "logLoss"] as const) expect(Math.abs(cvB[key] - cvA[key])).toBeLessThanOrEqual(1e-6)
    expectSamePredictions(sqlite.predictions, onPostgres.predictions)
  }, 240_000)
})
