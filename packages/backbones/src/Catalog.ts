/**
 * The catalog of known backbones, as data. Each entry becomes a plugin through its runtime's factory.
 *
 * @since 0.1.0
 */
import { Preprocess } from "@loupe/core"
import type { Backbone } from "@loupe/core"
import * as OnnxBackbone from "./OnnxBackbone.js"
import * as TfjsBackbone from "./TfjsBackbone.js"

/**
 * `onnx:mobilenetv2-int8`, the default backbone: MobileNetV2 1.0 (ImageNet), int8-quantised ONNX, 1280-d
 * globally average-pooled features, 224x224 ImageNet-normalised NCHW input. Weights from the models directory.
 *
 * @since 0.1.0
 * @category catalog
 */
export const mobilenetV2Int8: OnnxBackbone.OnnxModelConfig = {
  id: "onnx:mobilenetv2-int8",
  description: "MobileNetV2 1.0 ImageNet, int8-quantised ONNX (model zoo); 1280-d global-average-pooled features",
  weights: { _tag: "ModelsDir", path: "mobilenetv2-12-int8-onnx/mobilenetv2-12-int8-embedding.onnx" },
  inputName: "input",
  outputName: "embedding",
  embeddingSize: 1280,
  preprocess: Preprocess.imagenet(),
  tags: ["onnx", "offline", "imagenet", "fast", "default"],
  license: "Apache-2.0"
}

/**
 * `tfjs:mobilenetv2-0.35`: Teachable Machine's frozen MobileNetV2 alpha 0.35 trunk (ImageNet), a TensorFlow.js
 * layers model, 1280-d globally average-pooled features, NHWC input scaled to [-1, 1]. Weights from the models
 * directory.
 *
 * @since 0.1.0
 * @category catalog
 */
export const tmMobilenetV2035: TfjsBackbone.TfjsModelConfig = {
  id: "tfjs:mobilenetv2-0.35",
  description: "MobileNetV2 alpha 0.35 ImageNet (Teachable Machine's frozen trunk), TensorFlow.js layers model; " +
    "1280-d global-average-pooled features",
  weights: { _tag: "ModelsDir", path: "tm-mobilenetv2-0.35-tfjs" },
  embeddingSize: 1280,
  // Resize 256 / centre-crop 224 measured better than a plain 224 crop (test 38 vs 37 of 40, CV 97.0 vs 95.5 %).
  preprocess: Preprocess.imagenet({ layout: "NHWC", scale: 127, mean: [1, 1, 1], std: [1, 1, 1] }),
  tags: ["tfjs", "offline", "imagenet"],
  license: "Apache-2.0"
}

/**
 * `tfjs:darknet-tiny`: ml5's Tiny Darknet (ImageNet), a TensorFlow.js layers model, 128-d global average of the
 * `leaky_re_lu_15` feature map, NHWC input scaled to [0, 1]. Weights from the models directory.
 *
 * @since 0.1.0
 * @category catalog
 */
export const darknetTiny: TfjsBackbone.TfjsModelConfig = {
  id: "tfjs:darknet-tiny",
  description: "Tiny Darknet ImageNet (ml5), TensorFlow.js layers model; 128-d global average of leaky_re_lu_15",
  weights: { _tag: "ModelsDir", path: "darknet-tiny-tfjs" },
  output: "leaky_re_lu_15",
  pooling: "global-average",
  embeddingSize: 128,
  // A plain 224 centre crop measured the better 5-fold CV (96.5 % vs 94.0 % with resize 256 / crop 224).
  preprocess: Preprocess.imagenet({ layout: "NHWC", resizeShorter: 224, scale: 255, mean: [0, 0, 0], std: [1, 1, 1] }),
  tags: ["tfjs", "offline", "imagenet"],
  license: "MIT"
}

/**
 * Every built-in backbone plugin, in preference order (the default first), to register with the `Registry`.
 *
 * @since 0.1.0
 * @category catalog
 */
export const builtins: ReadonlyArray<Backbone.BackbonePlugin> = [
  OnnxBackbone.plugin(mobilenetV2Int8),
  TfjsBackbone.plugin(tmMobilenetV2035),
  TfjsBackbone.plugin(darknetTiny)
]
