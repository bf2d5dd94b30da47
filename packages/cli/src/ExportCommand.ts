/**
 * `loupe export <bundle|function> --format bundle|onnx|docker --out <dir>`: take a model elsewhere. The source is a
 * bundle directory, or a function id of the store (`--store`), whose promoted model is exported.
 *
 * - `bundle`: a copy of the model bundle (labels, head, backbone reference), for `loupe predict` / `loupe serve --bundle`.
 * - `onnx`: `model.onnx`, the backbone and the head as one graph any ONNX runtime runs, and `model.json` (labels,
 *   preprocessing). Verified against Loupe's predictor within 1e-4 before it is written (on the function's own
 *   images, or `--verify-image` files, else synthetic inputs).
 * - `docker`: a build context (Dockerfile, bundle, weights, standalone server); see its README.md.
 *
 * @since 0.1.0
 */
import { DeployError, DockerContext, OnnxExport } from "@loupe/deploy"
import { FileSystem } from "@effect/platform"
import { Bundle, OutputFolder } from "@loupe/core"
import { Console, Effect, pipe } from "effect"
import * as path from "node:path"
import { BlobStore, Functions, FunctionsError, Store } from "@loupe/functions"
import type { StoreLocation } from "@loupe/functions"
import { store } from "./FunctionCommand.js"
import * as Arg from "./internal/Arg.js"
import { environment, json, modelsDir, overwrite, plugins } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"
import * as Flag from "./internal/Flag.js"
import * as OutOption from "./internal/OutOption.js"
import * as ServerImage from "./ServerImage.js"

/** Images used to verify an ONNX export of a function: its first few samples. */
const VERIFY_SAMPLES = 8

/** The bundle behind a function id: its promoted model, with a few of its images. */
const functionBundle = (location: StoreLocation.StoreLocation, functionId: string) =>
  Effect.gen(function*() {
    const records = yield* Store.Store
    const blobs = yield* BlobStore.BlobStore
    const version = yield* records.promotedVersion(functionId)
    if (version === undefined) {
      yield* records.getFunction(functionId)
      return yield* new FunctionsError.FunctionsError({ reason: "NotTrained", field: "functionId", message: `Function ${functionId} has no trained model to export yet` })
    }
    const samples = yield* records.listSamples(functionId, { limit: VERIFY_SAMPLES })
    const images = yield* Effect.forEach(samples, (s) => Effect.option(blobs.localFile(Store.imageKey(functionId, s.contentHash))))
    return {
      dir: yield* blobs.localDirectory(version.bundle),
      images: images.flatMap((o) => (o._tag === "Some" ? [o.value] : [])),
      functionId
    }
  }).pipe(Effect.provide(Functions.layerStorage(location)))

/** Copy a bundle directory to `out`, atomically; `out` may only hold an earlier bundle (see `OutputFolder`). */
const copyBundle = (from: string, out: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const target = path.resolve(out)
    yield* OutputFolder.write(target, Bundle.FORMAT, (staging) =>
      fs.copy(from, staging).pipe(
        Effect.mapError((cause) =>
          new DeployError.DeployError({ reason: "ExportFailed", file: target, message: `Cannot write ${target}: ${cause.message}`, cause })
        )
      ))
    return target
  })

/** The kind of output each `--format` writes. */
const kinds = { bundle: Bundle.FORMAT, onnx: OnnxExport.FORMAT, docker: DockerContext.KIND } as const

export const command = DocumentedCommand.make(
  "export",
  {
    summary: "Export a bundle or a function's model: as a bundle, one ONNX graph, or a Docker build context",
    details: [
      "bundle: a copy of the bundle folder. onnx: model.onnx (backbone and head in one graph) and model.json (labels, " +
      "preprocessing), checked against Loupe's own predictions before it is written. docker: a folder to `docker build`, " +
      "with the bundle, the weights and a standalone server."
    ],
    examples: ["loupe export ./pets-model --format onnx --out ./pets-onnx"]
  },
  {
    source: Arg.text("bundle-or-function", "A bundle folder, or the id of a function of the store (its current model)"),
    format: pipe(Flag.choice("format", ["bundle", "onnx", "docker"], "What to write"), Flag.withDefault<"bundle" | "onnx" | "docker">("bundle")),
    out: Flag.directory("out", "The folder to write: a new or empty folder, or an earlier export of the same format with --overwrite (anything else is refused)"),
    overwrite,
    verifyImage: pipe(
      Flag.file("verify-image", "An image to check an ONNX export on, instead of the function's own photos or synthetic inputs", { exists: "yes" }),
      Flag.repeated
    ),
    port: pipe(Flag.integer("port", "<port>", "The port the Docker image's server listens on"), Flag.withDefault(8080)),
    store,
    modelsDir,
    plugins,
    json
  },
  (flags) =>
    Effect.gen(function*() {
      yield* OutOption.checkFree(path.resolve(flags.out), kinds[flags.format], flags.overwrite)
      const isBundle = yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(path.join(flags.source, "manifest.json"))).pipe(
        Effect.orElseSucceed(() => false)
      )
      const source = isBundle
        ? { dir: path.resolve(flags.source), images: [] as ReadonlyArray<string>, functionId: undefined }
        : yield* functionBundle(flags.store, flags.source)
      const verifyImages = flags.verifyImage.length > 0 ? flags.verifyImage : source.images
      const result = flags.format === "bundle"
        ? { format: "bundle", dir: yield* copyBundle(source.dir, flags.out) }
        : flags.format === "onnx"
        ? { ...(yield* OnnxExport.exportBundle(source.dir, flags.out, { verifyImages })), format: "onnx", dir: path.resolve(flags.out) }
        : {
          format: "docker",
          ...(yield* DockerContext.write(source.dir, flags.out, yield* ServerImage.entry, {
            port: flags.port,
            ...(source.functionId === undefined ? {} : { functionId: source.functionId })
          }))
        }
      if (flags.json) return yield* Console.log(JSON.stringify({ source: flags.source, ...result }))
      yield* Console.log(`Exported ${flags.source} as ${result.format} to ${result.dir}`)
      if ("verification" in result) {
        yield* Console.log(`Verified on ${result.verification.inputs} inputs: largest difference from Loupe's predictor ${result.verification.maxAbsDiff.toExponential(2)}`)
      }
      if ("files" in result) yield* Console.log(`Build it with: docker build -t my-model ${result.dir}`)
    }).pipe(Effect.scoped, Effect.provide(environment(flags)))
)

