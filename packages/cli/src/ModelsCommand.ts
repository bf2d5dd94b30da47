/**
 * `loupe models list` and `loupe models pull <id>`.
 *
 * @since 0.1.0
 */
import { Args, Command } from "@effect/cli"
import { Console, Effect } from "effect"
import { Download } from "@loupe/backbones"
import { environment, json, modelsDir, plugins } from "./internal/cliOptions.js"

const list = Command.make("list", { modelsDir, plugins, json }, (flags) =>
  Effect.gen(function*() {
    const models = yield* Download.list
    if (flags.json) return yield* Console.log(JSON.stringify({ models }))
    const width = Math.max(...models.map((m) => m.id.length))
    for (const m of models) {
      const status = m.present ? "present" : m.pullable ? "pullable" : "missing"
      yield* Console.log(`${m.id.padEnd(width)}  ${String(m.embeddingSize).padStart(5)}-d  ${status.padEnd(8)}  ${m.tags.join(",")}  ${m.source}`)
    }
  }).pipe(Effect.provide(environment(flags)))).pipe(Command.withDescription("List registered backbones and where their weights are"))

const pull = Command.make("pull", { id: Args.text({ name: "id" }), modelsDir, plugins, json }, (flags) =>
  Effect.gen(function*() {
    const pulled = yield* Download.pull(flags.id)
    yield* Console.log(
      flags.json
        ? JSON.stringify(pulled)
        : `${pulled.id}: ${pulled.downloaded ? "downloaded" : "already present"} ${pulled.path} (${pulled.bytes} bytes, sha256 ${pulled.sha256})`
    )
  }).pipe(Effect.provide(environment(flags)))).pipe(
    Command.withDescription("Download a backbone's weights from its URL, verified with sha256")
  )

export const command = Command.make("models").pipe(
  Command.withDescription("Known backbones and their weights"),
  Command.withSubcommands([list, pull])
)
