/**
 * `loupe models list` and `loupe models pull <id>`.
 *
 * @since 0.1.0
 */
import { Console, Effect } from "effect"
import { Download } from "@loupe/backbones"
import * as Arg from "./internal/Arg.js"
import { environment, json, modelsDir, offline, plugins } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"

const list = DocumentedCommand.make(
  "list",
  {
    summary: "List the known backbones: embedding size, whether their weights are here, tags and source",
    details: [
      "Status: present (placed by hand: models directory or a path), cached (pulled into the cache directory), remote " +
      "(not here; `loupe models pull` fetches them) or missing (not here, nothing to pull them from)."
    ],
    examples: ["loupe models list --models-dir ./models"]
  },
  { modelsDir, plugins, offline, json },
  (flags) =>
  Effect.gen(function*() {
    const models = yield* Download.list
    if (flags.json) return yield* Console.log(JSON.stringify({ models }))
    const width = Math.max(...models.map((m) => m.id.length))
    for (const m of models) {
      const estimate = m.catalog ? `  ~${m.catalog.estimatedMsPerImage} ms/image on 2 cores (estimated)` : ""
      yield* Console.log(`${m.id.padEnd(width)}  ${String(m.embeddingSize).padStart(5)}-d  ${m.status.padEnd(7)}  ${m.tags.join(",")}  ${m.license}  ${m.source}${estimate}`)
    }
  }).pipe(Effect.provide(environment(flags)))
)

const pull = DocumentedCommand.make(
  "pull",
  {
    summary: "Download a backbone's weights into the cache, each file checked against its sha256",
    details: [
      "The id is one `loupe models list` shows, or any hub repository in the transformers.js layout as " +
      "hf:<org>/<name>[@<revision>] (a branch, tag or commit). Hub files are checked against the hub's checksums, " +
      "written atomically and resumed after a broken-off download; their sizes and sha256 are recorded, and every " +
      "later load checks them. The hub is $HF_ENDPOINT, else https://huggingface.co."
    ],
    examples: ["loupe models pull hf:Xenova/dinov2-small", "loupe models pull hf:Xenova/clip-vit-base-patch32@main"]
  },
  { id: Arg.text("id", "The backbone id, as `loupe models list` shows it, or hf:<org>/<name>[@<revision>]"), modelsDir, plugins, offline, json },
  (flags) =>
  Effect.gen(function*() {
    const pulled = yield* Download.pull(flags.id)
    yield* Console.log(
      flags.json
        ? JSON.stringify(pulled)
        : `${pulled.id}: ${pulled.downloaded ? "downloaded" : "already present"} ${pulled.path} (${pulled.bytes} bytes, sha256 ${pulled.sha256})` +
          (pulled.hub ? `${pulled.hub.commit ? `, commit ${pulled.hub.commit}` : ""}\n${pulled.hub.files.map((f) => `  ${f.file}  ${f.bytes} bytes  sha256 ${f.sha256}`).join("\n")}` : "")
    )
  }).pipe(Effect.provide(environment(flags)))
)

export const command = DocumentedCommand.group(
  "models",
  { summary: "The backbones Loupe knows, and their weights", examples: ["loupe models list"] },
  [list, pull]
)
