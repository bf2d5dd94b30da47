// The state several servers share through a Postgres store: blobs, captures, API keys and the embedding cache, each
// seen through two layers with pools of their own on one real, throwaway Postgres (two "servers").
import { afterAll, describe, expect, it } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Plugins } from "@loupe/cli"
import { Embedder, EmbeddingCache, LoupeConfig, Registry } from "@loupe/core"
import { ApiKeys } from "@loupe/deploy"
import { HttpServer } from "@effect/platform"
import { BlobStore, CaptureLog, Server, SharedState, StoreLocation } from "@loupe/functions"
import { Server as DeployServer } from "@loupe/deploy"
import { Context, Effect, Exit, Layer, ManagedRuntime, Redacted, Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { startPostgres } from "../../../test/fixtures/postgres.mjs"
import { modelsDir } from "../../../test/fixtures/shared.mjs"
import * as Dismissals from "../src/console/Dismissals.js"
import { catsVsDogsPhotos, functionsEnvironment } from "./fixtures/environment.js"

const started = await startPostgres()
const pg = "url" in started ? started : undefined
if (!("url" in started)) console.log(`SharedState tests skipped: ${started.skipped}`)
afterAll(() => pg?.stop())

type Shared = SharedState.Services | Registry.Registry | LoupeConfig.LoupeConfig

/** One "server": the shared services on a connection pool of its own, with a local blob cache of its own. */
const server = () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-shared-"))
  const config = LoupeConfig.LoupeConfig.layer({ modelsDir, cacheDir, offline: true })
  return ManagedRuntime.make(
    Layer.mergeAll(SharedState.layerPostgres(pg!.url), Plugins.registryLayer(), config).pipe(
      Layer.provide(Layer.mergeAll(NodeFileSystem.layer, config))
    )
  )
}

/**
 * Two servers, started one after the other, closed afterwards. (Started at once on a database whose store schema
 * is not there yet, the function store's own migration sometimes fails: "Store: migrating the schema failed".)
 */
const withServers = async (body: (a: ManagedRuntime.ManagedRuntime<Shared, unknown>, b: ManagedRuntime.ManagedRuntime<Shared, unknown>) => Promise<void>) => {
  const a = server()
  const b = server()
  try {
    await a.runtime()
    await b.runtime()
    await body(a, b)
  } finally {
    await Promise.all([a.dispose(), b.dispose()])
  }
}

/** Raw SQL on the test database, to look at the rows themselves. */
const query = <A>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(SqlClient.SqlClient, f)).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(pg!.url) }))
  ))

const blobs = BlobStore.BlobStore
const bytesOf = (file: string) => new Uint8Array(fs.readFileSync(file))
/** Byte equality in one comparison (a deep `toEqual` walks megabytes element by element). */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
const modelFile = (name: string) => path.join(modelsDir, "mobilenetv2-12-int8-onnx", name)

describe.skipIf(pg === undefined)("SharedState on Postgres", () => {
  it("several processes migrating a new database at the same moment all get the schema", async () => {
    for (let round = 0; round < 3; round++) {
      const database = `loupe_race_${round}_${process.pid}`
      await query((sql) => sql`CREATE DATABASE ${sql(database)}`)
      const url = new URL(pg!.url)
      url.pathname = `/${database}`
      const open = () =>
        Effect.runPromise(Effect.scoped(Layer.build(
          SharedState.layerSql().pipe(
            Layer.provide(Layer.mergeAll(
              PgClient.layer({ url: Redacted.make(url.toString()) }),
              NodeFileSystem.layer,
              LoupeConfig.LoupeConfig.layer({ cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), "loupe-shared-")) })
            ))
          )
        )))
      await Promise.all([open(), open(), open()])
      await query((sql) => sql`DROP DATABASE ${sql(database)} WITH (FORCE)`)
    }
  })

  it("blobs: a photo and a 3.6 MB model round-trip between servers; a reader never sees half of a rewritten blob", async () => {
    await withServers(async (a, b) => {
      const photo = bytesOf(catsVsDogsPhotos("train", "cats", 0, 1)[0]!)
      const modelA = bytesOf(modelFile("mobilenetv2-12-int8.onnx"))
      const modelB = bytesOf(modelFile("mobilenetv2-12-int8-embedding.onnx"))
      await a.runPromise(Effect.flatMap(blobs, (s) => Effect.zipRight(s.put("images/f1/photo", photo), s.put("bundles/f1/v1/model.onnx", modelA))))
      expect(same(await b.runPromise(Effect.flatMap(blobs, (s) => s.get("images/f1/photo"))), photo)).toBe(true)
      expect(same(await b.runPromise(Effect.flatMap(blobs, (s) => s.get("bundles/f1/v1/model.onnx"))), modelA)).toBe(true)
      // 3.6 MB in 1 MiB chunks.
      const chunks = await query((sql) => sql<{ n: string }>`SELECT COUNT(*) AS n FROM blob_chunks WHERE key = 'bundles/f1/v1/model.onnx'`)
      expect(Number(chunks[0]!.n)).toBe(Math.ceil(modelA.byteLength / (1024 * 1024)))
      const local = await b.runPromise(Effect.flatMap(blobs, (s) => s.localFile("bundles/f1/v1/model.onnx")))
      expect(same(fs.readFileSync(local), modelA)).toBe(true)
      const missing = await b.runPromise(Effect.flip(Effect.flatMap(blobs, (s) => s.get("images/f1/none"))))
      expect(missing).toMatchObject({ reason: "NotFound", file: "images/f1/none" })

      // Server a rewrites the key, alternating two models, while server b reads it.
      const writer = Effect.flatMap(blobs, (s) =>
        Effect.forEach([modelB, modelA, modelB, modelA, modelB], (m) => s.put("bundles/f1/v1/model.onnx", m), { discard: true }))
      const reader = Effect.flatMap(blobs, (s) => Effect.forEach(Array.from({ length: 8 }), () => s.get("bundles/f1/v1/model.onnx")))
      const [, seen] = await Promise.all([a.runPromise(writer), b.runPromise(reader)])
      const whole = seen.map((bytes) => (same(bytes, modelA) ? "A" : same(bytes, modelB) ? "B" : "torn"))
      expect(whole).not.toContain("torn")
      expect(same(await b.runPromise(Effect.flatMap(blobs, (s) => s.get("bundles/f1/v1/model.onnx"))), modelB)).toBe(true)
    })
  })

  it("blobs: listing and removing by prefix, folders published whole", async () => {
    await withServers(async (a, b) => {
      const photos = catsVsDogsPhotos("train", "dogs", 0, 3).map(bytesOf)
      await a.runPromise(Effect.flatMap(blobs, (s) =>
        Effect.all([
          s.put("t2/images/fn_1/a", photos[0]!),
          s.put("t2/images/fn_1/b", photos[1]!),
          // `_` is a LIKE wildcard: fnX1 must not count as under fn_1.
          s.put("t2/images/fnX1/a", photos[2]!)
        ])))
      expect(await b.runPromise(Effect.flatMap(blobs, (s) => s.list("t2/images/fn_1")))).toEqual(["t2/images/fn_1/a", "t2/images/fn_1/b"])
      expect(await b.runPromise(Effect.flatMap(blobs, (s) => s.list("t2/images")))).toEqual(["t2/images/fnX1/a", "t2/images/fn_1/a", "t2/images/fn_1/b"])

      // A bundle folder: published from a staging folder, seen whole by the other server.
      await a.runPromise(Effect.flatMap(blobs, (s) =>
        s.putDirectory("t2/bundles/fn_1/v1", (dir) =>
          Effect.sync(() => {
            fs.writeFileSync(path.join(dir, "model.onnx"), fs.readFileSync(modelFile("mobilenetv2-12-int8.onnx")))
            fs.mkdirSync(path.join(dir, "head"))
            fs.writeFileSync(path.join(dir, "head", "labels.json"), JSON.stringify(["cats", "dogs"]))
          }))))
      expect(await b.runPromise(Effect.flatMap(blobs, (s) => s.list("t2/bundles/fn_1/v1")))).toEqual([
        "t2/bundles/fn_1/v1/head/labels.json",
        "t2/bundles/fn_1/v1/model.onnx"
      ])
      const dir = await b.runPromise(Effect.flatMap(blobs, (s) => s.localDirectory("t2/bundles/fn_1/v1")))
      expect(JSON.parse(fs.readFileSync(path.join(dir, "head", "labels.json"), "utf8"))).toEqual(["cats", "dogs"])
      expect(same(fs.readFileSync(path.join(dir, "model.onnx")), bytesOf(modelFile("mobilenetv2-12-int8.onnx")))).toBe(true)
      const again = await b.runPromise(Effect.flip(Effect.flatMap(blobs, (s) => s.putDirectory("t2/bundles/fn_1/v1", () => Effect.void))))
      expect(again).toMatchObject({ reason: "StoreFailed", message: expect.stringContaining("already exists") })

      await b.runPromise(Effect.flatMap(blobs, (s) => Effect.zipRight(s.remove("t2/images/fn_1"), s.remove("t2/bundles/fn_1"))))
      expect(await a.runPromise(Effect.flatMap(blobs, (s) => s.list("t2/images")))).toEqual(["t2/images/fnX1/a"])
      expect(await a.runPromise(Effect.flatMap(blobs, (s) => s.has("t2/bundles/fn_1/v1")))).toBe(false)
      const orphans = await query((sql) => sql<{ n: string }>`SELECT COUNT(*) AS n FROM blob_chunks WHERE key NOT IN (SELECT key FROM blobs)`)
      expect(Number(orphans[0]!.n)).toBe(0)
      const bad = await a.runPromise(Effect.flip(Effect.flatMap(blobs, (s) => s.put("t2/images/../x", photos[0]!))))
      expect(bad).toMatchObject({ reason: "InvalidInput", field: "key" })
    })
  })

  it("captures recorded through one server are listed and removed through the other", async () => {
    await withServers(async (a, b) => {
      const capture = { reason: "low-confidence", labelName: "cats", confidence: 0.52, modelId: "model_1" } as const
      await a.runPromise(Effect.flatMap(CaptureLog.CaptureLog, (log) =>
        Effect.zipRight(log.add("function_c", "sample_1", capture), log.add("function_c", "sample_2", { ...capture, externalId: "x2" }))))
      const page = await b.runPromise(Effect.flatMap(CaptureLog.CaptureLog, (log) => log.page("function_c", 10, 0)))
      expect(page.map((c) => c.sampleId).sort()).toEqual(["sample_1", "sample_2"])
      expect(page.find((c) => c.sampleId === "sample_2")).toMatchObject({ labelName: "cats", confidence: 0.52, externalId: "x2" })
      await b.runPromise(Effect.flatMap(CaptureLog.CaptureLog, (log) => log.remove("function_c", ["sample_1"])))
      expect((await a.runPromise(Effect.flatMap(CaptureLog.CaptureLog, (log) => log.page("function_c", 10, 0)))).map((c) => c.sampleId))
        .toEqual(["sample_2"])
      await a.runPromise(Effect.flatMap(CaptureLog.CaptureLog, (log) => log.forget("function_c")))
      expect(await b.runPromise(Effect.flatMap(CaptureLog.CaptureLog, (log) => log.page("function_c", 10, 0)))).toEqual([])
    })
  })

  it("a key created through one server authenticates on the other; a revocation counts on both at once", async () => {
    await withServers(async (a, b) => {
      const keys = ApiKeys.ApiKeys
      const created = await a.runPromise(Effect.flatMap(keys, (k) => k.create("ci")))
      expect(await b.runPromise(Effect.flatMap(keys, (k) => k.authenticate(`Bearer ${created.token}`)))).toMatchObject({ id: created.id, name: "ci" })
      expect((await b.runPromise(Effect.flatMap(keys, (k) => k.list))).map((k) => k.id)).toContain(created.id)
      // Only the hash is stored.
      const rows = await query((sql) => sql<{ hash: string }>`SELECT hash FROM api_keys WHERE id = ${created.id}`)
      expect(rows[0]!.hash).toMatch(/^[0-9a-f]{64}$/)
      expect(JSON.stringify(rows)).not.toContain(created.token.split("_")[2])

      await b.runPromise(Effect.flatMap(keys, (k) => k.revoke(created.id)))
      for (const s of [a, b]) {
        const refused = await s.runPromise(Effect.flip(Effect.flatMap(keys, (k) => k.verify(created.token))))
        expect(refused).toMatchObject({ reason: "Unauthorized", message: `The API key ${created.id} was revoked` })
      }
      const unknown = await a.runPromise(Effect.flip(Effect.flatMap(keys, (k) => k.revoke("0000abcd"))))
      expect(unknown).toMatchObject({ reason: "NotFound", field: "id" })
    })
  })

  it("two HTTP servers on one Postgres store: a sample posted to one is on the other, blobs and keys included", async () => {
    const location = StoreLocation.postgres(pg!.url)
    const scope = Effect.runSync(Scope.make())
    try {
      const start = async () => {
        const serving = Server.layer({ store: location, port: 0, rateLimit: { perSecond: 10_000, burst: 10_000 } }).pipe(
          Layer.provide(functionsEnvironment(fs.mkdtempSync(path.join(os.tmpdir(), "loupe-shared-"))))
        )
        const context = await Effect.runPromise(Layer.buildWithScope(serving, scope))
        return Effect.runSync(Effect.provide(DeployServer.url, Context.pick(HttpServer.HttpServer)(context)))
      }
      const keys = (use: (k: ApiKeys.ApiKeysShape) => Effect.Effect<any, any>) =>
        Effect.runPromise(Effect.flatMap(ApiKeys.ApiKeys, use).pipe(Effect.provide(SharedState.apiKeysAt(location)), Effect.provide(NodeFileSystem.layer)))
      const key = await keys((k) => k.create("http"))
      const [one, two] = [await start(), await start()]
      const call = async (base: string, method: string, route: string, body?: unknown) => {
        const response = await fetch(`${base}${route}`, {
          method,
          headers: { authorization: `Bearer ${key.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) })
        })
        const text = await response.text()
        return { status: response.status, body: text === "" ? undefined : JSON.parse(text) }
      }

      const fn = await call(one, "POST", "/v1/functions", { name: "Shared", preset: "fast" })
      expect(fn.status).toBe(201)
      const photo = fs.readFileSync(catsVsDogsPhotos("test", "dogs", 0, 1)[0]!)
      const sample = await call(two, "POST", `/v1/functions/${fn.body.id}/samples`, {
        data: `data:image/jpeg;base64,${photo.toString("base64")}`,
        externalId: "dog-0"
      })
      expect(sample.status).toBe(201)
      expect((await call(one, "GET", `/v1/functions/${fn.body.id}/samples/${sample.body.id}`)).body).toMatchObject({ externalId: "dog-0" })
      // The image's bytes are in the database, under the function.
      const stored = await query((sql) => sql<{ key: string; size: string }>`SELECT key, size FROM blobs WHERE key LIKE ${`images/${fn.body.id}/%`}`)
      expect(stored.map((r) => Number(r.size))).toEqual([photo.byteLength])

      // Deleted through the other server: its blobs go with it.
      expect((await call(one, "DELETE", `/v1/functions/${fn.body.id}`)).status).toBeLessThan(300)
      expect((await call(two, "GET", `/v1/functions/${fn.body.id}`)).status).toBe(404)
      expect(await query((sql) => sql`SELECT key FROM blobs WHERE key LIKE ${`images/${fn.body.id}/%`}`)).toEqual([])

      await keys((k) => k.revoke(key.id))
      for (const base of [one, two]) expect((await call(base, "GET", "/v1/functions")).status).toBe(401)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })

  it("embedding cache: vectors one server computed are hits on the other", async () => {
    await withServers(async (a, b) => {
      const samples = catsVsDogsPhotos("test", "cats", 0, 3).map((source, i) => ({ id: String(i), source }))
      const embed = Effect.flatMap(Registry.loadBackbone("onnx:mobilenetv2-int8"), (backbone) => Embedder.embedSamples(backbone, samples))
      const first = await a.runPromise(Effect.scoped(embed))
      expect(first.cacheHits).toBe(0)
      const second = await b.runPromise(Effect.scoped(embed))
      expect(second.cacheHits).toBe(3)
      expect(Array.from(second.vectors.data)).toEqual(Array.from(first.vectors.data))
      const missing = await b.runPromise(Effect.flatMap(EmbeddingCache.EmbeddingCache, (c) => c.get("no-such-namespace", first.contentHashes[0]!)))
      expect(missing).toBeUndefined()
    })
  })

  it("console dismissals made through one server are seen by the other, in the store's database", async () => {
    await withServers(async (a, b) => {
      const dismissals = <A>(f: (d: Dismissals.Dismissals["Type"]) => Effect.Effect<A, unknown>) => Effect.flatMap(Dismissals.Dismissals, f)
      await a.runPromise(dismissals((d) =>
        Effect.all([
          d.dismiss("function_a", "suspect", "sample_1"),
          d.dismiss("function_a", "duplicate", Dismissals.pairSubject("sample_3", "sample_2")),
          d.dismiss("function_b", "outlier", "sample_9")
        ])))
      // The same dismissal again, through the other server: still one row.
      await b.runPromise(dismissals((d) => d.dismiss("function_a", "suspect", "sample_1")))
      expect(await b.runPromise(dismissals((d) => d.list("function_a")))).toEqual(
        new Set(["suspect:sample_1", `duplicate:${Dismissals.pairSubject("sample_2", "sample_3")}`])
      )
      await b.runPromise(dismissals((d) => d.forget("function_a")))
      expect((await a.runPromise(dismissals((d) => d.list("function_a")))).size).toBe(0)
      expect(await a.runPromise(dismissals((d) => d.list("function_b")))).toEqual(new Set(["outlier:sample_9"]))
      const rows = await query((sql) => sql<{ readonly function_id: string }>`SELECT function_id FROM dismissed`)
      expect(rows.map((r) => r.function_id)).toEqual(["function_b"])
    })
  })

  it("embedding cache: many vectors go in and out in chunked statements, aligned with the keys asked for", async () => {
    await withServers(async (a, b) => {
      const samples = catsVsDogsPhotos("test", "dogs", 0, 3).map((source, i) => ({ id: String(i), source }))
      const { contentHashes, vectors } = await a.runPromise(Effect.scoped(Effect.flatMap(Registry.loadBackbone("onnx:mobilenetv2-int8"), (backbone) =>
        Embedder.embedSamples(backbone, samples))))
      // The photos' content hashes, remembered by file fingerprint, in one lookup on the other server.
      const fingerprints = samples.map((s) => EmbeddingCache.fileFingerprint(s.source, fs.statSync(s.source, { bigint: true })))
      const hashes = await b.runPromise(Effect.flatMap(EmbeddingCache.EmbeddingCache, (c) =>
        EmbeddingCache.knownContentHashes(c, [fingerprints[2]!, "unknown", ...fingerprints])))
      expect(hashes).toEqual([contentHashes[2], undefined, ...contentHashes])
      const row = (i: number) => vectors.data.subarray((i % 3) * vectors.cols, (i % 3 + 1) * vectors.cols)
      // More keys than one statement takes (400), one of them twice.
      const keys = Array.from({ length: 450 }, (_, i) => crypto.hash("sha256", `vector ${i}`))
      const entries = [...keys, keys[7]!].map((contentHash, i) => ({ contentHash, vector: row(i) }))
      await a.runPromise(Effect.flatMap(EmbeddingCache.EmbeddingCache, (c) => EmbeddingCache.setMany(c, "many", entries)))
      const asked = [keys[449]!, "not-stored", ...keys, keys[0]!]
      const found = await b.runPromise(Effect.flatMap(EmbeddingCache.EmbeddingCache, (c) => EmbeddingCache.getMany(c, "many", asked)))
      expect(found).toHaveLength(asked.length)
      expect(found[1]).toBeUndefined()
      expect(Array.from(found[0]!)).toEqual(Array.from(row(449)))
      keys.forEach((_, i) => expect(Array.from(found[i + 2]!)).toEqual(Array.from(row(i))))
      expect(Array.from(found.at(-1)!)).toEqual(Array.from(row(0)))
      const [stored] = await query((sql) => sql<{ readonly n: number | string }>`SELECT COUNT(*) AS n FROM embeddings WHERE namespace = 'many'`)
      expect(Number(stored!.n)).toBe(450)
    })
  })
})

describe("BlobStore on a folder", () => {
  it("lists the keys under a prefix, leaving out writes in progress", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-blobs-"))
    const photos = catsVsDogsPhotos("train", "cats", 0, 2).map(bytesOf)
    const keys = await Effect.runPromise(Effect.gen(function*() {
      const store = yield* BlobStore.makeFileSystem(root)
      yield* store.put("images/f1/a", photos[0]!)
      yield* store.put("images/f1/sub/b", photos[1]!)
      // What a writer killed mid-write would leave, from a live process (this one): not a blob.
      fs.writeFileSync(path.join(root, "images", "f1", `c.tmp-${process.pid}-0123456789ab`), "partial")
      return [yield* store.list("images/f1"), yield* store.list("images/none")]
    }).pipe(Effect.provide(NodeFileSystem.layer)))
    expect(keys).toEqual([["images/f1/a", "images/f1/sub/b"], []])
  })
})
