import { describe, expect, it } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { Effect, Exit, Layer, Redacted } from "effect"
import { createHash } from "node:crypto"
import * as fsSync from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { BlobStore, Server, Store, StoreLocation } from "@loupe/functions"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { dialects, dialectTest, sqlClientAt } from "./fixtures/dialects.js"
import * as Migrate from "../src/internal/Migrate.js"
import { migrations } from "../src/internal/Migrations.js"
import { catsVsDogsPhotos } from "./fixtures/environment.js"

const tempDir = (prefix: string) => Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), `loupe-${prefix}-`)))

/** Run `effect` with a store opened on `dir`, closing it afterwards (like a process exiting). */
const withStore = <A, E>(dir: string, effect: Effect.Effect<A, E, Store.Store>) =>
  Effect.provide(effect, Store.layerSqlite(dir).pipe(Layer.provide(NodeFileSystem.layer)))

/** Run `effect` with the store at `location` opened, closing it afterwards (like a process exiting). */
const withStoreAt = <A, E>(location: StoreLocation.StoreLocation, effect: Effect.Effect<A, E, Store.Store>) =>
  Effect.provide(effect, Store.layerLocation(location).pipe(Layer.provide(NodeFileSystem.layer)))

const hash = (i: number) => i.toString(16).padStart(64, "0")

/** Exit code and output of a process. */
const runNode = (args: ReadonlyArray<string>) =>
  new Promise<{ readonly code: number | null; readonly output: string }>((resolve) => {
    const child = spawn(process.execPath, args)
    let output = ""
    child.stdout.on("data", (d) => (output += d))
    child.stderr.on("data", (d) => (output += d))
    child.on("close", (code) => resolve({ code, output }))
  })

const storeDialects = dialects()

describe.each(storeDialects)("Store on $name, from several processes", (dialect) => {
  dialectTest(dialect, "several processes opening one new store at the same moment all get the migrated schema", () =>
    Effect.gen(function*() {
      const script = fileURLToPath(new URL("./fixtures/open-store.mjs", import.meta.url))
      // Before the fix, about one round in six failed on SQLite with "listFunctions failed: Failed to prepare
      // statement". Postgres' migrator locks its table, so two rounds check that the others wait for it.
      for (let round = 0; round < (dialect.name === "sqlite" ? 6 : 2); round++) {
        const location = yield* dialect.fresh
        const store = location._tag === "Directory" ? location.path : Redacted.value(location.url)
        const startAt = String(Date.now() + 1500)
        const results = yield* Effect.promise(() => Promise.all(["a", "b", "c"].map((name) => runNode([script, store, startAt, name]))))
        for (const r of results) expect(r, r.output).toMatchObject({ code: 0 })
        const ids = yield* withStoreAt(location, Effect.flatMap(Store.Store, (store) => store.listFunctions))
        expect(ids.length).toBe(3)
      }
    }))
})

describe.each(storeDialects)("Store on $name", (dialect) => {
  dialectTest(dialect, "functions, labels and samples: dedupe by content, annotations, revisions, listing order", (location) =>
    Effect.gen(function*() {
      yield* withStoreAt(
        location,
        Effect.gen(function*() {
          const store = yield* Store.Store
          const fn = yield* store.createFunction({ name: "IsCatOrDog", preset: "fast", overrides: { folds: 3 } })
          expect(fn).toMatchObject({ name: "IsCatOrDog", preset: "fast", overrides: { folds: 3 }, revision: 0 })
          expect(fn.id).toMatch(/^function_[0-9a-f]{20}$/)

          const labels = yield* store.createLabels(fn.id, [{ name: "cats", description: "felines" }, { name: "dogs" }])
          expect(labels.map((l) => l.name)).toEqual(["cats", "dogs"])
          // Creating an existing label returns it.
          const again = yield* store.createLabels(fn.id, [{ name: "cats" }])
          expect(again[0]!.id).toBe(labels[0]!.id)
          expect(again[0]!.description).toBe("felines")

          // Unlabelled samples do not change the training data; annotated ones do.
          const unlabelled = yield* store.addSamples(fn.id, [{ contentHash: hash(1), externalId: "x1" }])
          expect(unlabelled[0]!.created).toBe(true)
          expect((yield* store.getFunction(fn.id)).revision).toBe(0)

          const added = yield* store.addSamples(fn.id, [
            { contentHash: hash(2), labelName: "cats" },
            { contentHash: hash(3), labelName: "birds" },
            // The same content twice in one call (the second post adds an external id), and content already present
            // (unlabelled): one sample each, the later post applied.
            { contentHash: hash(2), labelName: "cats", externalId: "x2" },
            { contentHash: hash(1), labelName: "dogs" }
          ])
          expect(added.map((a) => a.created)).toEqual([true, true, false, false])
          expect(added.map((a) => a.updated)).toEqual([[], [], ["externalId"], ["annotation"]])
          expect(added[2]!.sample.id).toBe(added[0]!.sample.id)
          expect(added[0]!.sample).toMatchObject({ externalId: "x2", annotation: { labelName: "cats" } })
          expect(added[3]!.sample.id).toBe(unlabelled[0]!.sample.id)
          // The unlabelled duplicate took the annotation it came with.
          expect(added[3]!.sample.annotation?.labelName).toBe("dogs")
          expect((yield* store.getFunction(fn.id)).revision).toBe(1)
          expect((yield* store.listLabels(fn.id)).map((l) => l.name)).toEqual(["birds", "cats", "dogs"])

          const listed = yield* store.listSamples(fn.id)
          expect(listed.map((s) => s.contentHash)).toEqual([hash(1), hash(2), hash(3)])
          expect(listed[0]!.externalId).toBe("x1")
          expect(listed[1]!.externalId).toBe("x2")
          expect((yield* store.listSamples(fn.id, { limit: 1, offset: 1 })).map((s) => s.contentHash)).toEqual([hash(2)])

          const counts = yield* store.labelCounts(fn.id)
          expect(counts.map((c) => [c.label.name, c.count])).toEqual([["birds", 1], ["cats", 1], ["dogs", 1]])

          // Annotation changes bump the revision; setting the same label does not.
          const sample = listed[2]!
          yield* store.setAnnotation(fn.id, sample.id, { labelName: "cats" })
          expect((yield* store.getFunction(fn.id)).revision).toBe(2)
          yield* store.setAnnotation(fn.id, sample.id, { labelId: labels[0]!.id })
          expect((yield* store.getFunction(fn.id)).revision).toBe(2)
          const cleared = yield* store.setAnnotation(fn.id, sample.id, null)
          expect(cleared.annotation).toBeNull()
          expect((yield* store.getFunction(fn.id)).revision).toBe(3)

          const unknownLabel = yield* Effect.exit(store.setAnnotation(fn.id, sample.id, { labelId: "label_nope" }))
          expect(unknownLabel).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "NotFound", field: "annotation.labelId" })))

          // Deleting: unknown ids fail and delete nothing.
          const bad = yield* Effect.exit(store.deleteSamples(fn.id, [sample.id, "sample_missing"]))
          expect(bad).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "NotFound", field: "sampleIds" })))
          expect((yield* store.listSamples(fn.id)).length).toBe(3)
          const deleted = yield* store.deleteSamples(fn.id, [listed[1]!.id])
          expect(deleted.map((s) => s.contentHash)).toEqual([hash(2)])
          expect((yield* store.getFunction(fn.id)).revision).toBe(4)

          const snapshot = yield* store.trainingSnapshot(fn.id)
          expect(snapshot.samples.map((s) => s.annotation.labelName)).toEqual(["dogs"])
          expect(snapshot.function.revision).toBe(4)

          // Posting known content again applies a different annotation and external id, and says so; the same
          // values change nothing; `updateExisting: false` leaves the sample as it is.
          const [relabelled] = yield* store.addSamples(fn.id, [{ contentHash: hash(1), labelName: "cats", externalId: "y1" }])
          expect(relabelled).toMatchObject({ created: false, updated: ["annotation", "externalId"] })
          expect(relabelled!.sample).toMatchObject({ id: unlabelled[0]!.sample.id, externalId: "y1", annotation: { labelName: "cats" } })
          expect((yield* store.getSample(fn.id, relabelled!.sample.id)).externalId).toBe("y1")
          expect((yield* store.getFunction(fn.id)).revision).toBe(5)
          const [same] = yield* store.addSamples(fn.id, [{ contentHash: hash(1), labelName: "cats", externalId: "y1" }])
          expect(same!.updated).toEqual([])
          const [kept] = yield* store.addSamples(fn.id, [{ contentHash: hash(1), labelName: "dogs", externalId: "z1" }], { updateExisting: false })
          expect(kept).toMatchObject({ created: false, updated: [], sample: { externalId: "y1", annotation: { labelName: "cats" } } })
          expect((yield* store.getFunction(fn.id)).revision).toBe(5)

          // Deleting a label keeps its samples, unlabelled, and bumps the revision when it had any.
          const cats = (yield* store.listLabels(fn.id)).find((l) => l.name === "cats")!
          const deletedLabel = yield* store.deleteLabel(fn.id, cats.id)
          expect(deletedLabel).toMatchObject({ label: { name: "cats" }, unannotatedSamples: 1 })
          expect((yield* store.getSample(fn.id, relabelled!.sample.id)).annotation).toBeNull()
          expect((yield* store.listLabels(fn.id)).map((l) => l.name)).toEqual(["birds", "dogs"])
          expect((yield* store.getFunction(fn.id)).revision).toBe(6)
          const birds = (yield* store.listLabels(fn.id)).find((l) => l.name === "birds")!
          expect((yield* store.deleteLabel(fn.id, birds.id)).unannotatedSamples).toBe(0)
          expect((yield* store.getFunction(fn.id)).revision).toBe(6)
          const deletedTwice = yield* Effect.exit(store.deleteLabel(fn.id, cats.id))
          expect(deletedTwice).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "NotFound", field: "labelId" })))
          expect((yield* store.listSamples(fn.id)).length).toBe(2)

          const missing = yield* Effect.exit(store.getFunction("function_missing"))
          expect(missing).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "NotFound", field: "functionId" })))
        })
      )
    }))

  dialectTest(dialect, "tags: tag sets by name or id, dedupe by content, counts, filters, label deletion, snapshot", (location) =>
    withStoreAt(
      location,
      Effect.gen(function*() {
        const store = yield* Store.Store
        const fn = yield* store.createFunction({ name: "Photos", preset: "fast", overrides: {}, output: "Tags" })
        expect(fn.output).toBe("Tags")
        expect((yield* store.getFunction(fn.id)).output).toBe("Tags")
        const classifier = yield* store.createFunction({ name: "Plain", preset: "fast", overrides: {} })
        expect(classifier.output).toBe("Classification")
        const names = (tags: ReadonlyArray<Store.Annotation> | null) => tags?.map((t) => t.labelName) ?? null
        const revision = Effect.map(store.getFunction(fn.id), (f) => f.revision)

        // An untagged sample is not training data; a tagged one is, an empty tag set included (a negative of every tag).
        const added = yield* store.addSamples(fn.id, [
          { contentHash: hash(1), tags: ["flower", "daisy"] },
          { contentHash: hash(2), tags: [] },
          { contentHash: hash(3) },
          // The same content again: one sample, its later tag set applied (duplicates in a set count once).
          { contentHash: hash(1), tags: ["flower", "daisy", "flower"] }
        ])
        expect(added.map((a) => [a.created, a.updated])).toEqual([[true, []], [true, []], [true, []], [false, []]])
        expect(names(added[0]!.sample.tags)).toEqual(["daisy", "flower"])
        expect(added[0]!.sample.annotation).toBeNull()
        expect(names(added[1]!.sample.tags)).toEqual([])
        expect(added[2]!.sample.tags).toBeNull()
        expect(yield* revision).toBe(1)
        const [d, f] = [added[0]!.sample, added[1]!.sample]
        expect(names((yield* store.getSample(fn.id, d.id)).tags)).toEqual(["daisy", "flower"])

        // A re-post with another tag set changes it and says so; the same set changes nothing.
        const [retagged] = yield* store.addSamples(fn.id, [{ contentHash: hash(2), tags: ["animal"], externalId: "e2" }])
        expect(retagged).toMatchObject({ created: false, updated: ["annotation", "externalId"] })
        expect(names(retagged!.sample.tags)).toEqual(["animal"])
        const [same] = yield* store.addSamples(fn.id, [{ contentHash: hash(2), tags: ["animal"] }])
        expect(same!.updated).toEqual([])
        expect(yield* revision).toBe(2)

        const labels = yield* store.listLabels(fn.id)
        expect(labels.map((l) => l.name)).toEqual(["animal", "daisy", "flower"])
        const byName = new Map(labels.map((l) => [l.name, l]))
        expect((yield* store.labelCounts(fn.id)).map((c) => [c.label.name, c.count])).toEqual([["animal", 1], ["daisy", 1], ["flower", 1]])

        // setTags by name and by id; the same set does not bump the revision; null untags.
        const set = yield* store.setTags(fn.id, added[2]!.sample.id, [{ labelName: "flower" }, { labelId: byName.get("animal")!.id }])
        expect(names(set.tags)).toEqual(["animal", "flower"])
        expect(yield* revision).toBe(3)
        yield* store.setTags(fn.id, added[2]!.sample.id, [{ labelId: byName.get("flower")!.id }, { labelName: "animal" }])
        expect(yield* revision).toBe(3)
        const unknown = yield* Effect.exit(store.setTags(fn.id, d.id, [{ labelName: "flower" }, { labelId: "label_nope" }]))
        expect(unknown).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "NotFound", field: "tags[1].labelId" })))
        expect(names((yield* store.getSample(fn.id, d.id)).tags)).toEqual(["daisy", "flower"])

        // Filters: a tag's samples, and the untagged ones.
        const flowerSamples = yield* store.listSamples(fn.id, { labelId: byName.get("flower")!.id })
        expect(flowerSamples.map((s) => s.contentHash)).toEqual([hash(1), hash(3)])
        expect(yield* store.countSamples(fn.id, { labelId: byName.get("flower")!.id })).toBe(2)
        const untagged = yield* store.addSamples(fn.id, [{ contentHash: hash(4) }])
        expect((yield* store.listSamples(fn.id, { labelId: null })).map((s) => s.id)).toEqual([untagged[0]!.sample.id])
        // Paged listing carries the tags too.
        expect((yield* store.listSamples(fn.id, { limit: 2, offset: 0 })).map((s) => names(s.tags))).toEqual([["daisy", "flower"], ["animal"]])

        const snapshot = yield* store.trainingSnapshot(fn.id)
        expect(snapshot.samples).toEqual([])
        expect(snapshot.taggedSamples.map((s) => [s.contentHash, names(s.tags)])).toEqual([
          [hash(1), ["daisy", "flower"]],
          [hash(2), ["animal"]],
          [hash(3), ["animal", "flower"]]
        ])

        // Deleting a label takes it off every tag set; the samples stay tagged (with the rest).
        const deleted = yield* store.deleteLabel(fn.id, byName.get("flower")!.id)
        expect(deleted.unannotatedSamples).toBe(2)
        expect(yield* revision).toBe(4)
        expect(names((yield* store.getSample(fn.id, d.id)).tags)).toEqual(["daisy"])
        const cleared = yield* store.setTags(fn.id, d.id, null)
        expect(cleared.tags).toBeNull()
        expect(yield* revision).toBe(5)

        // Wrong kind of annotation for the function, naming the field.
        const labelInTags = yield* Effect.exit(store.addSamples(fn.id, [{ contentHash: hash(5) }, { contentHash: hash(6), labelName: "x" }]))
        expect(labelInTags).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "InvalidInput", field: "samples[1].labelName" })))
        const tagsInClassifier = yield* Effect.exit(store.addSamples(classifier.id, [{ contentHash: hash(5), tags: ["x"] }]))
        expect(tagsInClassifier).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "InvalidInput", field: "samples[0].tags" })))
        expect((yield* Effect.flip(store.setAnnotation(fn.id, f.id, { labelName: "x" }))).field).toBe("annotation")
        expect((yield* Effect.flip(store.setTags(classifier.id, f.id, []))).field).toBe("tags")
        expect(yield* store.countSamples(fn.id)).toBe(4)

        // Deleting tagged samples and the function removes their tags with them.
        yield* store.deleteSamples(fn.id, [f.id])
        expect(yield* revision).toBe(6)
        expect((yield* store.labelCounts(fn.id)).map((c) => [c.label.name, c.count])).toEqual([["animal", 1], ["daisy", 0]])
        yield* store.deleteFunction(fn.id)
        expect((yield* store.listFunctions).map((x) => x.id)).toEqual([classifier.id])
      })
    ))

  dialectTest(dialect, "a store from before tags migrates: its functions are Classification, its samples untagged and still annotated", (location) =>
    Effect.gen(function*() {
      const before = Object.fromEntries(Object.entries(migrations).filter(([id]) => id < "0003"))
      yield* Effect.gen(function*() {
        yield* Migrate.run("Store", "loupe_migrations", before)
        const sql = yield* SqlClient.SqlClient
        const at = new Date().toISOString()
        yield* sql`INSERT INTO functions ${sql.insert({ id: "function_old", name: "Old", preset: "fast", overrides: "{}", created_at: at, updated_at: at, revision: 1, trained_revision: 0 })}`
        yield* sql`INSERT INTO labels ${sql.insert({ id: "label_cats", function_id: "function_old", name: "cats", created_at: at })}`
        yield* sql`INSERT INTO samples ${sql.insert({ id: "sample_old", function_id: "function_old", seq: 1, content_hash: hash(1), label_id: "label_cats", created_at: at, updated_at: at })}`
      }).pipe(Effect.provide(sqlClientAt(location)), Effect.orDie)
      yield* withStoreAt(
        location,
        Effect.gen(function*() {
          const store = yield* Store.Store
          expect((yield* store.getFunction("function_old")).output).toBe("Classification")
          const sample = yield* store.getSample("function_old", "sample_old")
          expect(sample).toMatchObject({ annotation: { labelName: "cats" }, tags: null })
          expect((yield* store.trainingSnapshot("function_old")).samples.map((s) => s.id)).toEqual(["sample_old"])
        })
      )
    }))

  dialectTest(dialect, "model versions: one promoted at a time, stale versions not promoted, rollback, all survive a reopen", (location) =>
    Effect.gen(function*() {
      const version = (functionId: string, id: string, revision: number): Store.NewModelVersion => ({
        functionId,
        id,
        bundle: `bundles/${functionId}/${id}`,
        labels: [{ id: "label_a", name: "a" }],
        metrics: { accuracy: revision / 10 },
        revision,
        sampleCount: 4
      })
      const fnId = yield* withStoreAt(
        location,
        Effect.gen(function*() {
          const store = yield* Store.Store
          const fn = yield* store.createFunction({ name: "f", preset: "fast", overrides: {} })
          expect(yield* store.promotedVersion(fn.id)).toBeUndefined()
          const v1 = yield* store.addModelVersion(version(fn.id, "model_1", 1))
          expect(v1.promoted).toBe(true)
          const v3 = yield* store.addModelVersion(version(fn.id, "model_3", 3))
          expect(v3.promoted).toBe(true)
          // A run that finishes late, on older data, is kept in the history but not promoted.
          const v2 = yield* store.addModelVersion(version(fn.id, "model_2", 2))
          expect(v2.promoted).toBe(false)
          expect((yield* store.promotedVersion(fn.id))?.id).toBe("model_3")
          expect((yield* store.getFunction(fn.id)).trainedRevision).toBe(3)

          const rolledBack = yield* store.promote(fn.id, "model_1")
          expect(rolledBack).toMatchObject({ id: "model_1", promoted: true, metrics: { accuracy: 0.1 } })
          const history = yield* store.listModelVersions(fn.id)
          expect(history.filter((v) => v.promoted).map((v) => v.id)).toEqual(["model_1"])
          expect(history.length).toBe(3)

          yield* store.markTrainingFailed(fn.id, 4, "Label \"a\" has 1 sample")
          expect(yield* store.getFunction(fn.id)).toMatchObject({ trainedRevision: 4, trainError: "Label \"a\" has 1 sample" })
          const unknown = yield* Effect.exit(store.promote(fn.id, "model_nope"))
          expect(unknown).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "NotFound", field: "versionId" })))
          return fn.id
        })
      )
      // A new store on the same location sees everything.
      yield* withStoreAt(
        location,
        Effect.gen(function*() {
          const store = yield* Store.Store
          expect((yield* store.promotedVersion(fnId))?.id).toBe("model_1")
          expect((yield* store.listModelVersions(fnId)).length).toBe(3)
          expect((yield* store.listFunctions).map((f) => f.id)).toEqual([fnId])
          yield* store.deleteFunction(fnId)
          expect(yield* store.listFunctions).toEqual([])
          expect(yield* store.promotedVersion(fnId)).toBeUndefined()
        })
      )
    }))

  dialectTest(dialect, "a column that does not decode is StoreFailed naming table.column", (location) =>
    Effect.gen(function*() {
      const fn = yield* withStoreAt(location, Effect.flatMap(Store.Store, (store) => store.createFunction({ name: "f", preset: "fast", overrides: {} })))
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE functions SET overrides = ${"{not json"} WHERE id = ${fn.id}`).pipe(
        Effect.provide(sqlClientAt(location))
      )
      const failed = yield* Effect.flip(withStoreAt(location, Effect.flatMap(Store.Store, (store) => store.getFunction(fn.id))))
      expect(failed).toMatchObject({ reason: "StoreFailed", field: "functions.overrides" })
      expect(failed.message).toContain("functions.overrides")
    }))

  dialectTest(dialect, "concurrent writers in one process lose nothing and keep one sample per content", (location) =>
    Effect.gen(function*() {
      yield* withStoreAt(
        location,
        Effect.gen(function*() {
          const store = yield* Store.Store
          const fn = yield* store.createFunction({ name: "f", preset: "fast", overrides: {} })
          // 8 writers, each adding 25 samples of which 5 are shared by all writers.
          yield* Effect.forEach(
            Array.from({ length: 8 }, (_, w) => w),
            (w) =>
              store.addSamples(fn.id, [
                ...Array.from({ length: 20 }, (_, i) => ({ contentHash: hash(1000 * (w + 1) + i), labelName: `l${w % 2}` })),
                ...Array.from({ length: 5 }, (_, i) => ({ contentHash: hash(i), labelName: "shared" }))
              ]),
            { concurrency: "unbounded" }
          )
          const samples = yield* store.listSamples(fn.id)
          expect(samples.length).toBe(8 * 20 + 5)
          expect(new Set(samples.map((s) => s.contentHash)).size).toBe(samples.length)
          // Every call changed the training data at least once (the shared ones only in the first call).
          expect((yield* store.getFunction(fn.id)).revision).toBe(8)
        })
      )
    }))
})

/** Every entry under `dir` named like a temporary file of the blob store. */
const tempFiles = (dir: string) =>
  fsSync.readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => /\.tmp-\d+-[0-9a-f]{12}$/.test(f))

/** The permission bits of a file or folder. */
const mode = (file: string) => fsSync.statSync(file).mode & 0o777

describe("a store after a crash, and its permissions", () => {
  it("a writer killed (kill -9) mid-ingest: reopening removes its temporary files, every acknowledged sample is there", async () => {
    const script = fileURLToPath(new URL("./fixtures/ingest.mjs", import.meta.url))
    const photos = catsVsDogsPhotos("train", "cats", 0, 60).flatMap((cat, i) => [cat, catsVsDogsPhotos("train", "dogs", i, 1)[0]!])
    // A kill lands mid-write only when a write is in flight; each round kills the writer as soon as a temporary file
    // shows, and the test needs one round where the file was still there after the kill.
    for (let round = 0; round < 5; round++) {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), "loupe-crash-"))
      const child = spawn(process.execPath, [script, dir, ...photos])
      let output = ""
      child.stdout.on("data", (d) => (output += d))
      child.stderr.on("data", (d) => (output += d))
      const closed = new Promise((resolve) => child.on("close", resolve))
      // Let a few posts be acknowledged first.
      while (child.exitCode === null && (output.match(/^ack /gm) ?? []).length < 4) await new Promise((r) => setTimeout(r, 5))
      const fnId = /^function (\S+)$/m.exec(output)?.[1]
      expect(fnId, output).toBeDefined()
      const images = path.join(dir, "blobs", "images", fnId!)
      // Watch synchronously (nothing else runs meanwhile) and kill the moment a write is in flight.
      const deadline = Date.now() + 20_000
      while (Date.now() < deadline && !fsSync.readdirSync(images).some((f) => f.includes(".tmp-"))) {
        // spin
      }
      child.kill("SIGKILL")
      await closed
      const orphans = tempFiles(dir)
      if (orphans.length === 0) continue

      const acked = [...output.matchAll(/^ack (\S+)$/gm)].map((m) => m[1]!)
      expect(acked.length).toBeGreaterThanOrEqual(4)
      const found = await Effect.runPromise(
        Effect.gen(function*() {
          const store = yield* Store.Store
          const blobs = yield* BlobStore.makeFileSystem(path.join(dir, "blobs"))
          return yield* Effect.forEach(acked, (id) =>
            Effect.flatMap(store.getSample(fnId!, id), (sample) =>
              Effect.map(blobs.get(Store.imageKey(fnId!, sample.contentHash)), (bytes) =>
                createHash("sha256").update(bytes).digest("hex") === sample.contentHash)))
        }).pipe(Effect.provide(Store.layerSqlite(dir)), Effect.provide(NodeFileSystem.layer))
      )
      expect(found).toEqual(acked.map(() => true))
      expect(tempFiles(dir)).toEqual([])
      return
    }
    expect.fail("no round left a temporary file behind to clean")
  })

  it.effect("a live writer's temporary files are left alone; a dead writer's, and day-old ones, are removed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("blobs")
      const folder = path.join(dir, "images", "f")
      fsSync.mkdirSync(folder, { recursive: true })
      const dead = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const child = spawn(process.execPath, ["-e", ""])
          child.on("close", () => resolve(child.pid!))
        })
      )
      const live = `abc.tmp-${process.pid}-0123456789ab`
      const orphan = `def.tmp-${dead}-0123456789ab`
      const stale = `ghi.tmp-${process.pid}-ba9876543210`
      const staging = path.join(dir, "bundles", "f", `model_1.tmp-${dead}-0123456789ab`)
      for (const name of [live, orphan, stale, "unrelated.tmp", "jkl.tmp-1-xyz"]) fsSync.writeFileSync(path.join(folder, name), "")
      fsSync.mkdirSync(staging, { recursive: true })
      fsSync.writeFileSync(path.join(staging, "manifest.json"), "{}")
      const dayAgo = new Date(Date.now() - 25 * 60 * 60 * 1000)
      fsSync.utimesSync(path.join(folder, stale), dayAgo, dayAgo)

      const blobs = yield* BlobStore.makeFileSystem(dir).pipe(Effect.provide(NodeFileSystem.layer))
      expect(fsSync.readdirSync(folder).sort()).toEqual([live, "jkl.tmp-1-xyz", "unrelated.tmp"])
      expect(fsSync.readdirSync(path.join(dir, "bundles", "f"))).toEqual([])
      // Keys named like temporary files are refused, so the names cleaned are only ever the store's own.
      const bad = yield* Effect.exit(blobs.put(`images/f/${orphan}`, new Uint8Array([1])))
      expect(bad).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "InvalidInput", field: "key" })))
    }))

  it("database files are 0600 and folders 0700, from a new store and after tightening an old one", async () => {
    const dir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), "loupe-modes-")), "store")
    const inStore = Effect.gen(function*() {
      const store = yield* Store.Store
      const blobs = yield* BlobStore.makeFileSystem(path.join(dir, "blobs"))
      const fn = yield* store.createFunction({ name: "f", preset: "fast", overrides: {} })
      yield* blobs.put(Store.imageKey(fn.id, hash(1)), new Uint8Array([1, 2, 3]))
      yield* store.addSamples(fn.id, [{ contentHash: hash(1), labelName: "a" }])
      // While the database is open its -wal and -shm files exist.
      return [
        ...["", "-wal", "-shm"].map((suffix) => [`loupe.db${suffix}`, mode(path.join(dir, `loupe.db${suffix}`))] as const),
        ["store", mode(dir)] as const,
        ["blobs", mode(path.join(dir, "blobs"))] as const,
        ["images", mode(path.join(dir, "blobs", "images", fn.id))] as const,
        ["image", mode(path.join(dir, "blobs", Store.imageKey(fn.id, hash(1))))] as const
      ]
    }).pipe(Effect.provide(Store.layerSqlite(dir)), Effect.provide(NodeFileSystem.layer))
    const expected = [
      ["loupe.db", 0o600],
      ["loupe.db-wal", 0o600],
      ["loupe.db-shm", 0o600],
      ["store", 0o700],
      ["blobs", 0o700],
      ["images", 0o700],
      ["image", 0o600]
    ]
    expect(await Effect.runPromise(inStore)).toEqual(expected)
    // A store made before this (0644 files, a 0755 blobs folder) is tightened when opened.
    fsSync.chmodSync(path.join(dir, "loupe.db"), 0o644)
    fsSync.chmodSync(path.join(dir, "blobs"), 0o755)
    const reopened = await Effect.runPromise(inStore)
    expect(reopened.filter(([name]) => name === "loupe.db" || name === "blobs")).toEqual([["loupe.db", 0o600], ["blobs", 0o700]])

    // The capture log beside it too.
    await Effect.runPromise(
      Effect.flatMap(Server.CaptureLog, (log) => log.add("f", "s", { reason: "random", labelName: "a", confidence: 1, modelId: "m" })).pipe(
        Effect.tap(() =>
          Effect.sync(() => expect(["", "-wal", "-shm"].map((suffix) => mode(path.join(dir, `captures.db${suffix}`)))).toEqual([0o600, 0o600, 0o600]))
        ),
        Effect.provide(Server.CaptureLog.layer(dir)),
        Effect.provide(NodeFileSystem.layer)
      )
    )
  })
})

describe("BlobStore (filesystem)", () => {
  it.effect("put/get/has/remove, atomic directories, key validation", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("blobs")
      const blobs = yield* BlobStore.makeFileSystem(dir).pipe(Effect.provide(NodeFileSystem.layer))
      const bytes = new Uint8Array([1, 2, 3])
      yield* blobs.put("images/f/abc", bytes)
      expect(yield* blobs.get("images/f/abc")).toEqual(bytes)
      expect(yield* blobs.has("images/f/abc")).toBe(true)
      expect(yield* blobs.localFile("images/f/abc")).toBe(path.join(dir, "images", "f", "abc"))
      // No temp files are left beside the blob.
      expect(yield* Effect.promise(() => fs.readdir(path.join(dir, "images", "f")))).toEqual(["abc"])

      const missing = yield* Effect.exit(blobs.get("images/f/nope"))
      expect(missing).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "NotFound", file: "images/f/nope" })))
      for (const key of ["../escape", "/abs", "a//b", "a/./b", ""]) {
        const bad = yield* Effect.exit(blobs.put(key, bytes))
        expect(bad).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "InvalidInput", field: "key" })))
      }

      const written = yield* blobs.putDirectory("bundles/f/v1", (staging) =>
        Effect.promise(() => fs.writeFile(path.join(staging, "manifest.json"), "{}")).pipe(Effect.as(staging)))
      expect(written).not.toBe(path.join(dir, "bundles", "f", "v1"))
      const published = yield* blobs.localDirectory("bundles/f/v1")
      expect(yield* Effect.promise(() => fs.readFile(path.join(published, "manifest.json"), "utf8"))).toBe("{}")
      // A failing writer publishes nothing and leaves no staging folder behind.
      const failed = yield* Effect.exit(blobs.putDirectory("bundles/f/v2", () => Effect.fail("boom")))
      expect(Exit.isFailure(failed)).toBe(true)
      expect(yield* blobs.has("bundles/f/v2")).toBe(false)
      expect(yield* Effect.promise(() => fs.readdir(path.join(dir, "bundles", "f")))).toEqual(["v1"])
      // Publishing over an existing prefix is refused.
      const twice = yield* Effect.exit(blobs.putDirectory("bundles/f/v1", () => Effect.void))
      expect(twice).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "StoreFailed", file: "bundles/f/v1" })))

      yield* blobs.remove("bundles/f")
      expect(yield* blobs.has("bundles/f/v1")).toBe(false)
      yield* blobs.remove("bundles/f")
    }))

})
