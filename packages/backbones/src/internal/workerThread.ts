/**
 * A model that lives in a worker thread, spoken to by Schema-typed requests.
 *
 * onnxruntime-node's `session.run` and TensorFlow.js on the wasm backend compute on the calling thread, so on the
 * main thread they would block the event loop for a whole batch: no file reads, no image decodes dispatched, no
 * cache writes, no HTTP requests answered. In a worker, the main thread keeps decoding the next batch while this one
 * runs. This module is the main side both engines share: it starts the worker's module with `@effect/platform`'s
 * `Worker.makeSerialized` (the worker ends with the scope), turns a worker that dies into a typed failure, and fails
 * every later request once it has died.
 *
 * Each worker runs a module of its own (`ortRunner.ts`, `tfjsRunner.ts`), which tsup builds as an entry point of
 * its own next to `dist/index.js`. Node cannot run TypeScript in a worker thread, so code running from the sources
 * (vitest aliases the packages to `src`) starts the built module in the package's `dist`: build before testing.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Worker from "@effect/platform/Worker"
import { isWorkerError, type WorkerError } from "@effect/platform/WorkerError"
import * as NodeWorker from "@effect/platform-node/NodeWorker"
import { Data, Deferred, Effect, ExecutionStrategy, Exit, Option, ParseResult, Schema, Scope } from "effect"
import { fileURLToPath } from "node:url"
import { Worker as ThreadWorker } from "node:worker_threads"

/** The worker died (or never started), or its reply did not decode. */
export class WorkerFailed extends Data.TaggedError("WorkerFailed")<{ readonly message: string }> {}

export interface WorkerThread<I extends Schema.TaggedRequest.All> {
  /**
   * Send one request and wait for its reply. Fails with the request's own failure, or `WorkerFailed` when the worker
   * has died (for this request and every later one).
   */
  readonly request: <Req extends I>(
    request: Req
  ) => Effect.Effect<Schema.WithResult.Success<Req>, Exclude<Schema.WithResult.Failure<Req>, WorkerError> | WorkerFailed>
}

/**
 * The built runner module `name`: beside this code in `dist` (where tsup puts this module and the runners), or in
 * the package's `dist` when this module runs from `src/internal` (vitest).
 */
const runnerUrl = (name: string): URL =>
  new URL(import.meta.url.endsWith(".ts") ? `../../dist/${name}.js` : `./${name}.js`, import.meta.url)

const causeText = (cause: unknown) => cause instanceof Error ? cause.message : String(cause)

const describe = (name: string, error: WorkerError | ParseResult.ParseError): string => {
  if (error._tag === "ParseError") return `the ${name} worker's reply does not decode: ${error.message}`
  const text = causeText(error.cause)
  if (error.reason === "unknown") {
    return text.startsWith("exited with code") ? `the ${name} worker ${text}` : `the ${name} worker crashed: ${text}`
  }
  return `the ${name} worker failed to ${error.reason} a message: ${text}`
}

export interface Options<Initial> {
  /** Names the worker in errors: "the <name> worker exited with code 1". */
  readonly name: string
  /** The runner module's entry name in `tsup.config.ts` (`dist/<runner>.js`). */
  readonly runner: string
  /** The request the worker starts with (it loads the model); its failure is this function's. */
  readonly initial: Initial
}

type Initial<I> = Extract<I, { readonly _tag: "InitialMessage" }>

/** Start the worker and wait until it has answered its initial request; the worker ends with the scope. */
export const open = <I extends Schema.TaggedRequest.All>(
  options: Options<Initial<I>>
): Effect.Effect<
  WorkerThread<I>,
  Exclude<Schema.WithResult.Failure<Initial<I>>, WorkerError> | WorkerFailed,
  Scope.Scope | FileSystem.FileSystem
> =>
  Effect.gen(function*() {
    const { initial, name } = options
    const url = runnerUrl(options.runner)
    const module = fileURLToPath(url)
    const fs = yield* FileSystem.FileSystem
    if (!(yield* fs.exists(module).pipe(Effect.orElseSucceed(() => false)))) {
      return yield* new WorkerFailed({
        message: `the ${name} worker's module ${module} is missing: run \`pnpm build\` (the worker runs the built ` +
          `JavaScript, also when the package runs from its TypeScript sources)`
      })
    }

    // The worker's own scope, closed once it has died: @effect/platform would respawn it, without a model.
    const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    // Set when the worker exits or crashes; every later request fails with it.
    let dead: WorkerFailed | undefined
    // A worker that exits before it is ready (its module threw on import) would otherwise be respawned forever.
    const diedEarly = yield* Deferred.make<never, WorkerFailed>()
    const spawn = () => {
      const worker = new ThreadWorker(url)
      const died = (message: string) => {
        dead ??= new WorkerFailed({ message })
        Deferred.unsafeDone(diedEarly, Exit.fail(dead))
      }
      worker.once("error", (error) => died(`the ${name} worker crashed: ${error.message}`))
      worker.once("exit", (code) => died(`the ${name} worker exited with code ${code}`))
      return worker
    }
    // The initial request's failure reaches here encoded, inside a WorkerError "spawn": decode it with its schema.
    const initialFailure = Schema.decodeUnknownOption(Schema.failureSchema(initial as unknown as Schema.WithResult.Any) as Schema.Schema<unknown>)
    const startFailure = (error: WorkerError) => {
      const failure = error.reason === "spawn" ? initialFailure(error.cause) : Option.none()
      if (Option.isNone(failure)) return new WorkerFailed({ message: describe(name, error) })
      const decoded = failure.value as Schema.WithResult.Failure<Initial<I>>
      return isWorkerError(decoded) ? new WorkerFailed({ message: describe(name, decoded) }) : decoded
    }
    const worker = yield* Worker.makeSerialized<I>({ initialMessage: () => initial } as Worker.SerializedWorker.Options<I>).pipe(
      Effect.mapError(startFailure),
      Effect.raceFirst(Deferred.await(diedEarly)),
      Effect.provide(NodeWorker.layer(spawn)),
      Scope.extend(scope),
      Effect.tapError(() => Scope.close(scope, Exit.void))
    )

    const fail = (failed: WorkerFailed) => Effect.zipRight(Scope.close(scope, Exit.void), Effect.fail(failed))
    const request = <Req extends I>(req: Req) =>
      Effect.suspend(() => {
        if (dead !== undefined) return fail(dead)
        const reply = worker.executeEffect(req) as unknown as Effect.Effect<
          Schema.WithResult.Success<Req>,
          Schema.WithResult.Failure<Req> | WorkerError | ParseResult.ParseError
        >
        return Effect.catchIf(
          reply,
          (error): error is WorkerError | ParseResult.ParseError => isWorkerError(error) || ParseResult.isParseError(error),
          (error) => {
            if (!isWorkerError(error)) return Effect.fail(new WorkerFailed({ message: describe(name, error) }))
            dead ??= new WorkerFailed({ message: describe(name, error) })
            return fail(dead)
          }
        )
      })
    return { request } as WorkerThread<I>
  })
