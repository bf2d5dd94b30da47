/**
 * Seeded pseudo-random numbers: the one generator of every Loupe package (augmentation, shuffles, folds, weight
 * initialisation, dropout, bootstrap resamples), so that anything random is a pure function of an integer seed.
 *
 * The generator is mulberry32: 32 bits of state, a period of 2^32, one float per `next` (a 32-bit draw divided by
 * 2^32), good enough for augmentation, shuffling and sampling, and not for cryptography. `make` scrambles the seed
 * first (the murmur3 finaliser) so that nearby seeds give unrelated streams; `fromState` starts at the given state.
 *
 * @example
 * const random = Prng.make(Prng.deriveSeed(seed, epoch, image))
 * random.shuffle(order)
 *
 * @since 0.2.0
 */

/**
 * A seeded generator. Every method draws from one stream: `int`, `uniform` and `shuffle` take one draw a value,
 * `normal` two.
 *
 * @since 0.2.0
 */
export interface Prng {
  /** Uniform in [0, 1). */
  readonly next: () => number
  /** Uniform in [low, high). */
  readonly uniform: (low: number, high: number) => number
  /** Uniform integer in [0, n). */
  readonly int: (n: number) => number
  /** Standard normal (Box–Muller). */
  readonly normal: () => number
  /** Shuffles `values` in place (Fisher–Yates, from the end) and returns it. */
  readonly shuffle: <A extends { [i: number]: unknown; length: number }>(values: A) => A
}

/**
 * Scrambles a 32-bit integer (the murmur3 finaliser, a bijection): nearby inputs give unrelated outputs. Non-integer
 * inputs are truncated to 32 bits first.
 *
 * @since 0.2.0
 */
export const scramble = (value: number): number => {
  let h = value >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * A generator whose 32-bit state starts at `state` (taken modulo 2^32), unscrambled: for callers that derive their
 * state themselves. Most callers want `make`.
 *
 * @since 0.2.0
 */
export const fromState = (state: number): Prng => {
  let s = state >>> 0
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
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
  return { next, uniform: (low, high) => low + (high - low) * next(), int, normal, shuffle }
}

/**
 * A generator seeded with `seed` (any integer; it is scrambled, so seeds 1, 2, 3 give unrelated streams).
 *
 * @since 0.2.0
 */
export const make = (seed: number): Prng => fromState(scramble(seed))

/**
 * Combines a seed with integer keys (an epoch, an image index, a view index) into a new 32-bit seed: the same keys
 * give the same seed, and different keys or a different order give unrelated ones.
 *
 * @since 0.2.0
 */
export const deriveSeed = (seed: number, ...keys: ReadonlyArray<number>): number =>
  keys.reduce((h, key) => scramble(h ^ scramble((key >>> 0) + 0x9e3779b9)), scramble(seed))
