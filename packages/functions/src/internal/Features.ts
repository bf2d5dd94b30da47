/**
 * What `AutoML.fit` and `TagsAutoML.fit` share before their searches: which backbones to embed with, the images every
 * backbone embedded (and why the others were skipped), and the feature sets built from their embeddings.
 *
 * @internal
 */
import { Effect } from "effect"
import { Matrix, Registry } from "@loupe/core"
import type { Embedder, Sample } from "@loupe/core"
import { FunctionsError } from "../FunctionsError.js"
import { combinedId } from "./Candidates.js"

/** The backbone ids asked for, or the registered ones tagged `default`; `NoBackbone` when that leaves none. */
export const backboneIds = (asked: ReadonlyArray<string> | undefined) =>
  Effect.gen(function*() {
    const registry = yield* Registry.Registry
    const ids = asked && asked.length > 0 ? asked : registry.backbonesWithTags(["default"]).map((p) => p.info.id)
    if (ids.length === 0) {
      return yield* new FunctionsError({ reason: "NoBackbone", message: "No backbone selected and none is tagged `default`" })
    }
    return ids
  })

/**
 * The samples every one of `embeddings` embedded, in dataset order, and the others with the reason (an image that
 * fails to decode fails for every backbone).
 */
export const embeddedByAll = (samples: ReadonlyArray<Sample.Sample>, embeddings: ReadonlyArray<Embedder.Embeddings>) => {
  const embeddedBy = embeddings.map((e) => new Set(e.samples.map((s) => s.id)))
  const byAll = (s: Sample.Sample) => embeddedBy.every((ids) => ids.has(s.id))
  return {
    samples: samples.filter(byAll),
    skipped: samples.filter((s) => !byAll(s)).map((s) => ({
      file: s.id,
      reason: embeddings.flatMap((e) => e.skipped).find((k) => k.sample.id === s.id)?.reason ?? "not embedded"
    }))
  }
}

/** Rows of `vectors` (one per embedded sample) for the samples whose ids are in `keep`, in `keep`'s order. */
export const alignRows = (embeddings: Embedder.Embeddings, vectors: Matrix.Matrix, keep: ReadonlyArray<string>): Matrix.Matrix => {
  const rowOf = new Map(embeddings.samples.map((s, i) => [s.id, i]))
  return Matrix.takeRows(vectors, keep.map((id) => rowOf.get(id)!))
}

/** `features` plus, with more than one backbone, their concatenation under `combinedId`. */
export const withCombination = (features: Map<string, Matrix.Matrix>): Map<string, Matrix.Matrix> =>
  features.size < 2 ? features : features.set(combinedId([...features.keys()]), Matrix.concatColumns([...features.values()]))

/**
 * Small sets are cross-validated several times over (about 100 held-out predictions in all, at most 5 repeats): on
 * 10 images one 5-fold split is too noisy to choose between candidates.
 */
export const repeatsFor = (rows: number): number => Math.min(5, Math.max(1, Math.round(100 / rows)))
