/**
 * Zero-shot classification from label names, for backbones with a text tower (core's `TextTower`: CLIP, SigLIP).
 *
 * `classifier` builds the labels' zero-shot classifier (CLIP's prompt ensembling, Radford et al. 2021, section 3.1.4):
 * each label name (underscores read as spaces) is put into every prompt template of `templates`, the prompts are
 * embedded by the text tower, each embedding is L2-normalised, and a label's are averaged and normalised again. An
 * image's probabilities are then `softmax(logitScale * cos(image embedding, label embedding))` over the labels, with
 * the text tower's logit scale.
 *
 * The `zero-shot` head is that classifier as a head: it learns nothing from the training rows, so cross-validation
 * scores the zero-shot answer on the same folds as every trained head, and the search keeps it when labelled samples
 * do not beat it. It needs the training set's `zeroShot` prior (the search passes it for backbones with a text
 * tower) and keeps it in its state, so a saved model predicts without the text tower. It exports to ONNX.
 *
 * @since 0.2.0
 */
import type { Head, Matrix, TextTower } from "@loupe/core"
import { Matrix as M } from "@loupe/core"
import { Effect, Schema } from "effect"
import type { CoreError } from "@loupe/core"
import * as HeadKit from "./internal/HeadKit.js"
import * as OnnxHead from "./internal/OnnxHead.js"
import { softmaxInPlace } from "./internal/Linalg.js"
import * as Prior from "./internal/ZeroShotPrior.js"
import * as Scaler from "./internal/Scaler.js"
import type { TrainerError } from "./TrainerError.js"

/**
 * The prompt templates, `{}` standing for the label name: eight of the 80 ImageNet templates of the CLIP paper's
 * prompt engineering, the ones that say nothing about style (no sketches, tattoos or video games), so they suit any
 * photo collection.
 *
 * @since 0.2.0
 * @category prompts
 */
export const templates: ReadonlyArray<string> = [
  "a photo of a {}.",
  "a photo of the {}.",
  "a close-up photo of a {}.",
  "a bright photo of a {}.",
  "a cropped photo of the {}.",
  "a good photo of the {}.",
  "a photo of the small {}.",
  "a photo of the large {}."
]

/**
 * The prompt for one label and template: `{}` replaced by the label name, underscores read as spaces
 * (`golden_retriever` gives "a photo of a golden retriever.").
 *
 * @since 0.2.0
 * @category prompts
 */
export const prompt = (template: string, label: string): string => template.replace("{}", label.replace(/_+/g, " ").trim())

/**
 * The zero-shot classifier of `labels` (in class order) with `encoder`, from every label in every template (see
 * the module docs). Fails with the text tower's error when it cannot embed.
 *
 * @since 0.2.0
 * @category constructors
 */
export const classifier = (
  encoder: TextTower.TextEncoder,
  labels: ReadonlyArray<string>,
  prompts: ReadonlyArray<string> = templates
): Effect.Effect<TextTower.ZeroShotPrior, CoreError.PluginFailure> =>
  Effect.map(encoder.embedTexts(labels.flatMap((label) => prompts.map((t) => prompt(t, label)))), (embedded) => {
    const dim = embedded.cols
    const unit = Scaler.normalizeRows(embedded)
    const out = new Float64Array(labels.length * dim)
    for (let i = 0; i < embedded.rows; i++) {
      const c = Math.floor(i / prompts.length)
      for (let j = 0; j < dim; j++) out[c * dim + j] += unit[i * dim + j]!
    }
    Scaler.normalizeInto(out, labels.length, dim, out)
    return { classifier: M.make(labels.length, dim, Float32Array.from(out)), logitScale: encoder.logitScale }
  })

/**
 * The head kind, `"zero-shot"`.
 *
 * @since 0.2.0
 * @category head
 */
export const kind = "zero-shot"

/**
 * The zero-shot head takes no params.
 *
 * @since 0.2.0
 * @category schemas
 */
export const Params = Schema.Struct({})
/**
 * The decoded (empty) zero-shot params.
 *
 * @since 0.2.0
 * @category schemas
 */
export type Params = typeof Params.Type

/**
 * The fitted zero-shot state: the classes, their unit text embeddings (`numClasses x dim`, base64 Float64) and the
 * logit scale.
 *
 * @since 0.2.0
 * @category schemas
 */
export const State = Schema.Struct(Prior.fields)
/**
 * The decoded fitted zero-shot state.
 *
 * @since 0.2.0
 * @category schemas
 */
export type State = typeof State.Type

/**
 * A fitted zero-shot head: the core `FittedHead` contract plus its typed params and state.
 *
 * @since 0.2.0
 * @category models
 */
export type Fitted = HeadKit.Fitted<Params, State>

const predict = (state: State, _params: Params, x: Matrix.Matrix): Matrix.Matrix => {
  const k = state.numClasses
  const logits = Prior.logits(state, Scaler.normalizeRows(x), x.rows, x.cols)
  for (let i = 0; i < x.rows; i++) softmaxInPlace(logits, i * k, k)
  return { rows: x.rows, cols: k, data: Float32Array.from(logits) }
}

/**
 * The zero-shot head plugin, for `Registry.layer({ heads })`, the search and bundles. `fit` fails with
 * `TrainerError` `InvalidData` (field `data.zeroShot`) when the training set has no zero-shot prior or one that does
 * not fit its classes and width; `load` fails with `InvalidState`; `toOnnx` writes `softmax(scale * cos)`.
 *
 * @since 0.2.0
 * @category head
 */
export const plugin: HeadKit.Plugin<Params, State> = HeadKit.make({
  kind,
  paramsSchema: Params,
  stateSchema: State,
  train: (data: Head.TrainingSet) => HeadKit.attempt(kind, () => Prior.of(kind, data)),
  predict,
  shape: (state) => Prior.shape(state),
  toOnnx: (state, _params, io) => {
    const k = state.numClasses
    const layer = OnnxHead.columns(k, io.dim, k, (c, j) => state.logitScale * state.classifier[c * io.dim + j]!, () => 0)
    return OnnxHead.denseGraph({ l2: true, scaler: undefined, renormalize: false, layers: [layer], activation: "softmax" }, io)
  }
})

/**
 * Fits a zero-shot head: `fit(data)`, `data.zeroShot` holding the labels' classifier. Fails as `plugin.fit` does.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fit = HeadKit.fitWithDefaults(plugin, Params)

/**
 * Loads a zero-shot head from its `SerializedHead`. Fails with `TrainerError` `InvalidState`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const load = plugin.load

/**
 * A zero-shot head for `labels` straight from a text encoder, with no training data: what answers before the first
 * labelled sample. Fails with the text tower's error, or `TrainerError` `InvalidState` for fewer than two labels.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromEncoder = (
  encoder: TextTower.TextEncoder,
  labels: ReadonlyArray<string>
): Effect.Effect<Fitted, CoreError.PluginFailure | TrainerError> =>
  Effect.flatMap(classifier(encoder, labels), (prior) =>
    plugin.load({
      kind,
      params: {},
      state: Schema.encodeSync(State)({
        numClasses: labels.length,
        classifier: Float64Array.from(prior.classifier.data),
        logitScale: prior.logitScale
      })
    }))
