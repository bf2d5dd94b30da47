/**
 * The catalog of known backbones, as data. Each entry becomes a plugin through its runtime's factory.
 *
 * @since 0.1.0
 */
import { Preprocess } from "@loupe/core"
import type { Backbone } from "@loupe/core"
import * as path from "node:path"
import { parseHubId } from "./internal/hub.js"
import * as OnnxBackbone from "./OnnxBackbone.js"
import * as TfjsBackbone from "./TfjsBackbone.js"
import * as TransformersBackbone from "./TransformersBackbone.js"

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
 * A hub model in the catalog: a transformers.js model described at load (`TransformersBackbone.lazyPlugin`, so its
 * preprocessing is read from its own `preprocessor_config.json`), with its published facts and where they come from.
 *
 * @since 0.2.0
 * @category catalog
 */
export interface HubModel extends TransformersBackbone.LazyModelConfig {
  readonly embeddingSize: number
  /** The model card and the paper the facts come from. */
  readonly source: string
  /**
   * Expected milliseconds to embed one image on 2 CPU cores (fp32, onnxruntime). Estimated, not measured: the
   * model's multiply-adds per image at about 40 GMAC/s.
   */
  readonly estimatedMsPerImage: number
}

/**
 * `hf:Xenova/dinov2-small`: DINOv2 ViT-S/14 (Meta, self-supervised), 384-d (the `pooler_output`, the normalised
 * CLS token), 224 x 224 input. The DINOv2 paper's Table 8 (logistic regression on frozen features) reports 97.7 % on
 * CIFAR-10, 95.1 % on Oxford Pets and 99.6 % on Flowers-102 for ViT-S/14.
 *
 * @since 0.2.0
 * @category catalog
 */
export const dinov2Small: HubModel = {
  id: "hf:Xenova/dinov2-small",
  model: "Xenova/dinov2-small",
  description: "DINOv2 ViT-S/14 (self-supervised, LVD-142M), transformers.js ONNX; 384-d normalised CLS token",
  embeddingSize: 384,
  inputSize: 224,
  pooling: "pooler_output",
  tags: ["transformers", "hub", "strong"],
  license: "Apache-2.0",
  source: "https://huggingface.co/Xenova/dinov2-small (facebook/dinov2-small); Oquab et al. 2023, arXiv:2304.07193",
  // ViT-S/14 on 257 tokens: about 5.5 GMAC per image.
  estimatedMsPerImage: 140
}

/**
 * `hf:Xenova/dinov2-base`: DINOv2 ViT-B/14, 768-d normalised CLS token, 224 x 224 input.
 *
 * @since 0.2.0
 * @category catalog
 */
export const dinov2Base: HubModel = {
  id: "hf:Xenova/dinov2-base",
  model: "Xenova/dinov2-base",
  description: "DINOv2 ViT-B/14 (self-supervised, LVD-142M), transformers.js ONNX; 768-d normalised CLS token",
  embeddingSize: 768,
  inputSize: 224,
  pooling: "pooler_output",
  tags: ["transformers", "hub", "strong"],
  license: "Apache-2.0",
  source: "https://huggingface.co/Xenova/dinov2-base (facebook/dinov2-base); Oquab et al. 2023, arXiv:2304.07193",
  // ViT-B/14 on 257 tokens: about 22 GMAC per image.
  estimatedMsPerImage: 550
}

/**
 * `hf:Xenova/clip-vit-base-patch32`: OpenAI CLIP ViT-B/32, 512-d image embeddings (`image_embeds`, the projected
 * image features), 224 x 224 input; it has a text tower (tag `text`, the `textTower` capability: zero-shot).
 *
 * @since 0.2.0
 * @category catalog
 */
export const clipVitBasePatch32: HubModel = {
  id: "hf:Xenova/clip-vit-base-patch32",
  model: "Xenova/clip-vit-base-patch32",
  description: "OpenAI CLIP ViT-B/32 (image-text contrastive), transformers.js ONNX; 512-d image embeddings",
  embeddingSize: 512,
  inputSize: 224,
  pooling: "image_embeds",
  text: {},
  tags: ["transformers", "hub", "strong", "text", "clip"],
  license: "MIT",
  source: "https://huggingface.co/Xenova/clip-vit-base-patch32 (openai/clip-vit-base-patch32); Radford et al. 2021, arXiv:2103.00020",
  // ViT-B/32 on 50 tokens: about 4.4 GMAC per image.
  estimatedMsPerImage: 110
}

/**
 * `hf:Xenova/siglip-base-patch16-224`: Google SigLIP ViT-B/16, 768-d image embeddings (the attention-pooled
 * features, `pooling: "auto"`), 224 x 224 input; it has a text tower (tag `text`).
 *
 * @since 0.2.0
 * @category catalog
 */
export const siglipBasePatch16: HubModel = {
  id: "hf:Xenova/siglip-base-patch16-224",
  model: "Xenova/siglip-base-patch16-224",
  description: "Google SigLIP ViT-B/16 (image-text, sigmoid loss, WebLI), transformers.js ONNX; 768-d image embeddings",
  embeddingSize: 768,
  inputSize: 224,
  // SigLIP was trained on prompts padded to the tokenizer's full length.
  text: { padding: "max_length" },
  tags: ["transformers", "hub", "strong", "text", "siglip"],
  license: "Apache-2.0",
  source: "https://huggingface.co/Xenova/siglip-base-patch16-224 (google/siglip-base-patch16-224); Zhai et al. 2023, arXiv:2303.15343",
  // ViT-B/16 on 196 tokens: about 17.6 GMAC per image.
  estimatedMsPerImage: 440
}

/**
 * The hub models of the catalog, small first.
 *
 * @since 0.2.0
 * @category catalog
 */
export const hubModels: ReadonlyArray<HubModel> = [dinov2Small, clipVitBasePatch32, dinov2Base, siglipBasePatch16]

/**
 * Every built-in backbone plugin, in preference order (the default first), to register with the `Registry`: the
 * offline models, then the hub models (`hubModels`).
 *
 * @since 0.1.0
 * @category catalog
 */
export const builtins: ReadonlyArray<Backbone.BackbonePlugin> = [
  OnnxBackbone.plugin(mobilenetV2Int8),
  TfjsBackbone.plugin(tmMobilenetV2035),
  TfjsBackbone.plugin(darknetTiny),
  ...hubModels.map(TransformersBackbone.lazyPlugin)
]

const isFolderPath = (id: string) => path.isAbsolute(id) || id.startsWith("./") || id.startsWith("../")

/**
 * The plugin of a backbone id outside the catalog, for `Registry`'s `resolveBackbone`: `hf:org/name` or
 * `hf:org/name@revision` (any hub repository in the transformers.js layout; a catalog model at another revision keeps
 * its facts), or a model folder path (absolute, `./` or `../`). Anything else is undefined.
 *
 * @since 0.2.0
 * @category catalog
 */
export const resolveBackbone = (id: string): Backbone.BackbonePlugin | undefined => {
  const hub = parseHubId(id)
  if (hub !== undefined) {
    const known = hubModels.find((m) => m.model === hub.repo)
    return TransformersBackbone.lazyPlugin({
      ...(known ?? { model: hub.repo, tags: ["transformers", "hub"] }),
      id,
      ...(hub.revision === undefined ? {} : { revision: hub.revision })
    })
  }
  if (isFolderPath(id)) {
    return TransformersBackbone.lazyPlugin({ id, model: id, tags: ["transformers", "folder"] })
  }
  return undefined
}
