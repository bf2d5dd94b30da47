/**
 * @loupe/backbones: backbone plugins (ONNX, TensorFlow.js, transformers.js) and the catalog of known backbones.
 *
 * @since 0.1.0
 */
export * as BackboneError from "./BackboneError.js"
export * as Catalog from "./Catalog.js"
export * as Conformance from "./Conformance.js"
export * as OnnxBackbone from "./OnnxBackbone.js"
export * as TfjsBackbone from "./TfjsBackbone.js"
export * as TransformersBackbone from "./TransformersBackbone.js"
export * as Download from "./Download.js"
