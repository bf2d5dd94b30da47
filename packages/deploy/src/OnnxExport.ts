/**
 * Export a fitted pipeline as one ONNX graph that any ONNX runtime can run: the backbone's own graph (an ONNX
 * backbone's model file, with the embedding exposed the way Loupe runs it), the pooling, then the head:
 *
 * ```
 * input [batch, 3, 224, 224] -> backbone -> embedding [batch, d]
 *   -> L2 normalise (x / max(||x||, 1e-12)) -> Sub(mean) -> Div(scale) -> MatMul(W) -> Add(b) -> Softmax
 *   -> probabilities [batch, classes]
 * ```
 *
 * A pipeline trained with mirror images (`Pipeline`'s `mirror`) exports with them: the graph flips the input left
 * to right (a `Gather` over the width axis), runs the backbone and head on both as one batch of `2 x batch`, and
 * averages the two probability rows of each image; the embedding output is the images' own.
 *
 * The input is the preprocessed image tensor (decode, resize and crop, then `(x / scale - mean) / std`, as
 * `model.json` describes); decoding images stays outside the graph, as it must for any runtime. The labels and the
 * preprocessing are also stored in the model's metadata (`loupe.labels`, `loupe.preprocess`).
 *
 * Exportable: backbones of the ONNX runtime (`OnnxBackbone.plugin`), and the heads whose plugin has the `toOnnx`
 * capability (the built-in logistic regression, linear SVM, nearest prototype, MLP and manual mode's `linear` head);
 * the exporter asks the registered head plugin for its nodes. kNN (which keeps every training row) has none, nor the
 * fine-tuned head (its layers run in TensorFlow.js), nor multi-backbone pipelines. Other backbones and heads fail
 * with `NotExportable` naming them.
 *
 * Every export is verified before it is written: the exported graph and Loupe's own predictor (backbone then head)
 * run on the same input tensors, and the export fails unless every probability agrees within `tolerance` (1e-4).
 *
 * @since 0.1.0
 */
import { Bundle, Embedder, LoupeConfig, Matrix, Pipeline, Preprocess, Registry } from "@loupe/core"
import type { Head, Sample } from "@loupe/core"
import { OnnxGraph, OnnxModel, Protobuf } from "@loupe/core/onnx"
import { OnnxBackbone } from "@loupe/backbones"
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as path from "node:path"
import { DeployError } from "./DeployError.js"
import { mirrorTensor, session, syntheticInputs } from "./internal/ExportCheck.js"
import { freeName, mirrorNodes, poolingNodes } from "./internal/ExportGraph.js"

/**
 * The `format` of `model.json`, and the kind of output an ONNX export is (see `OutputFolder` in `@loupe/core`): an
 * export replaces an earlier ONNX export, and nothing else.
 *
 * @since 0.2.0
 * @category constants
 */
export const FORMAT = "loupe-onnx"

/**
 * What `model.json` says beside `model.onnx`.
 *
 * @since 0.1.0
 * @category models
 */
export interface OnnxManifest {
  readonly format: typeof FORMAT
  readonly formatVersion: 1
  readonly labels: ReadonlyArray<string>
  readonly input: {
    readonly name: string
    readonly shape: ReadonlyArray<number | string>
    readonly preprocess: Preprocess.PreprocessSpec
  }
  readonly outputs: {
    readonly probabilities: { readonly name: string; readonly shape: ReadonlyArray<number | string> }
    readonly embedding: { readonly name: string; readonly shape: ReadonlyArray<number | string> }
  }
  readonly backbone: { readonly id: string; readonly weightsHash: string }
  readonly head: { readonly kind: string }
  /** The graph averages each image with its mirror image. */
  readonly mirror: boolean
  readonly verification: { readonly inputs: number; readonly maxAbsDiff: number; readonly tolerance: number }
}

/**
 * An export: the ONNX model's bytes and its manifest (labels, input and preprocessing, outputs, backbone, head,
 * and how well it agreed with Loupe's own predictions).
 *
 * @since 0.1.0
 * @category models
 */
export interface Exported {
  readonly model: Uint8Array
  readonly manifest: OnnxManifest
}

/**
 * How the export is verified: on which images, and to what tolerance.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExportOptions {
  /** Images to verify on (decoded as Loupe decodes them). Default: a few synthetic images. */
  readonly verifyImages?: ReadonlyArray<Sample.ImageSource>
  /** Largest difference allowed between a probability of the export and of Loupe's predictor. Default 1e-4. */
  readonly tolerance?: number
}

const BATCH = "batch"

const notExportable = (field: string, message: string) => new DeployError({ reason: "NotExportable", field, message })

/**
 * A head's ONNX nodes, built by its plugin's `toOnnx` capability from the serialised head.
 *
 * @since 0.1.0
 * @category models
 */
export type HeadExporter = (head: Head.SerializedHead, io: Head.OnnxIo) => Effect.Effect<Head.HeadGraph, DeployError>

/**
 * Check, without loading anything, that a backbone id and a head kind have an ONNX form; `NotExportable` names the
 * one that has none (a head whose plugin lacks the `toOnnx` capability, a backbone that does not run on
 * onnxruntime). Both are looked up in the registry.
 *
 * @since 0.1.0
 * @category exporters
 */
export const exportable = (
  backboneId: string,
  headKind: string
): Effect.Effect<{ readonly config: OnnxBackbone.OnnxModelConfig; readonly exporter: HeadExporter }, DeployError, Registry.Registry> =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const plugin = yield* registry.head(headKind).pipe(
      Effect.mapError((e) => new DeployError({ reason: "BundleFailed", field: "head.kind", message: e.message, cause: e }))
    )
    const toOnnx = plugin.toOnnx
    if (toOnnx === undefined) {
      const exportableHeads = registry.heads.filter((h) => h.toOnnx !== undefined).map((h) => h.kind)
      return yield* notExportable(
        "head.kind",
        `The ${headKind} head has no ONNX form; exportable heads: ${exportableHeads.join(", ")}. ` +
          "Export it as a bundle or a Docker context instead."
      )
    }
    const exporter: HeadExporter = (head, io) =>
      toOnnx(head, io).pipe(
        Effect.mapError((e) =>
          new DeployError({ reason: "BundleFailed", field: `head.${e.field ?? "state"}`, message: e.message, cause: e })
        )
      )
    const backbone = yield* registry.backbone(backboneId).pipe(
      Effect.mapError((e) => new DeployError({ reason: "BundleFailed", field: "backbone.id", message: e.message, cause: e }))
    )
    const config = OnnxBackbone.configOf(backbone)
    if (config === undefined) {
      return yield* notExportable(
        "backbone.id",
        `The backbone ${backboneId} runs on ${backbone.info.runtime}, not onnxruntime; only ONNX backbones export to ONNX. ` +
          "Export it as a bundle or a Docker context instead."
      )
    }
    return { config, exporter }
  })

/**
 * Build the single graph for a fitted pipeline and verify it against the pipeline. Needs the registry the pipeline's
 * backbone came from (to find its ONNX model) and the config that locates the weights.
 *
 * @since 0.1.0
 * @category constructors
 */
export const build = (
  fitted: Pipeline.FittedPipeline,
  options: ExportOptions = {}
): Effect.Effect<Exported, DeployError, Registry.Registry | LoupeConfig.LoupeConfig> =>
  Effect.scoped(Effect.gen(function*() {
    const { info } = fitted.backbone
    const headJson = fitted.head.toJSON()
    if ((fitted.extraBackbones ?? []).length > 0) {
      return yield* notExportable(
        "extraBackbones",
        "Multi-backbone pipelines have no single-graph ONNX form yet. Export it as a bundle or a Docker context instead."
      )
    }
    const { config, exporter } = yield* exportable(info.id, headJson.kind)
    const graph = yield* OnnxBackbone.embeddingGraph(config, yield* LoupeConfig.LoupeConfig).pipe(
      Effect.mapError((e) => new DeployError({ reason: "ExportFailed", file: e.file, field: e.field, message: e.message, cause: e }))
    )
    if (graph.weightsHash !== fitted.backbone.weightsHash) {
      return yield* new DeployError({
        reason: "ExportFailed",
        file: graph.file,
        field: "backbone.weightsHash",
        message: `The model was trained with ${info.id} weights sha256 ${fitted.backbone.weightsHash}, ` +
          `but ${graph.file} has sha256 ${graph.weightsHash}`
      })
    }
    const spec = info.preprocess
    const inputDims = (n: number) => (spec.layout === "NCHW" ? [n, 3, spec.size, spec.size] : [n, spec.size, spec.size, 3])

    // The rank of the raw output decides the pooling nodes; one blank image tells it.
    const probe = yield* session(graph.model, graph.file)
    const rawDims = (yield* probe.run(graph.input, new Float32Array(spec.size * spec.size * 3), inputDims(1), graph.output)).dims
    const pooled = poolingNodes(config, graph.output, rawDims.length)
    const dim = info.embeddingSize
    const taken = yield* Effect.try({
      try: () => OnnxModel.tensorNames(graph.model),
      catch: (cause) => new DeployError({ reason: "ExportFailed", file: graph.file, message: `Cannot read ${graph.file}: ${String(cause)}`, cause })
    })
    // The embedding output is the backbone's own output when no pooling was added (e.g. MobileNetV2's `embedding`).
    const EMBEDDING = pooled.nodes.length === 0 ? pooled.output : freeName(taken, "embedding")
    const PROBABILITIES = freeName(taken, "probabilities")
    const labels = fitted.labels
    const mirror = fitted.mirror === true
    // With mirror images, the graph's input is a new tensor, and its outputs are computed from the 2 x batch rows.
    const IMAGE = mirror ? freeName(taken, "image") : graph.input
    const VIEW_PROBABILITIES = mirror ? "loupe_mirror/view_probabilities" : PROBABILITIES
    const IMAGE_EMBEDDING = mirror ? freeName(taken, "image_embedding") : EMBEDDING
    const head = yield* exporter(headJson, { embedding: EMBEDDING, probabilities: VIEW_PROBABILITIES, dim })
    const mirrored = mirror
      ? mirrorNodes({
        spec,
        image: IMAGE,
        input: graph.input,
        views: VIEW_PROBABILITIES,
        probabilities: PROBABILITIES,
        classes: labels.length,
        embedding: EMBEDDING,
        imageEmbedding: IMAGE_EMBEDDING,
        dim
      })
      : { before: [], after: [] }

    const edit: OnnxModel.GraphEdit = {
      ...(mirror
        ? {
          before: Protobuf.concat([
            OnnxGraph.floatValueInfo(OnnxGraph.GRAPH_INPUT, IMAGE, [BATCH, ...inputDims(1).slice(1)]),
            ...mirrored.before
          ]),
          dropInputs: [graph.input]
        }
        : {}),
      after: Protobuf.concat([
        ...pooled.nodes,
        ...(EMBEDDING === pooled.output ? [] : [OnnxGraph.node("Identity", [pooled.output], [EMBEDDING], "loupe_embedding")]),
        ...head.nodes,
        ...head.initializers,
        ...mirrored.after,
        OnnxGraph.floatValueInfo(OnnxGraph.GRAPH_OUTPUT, PROBABILITIES, [BATCH, labels.length]),
        OnnxGraph.floatValueInfo(OnnxGraph.GRAPH_OUTPUT, IMAGE_EMBEDDING, [BATCH, dim])
      ])
    }
    const model = yield* Effect.try({
      try: () =>
        OnnxModel.rewriteModel(
          graph.model,
          edit,
          Protobuf.concat([
            OnnxGraph.metadata("loupe.labels", JSON.stringify(labels)),
            OnnxGraph.metadata("loupe.preprocess", JSON.stringify(spec)),
            OnnxGraph.metadata("loupe.backbone", info.id),
            OnnxGraph.metadata("loupe.head", headJson.kind),
            ...(mirror ? [OnnxGraph.metadata("loupe.mirror", "true")] : [])
          ])
        ),
      catch: (cause) =>
        new DeployError({ reason: "ExportFailed", file: graph.file, message: `Cannot rewrite ${graph.file}: ${String(cause)}`, cause })
    })

    // Verify: the same input tensors through the export and through Loupe's backbone + head.
    const tolerance = options.tolerance ?? 1e-4
    const perImage = spec.size * spec.size * 3
    const inputs = options.verifyImages === undefined || options.verifyImages.length === 0
      ? syntheticInputs(spec, 4)
      : Preprocess.toTensor(
        yield* Effect.forEach(options.verifyImages, (source) => Preprocess.loadRgb(source, spec)).pipe(
          Effect.mapError((e) => new DeployError({ reason: "InvalidImage", file: e.file, message: e.message, cause: e }))
        ),
        spec
      )
    const count = inputs.length / perImage
    const exported = yield* session(model, "model.onnx")
    let maxAbsDiff = 0
    const chunk = Math.max(1, Math.min(8, fitted.backbone.maxBatchSize))
    for (let start = 0; start < count; start += chunk) {
      const n = Math.min(chunk, count - start)
      const batch = inputs.subarray(start * perImage, (start + n) * perImage)
      const embed = (tensor: Float32Array) =>
        Embedder.embedTensor(fitted.backbone, tensor, n).pipe(
          Effect.map((vectors) => Matrix.make(n, dim, vectors)),
          Effect.mapError((e) => new DeployError({ reason: "ExportFailed", message: e.message, cause: e }))
        )
      const want = Pipeline.predictProba(fitted.head, {
        vectors: yield* embed(batch),
        ...(mirror ? { mirrored: yield* embed(mirrorTensor(batch, spec)) } : {})
      })
      const got = yield* exported.run(IMAGE, batch.slice(), inputDims(n), PROBABILITIES)
      const data = got.data as Float32Array
      if (data.length !== want.data.length) {
        return yield* new DeployError({
          reason: "ExportFailed",
          message: `The export gives ${data.length} probabilities for ${n} inputs; Loupe gives ${want.data.length}`
        })
      }
      for (let i = 0; i < data.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(data[i]! - want.data[i]!))
    }
    if (!(maxAbsDiff <= tolerance)) {
      return yield* new DeployError({
        reason: "ExportFailed",
        message: `The exported graph differs from Loupe's predictor by ${maxAbsDiff} (tolerance ${tolerance})`
      })
    }

    const manifest: OnnxManifest = {
      format: FORMAT,
      formatVersion: 1,
      labels,
      input: { name: IMAGE, shape: [BATCH, ...inputDims(1).slice(1)], preprocess: spec },
      outputs: {
        probabilities: { name: PROBABILITIES, shape: [BATCH, labels.length] },
        embedding: { name: IMAGE_EMBEDDING, shape: [BATCH, dim] }
      },
      mirror,
      backbone: { id: info.id, weightsHash: graph.weightsHash },
      head: { kind: headJson.kind },
      verification: { inputs: count, maxAbsDiff, tolerance }
    }
    return { model, manifest }
  }))

/**
 * Export a bundle directory as `model.onnx` + `model.json` in `outDir` (written atomically). `outDir` must be
 * missing, empty or an earlier ONNX export; anything else fails with `ExportFailed` naming it, untouched.
 *
 * @since 0.1.0
 * @category exports
 */
export const exportBundle = (
  bundleDir: string,
  outDir: string,
  options: ExportOptions = {}
): Effect.Effect<
  OnnxManifest,
  DeployError,
  Registry.Registry | LoupeConfig.LoupeConfig | Scope.Scope | FileSystem.FileSystem
> =>
  Effect.gen(function*() {
    const bundleManifest = yield* Bundle.readManifest(bundleDir).pipe(
      Effect.mapError((e) => new DeployError({ reason: "BundleFailed", file: e.file ?? bundleDir, message: e.message, cause: e }))
    )
    // Fail before loading the model when it has no ONNX form.
    yield* exportable(bundleManifest.backbone.id, bundleManifest.head.kind)
    const { fitted } = yield* Bundle.load(bundleDir).pipe(
      Effect.mapError((e) => new DeployError({ reason: "BundleFailed", file: e.file ?? bundleDir, message: e.message, cause: e }))
    )
    const { manifest, model } = yield* build(fitted, options)
    yield* Bundle.writeDirectoryAtomic(outDir, {
      "model.onnx": model,
      "model.json": JSON.stringify(manifest, null, 2) + "\n"
    }, FORMAT).pipe(
      Effect.mapError((e) => new DeployError({ reason: "ExportFailed", file: path.resolve(outDir), message: e.message, cause: e }))
    )
    return manifest
  })
