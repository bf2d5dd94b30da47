/**
 * Convolution backprop kernels for tfjs backends that lack them. The wasm backend (what Node gets without tfjs-node)
 * has `Conv2D`, `Conv2DBackpropInput` and `DepthwiseConv2dNative` but not `Conv2DBackpropFilter`,
 * `DepthwiseConv2dNativeBackpropFilter` or `DepthwiseConv2dNativeBackpropInput`, so gradients of convolutions fail
 * there. `ensure` registers plain-TypeScript versions of whichever of these the active backend is missing (never
 * replacing one it has). They read their inputs with `readSync` and write their output with `write`, the generic
 * backend interface, and follow TensorFlow's geometry (`backend_util.computeConv2DInfo`: strides, dilations,
 * `same`/`valid`/explicit padding, NHWC). tfjs keeps one kernel registry per process, so the registration is
 * process-wide; it only fills gaps.
 *
 * Cost: one multiply-add per (output position, kernel tap, input channel, output channel), accumulated in Float64;
 * 1 x 1 convolutions (most of a MobileNet's weights) use the backend's matrix product instead.
 */
import type * as Tf from "@tensorflow/tfjs"

type TfModule = typeof import("@tensorflow/tfjs")
type Geometry = ReturnType<TfModule["backend_util"]["computeConv2DInfo"]>

interface Backend {
  readonly readSync: (dataId: object) => unknown
  readonly write: (values: Float32Array, shape: Array<number>, dtype: "float32") => object
  readonly disposeData: (dataId: object) => unknown
}

const read = (backend: Backend, t: Tf.TensorInfo): Float32Array => {
  const values = backend.readSync(t.dataId)
  return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>)
}

const output = (backend: Backend, values: Float64Array, shape: Array<number>): Tf.TensorInfo => ({
  dataId: backend.write(Float32Array.from(values), shape, "float32"),
  shape,
  dtype: "float32"
})

/**
 * Calls `tap(n, outIndex, inIndex, tapIndex)` for every (output position, kernel tap) whose input position lies
 * inside the image, with flat NHWC position indices (per channel block) and the tap index `i * kw + j`.
 */
const forEachTap = (g: Geometry, tap: (outPos: number, inPos: number, tapIndex: number) => void): void => {
  const { batchSize, inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = g
  const { top, left } = g.padInfo
  for (let n = 0; n < batchSize; n++) {
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        const outPos = (n * outHeight + oh) * outWidth + ow
        for (let i = 0; i < g.filterHeight; i++) {
          const ih = oh * strideHeight + i * dilationHeight - top
          if (ih < 0 || ih >= inHeight) continue
          for (let j = 0; j < g.filterWidth; j++) {
            const iw = ow * strideWidth + j * dilationWidth - left
            if (iw < 0 || iw >= inWidth) continue
            tap(outPos, (n * inHeight + ih) * inWidth + iw, i * g.filterWidth + j)
          }
        }
      }
    }
  }
}

const attrsOf = (attrs: unknown) => attrs as {
  readonly strides: [number, number] | number
  readonly pad: "valid" | "same" | number | Tf.backend_util.ExplicitPadding
  readonly dilations?: [number, number] | number
  readonly dimRoundingMode?: "floor" | "round" | "ceil"
  readonly filterShape?: [number, number, number, number]
  readonly inputShape?: [number, number, number, number]
}

/**
 * A 1 x 1 convolution with stride 1 and no padding is a matrix product: its filter gradient is `x^T dy` over all
 * positions. Run it with the backend's own `Reshape` and `BatchMatMul` kernels (XNNPACK on wasm, ~30x faster than
 * the loops), the way backends compose kernels internally; undefined when the backend lacks them.
 */
const pointwiseFilterGradient = (
  tf: TfModule,
  backend: Backend,
  x: Tf.TensorInfo,
  dy: Tf.TensorInfo,
  filterShape: Array<number>
): Tf.TensorInfo | undefined => {
  const backendName = tf.getBackend()
  const reshape = tf.getKernel("Reshape", backendName)
  const matMul = tf.getKernel("BatchMatMul", backendName)
  if (reshape === undefined || matMul === undefined) return undefined
  const positions = x.shape.slice(0, 3).reduce((a, b) => a * b, 1)
  const run = (kernel: Tf.KernelConfig, inputs: Tf.NamedTensorInfoMap, attrs: Tf.NamedAttrMap) =>
    kernel.kernelFunc({ inputs, backend, attrs }) as Tf.TensorInfo
  const a = run(reshape, { x }, { shape: [1, positions, x.shape[3]!] })
  const b = run(reshape, { x: dy }, { shape: [1, positions, dy.shape[3]!] })
  const product = run(matMul, { a, b }, { transposeA: true, transposeB: false })
  const out = run(reshape, { x: product }, { shape: filterShape })
  for (const t of [a, b, product]) backend.disposeData(t.dataId)
  return out
}

const kernels = (tf: TfModule): ReadonlyArray<{ readonly name: string; readonly kernelFunc: Tf.KernelFunc }> => {
  const geometry = (xShape: Array<number>, filterShape: Array<number>, attrs: ReturnType<typeof attrsOf>, depthwise: boolean) =>
    tf.backend_util.computeConv2DInfo(
      xShape as [number, number, number, number],
      filterShape as [number, number, number, number],
      attrs.strides,
      attrs.dilations ?? 1,
      attrs.pad,
      attrs.dimRoundingMode,
      depthwise
    )
  return [
    {
      name: "Conv2DBackpropFilter",
      kernelFunc: ({ inputs, backend, attrs }) => {
        const a = attrsOf(attrs)
        const g = geometry(inputs["x"]!.shape, a.filterShape!, a, false)
        const { top, left, bottom, right } = g.padInfo
        const pointwise = g.filterHeight === 1 && g.filterWidth === 1 && g.strideHeight === 1 && g.strideWidth === 1 &&
          top === 0 && left === 0 && bottom === 0 && right === 0
        const fast = pointwise ? pointwiseFilterGradient(tf, backend as Backend, inputs["x"]!, inputs["dy"]!, [...a.filterShape!]) : undefined
        if (fast !== undefined) return fast
        const x = read(backend as Backend, inputs["x"]!)
        const dy = read(backend as Backend, inputs["dy"]!)
        const { inChannels: cin, outChannels: cout } = g
        const dw = new Float64Array(g.filterHeight * g.filterWidth * cin * cout)
        forEachTap(g, (outPos, inPos, tapIndex) => {
          const xo = inPos * cin
          const yo = outPos * cout
          const base = tapIndex * cin * cout
          for (let ci = 0; ci < cin; ci++) {
            const v = x[xo + ci]!
            if (v === 0) continue
            const row = base + ci * cout
            for (let co = 0; co < cout; co++) dw[row + co] += v * dy[yo + co]!
          }
        })
        return output(backend as Backend, dw, [...a.filterShape!])
      }
    },
    {
      name: "DepthwiseConv2dNativeBackpropFilter",
      kernelFunc: ({ inputs, backend, attrs }) => {
        const a = attrsOf(attrs)
        const g = geometry(inputs["x"]!.shape, a.filterShape!, a, true)
        const x = read(backend as Backend, inputs["x"]!)
        const dy = read(backend as Backend, inputs["dy"]!)
        const c = g.inChannels
        const m = g.outChannels / c
        const dw = new Float64Array(g.filterHeight * g.filterWidth * c * m)
        forEachTap(g, (outPos, inPos, tapIndex) => {
          for (let ci = 0; ci < c; ci++) {
            const v = x[inPos * c + ci]!
            for (let k = 0; k < m; k++) dw[(tapIndex * c + ci) * m + k] += v * dy[outPos * c * m + ci * m + k]!
          }
        })
        return output(backend as Backend, dw, [...a.filterShape!])
      }
    },
    {
      name: "DepthwiseConv2dNativeBackpropInput",
      kernelFunc: ({ inputs, backend, attrs }) => {
        const a = attrsOf(attrs)
        const filter = inputs["filter"]!
        const g = geometry(a.inputShape!, filter.shape, a, true)
        const dy = read(backend as Backend, inputs["dy"]!)
        const f = read(backend as Backend, filter)
        const c = g.inChannels
        const m = g.outChannels / c
        const dx = new Float64Array(a.inputShape!.reduce((p, d) => p * d, 1))
        forEachTap(g, (outPos, inPos, tapIndex) => {
          for (let ci = 0; ci < c; ci++) {
            let sum = 0
            for (let k = 0; k < m; k++) sum += f[(tapIndex * c + ci) * m + k]! * dy[outPos * c * m + ci * m + k]!
            dx[inPos * c + ci] += sum
          }
        })
        return output(backend as Backend, dx, [...a.inputShape!])
      }
    }
  ]
}

/** Register the kernels above that the active backend lacks (see the module comment). Idempotent. */
export const ensure = (tf: TfModule): void => {
  const backendName = tf.getBackend()
  for (const { name, kernelFunc } of kernels(tf)) {
    if (tf.getKernel(name, backendName) === undefined) tf.registerKernel({ kernelName: name, backendName, kernelFunc })
  }
}
