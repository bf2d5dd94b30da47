/**
 * The feature-set ids `AutoML.fit` searches (a backbone, a concatenation `a+b`, a fine-tuned trunk `a@layer`) and the
 * fit options that narrow a search to one earlier candidate (what a retrain that keeps its choice searches).
 *
 * @internal
 */
import type { SearchSpace } from "@loupe/trainers"
import { MultiBackbone } from "@loupe/trainers"
import type { Candidate, FitOptions } from "../AutoML.js"

/** The backbone id the search knows the concatenation of several backbones' embeddings by. */
export const combinedId = (ids: ReadonlyArray<string>): string => ids.join("+")

/** The member backbones of a (possibly combined) backbone id. */
export const membersOf = (id: string): ReadonlyArray<string> => id.split("+")

/** The feature-set id of a backbone's trunk cut after layer `cut` (the `finetune` head's input). */
export const trunkId = (backboneId: string, cut: string): string => `${backboneId}@${cut}`

const isValue = (u: unknown): u is SearchSpace.Value => typeof u === "string" || typeof u === "number" || typeof u === "boolean"

/**
 * `options` narrowed to a previous choice: its backbones, its feature set, its head kind and its params, so a retrain
 * cross-validates and refits that one candidate. An ensemble keeps its members' searches (over their kinds), which it
 * is made of; a head whose params are not all plain values keeps its kind's grid.
 */
export const narrowedTo = (options: FitOptions, candidate: Candidate): FitOptions => {
  const members = candidate.head.params["members"] as ReadonlyArray<{ readonly kind: string }> | undefined
  if (candidate.head.kind === MultiBackbone.ensembleKind && members !== undefined) {
    return { ...options, backbones: membersOf(candidate.backbone), heads: [...new Set(members.map((m) => m.kind))] }
  }
  const params = Object.entries(candidate.head.params)
  return {
    ...options,
    backbones: membersOf(candidate.backbone),
    heads: [candidate.head.kind],
    searchBackbone: candidate.backbone,
    ...(params.every(([, v]) => isValue(v)) ? { headParams: Object.fromEntries(params) as Record<string, SearchSpace.Value> } : {})
  }
}
