/**
 * The transformers.js runtime plugin (`@huggingface/transformers`): any Hugging Face image feature extractor with
 * an ONNX export (ViT, DINOv2, CLIP vision, SigLIP vision, ...), from a local folder or the hub.
 *
 * Where the model comes from, in order:
 * 1. `model` is a folder path (absolute, or starting with `./` or `../`): used as it is.
 * 2. `model` is a hub id (`org/name`) and `<modelsDir>/<org>/<name>/` holds it: used as it is, no network.
 * 3. Otherwise the files live in `<cacheDir>/transformers/<org>/<name>/<revision>/`. Missing ones are downloaded
 *    from the hub (`hubUrl`, default `https://huggingface.co`) unless offline mode is on; each lands through a
 *    temp file and a rename, so a broken download never leaves a torn file. When the hub cannot be reached the load
 *    fails within `hubTimeoutMs` (default 600 ms) with an error that names the model and how to provide it.
 *
 * transformers.js then loads the local folder with `local_files_only: true`. Loupe does not touch transformers'
 * global `env` (remote host, cache, local paths): everything is passed per load, so other transformers.js users in
 * the same process see no change.
 *
 * Preprocessing is Loupe's own (sharp): `make` derives the `PreprocessSpec` from the model's
 * `preprocessor_config.json` (`internal/HfPreprocess.ts`), and the plugin receives the normalised NCHW batch.
 *
 * CLIP-like models (`clip`, `chinese_clip`, `siglip`) also offer the `textTower` capability (core's `TextTower`):
 * their tokenizer and `onnx/text_model.onnx` embed text into the image embeddings' space, for zero-shot
 * classification. The text files are fetched (or checked) only when the text tower is loaded.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Config, Effect, Option, Redacted, Schema } from "effect"
import type { Scope } from "effect"
import type { PreTrainedModel, Tensor } from "@huggingface/transformers"
import { LoupeConfig } from "@loupe/core"
import type { Backbone, Preprocess, TextTower } from "@loupe/core"
import { createHash } from "node:crypto"
import * as path from "node:path"
import { BackboneError } from "./BackboneError.js"
import { download } from "./internal/download.js"
import { defaultHubUrl, exists, hasModel, hubCacheFolder, hubFileUrl, isHubRepo, modelsDirFolder } from "./internal/hub.js"
import { preprocessFromConfig } from "./internal/HfPreprocess.js"
import * as TransformersText from "./internal/TransformersText.js"
import { hashFiles } from "./internal/weights.js"

type Transformers = typeof import("@huggingface/transformers")

/**
 * Which model output is the embedding. `auto`: `pooler_output` when the model has one, else `image_embeds`, else
 * the CLS token of `last_hidden_state` (for a convolutional `[N, C, H, W]` map: its mean over H, W).
 *
 * @since 0.1.0
 * @category models
 */
export type Pooling = "auto" | "pooler_output" | "image_embeds" | "cls" | "mean"

/**
 * Weight precision, i.e. which ONNX file: `fp32` is `onnx/model.onnx`, `q8` is `onnx/model_quantized.onnx`, ...
 *
 * @since 0.1.0
 * @category models
 */
export type Dtype = "fp32" | "fp16" | "q8" | "int8" | "uint8" | "q4" | "q4f16" | "bnb4"

/**
 * A transformers.js image model described as data. `make` fills in `embeddingSize` and `preprocess` from the
 * model itself.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransformersModelConfig {
  /** `transformers:<name>`. */
  readonly id: string
  /** A hub id (`Xenova/dinov2-small`) or a folder path (absolute, or starting with `./` or `../`). */
  readonly model: string
  /** Hub revision (branch, tag or commit). Default `main`. */
  readonly revision?: string
  readonly description?: string
  readonly pooling?: Pooling
  readonly dtype?: Dtype
  /** The ONNX file's base name under `onnx/`. Default: `vision_model` for CLIP-like models, else `model`. */
  readonly modelFileName?: string
  readonly embeddingSize: number
  readonly preprocess: Preprocess.PreprocessSpec
  readonly tags?: ReadonlyArray<string>
  readonly license?: string
  /**
   * The model's text tower (CLIP, SigLIP), offered as the `textTower` capability for zero-shot classification.
   * `make` fills it in for model types that have one (`clip`, `chinese_clip`, `siglip`) when the image embedding is
   * the projected one (pooling `auto`, `image_embeds` or `pooler_output`).
   *
   * @since 0.2.0
   */
  readonly text?: TextTowerSpec
}

/**
 * A transformers.js text tower: `onnx/<modelFileName>.onnx` (default `text_model`, with the model's `dtype`) and the
 * tokenizer (`tokenizer.json`, `tokenizer_config.json`) in the model's folder. Its output is `text_embeds` (CLIP) or
 * `pooler_output` (SigLIP), in the image embeddings' space.
 *
 * @since 0.2.0
 * @category models
 */
export interface TextTowerSpec {
  readonly modelFileName?: string
  /**
   * What cosine similarities are multiplied by before the softmax. Default 100: CLIP's learned logit scale (the
   * CLIP paper caps it there and the released models sit at the cap). SigLIP's is about 112 (`exp(4.72)` for
   * SO400M, open_clip issue #746); it changes confidences, never which label wins.
   */
  readonly logitScale?: number
  /** `max_length` pads every prompt to the tokenizer's `model_max_length`, as SigLIP was trained. Default `longest`. */
  readonly padding?: "longest" | "max_length"
}

/**
 * The default logit scale of a text tower: CLIP's (see `TextTowerSpec.logitScale`).
 *
 * @since 0.2.0
 * @category models
 */
export const defaultLogitScale = 100

/**
 * What `make` needs: the model config without the parts it derives (`embeddingSize`, `preprocess`), which may
 * still be given to override them.
 *
 * @since 0.1.0
 * @category models
 */
export type TransformersModelSpec =
  & Omit<TransformersModelConfig, "embeddingSize" | "preprocess">
  & Partial<Pick<TransformersModelConfig, "embeddingSize" | "preprocess">>

/**
 * The options a transformers.js backbone accepts at load (`backboneOptions`) and `make` takes, as a Schema.
 * `Registry.loadBackbone` refuses unknown keys or values out of range (`CoreError` `InvalidConfig`); `make` fails
 * with `LoadFailed`.
 *
 * @since 0.1.0
 * @category options
 */
export const TransformersOptions = Schema.Struct({
  /** The hub to download from (a mirror, or a local server in tests). */
  hubUrl: Schema.optionalWith(Schema.String, { default: () => defaultHubUrl }),
  /** How long the first hub request may wait for a response before the load fails as "unreachable". */
  hubTimeoutMs: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 600_000)), { default: () => 600 }),
  /** How long later requests (the weight files) may wait for a response. Their bodies have no deadline. */
  downloadTimeoutMs: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 3_600_000)), { default: () => 30_000 }),
  /** Threads for one inference call. */
  intraOpNumThreads: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 256)), { default: () => 2 }),
  /** Largest batch per call. */
  maxBatchSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1024)), { default: () => 16 })
})
/**
 * The decoded transformers.js backbone options, defaults filled in.
 *
 * @since 0.1.0
 * @category options
 */
export type TransformersOptions = typeof TransformersOptions.Type

/**
 * Models whose exports hold several ONNX files; the image encoder is `onnx/vision_model*.onnx`, the text encoder
 * `onnx/text_model*.onnx`.
 */
const visionFileByModelType: Readonly<Record<string, string>> = {
  clip: "vision_model",
  chinese_clip: "vision_model",
  siglip: "vision_model"
}

const isLocalPath = (model: string) =>
  path.isAbsolute(model) || model === "." || model === ".." || model.startsWith("./") || model.startsWith("../")

const weightsOf = (config: Pick<TransformersModelConfig, "model" | "revision">): Backbone.WeightsSource =>
  isLocalPath(config.model)
    ? { _tag: "Path", path: config.model }
    : { _tag: "Hub", repo: config.model, ...(config.revision === undefined ? {} : { revision: config.revision }) }

const importTransformers: Effect.Effect<Transformers, BackboneError> = Effect.tryPromise({
  try: () => import("@huggingface/transformers"),
  catch: (cause) =>
    new BackboneError({
      reason: "LoadFailed",
      field: "@huggingface/transformers",
      message: `Cannot import @huggingface/transformers: ${String(cause)}`,
      cause
    })
})

const readJson = (id: string, file: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(file)).pipe(
    Effect.flatMap((text) => Effect.try(() => JSON.parse(text) as Record<string, unknown>)),
    Effect.mapError((cause) =>
      new BackboneError({ reason: "LoadFailed", field: id, file, message: `Cannot read ${file}: ${String(cause)}`, cause })
    )
  )

interface Opened {
  readonly folder: string
  readonly model: PreTrainedModel
  readonly transformers: Transformers
  readonly weightsHash: string
}

/**
 * The folder holding the model, downloading missing hub files into the cache unless offline. `extraFiles` are needed
 * beside the model's own (a text tower's tokenizer).
 */
const locate = (
  spec: TransformersModelSpec,
  opts: TransformersOptions,
  loupe: LoupeConfig.LoupeConfigShape,
  extraFiles: ReadonlyArray<string> = []
) =>
  Effect.gen(function*() {
    const { id, model: name } = spec
    const modelFileOf = (config: Record<string, unknown>) =>
      spec.modelFileName ?? visionFileByModelType[String(config["model_type"])] ?? "model"
    // transformers.js is imported only once config.json is here, so an unreachable hub fails before that ~1 s import.
    const filesOf = (config: Record<string, unknown>) =>
      importTransformers.pipe(Effect.flatMap((T) => Effect.tryPromise({
        try: () =>
          T.ModelRegistry.get_model_files(name, {
            config: config as never,
            dtype: spec.dtype ?? "fp32",
            device: "cpu",
            model_file_name: modelFileOf(config)
          }),
        catch: (cause) =>
          new BackboneError({ reason: "LoadFailed", field: id, message: `${id}: cannot list the files of ${name}: ${String(cause)}`, cause })
      }))).pipe(Effect.map((files) => ["preprocessor_config.json", ...files.filter((f) => f !== "config.json"), ...extraFiles]))
    const missingIn = (folder: string, files: ReadonlyArray<string>) =>
      Effect.filter(files, (f) => Effect.map(exists(path.join(folder, f)), (present) => !present))
    /** The files the model needs, from its config.json. */
    const listFiles = (folder: string) =>
      Effect.gen(function*() {
        const config = yield* readJson(id, path.join(folder, "config.json"))
        return { folder, modelFile: modelFileOf(config), files: yield* filesOf(config) }
      })
    const useFolder = (folder: string) =>
      Effect.gen(function*() {
        const listed = yield* listFiles(folder)
        const missing = yield* missingIn(folder, listed.files)
        if (missing.length > 0) {
          return yield* new BackboneError({
            reason: "WeightsNotFound",
            field: id,
            file: folder,
            message: `${id}: ${folder} lacks ${missing.join(", ")}`
          })
        }
        return listed
      })

    if (isLocalPath(name)) {
      const folder = path.resolve(name)
      if (!(yield* hasModel(folder))) {
        return yield* new BackboneError({
          reason: "WeightsNotFound",
          field: id,
          file: folder,
          message: `${id}: ${folder} has no config.json; a transformers.js model folder holds config.json, ` +
            "preprocessor_config.json and onnx/<name>.onnx"
        })
      }
      return yield* useFolder(folder)
    }
    if (!isHubRepo(name)) {
      return yield* new BackboneError({
        reason: "LoadFailed",
        field: id,
        message: `${id}: "${name}" is neither a folder path (absolute, ./ or ../) nor a hub id such as Xenova/dinov2-small`
      })
    }
    const byHand = modelsDirFolder(loupe.modelsDir, name)
    if (byHand !== undefined && (yield* hasModel(byHand))) return yield* useFolder(byHand)

    const revision = spec.revision ?? "main"
    const folder = hubCacheFolder(loupe.cacheDir, name, revision)
    const howToProvide = `Provide it locally: pass a model folder path as the model (config.json, preprocessor_config.json ` +
      `and onnx/<name>.onnx), or put that folder at ${byHand ?? "$LOUPE_MODELS_DIR/" + name}, or fetch it once online ` +
      `(it is kept in ${folder}). --offline (LOUPE_OFFLINE=1) never tries the network.`
    const token = yield* Config.option(Config.redacted("HF_TOKEN")).pipe(Effect.orElseSucceed(() => Option.none()))
    const headers = Option.match(token, {
      onNone: (): Record<string, string> => ({}),
      onSome: (t) => ({ Authorization: `Bearer ${Redacted.value(t)}` })
    })
    let contacted = false
    const fetchFiles = (files: ReadonlyArray<string>) =>
      Effect.flatMap(missingIn(folder, files), (missing) => Effect.forEach(missing, (file) => {
        if (loupe.offline) {
          return Effect.fail(
            new BackboneError({
              reason: "Offline",
              field: id,
              file: path.join(folder, file),
              message: `${id}: ${name} is not available locally (missing ${file}) and offline mode is on. ${howToProvide}`
            })
          )
        }
        const first = !contacted
        contacted = true
        return download({
          id,
          url: hubFileUrl(opts.hubUrl, name, revision, file),
          dest: path.join(folder, file),
          headers,
          responseTimeoutMs: first ? opts.hubTimeoutMs : opts.downloadTimeoutMs
        }).pipe(
          Effect.mapError((e) =>
            new BackboneError({
              reason: e.reason,
              field: id,
              file: hubFileUrl(opts.hubUrl, name, revision, file),
              message: `${id}: cannot fetch ${name} from the hub: ${e.message}. ${howToProvide}` +
                (first ? ` A slow but working connection may need a larger hubTimeoutMs (now ${opts.hubTimeoutMs} ms).` : ""),
              cause: e
            })
          )
        )
      }, { discard: true }))
    yield* fetchFiles(["config.json"])
    const listed = yield* listFiles(folder)
    yield* fetchFiles(listed.files)
    return listed
  })

/** Locates (and fetches) the model and opens it with transformers.js, released with the scope. */
const open = (
  spec: TransformersModelSpec,
  opts: TransformersOptions,
  loupe: LoupeConfig.LoupeConfigShape
): Effect.Effect<Opened, BackboneError, Scope.Scope | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const { folder, modelFile, files } = yield* locate(spec, opts, loupe)
    const T = yield* importTransformers
    const onnxFiles = files.filter((f) => f.startsWith("onnx/")).map((f) => path.join(folder, f))
    const filesHash = yield* hashFiles(onnxFiles)
    const weightsHash = createHash("sha256")
      .update(JSON.stringify([filesHash, spec.pooling ?? "auto", modelFile]))
      .digest("hex")
    const model = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          T.AutoModel.from_pretrained(folder, {
            local_files_only: true,
            device: "cpu",
            dtype: spec.dtype ?? "fp32",
            model_file_name: modelFile,
            session_options: {
              intraOpNumThreads: opts.intraOpNumThreads,
              interOpNumThreads: 1,
              graphOptimizationLevel: "all"
            }
          }),
        catch: (cause) =>
          new BackboneError({
            reason: "LoadFailed",
            field: spec.id,
            file: folder,
            message: `${spec.id}: transformers.js cannot load ${folder}: ${cause instanceof Error ? cause.message : String(cause)}`,
            cause
          })
      }),
      (m) => Effect.promise(() => m.dispose())
    )
    return { folder, model, transformers: T, weightsHash }
  })

/** Picks the embedding out of the model outputs: `count x D`, row-major. */
const poolOutputs = (outputs: Record<string, Tensor>, count: number, pooling: Pooling): Float32Array => {
  const floats = (t: Tensor) => (t.type === "float32" ? t : t.to("float32")).data as Float32Array
  const named = (name: string) => {
    const t = outputs[name]
    if (t === undefined) throw new Error(`the model has no output ${name} (outputs: ${Object.keys(outputs).join(", ")})`)
    return t
  }
  const choice = pooling !== "auto"
    ? pooling
    : "pooler_output" in outputs
    ? "pooler_output"
    : "image_embeds" in outputs
    ? "image_embeds"
    : "cls"
  if (choice === "pooler_output" || choice === "image_embeds") {
    const t = named(choice)
    if (t.dims.length !== 2 || t.dims[0] !== count) throw new Error(`${choice} has shape [${t.dims}] for ${count} images`)
    return Float32Array.from(floats(t))
  }
  const hidden = named("last_hidden_state")
  const data = floats(hidden)
  const [n, a, b, c] = hidden.dims as [number, number, number, number | undefined]
  if (n !== count || (hidden.dims.length !== 3 && hidden.dims.length !== 4)) {
    throw new Error(`last_hidden_state has shape [${hidden.dims}] for ${count} images`)
  }
  if (hidden.dims.length === 3 && choice === "cls") {
    const out = new Float32Array(count * b)
    for (let i = 0; i < count; i++) out.set(data.subarray(i * a * b, i * a * b + b), i * b)
    return out
  }
  // Tokens [N, T, D]: mean over T. A feature map [N, C, H, W] (either choice): mean over H, W.
  const tokensFirst = hidden.dims.length === 3
  const [groups, width] = tokensFirst ? [a, b] : [b * c!, a]
  const out = new Float32Array(count * width)
  for (let i = 0; i < count; i++) {
    const base = i * groups * width
    for (let d = 0; d < width; d++) {
      let sum = 0
      for (let g = 0; g < groups; g++) sum += data[tokensFirst ? base + g * width + d : base + d * groups + g]!
      out[i * width + d] = sum / groups
    }
  }
  return out
}

const makeEmbed = (opened: Opened, id: string, pooling: Pooling, size: number) =>
(batch: Float32Array, count: number) =>
  Effect.tryPromise({
    try: async () => {
      const input = new opened.transformers.Tensor("float32", batch, [count, 3, size, size])
      const outputs = (await opened.model({ pixel_values: input })) as Record<string, Tensor>
      try {
        return poolOutputs(outputs, count, pooling)
      } finally {
        for (const t of Object.values(outputs)) t.dispose()
      }
    },
    catch: (cause) =>
      new BackboneError({
        reason: "InferenceFailed",
        field: id,
        message: `${id}: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  })

/** The text tower capability: the tokenizer and text encoder from the model's folder (fetched when missing). */
const textTowerOf = (config: TransformersModelConfig, text: TextTowerSpec): TextTower.TextTower => ({
  load: ({ config: loupe, options }) =>
    Effect.gen(function*() {
      const opts = options as TransformersOptions
      const modelFileName = text.modelFileName ?? "text_model"
      const located = yield* locate({ ...config, modelFileName }, opts, loupe, TransformersText.tokenizerFiles)
      return yield* TransformersText.open({
        id: config.id,
        folder: located.folder,
        files: located.files.filter((f) => f.startsWith("onnx/") || TransformersText.tokenizerFiles.includes(f)),
        transformers: yield* importTransformers,
        modelFileName,
        dtype: config.dtype ?? "fp32",
        logitScale: text.logitScale ?? defaultLogitScale,
        padding: text.padding ?? "longest",
        embeddingSize: config.embeddingSize,
        maxBatchSize: opts.maxBatchSize,
        intraOpNumThreads: opts.intraOpNumThreads
      })
    }).pipe(Effect.provide(NodeFileSystem.layer))
})

/**
 * The text tower a model type has, for an image embedding in the text's space (the projected one): SigLIP's
 * prompts are padded to the longest length it was trained with.
 */
const textTowerFor = (modelType: unknown, pooling: Pooling | undefined): TextTowerSpec | undefined =>
  typeof modelType === "string" && modelType in visionFileByModelType &&
    (pooling === undefined || pooling === "auto" || pooling === "image_embeds" || pooling === "pooler_output")
    ? { padding: modelType === "siglip" ? "max_length" : "longest" }
    : undefined

/** A failed probe inference at load time is a load failure of that folder. */
const probeFailed = (id: string, folder: string) => (e: BackboneError) =>
  new BackboneError({ reason: "LoadFailed", field: id, file: folder, message: e.message, cause: e })

/**
 * The plugin for one transformers.js model whose embedding size and preprocessing are known (see `make` to derive
 * them). Loading checks the embedding size against the model's real output.
 *
 * @since 0.1.0
 * @category constructors
 */
export const plugin = (config: TransformersModelConfig): Backbone.BackbonePlugin => {
  const info: Backbone.BackboneInfo = {
    id: config.id,
    runtime: "transformers",
    description: config.description ?? `${config.model} (transformers.js)`,
    embeddingSize: config.embeddingSize,
    preprocess: config.preprocess,
    tags: config.tags ?? ["transformers"],
    license: config.license ?? "see the model card",
    weights: weightsOf(config)
  }
  const pooling = config.pooling ?? "auto"
  const { size } = config.preprocess
  return {
    info,
    optionsSchema: TransformersOptions,
    load: ({ config: loupe, options }) =>
      Effect.gen(function*() {
        const opts = options as TransformersOptions
        if (config.preprocess.layout !== "NCHW") {
          return yield* new BackboneError({ reason: "LoadFailed", field: config.id, message: `${config.id}: transformers.js models take NCHW input` })
        }
        const opened = yield* open(config, opts, loupe)
        const embed = makeEmbed(opened, config.id, pooling, size)
        const probe = yield* embed(new Float32Array(3 * size * size), 1).pipe(Effect.mapError(probeFailed(config.id, opened.folder)))
        if (probe.length !== config.embeddingSize) {
          return yield* new BackboneError({
            reason: "LoadFailed",
            field: config.id,
            file: opened.folder,
            message: `${config.id} gives ${probe.length} values per image (pooling ${pooling}); the config says ${config.embeddingSize}`
          })
        }
        const per = 3 * size * size
        const embedBatch = (batch: Float32Array, count: number) =>
          !Number.isInteger(count) || count < 1 || count > opts.maxBatchSize || batch.length !== count * per
            ? Effect.fail(
              new BackboneError({
                reason: "InvalidInput",
                field: config.id,
                message: `${config.id} expects 1..${opts.maxBatchSize} images of ${per} values; got count ${count} and ` +
                  `${batch.length} values`
              })
            )
            : embed(batch, count)
        return { info, weightsHash: opened.weightsHash, maxBatchSize: opts.maxBatchSize, embedBatch } satisfies Backbone.LoadedBackbone
      }).pipe(Effect.provide(NodeFileSystem.layer)),
    ...(config.text === undefined ? {} : { textTower: textTowerOf(config, config.text) })
  }
}

/**
 * Describes a model from its own files and returns its plugin: the preprocessing from `preprocessor_config.json`
 * and the embedding size from one probe inference (given values win for preprocessing; a given embedding size must
 * match), and the text tower from `config.json`'s model type (CLIP, SigLIP; see `TransformersModelConfig.text`).
 * Fetches the model first when it comes from the hub (see the module docs).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  spec: TransformersModelSpec,
  options: Partial<TransformersOptions> = {}
): Effect.Effect<Backbone.BackbonePlugin, BackboneError, LoupeConfig.LoupeConfig> =>
  Effect.scoped(Effect.gen(function*() {
    const loupe = yield* LoupeConfig.LoupeConfig
    const opts = yield* Schema.decodeUnknown(TransformersOptions, { onExcessProperty: "error" })(options).pipe(
      Effect.mapError((e) => new BackboneError({ reason: "LoadFailed", field: spec.id, message: `Invalid options for ${spec.id}: ${e.message}` }))
    )
    const opened = yield* open(spec, opts, loupe)
    const preprocess = spec.preprocess ??
      (yield* preprocessFromConfig(
        yield* readJson(spec.id, path.join(opened.folder, "preprocessor_config.json")),
        path.join(opened.folder, "preprocessor_config.json")
      ))
    const probe = yield* makeEmbed(opened, spec.id, spec.pooling ?? "auto", preprocess.size)(
      new Float32Array(3 * preprocess.size * preprocess.size),
      1
    ).pipe(Effect.mapError(probeFailed(spec.id, opened.folder)))
    if (spec.embeddingSize !== undefined && spec.embeddingSize !== probe.length) {
      return yield* new BackboneError({
        reason: "LoadFailed",
        field: spec.id,
        file: opened.folder,
        message: `${spec.id} gives ${probe.length} values per image; the spec says ${spec.embeddingSize}`
      })
    }
    const modelConfig = yield* readJson(spec.id, path.join(opened.folder, "config.json"))
    const text = spec.text ?? textTowerFor(modelConfig["model_type"], spec.pooling)
    return plugin({ ...spec, preprocess, embeddingSize: probe.length, ...(text === undefined ? {} : { text }) })
  })).pipe(Effect.provide(NodeFileSystem.layer))
