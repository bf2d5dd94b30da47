import { describe, expect, it } from "@effect/vitest"
import { CoreError, Head, Matrix } from "@loupe/core"

describe("Head.make", () => {
  const calls: Array<number> = []
  const head = Head.make(
    { kind: "constant", numClasses: 2, dim: 3, toJSON: () => ({ kind: "constant", params: {}, state: {} }) },
    (x) => {
      calls.push(x.cols)
      return Matrix.make(x.rows, 2, new Float32Array(x.rows * 2).fill(0.5))
    }
  )

  it("predicts rows of the fitted width", () => {
    expect(Array.from(head.predictProba(Matrix.make(2, 3)).data)).toEqual([0.5, 0.5, 0.5, 0.5])
    expect(calls).toEqual([3])
  })

  it("refuses another width with a typed ShapeMismatch before the head computes anything", () => {
    let thrown: unknown
    try {
      head.predictProba(Matrix.make(1, 4))
    } catch (e) {
      thrown = e
    }
    expect(thrown).toBeInstanceOf(CoreError.CoreError)
    expect(thrown).toMatchObject({ reason: "ShapeMismatch", field: "x", message: "constant: fitted on 3-d features, got 4-d" })
    expect(calls).toEqual([3])
  })
})
