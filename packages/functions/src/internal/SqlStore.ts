/**
 * The store's implementation over `@effect/sql`'s `SqlClient`: migrations, then every read and write of `StoreShape`
 * as SQL, for SQLite and Postgres; where they differ (`promoted` is an integer in one and a boolean in the other,
 * a consistent read needs `REPEATABLE READ` in Postgres), `sql.onDialectOrElse` picks.
 *
 * Every write transaction starts by updating the function's row (`lockFunction`): in SQLite that takes the database's
 * write lock, in Postgres the row's lock, so two writers to one function, in any processes, run one after the other
 * and each sees what the other committed.
 *
 * @internal
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql"
import { Effect, Schema } from "effect"
import { FunctionsError } from "../FunctionsError.js"
import type {
  AddedSample,
  Annotation,
  FunctionRecord,
  LabelRecord,
  NewLabel,
  SampleRecord,
  SampleUpdate,
  StoreShape,
  TrainingSnapshot
} from "../Store.js"
import * as Ids from "./Ids.js"
import * as Migrate from "./Migrate.js"
import { migrations } from "./Migrations.js"
import { chunks } from "./SqlChunks.js"
import { findAll, FunctionRow, Int, LabelRow, ModelVersionRow, toSample } from "./StoreRows.js"
import type { SampleJoinRow } from "./StoreRows.js"

export const sqlFailed = (what: string) => (cause: SqlError.SqlError) =>
  new FunctionsError({ reason: "StoreFailed", message: `Store: ${what} failed: ${cause.message}`, cause })

const notFound = (what: string, id: string, field: string) =>
  new FunctionsError({ reason: "NotFound", field, message: `No ${what} ${JSON.stringify(id)}` })

const now = () => new Date().toISOString()

/** A request for a function's row by id (a label, a model version). */
const ById = Schema.Struct({ functionId: Schema.String, id: Schema.String })

/** A request for a function's model versions: all of them, or the promoted one. */
const ByFunction = Schema.Struct({ functionId: Schema.String, all: Schema.Boolean })

const newestMigration = Math.max(...Object.keys(migrations).map((key) => Number.parseInt(key, 10)))

/**
 * Wait until the newest migration is committed. When another process is migrating the same new store, the Migrator
 * here finds its migrations "already running" and returns at once, before the other process has committed the
 * tables; a migration's row and its tables commit in one transaction, so seeing the row means the schema is there.
 */
const awaitSchema = (sql: SqlClient.SqlClient): Effect.Effect<void, FunctionsError> =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 300; attempt++) {
      const rows = yield* sql<{ readonly latest: number | null }>`SELECT MAX(migration_id) AS latest FROM loupe_migrations`.pipe(
        Effect.orElseSucceed(() => [])
      )
      if ((rows[0]?.latest ?? 0) >= newestMigration) return
      yield* Effect.sleep("100 millis")
    }
    return yield* new FunctionsError({
      reason: "StoreFailed",
      message: "Store: the schema is still not migrated after 30 s (another process is migrating it, or failed to)"
    })
  })

/** The store over whatever `SqlClient` is provided; runs the migrations first. */
export const make: Effect.Effect<StoreShape, FunctionsError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const pg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
  /** `promoted` as each dialect stores it: a boolean in Postgres, 0/1 in SQLite. */
  const flag = (value: boolean) => (pg ? value : value ? 1 : 0)
  const isPromoted = sql.literal(pg ? "promoted" : "promoted = 1")
  const isTagged = sql.literal(pg ? "s.tagged" : "s.tagged = 1")
  yield* Migrate.run("Store", "loupe_migrations", migrations)
  yield* awaitSchema(sql)

  const run = <A, E, R>(what: string, effect: Effect.Effect<A, E | SqlError.SqlError, R>) =>
    Effect.catchTag(effect, "SqlError", (e) => Effect.fail(sqlFailed(what)(e as SqlError.SqlError))) as Effect.Effect<
      A,
      Exclude<E, SqlError.SqlError> | FunctionsError,
      R
    >

  const transaction = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) => run(what, sql.withTransaction(effect))

  const theFunction = (functionId: string) => (rows: ReadonlyArray<FunctionRow>) =>
    rows[0] ? Effect.succeed(rows[0]) : Effect.fail(notFound("function", functionId, "functionId"))

  const functionsById = findAll("functions", Schema.String, FunctionRow, (id) => sql`SELECT * FROM functions WHERE id = ${id}`)
  const selectFunction = (functionId: string) => Effect.flatMap(functionsById(functionId), theFunction(functionId))

  /**
   * The first statement of a write transaction: takes the write lock (SQLite's database lock, Postgres' lock on the
   * function's row) and checks the function exists.
   */
  const lockedFunctions = findAll(
    "functions",
    Schema.String,
    FunctionRow,
    (id) => sql`UPDATE functions SET updated_at = ${now()} WHERE id = ${id} RETURNING *`
  )
  const lockFunction = (functionId: string) => Effect.flatMap(lockedFunctions(functionId), theFunction(functionId))

  const bumpRevision = (functionId: string) =>
    sql`UPDATE functions SET revision = revision + 1 WHERE id = ${functionId}`

  const sampleColumns = sql`s.id, s.function_id, s.content_hash, s.external_id, s.label_id, l.name AS label_name,
    s.tagged, s.created_at, s.updated_at`

  /**
   * `SampleFilter.labelId` as a condition on `samples s`: a label's samples (annotated or tagged with it), the
   * unlabelled and untagged ones, or all.
   */
  const labelCondition = (labelId: string | null | undefined) =>
    labelId === undefined
      ? sql``
      : labelId === null
      ? sql`AND s.label_id IS NULL AND NOT ${isTagged}`
      : sql`AND (s.label_id = ${labelId}
        OR EXISTS (SELECT 1 FROM sample_tags t WHERE t.sample_id = s.id AND t.label_id = ${labelId}))`

  type TagRow = { readonly sample_id: string; readonly label_id: string; readonly name: string }
  const tagColumns = sql`t.sample_id, t.label_id, l.name FROM sample_tags t JOIN labels l ON l.id = t.label_id`

  /**
   * The rows as records with their tags: the tags of the tagged ones are read in chunks of ids, or, with `everyTag`
   * (a whole function's samples), in one query of the function's tags.
   */
  const withTags = (functionId: string, rows: ReadonlyArray<SampleJoinRow>, everyTag = false) =>
    Effect.gen(function*() {
      const tagged = rows.flatMap((r) => (r.tagged === true || r.tagged === 1 ? [r.id] : []))
      const tagRows = tagged.length === 0
        ? []
        : everyTag
        ? yield* sql<TagRow>`SELECT ${tagColumns} WHERE t.function_id = ${functionId} ORDER BY l.name`
        : (yield* Effect.forEach(chunks(tagged), (chunk) =>
          sql<TagRow>`SELECT ${tagColumns} WHERE t.function_id = ${functionId} AND ${sql.in("t.sample_id", chunk)}
            ORDER BY l.name`)).flat()
      const tagsOf = new Map<string, Array<Annotation>>()
      for (const t of tagRows) {
        let list = tagsOf.get(t.sample_id)
        if (list === undefined) tagsOf.set(t.sample_id, list = [])
        list.push({ labelId: t.label_id, labelName: t.name })
      }
      return rows.map((row) => toSample(row, tagsOf))
    })

  const selectSamples = (functionId: string, ids: ReadonlyArray<string>) =>
    Effect.flatMap(
      Effect.forEach(chunks(ids), (chunk) =>
        sql<SampleJoinRow>`SELECT ${sampleColumns} FROM samples s LEFT JOIN labels l ON l.id = s.label_id
          WHERE s.function_id = ${functionId} AND ${sql.in("s.id", chunk)}`),
      (rows) => withTags(functionId, rows.flat())
    )

  const selectSample = (functionId: string, sampleId: string) =>
    Effect.flatMap(selectSamples(functionId, [sampleId]), ([sample]) =>
      sample ? Effect.succeed(sample) : Effect.fail(notFound("sample", sampleId, "sampleId")))

  const selectLabels = findAll(
    "labels",
    Schema.String,
    LabelRow,
    (functionId) => sql`SELECT * FROM labels WHERE function_id = ${functionId} ORDER BY name`
  )

  const labelsById = findAll(
    "labels",
    ById,
    LabelRow,
    ({ functionId, id }) => sql`SELECT * FROM labels WHERE function_id = ${functionId} AND id = ${id}`
  )

  const annotatedWith = findAll(
    "samples",
    ById,
    Schema.Struct({ n: Int }),
    ({ functionId, id }) => sql`SELECT COUNT(*) AS n FROM samples WHERE function_id = ${functionId} AND label_id = ${id}`
  )

  const taggedWith = findAll(
    "sample_tags",
    ById,
    Schema.Struct({ n: Int }),
    ({ functionId, id }) => sql`SELECT COUNT(*) AS n FROM sample_tags WHERE function_id = ${functionId} AND label_id = ${id}`
  )

  /** Samples per label: annotated with it (Classification) and tagged with it (Tags); a function has one or the other. */
  const labelCountsOf = findAll(
    "samples",
    Schema.String,
    Schema.Struct({ label_id: Schema.String, n: Int }),
    (functionId) =>
      sql`SELECT label_id, COUNT(*) AS n FROM (
          SELECT label_id FROM samples WHERE function_id = ${functionId} AND label_id IS NOT NULL
          UNION ALL SELECT label_id FROM sample_tags WHERE function_id = ${functionId}
        ) AS annotations GROUP BY label_id`
  )

  const nextSeq = findAll(
    "samples",
    Schema.String,
    Schema.Struct({ next: Int }),
    (functionId) => sql`SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM samples WHERE function_id = ${functionId}`
  )

  /** Labels by name, creating the missing ones (inside a write transaction). */
  const ensureLabels = (functionId: string, labels: ReadonlyArray<NewLabel>) =>
    Effect.gen(function*() {
      const existing = new Map((yield* selectLabels(functionId)).map((l) => [l.name, l]))
      const created: Array<LabelRecord> = []
      for (const label of labels) {
        if (existing.has(label.name)) continue
        const record: LabelRecord = {
          id: Ids.make("label"),
          functionId,
          name: label.name,
          description: label.description ?? null,
          metadata: label.metadata ?? null,
          createdAt: now()
        }
        yield* sql`INSERT INTO labels ${
          sql.insert({
            id: record.id,
            function_id: functionId,
            name: record.name,
            description: record.description,
            metadata: record.metadata === null ? null : JSON.stringify(record.metadata),
            created_at: record.createdAt
          })
        }`
        existing.set(label.name, record)
        created.push(record)
      }
      return existing
    })

  const selectVersionsOf = findAll("model_versions", ByFunction, ModelVersionRow, ({ all, functionId }) =>
    all
      ? sql`SELECT * FROM model_versions WHERE function_id = ${functionId} ORDER BY created_at DESC, revision DESC`
      : sql`SELECT * FROM model_versions WHERE function_id = ${functionId} AND ${isPromoted}`)
  const selectVersions = (functionId: string, where: "all" | "promoted") =>
    selectVersionsOf({ functionId, all: where === "all" })

  const versionsById = findAll(
    "model_versions",
    ById,
    ModelVersionRow,
    ({ functionId, id }) => sql`SELECT * FROM model_versions WHERE function_id = ${functionId} AND id = ${id}`
  )
  const selectVersion = (functionId: string, versionId: string) =>
    Effect.flatMap(versionsById({ functionId, id: versionId }), ([version]) =>
      version ? Effect.succeed(version) : Effect.fail(notFound("model version", versionId, "versionId")))

  const setPromoted = (functionId: string, versionId: string) =>
    Effect.zipRight(
      sql`UPDATE model_versions SET promoted = ${flag(false)} WHERE function_id = ${functionId} AND ${isPromoted}`,
      sql`UPDATE model_versions SET promoted = ${flag(true)}, held_back = NULL
        WHERE function_id = ${functionId} AND id = ${versionId}`
    )

  /** A tag list as the store keeps it: each label once, by name. */
  const tagList = (labels: Iterable<LabelRecord>): ReadonlyArray<Annotation> =>
    [...new Map([...labels].map((l) => [l.id, { labelId: l.id, labelName: l.name }])).values()]
      .sort((a, b) => (a.labelName < b.labelName ? -1 : a.labelName > b.labelName ? 1 : 0))

  const sameTags = (a: ReadonlyArray<Annotation> | null, b: ReadonlyArray<Annotation> | null) =>
    a === null || b === null ? a === b : a.length === b.length && a.every((t, i) => t.labelId === b[i]!.labelId)

  /** Replace a sample's tag rows (inside a write transaction). */
  const writeTags = (functionId: string, sampleId: string, tags: ReadonlyArray<Annotation> | null) =>
    Effect.zipRight(
      sql`DELETE FROM sample_tags WHERE sample_id = ${sampleId}`,
      tags === null || tags.length === 0 ? Effect.void : sql`INSERT INTO sample_tags ${
        sql.insert(tags.map((t) => ({ sample_id: sampleId, label_id: t.labelId, function_id: functionId })))
      }`
    )

  /** Fails unless the function answers `output`, naming `field`, the input only the other kind takes. */
  const expectOutput = (fn: FunctionRecord, output: FunctionRecord["output"], field: string, what: string) =>
    fn.output === output ? Effect.void : Effect.fail(
      new FunctionsError({
        reason: "InvalidInput",
        field,
        message: `${field}: function ${fn.name} (${fn.id}) outputs ${fn.output}; ${what} are for ${output} functions`
      })
    )

  const store: StoreShape = {
    createFunction: ({ name, output = "Classification", overrides, preset }) => {
      const createdAt = now()
      const record: FunctionRecord = {
        id: Ids.make("function"),
        name,
        output,
        preset,
        overrides,
        createdAt,
        revision: 0,
        trainedRevision: 0,
        trainError: null
      }
      return run(
        "createFunction",
        sql`INSERT INTO functions ${
          sql.insert({
            id: record.id,
            name,
            output,
            preset,
            overrides: JSON.stringify(overrides ?? {}),
            created_at: createdAt,
            updated_at: createdAt,
            revision: 0,
            trained_revision: 0,
            train_error: null
          })
        }`.pipe(Effect.as(record))
      )
    },

    getFunction: (functionId) => run("getFunction", selectFunction(functionId)),

    listFunctions: run(
      "listFunctions",
      findAll("functions", Schema.Void, FunctionRow, () => sql`SELECT * FROM functions ORDER BY created_at, id`)(undefined)
    ),

    deleteFunction: (functionId) =>
      transaction(
        "deleteFunction",
        Effect.gen(function*() {
          yield* lockFunction(functionId)
          yield* sql`DELETE FROM model_versions WHERE function_id = ${functionId}`
          yield* sql`DELETE FROM sample_tags WHERE function_id = ${functionId}`
          yield* sql`DELETE FROM samples WHERE function_id = ${functionId}`
          yield* sql`DELETE FROM labels WHERE function_id = ${functionId}`
          yield* sql`DELETE FROM functions WHERE id = ${functionId}`
        })
      ),

    createLabels: (functionId, labels) =>
      transaction(
        "createLabels",
        Effect.gen(function*() {
          yield* lockFunction(functionId)
          const byName = yield* ensureLabels(functionId, labels)
          return labels.map((l) => byName.get(l.name)!)
        })
      ),

    listLabels: (functionId) =>
      run("listLabels", Effect.zipRight(selectFunction(functionId), selectLabels(functionId))),

    labelCounts: (functionId) =>
      run(
        "labelCounts",
        Effect.gen(function*() {
          yield* selectFunction(functionId)
          const labels = yield* selectLabels(functionId)
          const rows = yield* labelCountsOf(functionId)
          const counts = new Map(rows.map((r) => [r.label_id, r.n]))
          return labels.map((label) => ({ label, count: counts.get(label.id) ?? 0 }))
        })
      ),

    deleteLabel: (functionId, labelId) =>
      transaction(
        "deleteLabel",
        Effect.gen(function*() {
          yield* lockFunction(functionId)
          const [label] = yield* labelsById({ functionId, id: labelId })
          if (label === undefined) return yield* notFound("label", labelId, "labelId")
          const [{ n: annotated }] = yield* annotatedWith({ functionId, id: labelId })
          const [{ n: tagged }] = yield* taggedWith({ functionId, id: labelId })
          if (annotated > 0) {
            yield* sql`UPDATE samples SET label_id = NULL, updated_at = ${now()}
              WHERE function_id = ${functionId} AND label_id = ${labelId}`
          }
          if (tagged > 0) {
            yield* sql`UPDATE samples SET updated_at = ${now()} WHERE id IN
              (SELECT sample_id FROM sample_tags WHERE function_id = ${functionId} AND label_id = ${labelId})`
            yield* sql`DELETE FROM sample_tags WHERE function_id = ${functionId} AND label_id = ${labelId}`
          }
          const unannotatedSamples = annotated + tagged
          if (unannotatedSamples > 0) yield* bumpRevision(functionId)
          yield* sql`DELETE FROM labels WHERE id = ${labelId}`
          return { label, unannotatedSamples }
        })
      ),

    updateLabel: (functionId, labelId, update) =>
      transaction(
        "updateLabel",
        Effect.gen(function*() {
          yield* lockFunction(functionId)
          const [label] = yield* labelsById({ functionId, id: labelId })
          if (label === undefined) return yield* notFound("label", labelId, "labelId")
          const labels = yield* selectLabels(functionId)
          if (labels.some((l) => l.name === update.name && l.id !== labelId)) {
            return yield* new FunctionsError({ reason: "InvalidInput", field: "name", message: `name: the function has another label named ${JSON.stringify(update.name)}` })
          }
          const updated: LabelRecord = { ...label, name: update.name, description: update.description ?? null, metadata: update.metadata ?? null }
          yield* sql`UPDATE labels SET name = ${updated.name}, description = ${updated.description},
            metadata = ${updated.metadata === null ? null : JSON.stringify(updated.metadata)} WHERE id = ${labelId}`
          if (updated.name !== label.name && (yield* annotatedWith({ functionId, id: labelId }))[0]!.n > 0) yield* bumpRevision(functionId)
          return updated
        })
      ),

    addSamples: (functionId, samples, options = {}) =>
      transaction(
        "addSamples",
        Effect.gen(function*() {
          const fn = yield* lockFunction(functionId)
          yield* Effect.forEach(samples, (s, i) =>
            s.tags !== undefined
              ? expectOutput(fn, "Tags", `samples[${i}].tags`, "tags")
              : s.labelName !== undefined
              ? expectOutput(fn, "Classification", `samples[${i}].labelName`, "labels (annotations)")
              : Effect.void)
          const wanted = samples.flatMap((s) => [...(s.labelName === undefined ? [] : [s.labelName]), ...(s.tags ?? [])])
          const labels = yield* ensureLabels(functionId, wanted.map((name) => ({ name })))
          const hashes = [...new Set(samples.map((s) => s.contentHash))]
          const existingRows = (yield* Effect.forEach(chunks(hashes), (chunk) =>
            sql<SampleJoinRow>`SELECT ${sampleColumns} FROM samples s LEFT JOIN labels l ON l.id = s.label_id
              WHERE s.function_id = ${functionId} AND ${sql.in("s.content_hash", chunk)}`)).flat()
          /** Each content's sample as this call leaves it. */
          const byHash = new Map((yield* withTags(functionId, existingRows)).map((s) => [s.contentHash, s]))
          /** New samples, in input order, and existing ones this call changes. */
          const created = new Map<string, SampleRecord>()
          const changedExisting = new Set<string>()
          const entries: Array<{ readonly hash: string; readonly created: boolean; readonly updated: ReadonlyArray<SampleUpdate> }> = []
          let trainingDataChanged = false
          const at = now()
          for (const input of samples) {
            const label = input.labelName === undefined ? undefined : labels.get(input.labelName)!
            const annotation = label ? { labelId: label.id, labelName: label.name } : null
            const tags = input.tags === undefined ? undefined : tagList(input.tags.map((name) => labels.get(name)!))
            const current = byHash.get(input.contentHash)
            if (current === undefined) {
              const sample: SampleRecord = {
                id: Ids.make("sample"),
                functionId,
                contentHash: input.contentHash,
                externalId: input.externalId ?? null,
                annotation,
                tags: tags ?? null,
                createdAt: at,
                updatedAt: at
              }
              byHash.set(input.contentHash, sample)
              created.set(input.contentHash, sample)
              if (annotation !== null || tags !== undefined) trainingDataChanged = true
              entries.push({ hash: input.contentHash, created: true, updated: [] })
              continue
            }
            // A post of known content applies what it carries and says so (see `AddedSample.updated`).
            const updated: Array<SampleUpdate> = []
            if (
              (annotation !== null && current.annotation?.labelId !== annotation.labelId) ||
              (tags !== undefined && !sameTags(current.tags, tags))
            ) updated.push("annotation")
            if (input.externalId !== undefined && current.externalId !== input.externalId) updated.push("externalId")
            if (options.updateExisting === false || updated.length === 0) {
              entries.push({ hash: input.contentHash, created: false, updated: [] })
              continue
            }
            const next: SampleRecord = {
              ...current,
              annotation: updated.includes("annotation") ? annotation : current.annotation,
              tags: updated.includes("annotation") ? tags ?? null : current.tags,
              externalId: input.externalId ?? current.externalId,
              updatedAt: at
            }
            byHash.set(input.contentHash, next)
            if (created.has(input.contentHash)) created.set(input.contentHash, next)
            else changedExisting.add(input.contentHash)
            if (updated.includes("annotation")) trainingDataChanged = true
            entries.push({ hash: input.contentHash, created: false, updated })
          }
          const [{ next }] = yield* nextSeq(functionId)
          const rows = [...created.values()].map((sample, i) => ({
            id: sample.id,
            function_id: functionId,
            seq: next + i,
            content_hash: sample.contentHash,
            external_id: sample.externalId,
            label_id: sample.annotation?.labelId ?? null,
            tagged: flag(sample.tags !== null),
            created_at: sample.createdAt,
            updated_at: sample.updatedAt
          }))
          for (const chunk of chunks(rows)) yield* sql`INSERT INTO samples ${sql.insert(chunk)}`
          const tagRows = [...created.values()].flatMap((sample) =>
            (sample.tags ?? []).map((t) => ({ sample_id: sample.id, label_id: t.labelId, function_id: functionId })))
          for (const chunk of chunks(tagRows)) yield* sql`INSERT INTO sample_tags ${sql.insert(chunk)}`
          for (const hash of changedExisting) {
            const sample = byHash.get(hash)!
            yield* sql`UPDATE samples SET label_id = ${sample.annotation?.labelId ?? null}, tagged = ${flag(sample.tags !== null)},
              external_id = ${sample.externalId}, updated_at = ${sample.updatedAt} WHERE id = ${sample.id}`
            if (fn.output === "Tags") yield* writeTags(functionId, sample.id, sample.tags)
          }
          if (trainingDataChanged) yield* bumpRevision(functionId)
          return entries.map((e): AddedSample => ({ sample: byHash.get(e.hash)!, created: e.created, updated: e.updated }))
        })
      ),

    listSamples: (functionId, options = {}) =>
      run(
        "listSamples",
        Effect.gen(function*() {
          yield* selectFunction(functionId)
          const limit = options.limit ?? -1
          const offset = options.offset ?? 0
          const rows = yield* sql<SampleJoinRow>`SELECT ${sampleColumns} FROM samples s LEFT JOIN labels l
            ON l.id = s.label_id WHERE s.function_id = ${functionId} ${labelCondition(options.labelId)} ORDER BY s.seq
            LIMIT ${limit < 0 ? Number.MAX_SAFE_INTEGER : limit} OFFSET ${offset}`
          return yield* withTags(functionId, rows, limit < 0 && offset === 0 && options.labelId === undefined)
        })
      ),

    countSamples: (functionId, filter = {}) =>
      run(
        "countSamples",
        Effect.gen(function*() {
          yield* selectFunction(functionId)
          const rows = yield* sql<{ readonly n: number | string }>`SELECT COUNT(*) AS n FROM samples s
            WHERE s.function_id = ${functionId} ${labelCondition(filter.labelId)}`
          return Number(rows[0]?.n ?? 0)
        })
      ),

    getSample: (functionId, sampleId) =>
      run("getSample", Effect.zipRight(selectFunction(functionId), selectSample(functionId, sampleId))),

    setAnnotation: (functionId, sampleId, annotation) =>
      transaction(
        "setAnnotation",
        Effect.gen(function*() {
          const fn = yield* lockFunction(functionId)
          yield* expectOutput(fn, "Classification", "annotation", "annotations")
          const sample = yield* selectSample(functionId, sampleId)
          let labelId: string | null = null
          if (annotation !== null && "labelName" in annotation) {
            labelId = (yield* ensureLabels(functionId, [{ name: annotation.labelName }])).get(annotation.labelName)!.id
          } else if (annotation !== null) {
            const [label] = yield* labelsById({ functionId, id: annotation.labelId })
            if (label === undefined) return yield* notFound("label", annotation.labelId, "annotation.labelId")
            labelId = annotation.labelId
          }
          if ((sample.annotation?.labelId ?? null) === labelId) return sample
          yield* sql`UPDATE samples SET label_id = ${labelId}, updated_at = ${now()} WHERE id = ${sampleId}`
          yield* bumpRevision(functionId)
          return yield* selectSample(functionId, sampleId)
        })
      ),

    setTags: (functionId, sampleId, input) =>
      transaction(
        "setTags",
        Effect.gen(function*() {
          const fn = yield* lockFunction(functionId)
          yield* expectOutput(fn, "Tags", "tags", "tags")
          const sample = yield* selectSample(functionId, sampleId)
          let tags: ReadonlyArray<Annotation> | null = null
          if (input !== null) {
            const byName = yield* ensureLabels(
              functionId,
              input.flatMap((t) => ("labelName" in t ? [{ name: t.labelName }] : []))
            )
            const byId = new Map([...byName.values()].map((l) => [l.id, l]))
            const chosen: Array<LabelRecord> = []
            for (const [i, t] of input.entries()) {
              const label = "labelName" in t ? byName.get(t.labelName) : byId.get(t.labelId)
              if (label === undefined) return yield* notFound("label", (t as { labelId: string }).labelId, `tags[${i}].labelId`)
              chosen.push(label)
            }
            tags = tagList(chosen)
          }
          if (sameTags(sample.tags, tags)) return sample
          yield* sql`UPDATE samples SET tagged = ${flag(tags !== null)}, updated_at = ${now()} WHERE id = ${sampleId}`
          yield* writeTags(functionId, sampleId, tags)
          yield* bumpRevision(functionId)
          return yield* selectSample(functionId, sampleId)
        })
      ),

    deleteSamples: (functionId, sampleIds) =>
      transaction(
        "deleteSamples",
        Effect.gen(function*() {
          yield* lockFunction(functionId)
          const ids = [...new Set(sampleIds)]
          const found = yield* selectSamples(functionId, ids)
          const foundIds = new Set(found.map((s) => s.id))
          const missing = ids.filter((id) => !foundIds.has(id))
          if (missing.length > 0) {
            return yield* new FunctionsError({
              reason: "NotFound",
              field: "sampleIds",
              message: `No sample ${missing.map((id) => JSON.stringify(id)).join(", ")} in function ${functionId}`
            })
          }
          for (const chunk of chunks(ids)) {
            yield* sql`DELETE FROM sample_tags WHERE function_id = ${functionId} AND ${sql.in("sample_id", chunk)}`
            yield* sql`DELETE FROM samples WHERE function_id = ${functionId} AND ${sql.in("id", chunk)}`
          }
          if (found.some((s) => s.annotation !== null || s.tags !== null)) yield* bumpRevision(functionId)
          return found
        })
      ),

    trainingSnapshot: (functionId) =>
      transaction(
        "trainingSnapshot",
        Effect.gen(function*() {
          // SQLite reads one snapshot per transaction; Postgres' default (READ COMMITTED) one per statement.
          if (pg) yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`
          const fn = yield* selectFunction(functionId)
          const labels = yield* selectLabels(functionId)
          const rows = yield* sql<SampleJoinRow>`SELECT ${sampleColumns} FROM samples s JOIN labels l ON l.id = s.label_id
            WHERE s.function_id = ${functionId} ORDER BY s.seq`
          const tagged = fn.output === "Tags"
            ? yield* sql<SampleJoinRow>`SELECT ${sampleColumns} FROM samples s LEFT JOIN labels l ON l.id = s.label_id
                WHERE s.function_id = ${functionId} AND ${isTagged} ORDER BY s.seq`
            : []
          return {
            function: fn,
            labels,
            samples: rows.map((row) => toSample(row)) as TrainingSnapshot["samples"],
            taggedSamples: (yield* withTags(functionId, tagged, true)) as TrainingSnapshot["taggedSamples"]
          }
        })
      ),

    addModelVersion: (version) =>
      transaction(
        "addModelVersion",
        Effect.gen(function*() {
          yield* lockFunction(version.functionId)
          const [current] = yield* selectVersions(version.functionId, "promoted")
          const heldBack = current === undefined
            ? undefined
            : current.revision > version.revision
            ? `model ${current.id}, trained on newer data (revision ${current.revision}), was serving`
            : version.holdBack?.(current)
          const promote = heldBack === undefined
          if (promote) {
            yield* sql`UPDATE model_versions SET promoted = ${flag(false)} WHERE function_id = ${version.functionId}`
          }
          const createdAt = now()
          yield* sql`INSERT INTO model_versions ${
            sql.insert({
              id: version.id,
              function_id: version.functionId,
              bundle: version.bundle,
              labels: JSON.stringify(version.labels),
              metrics: JSON.stringify(version.metrics),
              revision: version.revision,
              sample_count: version.sampleCount,
              created_at: createdAt,
              promoted: flag(promote),
              held_back: heldBack ?? null
            })
          }`
          yield* sql`UPDATE functions SET trained_revision = ${version.revision}, train_error = NULL
            WHERE id = ${version.functionId} AND trained_revision <= ${version.revision}`
          return yield* selectVersion(version.functionId, version.id)
        })
      ),

    markTrainingFailed: (functionId, revision, error) =>
      transaction(
        "markTrainingFailed",
        Effect.zipRight(
          lockFunction(functionId),
          sql`UPDATE functions SET trained_revision = ${revision}, train_error = ${error}
            WHERE id = ${functionId} AND trained_revision <= ${revision}`
        )
      ),

    promote: (functionId, versionId) =>
      transaction(
        "promote",
        Effect.gen(function*() {
          yield* lockFunction(functionId)
          yield* selectVersion(functionId, versionId)
          yield* setPromoted(functionId, versionId)
          return yield* selectVersion(functionId, versionId)
        })
      ),

    promotedVersion: (functionId) =>
      run("promotedVersion", Effect.map(selectVersions(functionId, "promoted"), (versions) => versions[0])),

    listModelVersions: (functionId) =>
      run("listModelVersions", Effect.zipRight(selectFunction(functionId), selectVersions(functionId, "all"))),

    getModelVersion: (functionId, versionId) => run("getModelVersion", selectVersion(functionId, versionId)),

    pruneModelVersions: (functionId, keep) =>
      transaction(
        "pruneModelVersions",
        Effect.gen(function*() {
          yield* lockFunction(functionId)
          const pruned = (yield* selectVersions(functionId, "all")).slice(Math.max(0, keep)).filter((v) => !v.promoted)
          for (const chunk of chunks(pruned.map((v) => v.id))) {
            yield* sql`DELETE FROM model_versions WHERE function_id = ${functionId} AND ${sql.in("id", chunk)}`
          }
          return pruned.reverse()
        })
      )
  }
  return store
})
