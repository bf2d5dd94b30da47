/**
 * The store's rows as schemas: `Model.Class` per table (columns renamed to the records' field names, JSON columns
 * parsed by `Model.JsonFromString`), the sample-with-label join as a struct, and the types that differ between the
 * dialects normalised (`promoted`: SQLite's 0/1 or Postgres' boolean; counts: a number or Postgres' int8 string).
 * A row that does not decode is a `FunctionsError` `StoreFailed` naming `table.column`.
 *
 * @internal
 */
import { Model, SqlSchema } from "@effect/sql"
import { Effect, ParseResult, Schema } from "effect"
import { FunctionsError } from "../FunctionsError.js"
import type { Annotation, SampleRecord } from "../Store.js"

/** The column `key` of the row, as the field this schema describes. */
const column = <S extends Schema.Schema.Any>(schema: S, key: string) =>
  Schema.propertySignature(schema).pipe(Schema.fromKey(key))

/** An integer as either dialect returns it: a number, or a numeric string (Postgres' `BIGINT` and `COUNT(*)`). */
export const Int = Schema.Union(Schema.Int, Schema.compose(Schema.NumberFromString, Schema.Int))

/** A flag as either dialect stores it: SQLite's 0 / 1, Postgres' `BOOLEAN`. */
const Flag = Schema.Union(
  Schema.Boolean,
  Schema.transform(Schema.Literal(0, 1), Schema.Boolean, {
    strict: true,
    decode: (n) => n === 1,
    encode: (b) => (b ? 1 : 0)
  })
)

const NullableString = Schema.NullOr(Schema.String)

/** A row of `functions`. */
export class FunctionRow extends Model.Class<FunctionRow>("FunctionRow")({
  id: Schema.String,
  name: Schema.String,
  preset: Schema.String,
  overrides: Model.JsonFromString(Schema.Unknown),
  createdAt: column(Schema.String, "created_at"),
  revision: Int,
  trainedRevision: column(Int, "trained_revision"),
  trainError: column(NullableString, "train_error"),
  output: Schema.Literal("Classification", "Tags")
}) {}

/** A row of `labels`. */
export class LabelRow extends Model.Class<LabelRow>("LabelRow")({
  id: Schema.String,
  functionId: column(Schema.String, "function_id"),
  name: Schema.String,
  description: NullableString,
  metadata: Schema.NullOr(Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.String }))),
  createdAt: column(Schema.String, "created_at")
}) {}

const LabelRef = Schema.Struct({ id: Schema.String, name: Schema.String })

/** A row of `model_versions`. */
export class ModelVersionRow extends Model.Class<ModelVersionRow>("ModelVersionRow")({
  id: Schema.String,
  functionId: column(Schema.String, "function_id"),
  bundle: Schema.String,
  labels: Model.JsonFromString(Schema.Array(LabelRef)),
  metrics: Model.JsonFromString(Schema.Unknown),
  revision: Int,
  sampleCount: column(Int, "sample_count"),
  createdAt: column(Schema.String, "created_at"),
  promoted: Flag,
  heldBack: column(NullableString, "held_back")
}) {}

/**
 * A row of `samples` joined with its label's name (`label_name`, null when unlabelled): the type of what the
 * sample queries select. Every column is TEXT in both dialects but `tagged` (SQLite's 0 / 1, Postgres' boolean).
 */
export const SampleJoinRow = Schema.Struct({
  id: Schema.String,
  function_id: Schema.String,
  content_hash: Schema.String,
  external_id: NullableString,
  label_id: NullableString,
  label_name: NullableString,
  tagged: Schema.Union(Schema.Boolean, Schema.Number),
  created_at: Schema.String,
  updated_at: Schema.String
})

/** A `SampleJoinRow`. */
export type SampleJoinRow = typeof SampleJoinRow.Type

/**
 * A sample row as the store's record, with its tags (`tagsOf`: a tagged sample's tags by sample id, sorted by name;
 * a tagged sample absent from it has none). Plain code rather than a Schema decode, which is the exception here: the
 * sample queries are the store's hot path (a training snapshot reads every sample of a function), and decoding
 * with Schema cost about 20 µs a row against well under 1 µs for this (20,000 rows: 440 ms against 2 to 7 ms,
 * measured on the dev machine).
 */
export const toSample = (row: SampleJoinRow, tagsOf?: ReadonlyMap<string, ReadonlyArray<Annotation>>): SampleRecord => ({
  id: row.id,
  functionId: row.function_id,
  contentHash: row.content_hash,
  externalId: row.external_id,
  annotation: row.label_id === null ? null : { labelId: row.label_id, labelName: row.label_name ?? "" },
  tags: row.tagged === true || row.tagged === 1 ? tagsOf?.get(row.id) ?? [] : null,
  createdAt: row.created_at,
  updatedAt: row.updated_at
})

const snakeCase = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** A row of `table` that did not decode, as `StoreFailed` naming `table.column` (the first failing column). */
export const decodeFailed = (table: string) => (error: ParseResult.ParseError): FunctionsError => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  const key = issue?.path.find((p): p is string => typeof p === "string")
  const where = key === undefined ? table : `${table}.${snakeCase(key)}`
  return new FunctionsError({
    reason: "StoreFailed",
    field: where,
    message: `Store: ${where} holds a value the store cannot read: ${issue?.message ?? error.message}`,
    cause: error
  })
}

/**
 * A query of rows of `table` (`SqlSchema.findAll`): the request encoded with `Request`, the rows decoded with
 * `Result`, a row that does not decode failing with `decodeFailed`.
 */
export const findAll = <IA, II, A, AI, E, R>(
  table: string,
  Request: Schema.Schema<IA, II>,
  Result: Schema.Schema<A, AI>,
  execute: (request: II) => Effect.Effect<ReadonlyArray<unknown>, E, R>
) => {
  const query = SqlSchema.findAll({ Request, Result, execute })
  return (request: IA): Effect.Effect<ReadonlyArray<A>, E | FunctionsError, R> =>
    Effect.mapError(query(request), (error) =>
      error instanceof ParseResult.ParseError ? decodeFailed(table)(error) : (error as E))
}
