/**
 * `loupe keys create|list|revoke`: the API keys of `loupe serve`, kept hashed in the store's `keys.json` (or any key
 * file, `--file`, e.g. one to mount into an exported Docker image). A key is printed once, when it is created. A
 * running server notices new and revoked keys within a second.
 *
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { ApiKeys } from "@loupe/deploy"
import { Console, Effect, Option } from "effect"
import * as path from "node:path"
import { store } from "./FunctionCommand.js"
import { json } from "./internal/cliOptions.js"

const file = Options.file("file").pipe(
  Options.withDescription("The key file to use instead of the store's keys.json"),
  Options.optional
)

const keysIn = (flags: { readonly store: string; readonly file: Option.Option<string> }) =>
  ApiKeys.make(Option.getOrElse(flags.file, () => ApiKeys.fileIn(path.resolve(flags.store))))

const create = Command.make(
  "create",
  { store, file, json, name: Options.text("name").pipe(Options.withDescription("What the key is for"), Options.withDefault("default")) },
  (flags) =>
    Effect.gen(function*() {
      const keys = yield* keysIn(flags)
      const key = yield* keys.create(flags.name)
      if (flags.json) return yield* Console.log(JSON.stringify({ ...key, file: keys.file }))
      yield* Console.log(key.token)
      yield* Console.error(`Created key ${key.id} (${key.name}) in ${keys.file}. It is shown only now; send it as "Authorization: Bearer <key>".`)
    })
).pipe(Command.withDescription("Create an API key and print it (once)"))

const list = Command.make("list", { store, file, json }, (flags) =>
  Effect.gen(function*() {
    const keys = yield* keysIn(flags)
    const all = yield* keys.list
    if (flags.json) return yield* Console.log(JSON.stringify({ keys: all }))
    for (const k of all) {
      yield* Console.log(`${k.id}\t${k.name}\t${k.createdAt}${k.revokedAt === undefined ? "" : `\trevoked ${k.revokedAt}`}`)
    }
  })).pipe(Command.withDescription("List API keys (ids and names; keys themselves are not stored)"))

const revoke = Command.make("revoke", { store, file, json, id: Args.text({ name: "key-id" }) }, (flags) =>
  Effect.gen(function*() {
    const keys = yield* keysIn(flags)
    const revoked = yield* keys.revoke(flags.id)
    yield* Console.log(flags.json ? JSON.stringify(revoked) : `Revoked ${revoked.id} (${revoked.name})`)
  })).pipe(Command.withDescription("Revoke an API key by id"))

export const command = Command.make("keys").pipe(
  Command.withDescription("API keys for loupe serve"),
  Command.withSubcommands([create, list, revoke])
)
