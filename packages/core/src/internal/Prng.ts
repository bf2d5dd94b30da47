/**
 * A small seeded pseudo-random generator (mulberry32) and a seed mixer, so that augmentation and anything else
 * random is reproducible from one integer seed.
 *
 * @internal
 */

/** Scramble a 32-bit integer (the murmur3 finaliser). */
const fmix32 = (value: number): number => {
  let h = value >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Combine a seed with integer keys (an epoch, an image index, a view index) into a new 32-bit seed. */
export const deriveSeed = (seed: number, ...keys: ReadonlyArray<number>): number =>
  keys.reduce((h, key) => fmix32(h ^ fmix32((key >>> 0) + 0x9e3779b9)), fmix32(seed))

export interface Prng {
  /** Uniform in [0, 1). */
  readonly next: () => number
  /** Uniform in [low, high). */
  readonly uniform: (low: number, high: number) => number
  /** Uniform integer in [low, high] (both ends included). */
  readonly int: (low: number, high: number) => number
}

/** mulberry32: 32 bits of state, a period of 2^32, good enough for augmentation and shuffling. */
export const make = (seed: number): Prng => {
  let state = fmix32(seed)
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    uniform: (low, high) => low + (high - low) * next(),
    int: (low, high) => low + Math.floor(next() * (high - low + 1))
  }
}
