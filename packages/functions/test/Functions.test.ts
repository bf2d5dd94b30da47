// The function API end to end on real cats-vs-dogs photos with the offline MobileNetV2-int8 (`fast` preset).
// Workers sleep on the real clock, so these tests run with `it.live`.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Queue, Ref } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { Functions, Retrainer } from "@loupe/functions"
import { catsVsDogsPhotos, functionsEnvironment } from "./fixtures/environment.js"

const images = catsVsDogsPhotos

const samples = (label: "cats" | "dogs", from: number, count: number) =>
  images("train", label, from, count).map((data) => ({ data, label }))

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-functions-"))
let folders = 0
const freshDir = () => path.join(work, `store-${folders++}`)

const environment = functionsEnvironment(path.join(work, "cache"))

const functionsIn = (dir: string, config: Functions.FunctionsConfig = {}) =>
  Functions.layerDirectory(dir, { debounce: "100 millis", ...config }).pipe(Layer.provide(environment))

/** The error an effect fails with (the test fails if it succeeds). */
const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.flip(effect)

/** A fast preset with 3 folds keeps each training run well under a second on these few photos. */
const fast = { preset: "fast", overrides: { folds: 3 } } as const

describe("Functions", () => {
  it.live("lifecycle: not trained yet, training by itself, invoke, metrics, annotations, history, rollback, delete", () =>
    Effect.gen(function*() {
      const functions = yield* Functions.Functions
      const fn = yield* functions.create("IsCatOrDog", fast)
      expect(fn).toMatchObject({ name: "IsCatOrDog", preset: "fast" })
      const probe = images("test", "cats", 0, 1)[0]!

      const empty = yield* failure(functions.invoke(fn.id, probe))
      expect(empty).toMatchObject({ reason: "NotTrained", field: "functionId" })
      expect(empty.message).toContain("not trained yet")
      expect(empty.message).toContain("at least 2 labels")

      const labels = yield* functions.createLabels(fn.id, ["cats", { name: "dogs", description: "good boys" }])
      expect(labels.map((l) => l.name)).toEqual(["cats", "dogs"])

      // One sample per label: still not trainable, and the error says which labels are short.
      yield* functions.createSamples(fn.id, [...samples("cats", 0, 1), ...samples("dogs", 0, 1)])
      expect((yield* functions.awaitTrained(fn.id)).model).toBeNull()
      const short = yield* failure(functions.invoke(fn.id, probe))
      expect(short.reason).toBe("NotTrained")
      expect(short.message).toContain(`left out: "cats" (1 annotated sample), "dogs" (1 annotated sample)`)
      expect((yield* failure(functions.metrics(fn.id))).reason).toBe("NotTrained")

      // Every input form: a path, a Buffer, a file URL and a data URI; the first photo again is a duplicate.
      const [cat1, cat2, cat3] = images("train", "cats", 1, 3)
      const added = yield* functions.createSamples(fn.id, [
        ...samples("cats", 4, 8),
        ...samples("dogs", 1, 11),
        { data: fs.readFileSync(cat1!), label: "cats", externalId: "buffer" },
        { data: pathToFileURL(cat2!), label: "cats" },
        { data: `data:image/jpeg;base64,${fs.readFileSync(cat3!).toString("base64")}`, label: "cats" },
        { data: images("train", "cats", 0, 1)[0]!, label: "cats" }
      ])
      const ids = added.map((a) => a.sample.id)
      expect(ids.length).toBe(23)
      expect(added.map((a) => a.created)).toEqual([...Array(22).fill(true), false])
      const listed = yield* functions.listSamples(fn.id)
      expect(listed.length).toBe(24)
      expect(new Set(ids).size).toBe(23)
      expect(listed.find((s) => s.externalId === "buffer")?.annotation?.labelName).toBe("cats")
      // The duplicate returned the id of the sample posted first.
      expect(ids[22]).toBe(listed[0]!.id)

      const trained = yield* functions.awaitTrained(fn.id)
      expect(trained.model).not.toBeNull()
      expect(trained.model!.upToDate).toBe(true)
      expect(trained.labels.map((l) => [l.name, l.sampleCount])).toEqual([["cats", 12], ["dogs", 12]])
      const v1 = trained.model!.id

      // Held-out test photos.
      const test = [...images("test", "cats", 0, 5).map((f) => [f, "cats"]), ...images("test", "dogs", 0, 5).map((f) => [f, "dogs"])]
      const answers = yield* Effect.forEach(test, ([file]) => functions.invoke(fn.id, file!))
      const correct = answers.filter((a, i) => a.labelName === test[i]![1]).length
      expect(correct).toBeGreaterThanOrEqual(9)
      const first = answers[0]!
      expect(first.modelId).toBe(v1)
      expect(first.labelId).toBe(labels.find((l) => l.name === first.labelName)!.id)
      expect(first.labelConfidences.map((c) => c.labelName).sort()).toEqual(["cats", "dogs"])
      expect(first.labelConfidences[0]!.confidence).toBe(first.confidence)
      expect(first.labelConfidences.reduce((s, c) => s + c.confidence, 0)).toBeCloseTo(1, 5)
      expect((yield* functions.invoke(fn.id, test[0]![0]!, { labelCount: 1 })).labelConfidences.length).toBe(1)

      const metrics = yield* functions.metrics(fn.id)
      expect(metrics).toMatchObject({
        functionId: fn.id,
        modelId: v1,
        upToDate: true,
        sampleCount: 24,
        preset: { name: "fast" },
        search: { scope: "full", fullSearchSamples: 24 }
      })
      expect(metrics.cv.total).toBe(24)
      expect(metrics.cv.folds).toBe(3)
      expect(metrics.cv.accuracy).toBeGreaterThanOrEqual(0.8)
      expect(metrics.cv.labels).toEqual(["cats", "dogs"])
      expect(metrics.cv.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(24)
      expect(metrics.cv.perClass.map((c) => [c.labelName, c.support])).toEqual([["cats", 12], ["dogs", 12]])
      for (const c of metrics.cv.perClass) expect(c.accuracy).toBeCloseTo(c.recall, 10)
      // Each sample's out-of-fold prediction is kept: they add up to the confusion matrix, cell by cell.
      const oof = metrics.cv.outOfFold!
      expect(new Set(oof.sampleIds)).toEqual(new Set(listed.map((s) => s.id)))
      const cells = metrics.cv.labels.map(() => metrics.cv.labels.map(() => 0))
      oof.sampleIds.forEach((id, i) => {
        expect(oof.given[i]).toBe(metrics.cv.labels.indexOf(listed.find((s) => s.id === id)!.annotation!.labelName))
        expect(oof.confidence[i]).toBeGreaterThanOrEqual(0.5)
        cells[oof.given[i]!]![oof.predicted[i]!]!++
      })
      expect(cells).toEqual(metrics.cv.confusionMatrix)
      expect(metrics.cv.calibration!.bins.reduce((n, b) => n + b.count, 0)).toBe(24)
      expect(metrics.cv.calibration!.ece).toBeGreaterThanOrEqual(0)

      // Bad input: an error naming the field, and nothing added.
      const notAnImage = path.join(work, "notes.jpg")
      fs.writeFileSync(notAnImage, "not a JPEG")
      const bad = yield* failure(functions.createSamples(fn.id, [samples("dogs", 20, 1)[0]!, { data: notAnImage, label: "dogs" }]))
      expect(bad).toMatchObject({ reason: "InvalidImage", field: "samples[1].data" })
      const badLabel = yield* failure(functions.createSamples(fn.id, [{ data: probe, label: "" }]))
      expect(badLabel).toMatchObject({ reason: "InvalidInput", field: "samples[0].label" })
      const url = yield* failure(functions.createSamples(fn.id, [{ data: new URL("https://example.com/cat.jpg") }]))
      expect(url).toMatchObject({ reason: "InvalidImage", field: "samples[0].data" })
      expect(url.message).toContain("disabled")
      expect((yield* functions.listSamples(fn.id)).length).toBe(24)
      const badInvoke = yield* failure(functions.invoke(fn.id, new Uint8Array([0xff, 0xd8, 1, 2, 3])))
      expect(badInvoke).toMatchObject({ reason: "InvalidImage", field: "data" })

      // An annotation change retrains: a new version, promoted; the old one stays in the history.
      const dog = listed.find((s) => s.annotation?.labelName === "dogs")!
      yield* functions.updateAnnotation(fn.id, dog.id, { labelName: "cats" })
      yield* functions.updateAnnotation(fn.id, dog.id, null)
      const v2 = (yield* functions.awaitTrained(fn.id)).model!.id
      expect(v2).not.toBe(v1)
      const history = yield* functions.models(fn.id)
      expect(history.map((v) => v.id)).toEqual([v2, v1])
      expect(history.map((v) => v.promoted)).toEqual([true, false])
      expect(history[0]!.sampleCount).toBe(23)
      // A small change retrains on the promoted model's choice only (the same candidate, refit and cross-validated
      // again), counting from the last full search.
      expect(history[0]!.metrics).toMatchObject({ search: { scope: "selected", fullSearchSamples: 24 } })
      type Chosen = { readonly selected: unknown; readonly leaderboard: ReadonlyArray<unknown> }
      const [retrained, previous] = history.map((v) => v.metrics as Chosen)
      expect(retrained!.selected).toEqual(previous!.selected)
      expect(retrained!.leaderboard.length).toBe(1)

      const rolledBack = yield* functions.rollback(fn.id, v1)
      expect(rolledBack).toMatchObject({ id: v1, promoted: true })
      expect((yield* functions.invoke(fn.id, probe)).modelId).toBe(v1)
      expect((yield* functions.get(fn.id)).model).toMatchObject({ id: v1, upToDate: false })

      // Deleting samples retrains too, on what is left.
      yield* functions.deleteSamples(fn.id, [dog.id, ids[0]!])
      const v3 = (yield* functions.awaitTrained(fn.id)).model!
      expect(v3.id).not.toBe(v1)
      expect((yield* functions.metrics(fn.id)).sampleCount).toBe(22)

      expect((yield* functions.list).map((f) => f.id)).toContain(fn.id)
      yield* functions.delete(fn.id)
      expect((yield* functions.list).map((f) => f.id)).not.toContain(fn.id)
      expect(yield* failure(functions.get(fn.id))).toMatchObject({ reason: "NotFound", field: "functionId" })
    }).pipe(Effect.provide(functionsIn(freshDir()))))

  it.live("labels below 2 samples are left out, not blocking; re-posts apply their label; a deleted label's samples stay", () =>
    Effect.gen(function*() {
      const functions = yield* Functions.Functions
      const fn = yield* functions.create("left-out", fast)
      const [fish] = images("train", "cats", 90, 1)
      // "birds" has no samples, "fish" one: the function trains on cats and dogs without them.
      yield* functions.createLabels(fn.id, ["birds"])
      const first = yield* functions.createSamples(fn.id, [
        ...samples("cats", 80, 3),
        ...samples("dogs", 80, 3),
        { data: fish!, label: "fish" }
      ])
      const trained = yield* functions.awaitTrained(fn.id)
      expect(trained.trainError).toBeNull()
      expect(trained.model).not.toBeNull()
      expect(trained.leftOutLabels.map((l) => [l.name, l.sampleCount])).toEqual([["birds", 0], ["fish", 1]])
      expect(trained.leftOutLabels[1]!.reason).toContain("at least 2")
      const metrics = yield* functions.metrics(fn.id)
      expect(metrics.cv.labels).toEqual(["cats", "dogs"])
      expect(metrics.sampleCount).toBe(6)
      expect(metrics.leftOutLabels.map((l) => l.name)).toEqual(["birds", "fish"])

      // The same images again: the existing samples, with what the posts changed applied and named.
      const again = yield* functions.createSamples(fn.id, [
        { data: fish!, label: "cats" },
        { ...samples("dogs", 80, 1)[0]!, externalId: "dog-80" },
        samples("cats", 80, 1)[0]!
      ])
      expect(again.map((a) => [a.sample.id, a.created, a.updated])).toEqual([
        [first[6]!.sample.id, false, ["annotation"]],
        [first[3]!.sample.id, false, ["externalId"]],
        [first[0]!.sample.id, false, []]
      ])
      expect((yield* functions.getSample(fn.id, first[6]!.sample.id)).annotation?.labelName).toBe("cats")
      const v2 = yield* functions.awaitTrained(fn.id)
      expect(v2.labels.find((l) => l.name === "cats")!.sampleCount).toBe(4)
      expect(v2.leftOutLabels.map((l) => [l.name, l.sampleCount])).toEqual([["birds", 0], ["fish", 0]])

      // Deleting "cats" keeps its samples, unlabelled; one trainable label is not enough, and the status says so
      // while the last model keeps serving.
      const cats = (yield* functions.listLabels(fn.id)).find((l) => l.name === "cats")!
      const deleted = yield* functions.deleteLabel(fn.id, cats.id)
      expect(deleted).toMatchObject({ label: { id: cats.id, name: "cats" }, unannotatedSamples: 4 })
      expect((yield* functions.listLabels(fn.id)).map((l) => l.name)).toEqual(["birds", "dogs", "fish"])
      const kept = yield* functions.listSamples(fn.id)
      expect(kept.length).toBe(7)
      expect(kept.filter((s) => s.annotation === null).length).toBe(4)
      expect(yield* failure(functions.deleteLabel(fn.id, cats.id))).toMatchObject({ reason: "NotFound", field: "labelId" })
      const stuck = yield* functions.awaitTrained(fn.id)
      expect(stuck.trainError).toContain("at least 2 labels with at least 2 annotated samples each")
      expect(stuck.trainError).toContain(`it has 1 ("dogs": 3 annotated samples)`)
      expect(stuck.model!.id).toBe(v2.model!.id)
      expect((yield* functions.invoke(fn.id, images("test", "cats", 0, 1)[0]!)).modelId).toBe(v2.model!.id)
    }).pipe(Effect.provide(functionsIn(freshDir()))))

  it.live("an unknown preset key is rejected at creation, naming the key", () =>
    Effect.gen(function*() {
      const functions = yield* Functions.Functions
      const error = yield* failure(functions.create("f", { preset: "balanced", overrides: { timeBudgetSecs: 5 } }))
      expect(error).toMatchObject({ reason: "InvalidOptions", field: "timeBudgetSecs" })
      expect(error.message).toContain("timeBudgetSecs")
      expect(yield* functions.list).toEqual([])
    }).pipe(Effect.provide(functionsIn(freshDir()))))

  it.live("a restart in the middle keeps every sample and the current model, then finishes the retrain", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const before = yield* Effect.gen(function*() {
        const functions = yield* Functions.Functions
        const fn = yield* functions.create("restart", fast)
        yield* functions.createSamples(fn.id, [...samples("cats", 30, 8), ...samples("dogs", 30, 8)])
        const v1 = (yield* functions.awaitTrained(fn.id)).model!.id
        // New samples schedule a retrain; the store closes (interrupting it) before it can finish.
        yield* functions.createSamples(fn.id, [...samples("cats", 40, 3), ...samples("dogs", 40, 3)])
        expect((yield* functions.get(fn.id)).training.phase).not.toBe("idle")
        return { id: fn.id, v1, sampleIds: (yield* functions.listSamples(fn.id)).map((s) => s.id) }
      }).pipe(Effect.provide(functionsIn(dir)))

      yield* Effect.gen(function*() {
        const functions = yield* Functions.Functions
        expect((yield* functions.listSamples(before.id)).map((s) => s.id)).toEqual(before.sampleIds)
        expect(before.sampleIds.length).toBe(22)
        // The old model answers at once, while the retrain picked up at start runs.
        const answer = yield* functions.invoke(before.id, images("test", "dogs", 0, 1)[0]!)
        expect(answer.modelId).toBe(before.v1)
        const after = yield* functions.awaitTrained(before.id)
        expect(after.model!.id).not.toBe(before.v1)
        expect(after.model!.upToDate).toBe(true)
        expect((yield* functions.metrics(before.id)).sampleCount).toBe(22)
      }).pipe(Effect.provide(functionsIn(dir, { debounce: "300 millis" })))
    }))

  it.live("invokes issued during a retrain all succeed; the old model answers until the new one is promoted", () =>
    Effect.gen(function*() {
      const functions = yield* Functions.Functions
      const retrainer = yield* Retrainer.Retrainer
      const fn = yield* functions.create("under-load", fast)
      yield* functions.createSamples(fn.id, [...samples("cats", 60, 10), ...samples("dogs", 60, 10)])
      const v1 = (yield* functions.awaitTrained(fn.id)).model!.id

      const events = yield* retrainer.subscribe
      yield* functions.createSamples(fn.id, [...samples("cats", 70, 4), ...samples("dogs", 70, 4)])
      const started = yield* Queue.take(events)
      expect(started).toMatchObject({ _tag: "Started", functionId: fn.id })

      // Invokers (started after the retrain began) run until the promotion is announced, and a little after.
      // `clock` orders invoke starts and ends across fibers.
      const clock = yield* Ref.make(0)
      const announcedAt = yield* Ref.make(Infinity)
      const probes = [...images("test", "cats", 10, 3), ...images("test", "dogs", 10, 3)]
      const invoker = (k: number) =>
        Effect.gen(function*() {
          const log: Array<{ readonly start: number; readonly end: number; readonly modelId: string }> = []
          for (let i = 0;; i++) {
            const start = yield* Ref.getAndUpdate(clock, (n) => n + 1)
            const answer = yield* functions.invoke(fn.id, probes[(k + i) % probes.length]!)
            const end = yield* Ref.getAndUpdate(clock, (n) => n + 1)
            log.push({ start, end, modelId: answer.modelId })
            if (start > (yield* Ref.get(announcedAt)) + 8) return log
          }
        })
      const invokers = yield* Effect.forEach([0, 1, 2, 3], (k) => Effect.fork(invoker(k)))
      const trained = yield* Queue.take(events)
      yield* Ref.set(announcedAt, yield* Ref.get(clock))
      expect(trained).toMatchObject({ _tag: "Trained", functionId: fn.id, version: { promoted: true } })
      const v2 = (trained as Extract<Retrainer.RetrainEvent, { _tag: "Trained" }>).version.id
      // Fiber.join fails if any invoke failed.
      const logs = (yield* Fiber.join(Fiber.all(invokers))).flat()

      expect(logs.every((l) => l.modelId === v1 || l.modelId === v2)).toBe(true)
      const old = logs.filter((l) => l.modelId === v1)
      const fresh = logs.filter((l) => l.modelId === v2)
      // The old model answered during the retrain...
      expect(old.length).toBeGreaterThan(0)
      // ...and never again once an answer from the new one had come back (the switch is atomic),
      expect(Math.max(...old.map((l) => l.start))).toBeLessThan(Math.min(...fresh.map((l) => l.end)))
      // ...and every invoke issued after the promotion was announced got the new model.
      const at = yield* Ref.get(announcedAt)
      const after = logs.filter((l) => l.start > at)
      expect(after.length).toBeGreaterThan(0)
      expect(after.every((l) => l.modelId === v2)).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(functionsIn(freshDir(), { debounce: "50 millis" }))))
})
