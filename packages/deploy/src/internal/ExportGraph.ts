/**
 * The nodes an ONNX export adds around the backbone's graph and the head's: pooling the backbone's raw output into
 * the embedding, and the mirror images (flip, stack, average), with fresh tensor names.
 */
import type { OnnxBackbone } from "@loupe/backbones"
import type { Preprocess } from "@loupe/core"
import { OnnxGraph } from "@loupe/core/onnx"

/** `wanted`, or `loupe_<wanted>` when the backbone's graph already uses that name. */
export const freeName = (taken: ReadonlySet<string>, wanted: string) => (taken.has(wanted) ? `loupe_${wanted}` : wanted)

/** Nodes that pool the backbone's raw output (rank `rank`) into [batch, dim], following the plugin's config. */
export const poolingNodes = (
  config: OnnxBackbone.OnnxModelConfig,
  raw: string,
  rank: number
): { readonly nodes: ReadonlyArray<Uint8Array>; readonly output: string } => {
  if (rank <= 2) return { nodes: [], output: raw }
  const pooling = config.pooling ?? "flatten"
  const p = "loupe_pool"
  if (pooling === "flatten") {
    return { nodes: [OnnxGraph.node("Flatten", [raw], [`${p}/flat`], `${p}/Flatten`, { axis: { kind: "int", value: 1 } })], output: `${p}/flat` }
  }
  const nodes: Array<Uint8Array> = []
  let channelsFirst = raw
  if ((config.channels ?? "first") === "last") {
    const perm = [0, rank - 1, ...Array.from({ length: rank - 2 }, (_, i) => i + 1)]
    nodes.push(OnnxGraph.node("Transpose", [raw], [`${p}/channels_first`], `${p}/Transpose`, { perm: { kind: "ints", value: perm } }))
    channelsFirst = `${p}/channels_first`
  }
  const op = pooling === "mean" ? "GlobalAveragePool" : "GlobalMaxPool"
  nodes.push(OnnxGraph.node(op, [channelsFirst], [`${p}/pooled`], `${p}/${op}`))
  nodes.push(OnnxGraph.node("Flatten", [`${p}/pooled`], [`${p}/flat`], `${p}/Flatten`, { axis: { kind: "int", value: 1 } }))
  return { nodes, output: `${p}/flat` }
}

/** The width axis of an image tensor. */
const widthAxis = (spec: Preprocess.PreprocessSpec) => (spec.layout === "NCHW" ? 3 : 2)

/**
 * The nodes around the backbone and head that add mirror images: `image` is flipped and stacked under itself into
 * the backbone's `input`; the head's `2 x batch` probability rows (`views`) are averaged per image into
 * `probabilities`, and the first `batch` rows of `embedding` become `imageEmbedding`. Only ops whose form is the
 * same in every opset (Gather, Concat, Reshape, MatMul).
 */
export const mirrorNodes = (io: {
  readonly spec: Preprocess.PreprocessSpec
  readonly image: string
  readonly input: string
  readonly views: string
  readonly probabilities: string
  readonly classes: number
  readonly embedding: string
  readonly imageEmbedding: string
  readonly dim: number
}): { readonly before: ReadonlyArray<Uint8Array>; readonly after: ReadonlyArray<Uint8Array> } => {
  const p = "loupe_mirror"
  /** `x` ([2 x batch, width]) -> [batch, width]: `weights[0]` times the first half plus `weights[1]` times the second. */
  const combine = (x: string, out: string, width: number, weights: readonly [number, number], name: string) => [
    OnnxGraph.node("Reshape", [x, `${p}/two_rows`], [`${p}/${name}_halves`], `${p}/${name}/Reshape`),
    OnnxGraph.node("MatMul", [`${p}/${name}_weights`, `${p}/${name}_halves`], [`${p}/${name}_combined`], `${p}/${name}/MatMul`),
    OnnxGraph.node("Reshape", [`${p}/${name}_combined`, `${p}/${name}_shape`], [out], `${p}/${name}/Reshape_back`),
    OnnxGraph.floatInitializer(`${p}/${name}_weights`, [1, 2], weights),
    OnnxGraph.int64Initializer(`${p}/${name}_shape`, [2], [-1, width])
  ]
  return {
    before: [
      OnnxGraph.node("Gather", [io.image, `${p}/reversed_columns`], [`${p}/mirrored`], `${p}/Flip`, {
        axis: { kind: "int", value: widthAxis(io.spec) }
      }),
      OnnxGraph.node("Concat", [io.image, `${p}/mirrored`], [io.input], `${p}/Stack`, { axis: { kind: "int", value: 0 } })
    ],
    after: [
      OnnxGraph.int64Initializer(`${p}/reversed_columns`, [io.spec.size], Array.from({ length: io.spec.size }, (_, x) => io.spec.size - 1 - x)),
      OnnxGraph.int64Initializer(`${p}/two_rows`, [2], [2, -1]),
      ...combine(io.views, io.probabilities, io.classes, [0.5, 0.5], "mean"),
      ...combine(io.embedding, io.imageEmbedding, io.dim, [1, 0], "embedding")
    ]
  }
}
