/**
 * The trainers' seeds: each fit, fold, shuffle and initialisation takes a seed derived from the search's (or the
 * fit's) seed by a path of integers, and starts core's generator (`Prng`) from it. This derivation and this seeding
 * are the ones the trainers always used, so a seeded search or fit gives the same results as before the generator
 * moved to core.
 */
import { Prng } from "@loupe/core"

/** Core's generator. */
export type Random = Prng.Prng

/** The murmur3 finaliser of `value` offset by the golden ratio (so that seed 0 does not start at state 0). */
const mix = (value: number): number => Prng.scramble(value + 0x9e3779b9)

/** The generator of `seed`. */
export const make = (seed: number): Random => Prng.fromState(mix(Math.trunc(seed)))

/** A seed derived from a parent seed and a path of integers (fold, repeat, candidate ...), stable across runs. */
export const derive = (seed: number, ...path: ReadonlyArray<number>): number =>
  path.reduce<number>((s, p) => mix((s ^ Math.imul(p + 1, 0x27d4eb2f)) | 0), mix(Math.trunc(seed)))
