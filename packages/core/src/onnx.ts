/**
 * @loupe/core/onnx: the one ONNX writer. `Protobuf` is the wire format; `OnnxGraph` writes nodes, initializers,
 * inputs, outputs, metadata and whole models; `OnnxModel` reads a model's graph and edits it. Used by the backbone
 * plugins (translated and extended models), the heads' `toOnnx` and `@loupe/deploy`'s ONNX export.
 *
 * @since 0.2.0
 */
export * as OnnxGraph from "./onnx/OnnxGraph.js"
export * as OnnxModel from "./onnx/OnnxModel.js"
export * as Protobuf from "./onnx/Protobuf.js"
