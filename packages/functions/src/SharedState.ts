/**
 * What several processes on one shared store (`--store postgres://...`) must see alike, kept in the store's
 * database: image bytes and model bundles (`BlobStore.layerSql`), the review queue of captured invocations
 * (`CaptureLog.layerSql`), API keys (`apiKeysSql`), the embedding cache (`embeddingCacheSql`) and the console's
 * dismissed suggestions (`Dismissals.layerSql`). Their
 * tables come from numbered migrations recorded in `loupe_shared_migrations`, apart from the function store's own.
 *
 * A store folder keeps its files as before: blobs in `blobs/`, `captures.db`, `keys.json`, `review.db` and the disk
 * embedding cache. Rate limits are not shared: each server counts its own requests (see docs/scale-out.md).
 *
 * ```ts
 * // The store and every service it shares, over one connection pool.
 * const shared = SharedState.layerPostgres("postgres://loupe@db/loupe")
 * ```
 *
 * @since 0.2.0
 */
import type { FileSystem } from "@effect/platform"
import type { SqlClient } from "@effect/sql"
import { EmbeddingCache, type LoupeConfig } from "@loupe/core"
import { ApiKeys } from "@loupe/deploy"
import type { DeployError } from "@loupe/deploy"
import { Effect, Layer } from "effect"
import type { Redacted } from "effect"
import * as BlobStore from "./BlobStore.js"
import * as Dismissals from "./console/Dismissals.js"
import type { FunctionsError } from "./FunctionsError.js"
import * as SharedSchema from "./internal/SharedSchema.js"
import * as SqlApiKeys from "./internal/SqlApiKeys.js"
import * as SqlEmbeddingCache from "./internal/SqlEmbeddingCache.js"
import { CaptureLog } from "./CaptureLog.js"
import * as Store from "./Store.js"
import * as StoreLocation from "./StoreLocation.js"

/**
 * The API keys in the `api_keys` table of the provided `SqlClient`'s database, hashed as in a key file; every
 * verification reads the table, so a key created or revoked anywhere counts everywhere at once. `where` names the
 * database in messages and in `ApiKeys.file`. Fails with `StoreFailed` when the migrations fail.
 *
 * @since 0.2.0
 * @category layers
 */
export const apiKeysSql = (where: string = "the store database"): Layer.Layer<ApiKeys.ApiKeys, FunctionsError, SqlClient.SqlClient> =>
  Layer.effect(ApiKeys.ApiKeys, Effect.zipRight(SharedSchema.migrate, SqlApiKeys.make(where)))

/**
 * The embedding cache in the `embeddings` table of the provided `SqlClient`'s database, keyed (namespace, content
 * sha256) as the disk cache is, so every runner reuses the vectors any of them computed. It never fails (a database
 * error is a logged miss); building it fails with `StoreFailed` when the migrations fail.
 *
 * @since 0.2.0
 * @category layers
 */
export const embeddingCacheSql: Layer.Layer<EmbeddingCache.EmbeddingCache, FunctionsError, SqlClient.SqlClient> = Layer.effect(
  EmbeddingCache.EmbeddingCache,
  Effect.zipRight(SharedSchema.migrate, SqlEmbeddingCache.make)
)

/**
 * The services a shared store keeps in its database.
 *
 * @since 0.2.0
 * @category models
 */
export type Services = BlobStore.BlobStore | CaptureLog | ApiKeys.ApiKeys | EmbeddingCache.EmbeddingCache | Dismissals.Dismissals

/**
 * Blob store, capture log, API keys, embedding cache and console dismissals over the provided `SqlClient` (the function store's, so one
 * connection pool serves all). `where` names the database in messages.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerSql = (
  where: string = "the store database",
  options: BlobStore.SqlBlobOptions = {}
): Layer.Layer<Services, FunctionsError, SqlClient.SqlClient | FileSystem.FileSystem | LoupeConfig.LoupeConfig> =>
  // Migrated once up front: the layers are built at once and would otherwise race to create the tables.
  Layer.mergeAll(BlobStore.layerSql(options), CaptureLog.layerSql(where), apiKeysSql(where), embeddingCacheSql, Dismissals.layerSql(where)).pipe(
    Layer.provide(Layer.effectDiscard(SharedSchema.migrate))
  )

/**
 * A Postgres store with everything it shares on one connection pool to `url`: the function store
 * (`Store.layerPostgres`) and `layerSql`'s blob store, capture log, API keys, embedding cache and dismissals. This is what
 * `Functions.layerStore` and `Server.layer` run a `postgres://` location on. Fails with `StoreFailed` (field
 * `store`, naming the URL without its password) when the database cannot be reached or migrated.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerPostgres = (
  url: string | Redacted.Redacted<string>,
  options: BlobStore.SqlBlobOptions = {}
): Layer.Layer<Services | Store.Store, FunctionsError, FileSystem.FileSystem | LoupeConfig.LoupeConfig> =>
  layerSql(StoreLocation.describe(StoreLocation.postgres(url)), options).pipe(Layer.provideMerge(Store.layerPostgres(url)))

/**
 * The API keys of a store location, as `loupe keys` and `loupe serve` use them: `keys.json` in a store folder, the
 * `api_keys` table of a Postgres store. Fails with `DeployError` when the key file cannot be read, `FunctionsError`
 * `StoreFailed` when the database cannot be reached or migrated.
 *
 * @since 0.2.0
 * @category layers
 */
export const apiKeysAt = (
  location: StoreLocation.StoreLocation
): Layer.Layer<ApiKeys.ApiKeys, FunctionsError | DeployError.DeployError, FileSystem.FileSystem> =>
  location._tag === "Directory"
    ? ApiKeys.layer(ApiKeys.fileIn(location.path))
    : apiKeysSql(StoreLocation.describe(location)).pipe(Layer.provide(Store.layerPostgres(location.url)))
