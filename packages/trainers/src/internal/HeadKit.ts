/**
 * What every built-in head shares: params and state Schemas, input checks, exact JSON round trips and the
 * `HeadPlugin` shape. A head module supplies only `train` and `predict`.
 */
import { Head } from "@loupe/core"
import type { Matrix } from "@loupe/core"
import { Effect, Schema } from "effect"
import { TrainerError } from "../TrainerError.js"
import * as Check from "./Check.js"

export interface Spec<P, PI, S, SI> {
  readonly kind: string
  readonly paramsSchema: Schema.Schema<P, PI>
  readonly stateSchema: Schema.Schema<S, SI>
  /** Fits on checked data; may fail with a TrainerError. */
  readonly train: (data: Head.TrainingSet, params: P, seed: number) => Effect.Effect<S, TrainerError>
  /** `rows x numClasses` probabilities for features already checked to be `dim` wide. */
  readonly predict: (state: S, params: P, x: Matrix.Matrix) => Matrix.Matrix
  /** The class count and feature width the state encodes, or a message when the state is inconsistent. */
  readonly shape: (state: S, params: P) => { readonly numClasses: number; readonly dim: number } | string
  /** The head's ONNX form (the `toOnnx` capability), for a state whose width is `io.dim`. */
  readonly toOnnx?: (state: S, params: P, io: Head.OnnxIo) => Head.HeadGraph
}

/** A fitted built-in head: the core contract plus its typed params and state. */
export interface Fitted<P, S> extends Head.FittedHead {
  readonly params: P
  readonly state: S
}

export interface Plugin<P, S> extends Head.HeadPlugin<P> {
  readonly fit: (data: Head.TrainingSet, params: P, seed: number) => Effect.Effect<Fitted<P, S>, TrainerError>
  readonly load: (serialized: Head.SerializedHead) => Effect.Effect<Fitted<P, S>, TrainerError>
  readonly toOnnx?: (serialized: Head.SerializedHead, io: Head.OnnxIo) => Effect.Effect<Head.HeadGraph, TrainerError>
}

const invalidState = (kind: string, field: string, message: string, cause?: unknown) =>
  new TrainerError({ reason: "InvalidState", field, message: `${kind}: ${message}`, cause })

/** Wraps synchronous training code, keeping TrainerErrors and naming anything else as a failed fit. */
export const attempt = <A>(kind: string, f: () => A): Effect.Effect<A, TrainerError> =>
  Effect.try({
    try: f,
    catch: (cause) =>
      cause instanceof TrainerError
        ? cause
        : new TrainerError({ reason: "TrainingFailed", message: `${kind}: fit failed: ${String(cause)}`, cause })
  })

export const make = <P, PI, S, SI>(spec: Spec<P, PI, S, SI>): Plugin<P, S> => {
  const { kind } = spec
  const encodeParams = Schema.encodeSync(spec.paramsSchema)
  const encodeState = Schema.encodeSync(spec.stateSchema)
  const decodeParams = Schema.decodeUnknown(spec.paramsSchema, { onExcessProperty: "error" })
  const decodeState = Schema.decodeUnknown(spec.stateSchema, { onExcessProperty: "error" })
  const validateParams = (params: P) =>
    Schema.validate(spec.paramsSchema, { onExcessProperty: "error" })(params).pipe(
      Effect.mapError((e) =>
        new TrainerError({ reason: "InvalidParams", field: "params", message: `${kind}: invalid params: ${e.message}` })
      )
    )

  const fitted = (params: P, state: S, numClasses: number, dim: number): Fitted<P, S> =>
    Head.make(
      { kind, numClasses, dim, params, state, toJSON: () => ({ kind, params: encodeParams(params), state: encodeState(state) }) },
      (x) => spec.predict(state, params, x)
    )

  const withShape = (params: P, state: S): Effect.Effect<Fitted<P, S>, TrainerError> => {
    const shape = spec.shape(state, params)
    return typeof shape === "string"
      ? Effect.fail(invalidState(kind, "state", shape))
      : Effect.succeed(fitted(params, state, shape.numClasses, shape.dim))
  }

  const load = (serialized: Head.SerializedHead) =>
    Effect.gen(function*() {
      if (serialized.kind !== kind) {
        return yield* invalidState(kind, "kind", `cannot load a "${serialized.kind}" head`)
      }
      const params = yield* decodeParams(serialized.params).pipe(
        Effect.mapError((e) => invalidState(kind, "params", `invalid params: ${e.message}`, e))
      )
      const state = yield* decodeState(serialized.state).pipe(
        Effect.mapError((e) => invalidState(kind, "state", `invalid state: ${e.message}`, e))
      )
      return yield* withShape(params, state)
    })

  const toOnnx = spec.toOnnx
  return {
    kind,
    paramsSchema: spec.paramsSchema,
    fit: (data, params, seed) =>
      validateParams(params).pipe(
        Effect.zipRight(Check.trainingSet(kind, data)),
        Effect.zipRight(Effect.suspend(() => spec.train(data, params, seed))),
        Effect.flatMap((state) => withShape(params, state)),
        Effect.withSpan(`${kind}.fit`)
      ),
    load,
    ...(toOnnx === undefined ? {} : {
      toOnnx: (serialized: Head.SerializedHead, io: Head.OnnxIo) =>
        Effect.flatMap(load(serialized), (head) =>
          head.dim === io.dim
            ? Effect.succeed(toOnnx(head.state, head.params, io))
            : Effect.fail(
              new TrainerError({
                reason: "ShapeMismatch",
                field: "dim",
                message: `The ${kind} head expects ${head.dim}-d embeddings but the backbone gives ${io.dim}`
              })
            ))
    })
  }
}

/** `{ ...fields }` as a Struct whose every field has a default, so `{}` decodes to the defaults. */
export const withDefault = <S extends Schema.Schema.Any>(schema: S, value: Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: () => value, exact: true })

/** `fit(data, partialParams?, seed?)`, the defaults of `paramsSchema` filling the params not given. */
export const fitWithDefaults = <P, S>(plugin: Plugin<P, S>, paramsSchema: { readonly make: (p: {}) => P }) =>
(data: Head.TrainingSet, params: Partial<P> = {}, seed = 0): Effect.Effect<Fitted<P, S>, TrainerError> =>
  plugin.fit(data, { ...paramsSchema.make({}), ...params }, seed)
