/**
 * `loupe worker`: a runner of the Loupe cluster, with no HTTP. It joins the cluster whose state lives in the
 * store's Postgres database and executes retrain workflows and embedding ranges (`RetrainWorkflow` in
 * `@loupe/functions`), logging each activity it runs. Several workers on one database share the work; when one dies,
 * another takes over its shards and resumes its workflows from their last completed activity. SIGINT or SIGTERM
 * hands the worker's shards back, then exits.
 *
 * ```sh
 * loupe worker --store postgres://loupe@db/loupe --port 34431
 * ```
 *
 * @since 0.2.0
 */
import { Console, Effect, Layer, pipe } from "effect"
import { Functions, FunctionsError, RetrainWorkflow, StoreLocation } from "@loupe/functions"
import { store } from "./FunctionCommand.js"
import { environment, modelsDir, plugins } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"
import * as Flag from "./internal/Flag.js"

const flags = {
  store,
  host: pipe(Flag.text("host", "<address>", "Address other runners reach this one at"), Flag.withDefault("localhost")),
  port: pipe(Flag.integer("port", "<port>", "Port this runner listens on for other runners (a fixed one: it is registered for them to connect to)"), Flag.withDefault(34431)),
  embedRangeSize: pipe(
    Flag.integer("embed-range-size", "<n>", "Images per embedding range: a retrain's images are split into ranges spread over the runners"),
    Flag.withDefault(64)
  ),
  modelsDir,
  plugins
}

export const command = DocumentedCommand.make(
  "worker",
  {
    summary: "Run retrains and embeddings for servers that share a Postgres store (no HTTP)",
    details: [
      "Joins the cluster kept in the store's Postgres database as a runner listening on --host:--port, and runs the " +
      "retrain workflows that `loupe serve --store postgres://...` submits: embed the new samples (split into ranges " +
      "over the runners), search, promote. Each activity is logged with this process's id. When a worker dies, " +
      "another takes over its workflows from their last completed activity.",
      "The cluster's timings (how often shards are rebalanced, runners checked, messages polled) come from " +
      "@effect/cluster's ShardingConfig in the environment, in constant case: REFRESH_ASSIGNMENTS_INTERVAL, " +
      "RUNNER_HEALTH_CHECK_INTERVAL, ENTITY_MESSAGE_POLL_INTERVAL, SHARD_LOCK_EXPIRATION, ...",
      "A folder store (SQLite) needs no worker: `loupe serve` retrains in its own process."
    ],
    examples: ["loupe worker --store postgres://loupe@localhost/loupe --port 34431"]
  },
  flags,
  (f) =>
    Effect.gen(function*() {
      const location = f.store
      if (location._tag !== "Postgres") {
        return yield* new FunctionsError.FunctionsError({
          reason: "InvalidOptions",
          field: "store",
          message: `--store ${location.path} is a folder: a folder store retrains inside \`loupe serve\`; workers need a postgres:// store`
        })
      }
      if (!Number.isInteger(f.port) || f.port < 1 || f.port > 65535) {
        return yield* new FunctionsError.FunctionsError({
          reason: "InvalidOptions",
          field: "port",
          message: `--port ${f.port}: a runner needs a fixed port from 1 to 65535, the one other runners connect to`
        })
      }
      // The store and blobs as the servers open them; the cluster and the embedding cache in the store's database.
      const runner = RetrainWorkflow.layerRunnerPostgres(location.url, { host: f.host, port: f.port }, { embedRangeSize: f.embedRangeSize }).pipe(
        Layer.provide(Functions.layerStorage(location))
      )
      yield* Layer.launch(
        Layer.mergeAll(
          runner,
          Layer.effectDiscard(
            Console.log(`Worker ${process.pid} runs on ${f.host}:${f.port} for ${StoreLocation.describe(location)}`)
          )
        )
      )
    }).pipe(Effect.provide(environment(f)))
)
