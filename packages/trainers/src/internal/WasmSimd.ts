/**
 * Float32 SIMD kernels for dense layers, in WebAssembly assembled at load time (`WasmEncoder`): the gathered affine
 * products of a forward pass (with ReLU and dropout's scale for hidden layers), the weighted row sums of a backward
 * pass, the delta's way back through ReLU and dropout, and the optimisers' updates (SGD with momentum, Adam, AdamW).
 * They run in fixed-width 128-bit SIMD (`f32x4`), which Node has had since 16.4; relaxed SIMD is not used, so every
 * result is exact IEEE float32 arithmetic in a fixed order, the same on every run. Measured here: 6-9 GMAC/s for the
 * products (1,280-wide rows), against 1.2-1.5 for Float64 TypeScript loops; blocks of 8 rows, unrolling and a second accumulator per row measured slower (V8 runs
 * out of registers).
 *
 * Memory is planned first and allocated once: a `Layout` hands out 16-byte aligned blocks of 4-byte values, and
 * `instantiate` gives a fresh instance with a memory just large enough, plus typed views of the blocks. An instance
 * is meant to live for one fit and be dropped with it; nothing is shared between instances.
 *
 * Kernel contract: addresses are byte addresses into the instance's memory, and row widths are multiples of 4 (pad
 * rows with zeros: a zero column adds nothing to a product).
 */
import {
  assemble,
  type Builder,
  type Code,
  f32,
  F32,
  F32x4,
  func,
  get,
  i32,
  I32,
  set,
  v128,
  V128,
  whileLoop
} from "./WasmEncoder.js"

/** The subset of the WebAssembly JS API used here (the project's TypeScript libs do not declare it). */
declare const WebAssembly: {
  readonly validate: (bytes: Uint8Array) => boolean
  readonly Module: new(bytes: Uint8Array) => object
  readonly Instance: new(module: object, imports: object) => { readonly exports: object }
  readonly Memory: new(descriptor: { readonly initial: number }) => { readonly buffer: ArrayBuffer }
}

const range = (n: number) => Array.from({ length: n }, (_, k) => k)
const plus = (a: Code, b: number): Code => I32.add(a, I32.const(b))
/** `address + 4 * index`. */
const at = (address: Code, index: Code): Code => I32.add(address, I32.shl(index, I32.const(2)))
const horizontalSum = (v: Code): Code =>
  F32.add(F32.add(F32.add(F32x4.extractLane(v, 0), F32x4.extractLane(v, 1)), F32x4.extractLane(v, 2)), F32x4.extractLane(v, 3))

/**
 * `block(size, t)` over a list of `count` 4-byte entries, four at a time and then one at a time; `t` is the byte offset
 * of the block's first entry.
 */
const inBlocks = (f: Builder, count: number, block: (size: number, t: number) => ReadonlyArray<Code>): Code => {
  const t = f.local(i32)
  const end = f.local(i32)
  return [
    ...set(end, I32.shl(get(count), I32.const(2))),
    ...set(t, I32.const(0)),
    ...[4, 1].flatMap((size) => whileLoop(I32.le(plus(get(t), 4 * size), get(end)), ...block(size, t), set(t, plus(get(t), 4 * size))))
  ]
}

/**
 * `affineAt(w, bias, width, units, count, x, out)`: `out[u] = bias[u] + <W row u, x>` for `u = units[t]`, `t < count`,
 * with `W` row-major `width` wide. Four rows share one pass over `x`; each sum runs in the same order whichever rows
 * were chosen. `reluAt(w, bias, width, units, count, x, out, scale)` stores `max(0, bias[u] + <W row u, x>) * scale`
 * instead (a hidden layer's units that dropout keeps, scaled by `1 / keep`).
 */
const affine = (name: string, relu: boolean) => {
  const f = relu ? func(i32, i32, i32, i32, i32, i32, i32, f32) : func(i32, i32, i32, i32, i32, i32, i32)
  const [w, bias, width, units, count, x, out, scale] = f.params as [number, number, number, number, number, number, number, number]
  const rowBytes = f.local(i32)
  const xp = f.local(i32)
  const xEnd = f.local(i32)
  const xk = f.local(v128)
  const block = (size: number, t: number): ReadonlyArray<Code> => {
    const rows = range(size).map(() => f.local(i32))
    const sums = range(size).map(() => f.local(v128))
    const unit = (j: number) => I32.load(I32.add(get(units), get(t)), 4 * j)
    const value = (j: number) => {
      const affine = F32.add(F32.load(at(get(bias), unit(j))), horizontalSum(get(sums[j]!)))
      return relu ? F32.mul(F32.max(affine, F32.zero), get(scale)) : affine
    }
    return [
      ...rows.map((row, j) => set(row, I32.add(get(w), I32.mul(unit(j), get(rowBytes))))),
      ...sums.map((sum) => set(sum, V128.zero)),
      set(xp, get(x)),
      whileLoop(
        I32.lt(get(xp), get(xEnd)),
        set(xk, V128.load(get(xp))),
        ...sums.map((sum, j) => set(sum, F32x4.add(get(sum), F32x4.mul(V128.load(get(rows[j]!)), get(xk))))),
        ...rows.map((row) => set(row, plus(get(row), 16))),
        set(xp, plus(get(xp), 16))
      ),
      ...range(size).map((j) => F32.store(at(get(out), unit(j)), value(j)))
    ]
  }
  return f.done(name, set(rowBytes, I32.shl(get(width), I32.const(2))), set(xEnd, I32.add(get(x), get(rowBytes))), inBlocks(f, count, block))
}

/**
 * `addRows(src, offsets, coefficients, count, width, dst)`: `dst[j] += sum_t coefficients[t] * src[offsets[t] + j]` for
 * `j < width`, `t < count` (offsets in values): a weighted sum of rows. Four rows share one read and write of `dst`.
 */
const addRows = (() => {
  const f = func(i32, i32, i32, i32, i32, i32)
  const [src, offsets, coefficients, count, width, dst] = f.params as [number, number, number, number, number, number]
  const dp = f.local(i32)
  const dEnd = f.local(i32)
  const block = (size: number, t: number): ReadonlyArray<Code> => {
    const rows = range(size).map(() => f.local(i32))
    const scales = range(size).map(() => f.local(v128))
    const term = (j: number) => F32x4.mul(get(scales[j]!), V128.load(get(rows[j]!)))
    return [
      ...rows.map((row, j) => set(row, at(get(src), I32.load(I32.add(get(offsets), get(t)), 4 * j)))),
      ...scales.map((scale, j) => set(scale, F32x4.splat(F32.load(I32.add(get(coefficients), get(t)), 4 * j)))),
      set(dp, get(dst)),
      whileLoop(
        I32.lt(get(dp), get(dEnd)),
        V128.store(get(dp), F32x4.add(V128.load(get(dp)), range(size).slice(1).reduce((sum, j) => F32x4.add(sum, term(j)), term(0)))),
        ...rows.map((row) => set(row, plus(get(row), 16))),
        set(dp, plus(get(dp), 16))
      )
    ]
  }
  return f.done("addRows", set(dEnd, at(get(dst), get(width))), inBlocks(f, count, block))
})()

/**
 * `maskScale(values, mask, n, scale)`: `values[k] = mask[k] > 0 ? values[k] * scale : 0` over `n` values (a multiple of
 * 4): a delta through ReLU and dropout, whose kept and active units are the positive outputs.
 */
const maskScale = (() => {
  const f = func(i32, i32, i32, f32)
  const [values, mask, n, scale] = f.params as [number, number, number, number]
  const k = f.local(i32)
  const end = f.local(i32)
  const factor = f.local(v128)
  return f.done(
    "maskScale",
    set(factor, F32x4.splat(get(scale))),
    set(end, at(get(values), get(n))),
    set(k, get(values)),
    whileLoop(
      I32.lt(get(k), get(end)),
      V128.store(get(k), V128.and(F32x4.mul(V128.load(get(k)), get(factor)), F32x4.gt(V128.load(get(mask)), V128.zero))),
      set(k, plus(get(k), 16)),
      set(mask, plus(get(mask), 16))
    )
  )
})()

/**
 * An optimiser kernel's body: each f32 parameter from `scalars` on splatted into a vector local (in order), then
 * `body(element, splats)` for each vector of `n` values (a multiple of 4), where `element(base)` addresses the
 * current one in the array at byte address `base`.
 */
const overVectors = (
  f: Builder,
  n: number,
  scalars: ReadonlyArray<number>,
  body: (element: (base: number) => Code, splats: ReadonlyArray<number>) => ReadonlyArray<Code>
): Code => {
  const splats = scalars.map(() => f.local(v128))
  const k = f.local(i32)
  const end = f.local(i32)
  const element = (base: number) => I32.add(get(base), get(k))
  return [
    ...scalars.flatMap((s, j) => set(splats[j]!, F32x4.splat(get(s)))),
    ...set(end, I32.shl(get(n), I32.const(2))),
    ...set(k, I32.const(0)),
    ...whileLoop(I32.lt(get(k), get(end)), ...body(element, splats), set(k, plus(get(k), 16)))
  ]
}

/**
 * `adam(p, g, m, v, n, beta1, 1 - beta1, beta2, 1 - beta2, shrink, l2, stepSize, rootC2, eps)` over `n` values (a
 * multiple of 4), `torch.optim.Adam` and `AdamW`: `p' = shrink * p` (AdamW's decoupled decay `1 - lr * weightDecay`;
 * 1 for Adam), `g' = g + l2 * p'` (Adam's L2 decay; 0 for AdamW), the moments, then
 * `p = p' - stepSize * m / (sqrt(v) / rootC2 + eps)`. Zero padding stays zero.
 */
const adam = (() => {
  const f = func(i32, i32, i32, i32, i32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
  const [p, g, m, v, n, ...scalars] = f.params as [number, number, number, number, number, ...Array<number>]
  const [pk, gk, mk, vk] = range(4).map(() => f.local(v128)) as [number, number, number, number]
  const { add, div, mul } = F32x4
  return f.done("adam", overVectors(f, n, scalars, (element, splats) => {
    const [beta1, rest1, beta2, rest2, shrink, l2, stepSize, rootC2, eps] = splats as [number, number, number, number, number, number, number, number, number]
    return [
      set(pk, mul(get(shrink), V128.load(element(p)))),
      set(gk, add(V128.load(element(g)), mul(get(l2), get(pk)))),
      set(mk, add(mul(get(beta1), V128.load(element(m))), mul(get(rest1), get(gk)))),
      set(vk, add(mul(get(beta2), V128.load(element(v))), mul(get(rest2), mul(get(gk), get(gk))))),
      V128.store(element(m), get(mk)),
      V128.store(element(v), get(vk)),
      V128.store(element(p), F32x4.sub(get(pk), div(mul(get(stepSize), get(mk)), add(div(F32x4.sqrt(get(vk)), get(rootC2)), get(eps)))))
    ]
  }))
})()

/**
 * `sgd(p, g, b, n, carry, l2, lr, fresh, kept)` over `n` values (a multiple of 4), `torch.optim.SGD`:
 * `g' = g + l2 * p`, the momentum buffer `b = carry * b + g'` (`carry` is the momentum, 0 on the first step and
 * without momentum, so `b = g'` then), and `p -= lr * (fresh * g' + kept * b)`: `fresh = 0, kept = 1` for plain
 * momentum, `fresh = 1, kept = momentum` for Nesterov's. Zero padding stays zero.
 */
const sgd = (() => {
  const f = func(i32, i32, i32, i32, f32, f32, f32, f32, f32)
  const [p, g, b, n, ...scalars] = f.params as [number, number, number, number, ...Array<number>]
  const [pk, gk, bk] = range(3).map(() => f.local(v128)) as [number, number, number]
  const { add, mul } = F32x4
  return f.done("sgd", overVectors(f, n, scalars, (element, splats) => {
    const [carry, l2, lr, fresh, kept] = splats as [number, number, number, number, number]
    return [
      set(pk, V128.load(element(p))),
      set(gk, add(V128.load(element(g)), mul(get(l2), get(pk)))),
      set(bk, add(mul(get(carry), V128.load(element(b))), get(gk))),
      V128.store(element(b), get(bk)),
      V128.store(element(p), F32x4.sub(get(pk), mul(get(lr), add(mul(get(fresh), get(gk)), mul(get(kept), get(bk))))))
    ]
  }))
})()

const bytes = assemble([affine("affineAt", false), affine("reluAt", true), addRows, maskScale, adam, sgd])

// Every Node the project supports (>= 20.19, package.json's engines) has fixed-width SIMD: no fallback is needed.
const compiled = new WebAssembly.Module(bytes)

export interface Kernels {
  readonly affineAt: (w: number, bias: number, width: number, units: number, count: number, x: number, out: number) => void
  readonly reluAt: (w: number, bias: number, width: number, units: number, count: number, x: number, out: number, scale: number) => void
  readonly maskScale: (values: number, mask: number, n: number, scale: number) => void
  readonly addRows: (src: number, offsets: number, coefficients: number, count: number, width: number, dst: number) => void
  readonly adam: (
    p: number,
    g: number,
    m: number,
    v: number,
    n: number,
    beta1: number,
    restBeta1: number,
    beta2: number,
    restBeta2: number,
    shrink: number,
    l2: number,
    stepSize: number,
    rootC2: number,
    eps: number
  ) => void
  readonly sgd: (p: number, g: number, b: number, n: number, carry: number, l2: number, lr: number, fresh: number, kept: number) => void
}

/** `n` rounded up to a multiple of 4: a row's width in the kernels' contract. */
export const padded = (n: number) => Math.ceil(n / 4) * 4

/** `length` 4-byte values at byte `address` (a multiple of 16). */
export interface Block {
  readonly address: number
  readonly length: number
}

/** Plans the blocks of an instance's memory before it exists. */
export interface Layout {
  readonly block: (length: number) => Block
  readonly bytes: () => number
}

export const layout = (): Layout => {
  let bytes = 0
  return {
    block: (length) => {
      const address = bytes
      bytes += Math.ceil(length / 4) * 16
      return { address, length }
    },
    bytes: () => bytes
  }
}

export interface Instance {
  readonly kernels: Kernels
  readonly floats: (block: Block) => Float32Array<ArrayBuffer>
  readonly ints: (block: Block) => Int32Array<ArrayBuffer>
}

/** A fresh instance whose zeroed memory holds `layout`'s blocks. */
export const instantiate = (plan: Layout): Instance => {
  const memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(plan.bytes() / 65536)) })
  const instance = new WebAssembly.Instance(compiled, { env: { memory } })
  return {
    kernels: instance.exports as Kernels,
    floats: (block) => new Float32Array(memory.buffer, block.address, block.length),
    ints: (block) => new Int32Array(memory.buffer, block.address, block.length)
  }
}
