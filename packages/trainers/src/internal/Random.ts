/**
 * A small seeded generator (mulberry32 over a splitmix-scrambled seed), so every random choice in this package is a
 * pure function of its seed.
 */
export interface Random {
  /** Uniform in [0, 1). */
  readonly next: () => number
  /** Uniform integer in [0, n). */
  readonly int: (n: number) => number
  /** Standard normal (Box–Muller). */
  readonly normal: () => number
  /** Shuffles `values` in place (Fisher–Yates) and returns it. */
  readonly shuffle: <A extends { [i: number]: unknown; length: number }>(values: A) => A
}

const scramble = (seed: number): number => {
  let z = (seed + 0x9e3779b9) | 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

export const make = (seed: number): Random => {
  let state = scramble(Math.trunc(seed))
  const next = (): number => {
    state = (state + 0x6d2b79f5) | 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number): number => Math.floor(next() * n)
  const normal = (): number => {
    const u = 1 - next()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next())
  }
  const shuffle = <A extends { [i: number]: unknown; length: number }>(values: A): A => {
    for (let i = values.length - 1; i > 0; i--) {
      const j = int(i + 1)
      const tmp = values[i]
      values[i] = values[j]
      values[j] = tmp
    }
    return values
  }
  return { next, int, normal, shuffle }
}

/** A seed derived from a parent seed and a path of integers (fold, repeat, candidate ...), stable across runs. */
export const derive = (seed: number, ...path: ReadonlyArray<number>): number =>
  path.reduce<number>((s, p) => scramble((s ^ Math.imul(p + 1, 0x27d4eb2f)) | 0), scramble(Math.trunc(seed)))
