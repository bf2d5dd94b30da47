/**
 * Weights that come from a URL or a hub, and the data behind `loupe models list` and `loupe models pull <id>`.
 *
 * A pulled URL file lands at `<cacheDir>/models/<file>` (where the plugins look for `Url` weights). It is streamed to
 * a temp file in that folder while hashing, checked against the catalog's sha256, then renamed into place, so the
 * file is either absent or complete and verified, even with two pulls at once or a crash half-way.
 *
 * A hub model (`hf:org/name[@revision]`, a catalog entry or any repository) is pulled into
 * `<cacheDir>/transformers/<org>/<name>/<revision>/` by loading it once: each missing file is checked against the
 * hub's sha256 (LFS files) or git blob sha1 (small files), written atomically, and resumed with an HTTP Range request
 * after a broken-off download; `.loupe-pull.json` records each file's size and sha256, which every later load checks.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect } from "effect"
import { LoupeConfig, Registry } from "@loupe/core"
import type { Backbone, CoreError } from "@loupe/core"
import * as path from "node:path"
import { BackboneError } from "./BackboneError.js"
import { hubModels } from "./Catalog.js"
import { download, fetchWithin } from "./internal/download.js"
import { exists, hasModel, hubCacheFolder, hubFileUrl, hubUrlFromEnv, modelsDirFolder } from "./internal/hub.js"
import { readPullRecord } from "./internal/HubPull.js"
import { hashFiles, urlWeightsPath } from "./internal/weights.js"

/**
 * One row of `loupe models list`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ModelListing {
  readonly id: string
  readonly runtime: string
  readonly description: string
  readonly embeddingSize: number
  readonly tags: ReadonlyArray<string>
  readonly license: string
  readonly weights: Backbone.WeightsSource
  /** Where the weights come from, in words: `models dir: …`, `file: …`, `hub: org/name@rev`, `url: …`. */
  readonly source: string
  /** Where the weights are, or would be, on this machine; undefined without a models directory for `ModelsDir`. */
  readonly localPath: string | undefined
  /** Whether they are there now (`status` is `present` or `cached`). */
  readonly present: boolean
  /**
   * `present`: placed here by hand (models directory, a path); `cached`: pulled into the cache directory; `remote`:
   * not here, and `pull` can fetch them; `missing`: not here, and nothing to pull them from.
   *
   * @since 0.2.0
   */
  readonly status: "present" | "cached" | "remote" | "missing"
  /** Whether `pull` applies (the weights come from a URL or a hub). */
  readonly pullable: boolean
  /**
   * For a hub model of the catalog: where its facts come from, and its estimated milliseconds per image on 2 cores
   * (`Catalog.HubModel`).
   *
   * @since 0.2.0
   */
  readonly catalog?: { readonly source: string; readonly estimatedMsPerImage: number }
}

/**
 * The result of `pull`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Pulled {
  readonly id: string
  /** The file, or for a hub model the folder. */
  readonly path: string
  /** The file's sha256, or for a hub model the weights hash its bundles record. */
  readonly sha256: string
  readonly bytes: number
  /** False when a verified copy was already there. */
  readonly downloaded: boolean
  /**
   * A hub model's files as recorded at pull (size and sha256 each), and the commit its revision pointed at.
   *
   * @since 0.2.0
   */
  readonly hub?: {
    readonly commit: string | undefined
    readonly files: ReadonlyArray<{ readonly file: string; readonly bytes: number; readonly sha256: string }>
  }
}

/**
 * Options for `pull`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PullOptions {
  /** How long to wait for the server's response headers; the body streams without a deadline. Default 30 s. */
  readonly responseTimeoutMs?: number
}

const describeSource = (source: Backbone.WeightsSource): string => {
  switch (source._tag) {
    case "ModelsDir":
      return `models dir: ${source.path}`
    case "Path":
      return `file: ${source.path}`
    case "Hub":
      return `hub: ${source.repo}@${source.revision ?? "main"}`
    case "Url":
      return `url: ${source.url}`
  }
}

const locate = (
  source: Backbone.WeightsSource,
  config: LoupeConfig.LoupeConfigShape
): Effect.Effect<{ path: string | undefined; status: ModelListing["status"] }, never, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const here = (file: string | undefined, found: boolean, absent: ModelListing["status"]) =>
      ({ path: file, status: found ? "present" : absent }) as const
    switch (source._tag) {
      case "ModelsDir": {
        const file = config.modelsDir === undefined ? undefined : path.resolve(config.modelsDir, source.path)
        return here(file, file !== undefined && (yield* exists(file)), "missing")
      }
      case "Path": {
        const file = path.resolve(source.path)
        return here(file, yield* exists(file), "missing")
      }
      case "Url": {
        const file = urlWeightsPath(config, source.file)
        return { path: file, status: (yield* exists(file)) ? "cached" : "remote" }
      }
      case "Hub": {
        const byHand = modelsDirFolder(config.modelsDir, source.repo)
        if (byHand !== undefined && (yield* hasModel(byHand))) return here(byHand, true, "missing")
        const folder = hubCacheFolder(config.cacheDir, source.repo, source.revision ?? "main")
        return { path: folder, status: (yield* hasModel(folder)) ? "cached" : "remote" }
      }
    }
  })

const catalogFacts = (id: string) => {
  const known = hubModels.find((m) => m.id === id)
  return known === undefined ? {} : { catalog: { source: known.source, estimatedMsPerImage: known.estimatedMsPerImage } }
}

/**
 * The listing of `plugins` on this machine (reads only file existence; nothing is hashed or loaded).
 *
 * @since 0.1.0
 * @category models
 */
export const listModels = (
  plugins: ReadonlyArray<Backbone.BackbonePlugin>,
  config: LoupeConfig.LoupeConfigShape
): Effect.Effect<ReadonlyArray<ModelListing>> =>
  Effect.forEach(plugins, ({ info }) =>
    Effect.map(locate(info.weights, config), (local) => ({
      id: info.id,
      runtime: info.runtime,
      description: info.description,
      embeddingSize: info.embeddingSize,
      tags: info.tags,
      license: info.license,
      weights: info.weights,
      source: describeSource(info.weights),
      localPath: local.path,
      present: local.status === "present" || local.status === "cached",
      status: local.status,
      pullable: info.weights._tag === "Url" || info.weights._tag === "Hub",
      ...catalogFacts(info.id)
    }))).pipe(Effect.provide(NodeFileSystem.layer))

/**
 * `loupe models list`: every registered backbone, in registration order.
 *
 * @since 0.1.0
 * @category models
 */
export const list: Effect.Effect<ReadonlyArray<ModelListing>, never, Registry.Registry | LoupeConfig.LoupeConfig> = Effect
  .gen(function*() {
    const registry = yield* Registry.Registry
    const config = yield* LoupeConfig.LoupeConfig
    return yield* listModels(registry.backbones, config)
  })

/**
 * Makes `Url` weights present at `<cacheDir>/models/<file>`: keeps a copy whose sha256 matches, else downloads and
 * verifies a new one (atomically). Fails with `Offline` when a download is needed in offline mode, `DownloadFailed`
 * when the server cannot be reached or answers with an error status, `ChecksumMismatch` when the bytes differ;
 * none of them leaves a file behind.
 *
 * @since 0.1.0
 * @category models
 */
export const fetchUrlWeights = (
  id: string,
  source: Extract<Backbone.WeightsSource, { _tag: "Url" }>,
  config: LoupeConfig.LoupeConfigShape,
  options: PullOptions = {}
): Effect.Effect<Pulled, BackboneError> =>
  Effect.gen(function*() {
    const normalised = path.normalize(source.file)
    if (path.isAbsolute(normalised) || normalised.split(path.sep).includes("..")) {
      return yield* new BackboneError({
        reason: "DownloadFailed",
        field: id,
        file: source.file,
        message: `${id}: the weights file name "${source.file}" must stay inside the cache folder`
      })
    }
    const dest = urlWeightsPath(config, normalised)
    const expected = source.sha256.toLowerCase()
    const fs = yield* FileSystem.FileSystem
    if (yield* exists(dest)) {
      const sha256 = yield* hashFiles([dest])
      if (sha256 === expected) {
        const { size } = yield* Effect.mapError(
          fs.stat(dest),
          (cause) => new BackboneError({ reason: "LoadFailed", field: id, file: dest, message: `Cannot stat ${dest}: ${String(cause)}`, cause })
        )
        return { id, path: dest, sha256, bytes: Number(size), downloaded: false }
      }
      yield* Effect.logWarning(`${dest} has sha256 ${sha256}, expected ${expected}; downloading it again`)
    }
    if (config.offline) {
      return yield* new BackboneError({
        reason: "Offline",
        field: id,
        file: dest,
        message: `${id}: ${source.url} is needed but offline mode is on (--offline / LOUPE_OFFLINE). ` +
          `Put the file at ${dest} (sha256 ${expected}), or run without offline mode`
      })
    }
    yield* Effect.logInfo(`Downloading ${source.url} for ${id}`)
    const done = yield* download({
      id,
      url: source.url,
      dest,
      sha256: expected,
      responseTimeoutMs: options.responseTimeoutMs ?? 30_000
    })
    return { id, ...done, downloaded: true }
  }).pipe(Effect.provide(NodeFileSystem.layer))

/**
 * Whether a backbone can be used without waiting on the network (`here`: its weights are present or cached), could
 * be pulled now (`pullable`: they come from a hub that answered within `timeoutMs`, default 600 ms), or neither
 * (`unavailable`, with the reason in words: offline mode, an unreachable hub, a missing file).
 *
 * @since 0.2.0
 * @category models
 */
export type Availability =
  | { readonly _tag: "here"; readonly path: string }
  | { readonly _tag: "pullable"; readonly hubUrl: string }
  | { readonly _tag: "unavailable"; readonly reason: string }

/**
 * The `Availability` of `plugin` on this machine. Probes the hub (`$HF_ENDPOINT`, else huggingface.co) with one
 * `HEAD` of the model's `config.json` only when the weights are not here and offline mode is off.
 *
 * @since 0.2.0
 * @category models
 */
export const availability = (
  plugin: Backbone.BackbonePlugin,
  config: LoupeConfig.LoupeConfigShape,
  options: { readonly timeoutMs?: number } = {}
): Effect.Effect<Availability> =>
  Effect.gen(function*() {
    const { weights } = plugin.info
    const local = yield* locate(weights, config)
    if (local.status === "present" || local.status === "cached") return { _tag: "here", path: local.path! } as const
    if (weights._tag !== "Hub") return { _tag: "unavailable", reason: `its weights are not here (${describeSource(weights)})` } as const
    if (config.offline) return { _tag: "unavailable", reason: "its weights are not here and offline mode is on" } as const
    const hubUrl = hubUrlFromEnv()
    const url = hubFileUrl(hubUrl, weights.repo, weights.revision ?? "main", "config.json")
    const probe = yield* Effect.either(fetchWithin(plugin.info.id, url, { method: "HEAD", redirect: "follow" }, options.timeoutMs ?? 600))
    if (probe._tag === "Left") return { _tag: "unavailable", reason: `the hub ${hubUrl} cannot be reached (${probe.left.message})` } as const
    return probe.right.ok
      ? { _tag: "pullable", hubUrl } as const
      : { _tag: "unavailable", reason: `the hub ${hubUrl} answers HTTP ${probe.right.status} for ${url}` } as const
  }).pipe(Effect.provide(NodeFileSystem.layer))

/** Pulls a hub model by loading it once (which fetches and verifies its files), then reads its pull record. */
const pullHub = (id: string, options: unknown) =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const config = yield* LoupeConfig.LoupeConfig
    const { info } = yield* registry.backbone(id)
    const folder = (yield* locate(info.weights, config)).path!
    const before = yield* readPullRecord(id, folder)
    const loaded = yield* Effect.scoped(Registry.loadBackbone(id, options))
    const record = yield* readPullRecord(id, folder)
    const files = Object.entries(record?.files ?? {}).map(([file, f]) => ({ file, ...f }))
    return {
      id,
      path: folder,
      sha256: loaded.weightsHash,
      bytes: files.reduce((sum, f) => sum + f.bytes, 0),
      downloaded: files.length > Object.keys(before?.files ?? {}).length,
      hub: { commit: record?.commit, files }
    } satisfies Pulled
  }).pipe(Effect.provide(NodeFileSystem.layer))

/**
 * `loupe models pull <id>`: fetches the weights of a backbone whose weights come from a URL (see `fetchUrlWeights`)
 * or a hub (registered, or any `hf:org/name[@revision]`: see the module docs; `backboneOptions` go to its load, e.g.
 * `hubUrl`). Any other source is an error that says where its weights come from.
 *
 * @since 0.1.0
 * @category models
 */
export const pull = (
  id: string,
  options: PullOptions & { readonly backboneOptions?: unknown } = {}
): Effect.Effect<Pulled, BackboneError | CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig> =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const config = yield* LoupeConfig.LoupeConfig
    const { info } = yield* registry.backbone(id)
    if (info.weights._tag === "Hub") return yield* pullHub(id, options.backboneOptions ?? {})
    if (info.weights._tag !== "Url") {
      return yield* new BackboneError({
        reason: "DownloadFailed",
        field: id,
        message: `${id} has nothing to pull: its weights come from ${describeSource(info.weights)}`
      })
    }
    return yield* fetchUrlWeights(id, info.weights, config, options)
  })
