/**
 * The text side of a transformers.js CLIP-like model: its tokenizer (`tokenizer.json`, `tokenizer_config.json`) and
 * its text encoder (`onnx/text_model.onnx`), as a core `TextTower.TextEncoder`.
 *
 * @internal
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import { Effect } from "effect"
import type { Scope } from "effect"
import type { PreTrainedModel, PreTrainedTokenizer, Tensor } from "@huggingface/transformers"
import { Matrix } from "@loupe/core"
import type { TextTower } from "@loupe/core"
import * as path from "node:path"
import { BackboneError } from "../BackboneError.js"
import { hashFiles } from "./weights.js"

type Transformers = typeof import("@huggingface/transformers")

/** The files the tokenizer needs beside the model's. */
export const tokenizerFiles: ReadonlyArray<string> = ["tokenizer.json", "tokenizer_config.json"]

/** How a text tower is opened: where, with what, and how its prompts are padded. */
export interface TextOpen {
  readonly id: string
  readonly folder: string
  /** Every file of the text tower (onnx and tokenizer), relative to `folder`. */
  readonly files: ReadonlyArray<string>
  readonly transformers: Transformers
  readonly modelFileName: string
  readonly dtype: string
  readonly logitScale: number
  /** `max_length`: every prompt padded to the tokenizer's `model_max_length` (SigLIP was trained so). */
  readonly padding: "longest" | "max_length"
  /** The image embedding size: the text embeddings must match it. */
  readonly embeddingSize: number
  readonly maxBatchSize: number
  readonly intraOpNumThreads: number
}

const failure = (id: string, reason: BackboneError["reason"], file: string | undefined) => (cause: unknown) =>
  new BackboneError({
    reason,
    field: id,
    ...(file === undefined ? {} : { file }),
    message: `${id}: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

/** `text_embeds` (CLIP) or `pooler_output` (SigLIP): `count x D`. */
const textEmbedding = (outputs: Record<string, Tensor>, count: number): Matrix.Matrix => {
  const t = outputs["text_embeds"] ?? outputs["pooler_output"]
  if (t === undefined) {
    throw new Error(`the text model has neither text_embeds nor pooler_output (outputs: ${Object.keys(outputs).join(", ")})`)
  }
  if (t.dims.length !== 2 || t.dims[0] !== count) throw new Error(`the text embedding has shape [${t.dims}] for ${count} texts`)
  const data = (t.type === "float32" ? t : t.to("float32")).data as Float32Array
  return Matrix.make(count, t.dims[1]!, Float32Array.from(data))
}

/** Opens the tokenizer and the text encoder (released with the scope) and checks the width of what it gives. */
export const open = (
  spec: TextOpen
): Effect.Effect<TextTower.TextEncoder, BackboneError, Scope.Scope | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const T = spec.transformers
    const weightsHash = yield* hashFiles(spec.files.map((f) => path.join(spec.folder, f)))
    const tokenizer: PreTrainedTokenizer = yield* Effect.tryPromise({
      try: () => T.AutoTokenizer.from_pretrained(spec.folder, { local_files_only: true }),
      catch: failure(spec.id, "LoadFailed", path.join(spec.folder, "tokenizer.json"))
    })
    const model: PreTrainedModel = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          T.AutoModel.from_pretrained(spec.folder, {
            local_files_only: true,
            device: "cpu",
            dtype: spec.dtype as never,
            model_file_name: spec.modelFileName,
            session_options: { intraOpNumThreads: spec.intraOpNumThreads, interOpNumThreads: 1, graphOptimizationLevel: "all" }
          }),
        catch: failure(spec.id, "LoadFailed", spec.folder)
      }),
      (m) => Effect.promise(() => m.dispose())
    )
    const embedBatch = (texts: ReadonlyArray<string>) =>
      Effect.tryPromise({
        try: async () => {
          const inputs = tokenizer([...texts], { padding: spec.padding === "max_length" ? "max_length" : true, truncation: true })
          const outputs = (await model(inputs)) as Record<string, Tensor>
          try {
            return textEmbedding(outputs, texts.length)
          } finally {
            for (const t of Object.values(outputs)) t.dispose()
          }
        },
        catch: failure(spec.id, "InferenceFailed", undefined)
      })
    const embedTexts = (texts: ReadonlyArray<string>) =>
      texts.length === 0
        ? Effect.succeed(Matrix.make(0, spec.embeddingSize))
        : Effect.map(
          Effect.forEach(
            Array.from({ length: Math.ceil(texts.length / spec.maxBatchSize) }, (_, b) =>
              texts.slice(b * spec.maxBatchSize, (b + 1) * spec.maxBatchSize)),
            embedBatch
          ),
          Matrix.concatRows
        )
    const probe = yield* embedBatch(["a photo."]).pipe(
      Effect.mapError((e) => new BackboneError({ reason: "LoadFailed", field: spec.id, file: spec.folder, message: e.message, cause: e }))
    )
    if (probe.cols !== spec.embeddingSize) {
      return yield* new BackboneError({
        reason: "LoadFailed",
        field: spec.id,
        file: spec.folder,
        message: `${spec.id}: the text model gives ${probe.cols} values per text; the image embeddings have ${spec.embeddingSize}`
      })
    }
    return { embeddingSize: spec.embeddingSize, logitScale: spec.logitScale, weightsHash, embedTexts } satisfies TextTower.TextEncoder
  })
