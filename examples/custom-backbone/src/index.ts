/**
 * A backbone plugin written by a user, in one file.
 *
 * The model is MobileNetV2's plain ImageNet classifier (`mobilenetv2-12-int8.onnx`, the file without the extra
 * `embedding` output). This plugin takes its 1,000 class logits as the features, squashes each photo to 224 x 224
 * instead of cropping it, and carries its own tags: `custom` to find it, `offline` so the AutoML presets that select
 * backbones by that tag include it with no further change.
 *
 * Register it next to the built-ins:
 *
 * ```ts
 * Registry.Registry.layer({ backbones: [...Catalog.builtins, plugin] })
 * ```
 *
 * or hand the built module to the CLI:
 * `loupe train --plugin ./examples/custom-backbone/dist/index.js --backbone onnx:mobilenetv2-logits ...`.
 *
 * @since 0.1.0
 */
import { Preprocess } from "@loupe/core"
import type { Backbone, Registry } from "@loupe/core"
import { OnnxBackbone } from "@loupe/backbones"

export const plugin: Backbone.BackbonePlugin = OnnxBackbone.plugin({
  // `runtime:name`; the runtime is the one that runs it (here ONNX), the name is yours.
  id: "onnx:mobilenetv2-logits",
  description: "MobileNetV2 1.0 int8 ImageNet classifier; its 1000 class logits as features, photos squashed to 224",
  // Relative to the models directory (--models-dir / LOUPE_MODELS_DIR). A `Path` or a `Url` + sha256 works too.
  weights: { _tag: "ModelsDir", path: "mobilenetv2-12-int8-onnx/mobilenetv2-12-int8.onnx" },
  // The classifier's own graph output. For an inner layer, give `node` instead (a node or tensor name), with
  // `pooling: "mean"` to average a feature map over its height and width.
  outputName: "output",
  embeddingSize: 1000,
  // ImageNet normalisation, but the whole photo squashed to 224 x 224 rather than resized and centre-cropped.
  preprocess: Preprocess.imagenet({ resize: "squash" }),
  tags: ["custom", "onnx", "imagenet", "offline"],
  license: "Apache-2.0"
})

/** What `loupe train --plugin <module>` reads: every plugin this module declares. */
export const plugins: Registry.Plugins = { backbones: [plugin] }

export default plugin
