import { describe, expect, it } from "vitest"
import type { AutoML } from "@loupe/functions"
import * as Candidates from "../src/internal/Candidates.js"

describe("narrowedTo (what a retrain searches when it keeps the previous choice)", () => {
  const full: AutoML.FitOptions = { backbones: ["a", "b", "c"], folds: 5, mirror: true, ensembles: true }

  it("a concatenation: its member backbones are embedded, only the concatenation is searched, with its head and params", () => {
    const narrowed = Candidates.narrowedTo(full, { backbone: "a+b+c", head: { kind: "logistic-regression", params: { l2: 100, tol: 1e-4 } } })
    expect(narrowed).toEqual({
      ...full,
      backbones: ["a", "b", "c"],
      heads: ["logistic-regression"],
      searchBackbone: "a+b+c",
      headParams: { l2: 100, tol: 1e-4 }
    })
  })

  it("a single backbone, and an ensemble, which keeps its members' own searches", () => {
    expect(Candidates.narrowedTo(full, { backbone: "b", head: { kind: "knn", params: { k: 10, standardize: true } } })).toMatchObject({
      backbones: ["b"],
      heads: ["knn"],
      searchBackbone: "b",
      headParams: { k: 10, standardize: true }
    })
    // Params that are not plain values cannot be a search-space point: the kind's grid is searched again.
    const nested = Candidates.narrowedTo(full, { backbone: "b", head: { kind: "mlp", params: { schedule: { kind: "cosine" } } } })
    expect(nested.heads).toEqual(["mlp"])
    expect(nested.headParams).toBeUndefined()
    const ensemble = Candidates.narrowedTo(full, {
      backbone: "a+b",
      head: { kind: "ensemble", params: { members: [{ backbone: "a", kind: "knn", params: {} }, { backbone: "b", kind: "linear-svm", params: {} }] } }
    })
    expect(ensemble.backbones).toEqual(["a", "b"])
    expect(ensemble.heads).toEqual(["knn", "linear-svm"])
    expect(ensemble.searchBackbone).toBeUndefined()
    expect(ensemble.headParams).toBeUndefined()
  })
})
