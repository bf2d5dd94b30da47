/**
 * The embedding cache contract: vectors keyed by (namespace, image content sha256). The namespace identifies the
 * backbone id, its weights hash and its preprocessing, so a change to any of them never reuses stale vectors.
 * Implementations must make writes atomic, so two processes writing at once or a crash never leave a torn entry.
 *
 * @since 0.1.0
 */
import { Context, Effect } from "effect"
import { hash } from "node:crypto"
import * as path from "node:path"
import type { LoadedBackbone } from "./Backbone.js"

/**
 * An embedding cache: vectors by (namespace, content hash), and optionally content hashes by file fingerprint.
 * Lookups of a missing entry give `undefined`; a cache never fails, it only misses. A cache where each access costs
 * a round trip (a database) also implements `getMany`, `setMany` and `knownContentHashes`; callers go through the
 * module's functions of those names, which fall back to one call per key for a cache without them.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmbeddingCacheShape {
  readonly get: (namespace: string, contentHash: string) => Effect.Effect<Float32Array | undefined>
  readonly set: (namespace: string, contentHash: string, vector: Float32Array) => Effect.Effect<void>
  /** Optional: the vectors of several content hashes in one namespace, aligned with `contentHashes`. */
  readonly getMany?: (namespace: string, contentHashes: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Float32Array | undefined>>
  /** Optional: store several vectors in one namespace at once. */
  readonly setMany?: (namespace: string, entries: ReadonlyArray<CacheEntry>) => Effect.Effect<void>
  /**
   * Optional: the content hash recorded for a file fingerprint (see `fileFingerprint`), so that a rerun does not
   * read and hash unchanged files again.
   */
  readonly knownContentHash?: (fingerprint: string) => Effect.Effect<string | undefined>
  /** Optional, with `knownContentHash`: the content hashes of several fingerprints, aligned with them. */
  readonly knownContentHashes?: (fingerprints: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string | undefined>>
  /** Optional: record a file's content hash under its fingerprint. */
  readonly rememberContentHash?: (fingerprint: string, contentHash: string) => Effect.Effect<void>
}

/**
 * One vector to store, under its image's content hash.
 *
 * @since 0.2.0
 * @category models
 */
export interface CacheEntry {
  readonly contentHash: string
  readonly vector: Float32Array
}

/**
 * The vectors of several content hashes in one namespace, aligned with `contentHashes`: through the cache's own
 * `getMany` when it has one, else one `get` per hash.
 *
 * @since 0.2.0
 * @category lookups
 */
export const getMany = (
  cache: EmbeddingCacheShape,
  namespace: string,
  contentHashes: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<Float32Array | undefined>> =>
  contentHashes.length === 0
    ? Effect.succeed([])
    : cache.getMany?.(namespace, contentHashes) ?? Effect.forEach(contentHashes, (hash) => cache.get(namespace, hash))

/**
 * The content hashes a cache that remembers file fingerprints knows for several of them, aligned with
 * `fingerprints`: through its own `knownContentHashes` when it has one, else one `knownContentHash` each; all
 * unknown for a cache that remembers none.
 *
 * @since 0.2.0
 * @category lookups
 */
export const knownContentHashes = (
  cache: EmbeddingCacheShape,
  fingerprints: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<string | undefined>> => {
  const one = cache.knownContentHash
  if (fingerprints.length === 0 || one === undefined) return Effect.succeed(fingerprints.map(() => undefined))
  return cache.knownContentHashes?.(fingerprints) ?? Effect.forEach(fingerprints, one)
}

/**
 * Store several vectors in one namespace: through the cache's own `setMany` when it has one, else one `set` each.
 *
 * @since 0.2.0
 * @category lookups
 */
export const setMany = (cache: EmbeddingCacheShape, namespace: string, entries: ReadonlyArray<CacheEntry>): Effect.Effect<void> =>
  entries.length === 0
    ? Effect.void
    : cache.setMany?.(namespace, entries) ??
      Effect.forEach(entries, (e) => cache.set(namespace, e.contentHash, e.vector), { discard: true })

/**
 * The embedding cache in use, as a service. `DiskEmbeddingCache.layer` provides one on disk; without it the
 * `Embedder` embeds every image.
 *
 * @since 0.1.0
 * @category services
 */
export class EmbeddingCache extends Context.Tag("@loupe/core/EmbeddingCache")<EmbeddingCache, EmbeddingCacheShape>() {}

/**
 * The cache namespace of a loaded backbone's vectors: of the images themselves, or of their mirror images
 * (`Embedder`'s `mirror` option).
 *
 * @since 0.1.0
 * @category keys
 */
export const namespaceOf = (backbone: LoadedBackbone, view: "original" | "mirror" = "original"): string =>
  hash(
    "sha256",
    JSON.stringify([backbone.info.id, backbone.weightsHash, backbone.info.preprocess, ...(view === "mirror" ? ["mirror"] : [])])
  ).slice(0, 32)

/**
 * sha256 of image bytes, hex.
 *
 * @since 0.1.0
 * @category keys
 */
export const contentHash = (bytes: Uint8Array): string => hash("sha256", bytes)

/**
 * The stat fields a fingerprint reads, in nanoseconds where they are times (Node's `fs.statSync(file, { bigint: true })`
 * gives them; `FileSystem`'s `File.Info` has no change time and only milliseconds, hence the Node stat here).
 *
 * @since 0.2.0
 * @category models
 */
export interface FileStat {
  readonly dev: bigint
  readonly ino: bigint
  readonly size: bigint
  readonly mtimeNs: bigint
  readonly ctimeNs: bigint
}

/**
 * What identifies a file's content without reading it, as git's index and ccache do: its absolute path, device,
 * inode, size, and modification and change times in nanoseconds. Any write changes the change time, which no
 * program can set back, so a file with the same fingerprint has the same bytes.
 *
 * @since 0.1.0
 * @category keys
 */
export const fileFingerprint = (file: string, stat: FileStat): string =>
  hash("sha256", JSON.stringify([path.resolve(file), stat.dev, stat.ino, stat.size, stat.mtimeNs, stat.ctimeNs].map(String)))
