/**
 * The ONNX form the built-in heads share (their `toOnnx`): features optionally L2-normalised, standardised with the
 * training mean and scale, L2-normalised again (cosine heads); then dense layers (`z W + b`, ReLU between them);
 * then an activation: softmax, or per-class sigmoids normalised to sum to 1. Only ops whose form is the same in
 * every opset.
 */
import type { Head } from "@loupe/core"
import { OnnxGraph } from "@loupe/core/onnx"

export interface DenseForm {
  readonly l2: boolean
  readonly scaler: { readonly mean: ArrayLike<number>; readonly scale: ArrayLike<number> } | undefined
  readonly renormalize: boolean
  /** Input first; weights `inputs x outputs`, row-major. */
  readonly layers: ReadonlyArray<{ readonly weights: Float32Array; readonly bias: Float32Array }>
  readonly activation: "softmax" | "sigmoid-normalized"
}

const { floatInitializer, node } = OnnxGraph

/** `x / max(||x||_2, 1e-12)` per row. */
export const l2Normalize = (input: string, output: string, dim: number, prefix: string): Head.HeadGraph => ({
  nodes: [
    node("Mul", [input, input], [`${prefix}/squares`], `${prefix}/Square`),
    node("MatMul", [`${prefix}/squares`, `${prefix}/ones`], [`${prefix}/sum_squares`], `${prefix}/SumSquares`),
    node("Sqrt", [`${prefix}/sum_squares`], [`${prefix}/norm`], `${prefix}/Norm`),
    node("Max", [`${prefix}/norm`, `${prefix}/eps`], [`${prefix}/norm_safe`], `${prefix}/NormSafe`),
    node("Div", [input, `${prefix}/norm_safe`], [output], `${prefix}/Normalize`)
  ],
  initializers: [
    floatInitializer(`${prefix}/ones`, [dim, 1], new Float32Array(dim).fill(1)),
    floatInitializer(`${prefix}/eps`, [1], [1e-12])
  ]
})

/** The nodes of a dense-form head, reading `io.embedding` and writing `io.probabilities`. */
export const denseGraph = (form: DenseForm, io: Head.OnnxIo): Head.HeadGraph => {
  const p = "loupe_head"
  const parts: Array<Head.HeadGraph> = []
  let features = io.embedding
  if (form.l2) {
    parts.push(l2Normalize(features, `${p}/normalized`, io.dim, `${p}/l2`))
    features = `${p}/normalized`
  }
  if (form.scaler !== undefined) {
    parts.push({
      nodes: [
        node("Sub", [features, `${p}/mean`], [`${p}/centered`], `${p}/Center`),
        node("Div", [`${p}/centered`, `${p}/scale`], [`${p}/standardized`], `${p}/Standardize`)
      ],
      initializers: [
        floatInitializer(`${p}/mean`, [io.dim], form.scaler.mean),
        floatInitializer(`${p}/scale`, [io.dim], form.scaler.scale)
      ]
    })
    features = `${p}/standardized`
    if (form.renormalize) {
      parts.push(l2Normalize(features, `${p}/unit`, io.dim, `${p}/l2_again`))
      features = `${p}/unit`
    }
  }
  let width = io.dim
  form.layers.forEach((layer, l) => {
    const outputs = layer.bias.length
    const q = `${p}/layer${l}`
    const last = l === form.layers.length - 1
    parts.push({
      nodes: [
        node("MatMul", [features, `${q}/weights`], [`${q}/linear`], `${q}/MatMul`),
        node("Add", [`${q}/linear`, `${q}/bias`], [last ? `${p}/logits` : `${q}/affine`], `${q}/Add`),
        ...(last ? [] : [node("Relu", [`${q}/affine`], [`${q}/relu`], `${q}/Relu`)])
      ],
      initializers: [
        floatInitializer(`${q}/weights`, [width, outputs], layer.weights),
        floatInitializer(`${q}/bias`, [outputs], layer.bias)
      ]
    })
    features = `${q}/relu`
    width = outputs
  })
  const logits = `${p}/logits`
  const k = width
  parts.push(
    form.activation === "softmax"
      ? { nodes: [node("Softmax", [logits], [io.probabilities], `${p}/Softmax`, { axis: { kind: "int", value: 1 } })], initializers: [] }
      : {
        nodes: [
          node("Sigmoid", [logits], [`${p}/sigmoids`], `${p}/Sigmoid`),
          node("MatMul", [`${p}/sigmoids`, `${p}/class_ones`], [`${p}/sigmoid_sum`], `${p}/SigmoidSum`),
          node("Div", [`${p}/sigmoids`, `${p}/sigmoid_sum`], [io.probabilities], `${p}/SigmoidNormalize`)
        ],
        initializers: [floatInitializer(`${p}/class_ones`, [k, 1], new Float32Array(k).fill(1))]
      }
  )
  return { nodes: parts.flatMap((g) => g.nodes), initializers: parts.flatMap((g) => g.initializers) }
}

/** Dense layers as the trainers store them (`outputs x inputs`, row-major, Float64), transposed for `z W + b`. */
export const transposed = (
  layers: ReadonlyArray<{ readonly inputs: number; readonly outputs: number; readonly weights: ArrayLike<number>; readonly bias: ArrayLike<number> }>
) =>
  layers.map(({ bias, inputs, outputs, weights }) => {
    const w = new Float32Array(inputs * outputs)
    for (let o = 0; o < outputs; o++) for (let i = 0; i < inputs; i++) w[i * outputs + o] = weights[o * inputs + i]!
    return { weights: w, bias: Float32Array.from(bias) }
  })

/**
 * `count` weight vectors of `dim` (plus a bias each) as the `dim x classes` matrix of a softmax or sigmoid head.
 * Two classes keep one vector (logit 0 for class 0): it fills class 1's column, class 0's stays zero, and the
 * softmax of `[0, t]` is `[1 - sigmoid(t), sigmoid(t)]`.
 */
export const columns = (
  classes: number,
  dim: number,
  count: number,
  weight: (c: number, j: number) => number,
  bias: (c: number) => number
) => {
  const offset = classes - count
  const weights = new Float32Array(dim * classes)
  const biases = new Float32Array(classes)
  for (let c = 0; c < count; c++) {
    for (let j = 0; j < dim; j++) weights[j * classes + offset + c] = weight(c, j)
    biases[offset + c] = bias(c)
  }
  return { weights, bias: biases }
}
