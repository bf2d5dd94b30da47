// The linear SVM solves its dual problems through the rows' Gram matrix when there are no more rows than dimensions,
// and through the weight vector otherwise. Both must fit the same model: the same real embeddings, once as they are
// (cut to fewer dimensions than rows: the weight-vector path) and once padded with zero columns (more dimensions than
// rows: the Gram path; a zero column changes neither the normalised rows nor the problems), give the same
// probabilities.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Matrix } from "@loupe/core"
import { LinearSvm } from "@loupe/trainers"
import { split } from "./fixtures/helpers.js"

/** The first `keep` columns of `x`, followed by `zeros` zero columns. */
const columns = (x: Matrix.Matrix, keep: number, zeros: number): Matrix.Matrix => {
  const cols = keep + zeros
  const out = Matrix.make(x.rows, cols)
  for (let i = 0; i < x.rows; i++) out.data.set(x.data.subarray(i * x.cols, i * x.cols + keep), i * cols)
  return out
}

describe("LinearSvm", () => {
  it.effect("fits the same model through the Gram matrix (rows <= dimensions) as through the weights", () =>
    Effect.gen(function*() {
      const train = yield* Effect.promise(() => split("flowers-5", "train", 24))
      const test = yield* Effect.promise(() => split("flowers-5", "test", 10))
      // 120 rows: 64 dimensions take the weight-vector path, 64 + 192 zero columns the Gram path.
      const keep = 64
      for (const params of [{ l2: 1 }, { l2: 100, loss: "hinge" as const }]) {
        const primal = yield* LinearSvm.fit({ ...train.set, x: columns(train.x, keep, 0) }, params, 7)
        const dual = yield* LinearSvm.fit({ ...train.set, x: columns(train.x, keep, 192) }, params, 7)
        const a = primal.predictProba(columns(test.x, keep, 0)).data
        const b = dual.predictProba(columns(test.x, keep, 192)).data
        const gap = a.reduce((max, p, i) => Math.max(max, Math.abs(p - b[i]!)), 0)
        console.log(`LinearSvm ${JSON.stringify(params)}: largest probability gap between the two paths ${gap.toExponential(2)}`)
        expect(gap).toBeLessThan(1e-5)
      }
    }), 120_000)
})
