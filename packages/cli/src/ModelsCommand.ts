/**
 * `loupe models list` and `loupe models pull <id>`.
 *
 * @since 0.1.0
 */
import { Console, Effect } from "effect"
import { Download } from "@loupe/backbones"
import * as Arg from "./internal/Arg.js"
import { environment, json, modelsDir, plugins } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"

const list = DocumentedCommand.make(
  "list",
  {
    summary: "List the known backbones: embedding size, whether their weights are here, tags and source",
    examples: ["loupe models list --models-dir ./models"]
  },
  { modelsDir, plugins, json },
  (flags) =>
  Effect.gen(function*() {
    const models = yield* Download.list
    if (flags.json) return yield* Console.log(JSON.stringify({ models }))
    const width = Math.max(...models.map((m) => m.id.length))
    for (const m of models) {
      const status = m.present ? "present" : m.pullable ? "pullable" : "missing"
      yield* Console.log(`${m.id.padEnd(width)}  ${String(m.embeddingSize).padStart(5)}-d  ${status.padEnd(8)}  ${m.tags.join(",")}  ${m.source}`)
    }
  }).pipe(Effect.provide(environment(flags)))
)

const pull = DocumentedCommand.make(
  "pull",
  {
    summary: "Download a backbone's weights into the models folder, checked against their sha256",
    examples: ["loupe models pull onnx:mobilenetv2-int8 --models-dir ./models"]
  },
  { id: Arg.text("id", "The backbone id, as `loupe models list` shows it"), modelsDir, plugins, json },
  (flags) =>
  Effect.gen(function*() {
    const pulled = yield* Download.pull(flags.id)
    yield* Console.log(
      flags.json
        ? JSON.stringify(pulled)
        : `${pulled.id}: ${pulled.downloaded ? "downloaded" : "already present"} ${pulled.path} (${pulled.bytes} bytes, sha256 ${pulled.sha256})`
    )
  }).pipe(Effect.provide(environment(flags)))
)

export const command = DocumentedCommand.group(
  "models",
  { summary: "The backbones Loupe knows, and their weights", examples: ["loupe models list"] },
  [list, pull]
)
