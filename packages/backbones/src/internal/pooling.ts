/**
 * Turning a model's batch output (any rank, batch first) into one vector per image.
 */

/**
 * `flatten`: every non-batch value, in order. `mean` / `max`: reduce over the spatial or token axes, one value per
 * channel (global average / max pooling of a feature map `[N, C, H, W]`, or of tokens `[N, T, D]` with channels
 * last).
 *
 * @since 0.1.0
 * @category models
 */
export type Pooling = "flatten" | "mean" | "max"

/**
 * Where the channel axis is: right after the batch axis (`first`, NCHW) or last (`last`, NHWC or tokens).
 *
 * @since 0.1.0
 * @category models
 */
export type ChannelAxis = "first" | "last"

/** The length of one image's vector after pooling an output of shape `dims`. */
export const pooledSize = (dims: ReadonlyArray<number>, pooling: Pooling, channels: ChannelAxis): number => {
  const perImage = dims.slice(1).reduce((a, b) => a * b, 1)
  if (pooling === "flatten" || dims.length <= 2) return perImage
  return channels === "first" ? dims[1]! : dims[dims.length - 1]!
}

/**
 * Pool `data` (row-major, shape `dims`, `dims[0]` images) into `dims[0] x pooledSize` values. `flatten` and
 * rank-2 outputs are returned as they are, without a copy.
 */
export const pool = (
  data: Float32Array,
  dims: ReadonlyArray<number>,
  pooling: Pooling,
  channels: ChannelAxis
): Float32Array => {
  if (pooling === "flatten" || dims.length <= 2) return data
  const count = dims[0]!
  const perImage = data.length / count
  const c = pooledSize(dims, pooling, channels)
  const spatial = perImage / c
  const out = new Float32Array(count * c)
  const mean = pooling === "mean"
  for (let n = 0; n < count; n++) {
    const base = n * perImage
    for (let k = 0; k < c; k++) {
      // Channels first: channel k is a contiguous run of `spatial` values. Last: every c-th value from k.
      const start = channels === "first" ? base + k * spatial : base + k
      const step = channels === "first" ? 1 : c
      let acc = mean ? 0 : -Infinity
      for (let s = 0, i = start; s < spatial; s++, i += step) {
        const v = data[i]!
        acc = mean ? acc + v : v > acc ? v : acc
      }
      out[n * c + k] = mean ? acc / spatial : acc
    }
  }
  return out
}
