/**
 * The store's rows as SQL returns them, and their decoding into the records of `Store.ts` (JSON columns parsed, with
 * a `StoreFailed` error naming the column when one is not valid JSON).
 *
 * @internal
 */
import { Effect } from "effect"
import { FunctionsError } from "../FunctionsError.js"
import type { FunctionRecord, LabelRecord, LabelRef, ModelVersionRecord, SampleRecord } from "../Store.js"

export interface FunctionRow {
  readonly id: string
  readonly name: string
  readonly preset: string
  readonly overrides: string
  readonly created_at: string
  readonly revision: number
  readonly trained_revision: number
  readonly train_error: string | null
}

export interface LabelRow {
  readonly id: string
  readonly function_id: string
  readonly name: string
  readonly description: string | null
  readonly metadata: string | null
  readonly created_at: string
}

export interface SampleRow {
  readonly id: string
  readonly function_id: string
  readonly content_hash: string
  readonly external_id: string | null
  readonly label_id: string | null
  readonly label_name: string | null
  readonly created_at: string
  readonly updated_at: string
}

export interface ModelVersionRow {
  readonly id: string
  readonly function_id: string
  readonly bundle: string
  readonly labels: string
  readonly metrics: string
  readonly revision: number
  readonly sample_count: number
  readonly created_at: string
  readonly promoted: number
  readonly held_back: string | null
}

export const parseJson = (text: string, what: string): Effect.Effect<unknown, FunctionsError> =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (cause) => new FunctionsError({ reason: "StoreFailed", field: what, message: `Store: ${what} is not valid JSON`, cause })
  })

export const toFunction = (row: FunctionRow) =>
  Effect.map(parseJson(row.overrides, "functions.overrides"), (overrides): FunctionRecord => ({
    id: row.id,
    name: row.name,
    preset: row.preset,
    overrides,
    createdAt: row.created_at,
    revision: Number(row.revision),
    trainedRevision: Number(row.trained_revision),
    trainError: row.train_error
  }))

export const toLabel = (row: LabelRow) =>
  Effect.map(
    row.metadata === null ? Effect.succeed(null) : parseJson(row.metadata, "labels.metadata"),
    (metadata): LabelRecord => ({
      id: row.id,
      functionId: row.function_id,
      name: row.name,
      description: row.description,
      metadata: metadata as LabelRecord["metadata"],
      createdAt: row.created_at
    })
  )

export const toSample = (row: SampleRow): SampleRecord => ({
  id: row.id,
  functionId: row.function_id,
  contentHash: row.content_hash,
  externalId: row.external_id,
  annotation: row.label_id === null ? null : { labelId: row.label_id, labelName: row.label_name! },
  createdAt: row.created_at,
  updatedAt: row.updated_at
})

export const toModelVersion = (row: ModelVersionRow) =>
  Effect.all([parseJson(row.labels, "model_versions.labels"), parseJson(row.metrics, "model_versions.metrics")]).pipe(
    Effect.map(([labels, metrics]): ModelVersionRecord => ({
      id: row.id,
      functionId: row.function_id,
      bundle: row.bundle,
      labels: labels as ReadonlyArray<LabelRef>,
      metrics,
      revision: Number(row.revision),
      sampleCount: Number(row.sample_count),
      createdAt: row.created_at,
      promoted: Number(row.promoted) === 1,
      heldBack: row.held_back
    }))
  )
