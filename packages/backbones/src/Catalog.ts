/**
 * The catalog of known backbones, as data. Each entry becomes a plugin through its runtime's factory.
 *
 * @since 0.1.0
 */
import { Preprocess } from "@loupe/core"
import type { Backbone } from "@loupe/core"
import * as OnnxBackbone from "./OnnxBackbone.js"

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

/** Every built-in backbone plugin, in preference order. */
export const builtins: ReadonlyArray<Backbone.BackbonePlugin> = [OnnxBackbone.plugin(mobilenetV2Int8)]
