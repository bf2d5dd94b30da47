/**
 * A tiny WebAssembly bytecode emitter, enough to write numeric kernels by hand in TypeScript and assemble them into a
 * module at load time, with no toolchain and no binary blob: i32/f32 scalar instructions, fixed-width 128-bit SIMD
 * (`f32x4`; relaxed SIMD is not used), `while` loops, and a module that imports one memory (`env.memory`) and
 * exports its functions.
 *
 * Instructions are written as expressions: each helper returns the bytes that leave its value on the stack, after the
 * bytes of its operands, so `F32x4.add(get(acc), F32x4.mul(V128.load(get(p)), get(x)))` reads as the sum it computes.
 * Opcodes and encodings follow the WebAssembly core specification 2.0 (binary format, chapter 5).
 */

/** Bytes of instructions. */
export type Code = ReadonlyArray<number>

/** Value types. */
export const i32 = 0x7f
export const f32 = 0x7d
export const v128 = 0x7b
export type ValueType = typeof i32 | typeof f32 | typeof v128

/** Unsigned LEB128. */
const unsigned = (n: number): Array<number> => {
  const out: Array<number> = []
  do {
    const byte = n & 0x7f
    n >>>= 7
    out.push(n === 0 ? byte : byte | 0x80)
  } while (n !== 0)
  return out
}

/** Signed LEB128 of a 32-bit integer. */
const signed = (n: number): Array<number> => {
  const out: Array<number> = []
  for (;;) {
    const byte = n & 0x7f
    n >>= 7
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)
    out.push(done ? byte : byte | 0x80)
    if (done) return out
  }
}

const vector = (items: ReadonlyArray<Code>): Code => [...unsigned(items.length), ...items.flat()]
const name = (s: string): Code => vector([...new TextEncoder().encode(s)].map((b) => [b]))
const section = (id: number, items: ReadonlyArray<Code>): Code => {
  const body = vector(items)
  return [id, ...unsigned(body.length), ...body]
}

const binary = (...opcode: Code) => (a: Code, b: Code): Code => [...a, ...b, ...opcode]
const unary = (...opcode: Code) => (a: Code): Code => [...a, ...opcode]
const simd = (opcode: number): Code => [0xfd, ...unsigned(opcode)]
/** A memory access's alignment (log2 bytes) and constant offset. */
const memarg = (alignLog2: number, offset: number): Code => [alignLog2, ...unsigned(offset)]

export const get = (local: number): Code => [0x20, ...unsigned(local)]
export const set = (local: number, value: Code): Code => [...value, 0x21, ...unsigned(local)]

export const I32 = {
  const: (n: number): Code => [0x41, ...signed(n)],
  add: binary(0x6a),
  mul: binary(0x6c),
  shl: binary(0x74),
  /**
   * Unsigned `a < b` and `a <= b`, 1 or 0: the kernels compare addresses and byte counts, which pass 2^31 in a memory
   * over 2 GiB.
   */
  lt: binary(0x49),
  le: binary(0x4d),
  load: (address: Code, offset = 0): Code => [...address, 0x28, ...memarg(2, offset)]
}

export const F32 = {
  zero: [0x43, 0, 0, 0, 0] as Code,
  add: binary(0x92),
  mul: binary(0x94),
  max: binary(0x97),
  load: (address: Code, offset = 0): Code => [...address, 0x2a, ...memarg(2, offset)],
  store: (address: Code, value: Code, offset = 0): Code => [...address, ...value, 0x38, ...memarg(2, offset)]
}

export const V128 = {
  zero: [...simd(0x0c), ...new Array<number>(16).fill(0)] as Code,
  load: (address: Code, offset = 0): Code => [...address, ...simd(0x00), ...memarg(4, offset)],
  store: (address: Code, value: Code, offset = 0): Code => [...address, ...value, ...simd(0x0b), ...memarg(4, offset)],
  and: binary(...simd(0x4e))
}

export const F32x4 = {
  splat: unary(...simd(0x13)),
  extractLane: (a: Code, lane: 0 | 1 | 2 | 3): Code => [...a, ...simd(0x1f), lane],
  /** Lane-wise `a > b`: all ones or all zeros. */
  gt: binary(...simd(0x44)),
  sqrt: unary(...simd(0xe3)),
  add: binary(...simd(0xe4)),
  sub: binary(...simd(0xe5)),
  mul: binary(...simd(0xe6)),
  div: binary(...simd(0xe7))
}

/** `while (condition) { body }`: `block { loop { br_if 1 (i32.eqz condition); body; br 0 } }`. */
export const whileLoop = (condition: Code, ...body: ReadonlyArray<Code>): Code => [
  0x02, 0x40, 0x03, 0x40, ...condition, 0x45, 0x0d, 1, ...body.flat(), 0x0c, 0, 0x0b, 0x0b
]

/** A function to export: its parameters (locals `0 .. params.length - 1`), further locals, and a body. */
export interface Func {
  readonly name: string
  readonly params: ReadonlyArray<ValueType>
  readonly locals: ReadonlyArray<ValueType>
  readonly body: ReadonlyArray<Code>
}

/**
 * Declares a function's locals as its body is written: `params` come first, `local(type)` adds one and returns its
 * index, and `done(name, body)` gives the `Func`.
 */
export const func = (...params: ReadonlyArray<ValueType>) => {
  const locals: Array<ValueType> = []
  return {
    params: params.map((_, k) => k),
    local: (type: ValueType): number => params.length + locals.push(type) - 1,
    done: (name: string, ...body: ReadonlyArray<Code>): Func => ({ name, params, locals, body })
  }
}

/** What `func` returns, for helpers that declare locals of the function being written. */
export type Builder = ReturnType<typeof func>

/** A module importing one memory as `env.memory` and exporting `functions` (no results) under their names. */
export const assemble = (functions: ReadonlyArray<Func>): Uint8Array => {
  const types = functions.map((f) => [0x60, ...vector(f.params.map((t) => [t])), ...vector([])])
  const memoryImport = [...name("env"), ...name("memory"), 0x02, 0x00, ...unsigned(0)]
  const exports = functions.map((f, k) => [...name(f.name), 0x00, ...unsigned(k)])
  const bodies = functions.map((f) => {
    const code = [...vector(f.locals.map((t) => [1, t])), ...f.body.flat(), 0x0b]
    return [...unsigned(code.length), ...code]
  })
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    ...section(2, [memoryImport]),
    ...section(3, functions.map((_, k) => unsigned(k))),
    ...section(7, exports),
    ...section(10, bodies)
  ])
}
