// The blocked vector kernels give exactly the values of the plain ones they replace, whatever the sizes' remainders.
import { describe, expect, it } from "@effect/vitest"
import { crossDots, dotRows } from "../src/internal/Linalg.js"
import * as Random from "../src/internal/Random.js"

const matrix = (rows: number, dim: number, seed: number) => {
  const random = Random.make(seed)
  return Float64Array.from({ length: rows * dim }, () => 2 * random.next() - 1)
}

describe("Linalg.crossDots", () => {
  it("equals dotRows row by row, bit for bit, for odd query counts and row counts that are not multiples of four", () => {
    for (const [aRows, bRows, dim] of [[1, 1, 5], [3, 7, 13], [6, 9, 64], [5, 16, 1280], [2, 3, 2688]] as const) {
      const a = matrix(aRows, dim, aRows)
      const b = matrix(bRows, dim, bRows + 100)
      const blocked = new Float64Array(aRows * bRows)
      crossDots(a, aRows, b, bRows, dim, blocked)
      const plain = new Float64Array(aRows * bRows)
      for (let i = 0; i < aRows; i++) dotRows(b, 0, bRows, dim, a, i * dim, plain, i * bRows)
      expect(Array.from(blocked)).toEqual(Array.from(plain))
    }
  })
})
