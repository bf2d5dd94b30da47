/**
 * Progress of long work (embedding, cross-validation, search) as events. The CLI renders them as a progress bar on
 * stderr; library users get silence unless they provide a layer.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"

/**
 * One progress update: `done` of `total` units of `stage` finished.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProgressEvent {
  /** What is running, e.g. "embed", "cv", "search". */
  readonly stage: string
  readonly done: number
  readonly total: number
  /** Optional detail, e.g. the backbone id or the file that was skipped. */
  readonly detail?: string
}

/**
 * The progress sink, as a service. `Progress.silent` drops every event; `Progress.make` calls a function with each.
 * Without one, `report` does nothing.
 *
 * @since 0.1.0
 * @category services
 */
export class Progress extends Context.Tag("@loupe/core/Progress")<
  Progress,
  { readonly report: (event: ProgressEvent) => Effect.Effect<void> }
>() {
  static readonly silent: Layer.Layer<Progress> = Layer.succeed(Progress, { report: () => Effect.void })
  static readonly make = (report: (event: ProgressEvent) => void): Layer.Layer<Progress> =>
    Layer.succeed(Progress, { report: (event) => Effect.sync(() => report(event)) })
}

/**
 * Report progress when a Progress service is present, otherwise do nothing.
 *
 * @since 0.1.0
 * @category utils
 */
export const report = (event: ProgressEvent): Effect.Effect<void> =>
  Effect.serviceOption(Progress).pipe(
    Effect.flatMap((p) => (p._tag === "Some" ? p.value.report(event) : Effect.void))
  )
