/**
 * A model bundle is a directory: `manifest.json` (labels, the backbone reference, the head's file, metrics) and
 * `head.json` (the fitted head). Weights are referenced by backbone id and sha256, never copied. Saving is atomic:
 * the bundle is written beside the target and renamed into place, so a reader never sees half a bundle and a crash
 * leaves the previous bundle intact. A bundle replaces only an earlier bundle, never a folder holding anything else
 * (see `OutputFolder`).
 *
 * @since 0.1.0
 */
import { FileSystem } from "@effect/platform"
import type { Error as PlatformError } from "@effect/platform"
import { Effect, Schema } from "effect"
import type { Scope } from "effect"
import * as path from "node:path"
import { CoreError } from "./CoreError.js"
import type { LoupeConfig } from "./LoupeConfig.js"
import * as OutputFolder from "./OutputFolder.js"
import type { LoadedBackbone } from "./Backbone.js"
import type { FittedPipeline } from "./Pipeline.js"
import { loadBackbone, Registry } from "./Registry.js"

/**
 * The `format` field every bundle manifest carries.
 *
 * @since 0.1.0
 * @category constants
 */
export const FORMAT = "loupe-bundle"
/**
 * The manifest format version this release writes and reads; a manifest with another version fails to decode.
 *
 * @since 0.1.0
 * @category constants
 */
export const FORMAT_VERSION = 1

const PreprocessSchema = Schema.Struct({
  size: Schema.Number,
  resize: Schema.Literal("shorter-side-center-crop", "squash"),
  resizeShorter: Schema.optional(Schema.Number),
  layout: Schema.Literal("NCHW", "NHWC"),
  scale: Schema.Number,
  mean: Schema.Tuple(Schema.Number, Schema.Number, Schema.Number),
  std: Schema.Tuple(Schema.Number, Schema.Number, Schema.Number)
})

const BackboneRef = Schema.Struct({
  id: Schema.String,
  weightsHash: Schema.String,
  embeddingSize: Schema.Number,
  preprocess: PreprocessSchema,
  options: Schema.Unknown
})

/**
 * The schema of `manifest.json`: format and version, creation time (ISO 8601), labels in class-index order, the
 * backbone reference (id, weights sha256, embedding size, preprocessing, plugin options), any further backbones, the
 * head's kind and file, the `mirror` flag and free-form metadata.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Manifest = Schema.Struct({
  format: Schema.Literal(FORMAT),
  formatVersion: Schema.Literal(FORMAT_VERSION),
  createdAt: Schema.String,
  labels: Schema.Array(Schema.String),
  backbone: BackboneRef,
  /** Multi-backbone pipelines: the further backbones, whose embeddings follow `backbone`'s in the head's input. */
  extraBackbones: Schema.optional(Schema.Array(BackboneRef)),
  head: Schema.Struct({ kind: Schema.String, file: Schema.String }),
  /** Predictions average each image and its mirror image (`Pipeline`'s `mirror`). */
  mirror: Schema.optional(Schema.Boolean),
  /** Free-form training facts (CV metrics, test metrics, selected candidate, timings). */
  metadata: Schema.optional(Schema.Unknown)
})
/**
 * A decoded bundle manifest (see the `Manifest` schema).
 *
 * @since 0.1.0
 * @category models
 */
export type Manifest = typeof Manifest.Type

const io = (file: string, what: string) => (cause: PlatformError.PlatformError) =>
  new CoreError({ reason: "Io", file, message: `Cannot ${what} ${file}: ${cause.message}`, cause })

const encoder = new TextEncoder()

/**
 * Write `files` (name -> contents) as directory `dir`, an output of `kind` (default: a bundle), atomically (see
 * `OutputFolder.write`): into a sibling folder (each file synced to disk), then renamed into place. `dir` must be
 * missing, empty, or an earlier output of the same kind, which is replaced; nothing else is ever removed.
 *
 * Fails with `CoreError`: `OutputNotFree` naming `dir` when it holds anything else, `Io` naming `dir`.
 *
 * @since 0.1.0
 * @category utils
 */
export const writeDirectoryAtomic = (
  dir: string,
  files: Record<string, string | Uint8Array>,
  kind: string = FORMAT
): Effect.Effect<void, CoreError, FileSystem.FileSystem> =>
  OutputFolder.write(dir, kind, (staging) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      for (const [name, contents] of Object.entries(files)) {
        yield* Effect.scoped(Effect.gen(function*() {
          const file = yield* fs.open(path.join(staging, name), { flag: "w" })
          yield* file.writeAll(typeof contents === "string" ? encoder.encode(contents) : contents)
          yield* file.sync
        }))
      }
    }).pipe(Effect.mapError(io(dir, "write bundle"))))

const refOf = (backbone: LoadedBackbone, options: unknown): typeof BackboneRef.Type => ({
  id: backbone.info.id,
  weightsHash: backbone.weightsHash,
  embeddingSize: backbone.info.embeddingSize,
  preprocess: backbone.info.preprocess,
  options
})

/**
 * Save a fitted pipeline as a bundle directory.
 *
 * Writes `manifest.json` and `head.json` atomically (see `writeDirectoryAtomic`); `metadata` goes into the manifest
 * as is. `dir` must be missing, empty or an earlier bundle. Returns the manifest written; fails with `CoreError`
 * `OutputNotFree` naming `dir` when it holds anything else, `Io` when it cannot be written.
 *
 * @since 0.1.0
 * @category constructors
 */
export const save = (
  fitted: FittedPipeline,
  dir: string,
  metadata?: unknown
): Effect.Effect<Manifest, CoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const extra = fitted.extraBackbones ?? []
    const manifest: Manifest = {
      format: FORMAT,
      formatVersion: FORMAT_VERSION,
      createdAt: new Date().toISOString(),
      labels: fitted.labels,
      backbone: refOf(fitted.backbone, fitted.backboneOptions),
      ...(extra.length === 0 ? {} : { extraBackbones: extra.map((b) => refOf(b.backbone, b.options)) }),
      head: { kind: fitted.head.kind, file: "head.json" },
      ...(fitted.mirror === true ? { mirror: true } : {}),
      ...(metadata === undefined ? {} : { metadata })
    }
    yield* writeDirectoryAtomic(dir, {
      "manifest.json": JSON.stringify(manifest, null, 2) + "\n",
      "head.json": JSON.stringify(fitted.head.toJSON())
    })
    return manifest
  })

const readJson = (file: string): Effect.Effect<unknown, CoreError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(file)).pipe(
    Effect.mapError(io(file, "read")),
    Effect.flatMap((text) =>
      Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (cause) => new CoreError({ reason: "InvalidBundle", file, message: `${file} is not valid JSON`, cause })
      })
    )
  )

/**
 * Read and validate a bundle's manifest.
 *
 * Fails with `CoreError`: `Io` when it cannot be read, `InvalidBundle` naming the file when it is not JSON or not a
 * Loupe manifest.
 *
 * @since 0.1.0
 * @category constructors
 */
export const readManifest = (dir: string): Effect.Effect<Manifest, CoreError, FileSystem.FileSystem> => {
  const file = path.join(dir, "manifest.json")
  return readJson(file).pipe(
    Effect.flatMap(Schema.decodeUnknown(Manifest)),
    Effect.mapError((e) =>
      e._tag === "CoreError"
        ? e
        : new CoreError({ reason: "InvalidBundle", file, message: `${file} is not a Loupe bundle manifest: ${e.message}` })
    )
  )
}

/**
 * Load a bundle: its backbone from the registry (checking the weights are the ones it was trained with) and its
 * head. The backbone session lives as long as the scope.
 *
 * Fails with `CoreError`: `InvalidBundle` when the manifest or head is invalid, the weights found differ from those
 * it was trained with (naming the `weightsHash` field) or the head's class count differs from the labels;
 * `UnknownPlugin` when its backbone or head is not registered.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (
  dir: string
): Effect.Effect<
  { readonly fitted: FittedPipeline; readonly manifest: Manifest },
  CoreError,
  Registry | LoupeConfig | Scope.Scope | FileSystem.FileSystem
> =>
  Effect.gen(function*() {
    const manifest = yield* readManifest(dir)
    const registry = yield* Registry
    const headPlugin = yield* registry.head(manifest.head.kind)
    const headFile = path.join(dir, manifest.head.file)
    const serialized = yield* readJson(headFile)
    // A head that runs part of its backbone (a fine-tuned tail) loads through the backbone's plugin.
    const backbonePlugin = yield* Effect.option(registry.backbone(manifest.backbone.id))
    const context = backbonePlugin._tag === "Some" ? { backbone: backbonePlugin.value } : {}
    const head = yield* headPlugin.load(serialized as never, context).pipe(
      Effect.mapError((e) => new CoreError({ reason: "InvalidBundle", file: headFile, message: e.message, cause: e }))
    )
    const loadRef = (ref: typeof BackboneRef.Type, field: string) =>
      Effect.flatMap(loadBackbone(ref.id, ref.options), (backbone) =>
        backbone.weightsHash === ref.weightsHash
          ? Effect.succeed(backbone)
          : Effect.fail(
            new CoreError({
              reason: "InvalidBundle",
              file: dir,
              field: `${field}.weightsHash`,
              message: `Bundle ${dir} was trained with ${ref.id} weights sha256 ${ref.weightsHash}, ` +
                `but the weights found have sha256 ${backbone.weightsHash}`
            })
          ))
    const backbone = yield* loadRef(manifest.backbone, "backbone")
    const extraBackbones = yield* Effect.forEach(manifest.extraBackbones ?? [], (ref, i) =>
      Effect.map(loadRef(ref, `extraBackbones.${i}`), (b) => ({ backbone: b, options: ref.options })))
    if (head.numClasses !== manifest.labels.length) {
      return yield* new CoreError({
        reason: "InvalidBundle",
        file: headFile,
        message: `Head has ${head.numClasses} classes but the manifest lists ${manifest.labels.length} labels`
      })
    }
    const fitted: FittedPipeline = {
      labels: manifest.labels,
      backbone,
      backboneOptions: manifest.backbone.options,
      head,
      embed: {},
      ...(extraBackbones.length === 0 ? {} : { extraBackbones }),
      ...(manifest.mirror === true ? { mirror: true } : {})
    }
    return { fitted, manifest }
  })
