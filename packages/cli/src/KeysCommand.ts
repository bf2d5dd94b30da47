/**
 * `loupe keys create|list|revoke`: the API keys of `loupe serve`, kept hashed in the store's `keys.json`, in the
 * `api_keys` table of a Postgres store (`--store postgres://...`), or in any key file (`--file`, e.g. one to mount
 * into an exported Docker image). A key is printed once, when it is created. A
 * running server notices new and revoked keys within a second.
 *
 * @since 0.1.0
 */
import { ApiKeys, DeployError } from "@loupe/deploy"
import { SharedState } from "@loupe/functions"
import type { StoreLocation } from "@loupe/functions"
import { Console, Context, Effect, Layer, Option, pipe } from "effect"
import * as path from "node:path"
import { store } from "./FunctionCommand.js"
import * as Arg from "./internal/Arg.js"
import { json } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"
import * as Flag from "./internal/Flag.js"

const file = pipe(
  Flag.file("file", "The key file to use instead of the store's keys.json (e.g. one to mount into a Docker image)"),
  Flag.optional()
)

/**
 * The keys in `--file`, else the store's (`SharedState.apiKeysAt`): its `keys.json`, or a Postgres store's
 * `api_keys` table. Open for the scope.
 */
const keysIn = (flags: { readonly store: StoreLocation.StoreLocation; readonly file: Option.Option<string> }) =>
  Option.match(flags.file, {
    onSome: (file) => ApiKeys.make(path.resolve(file)),
    onNone: () => Effect.map(Layer.build(SharedState.apiKeysAt(flags.store)), Context.get(ApiKeys.ApiKeys))
  })

/** The environment variable that allows `--secret`: a chosen secret is for test setups only. */
const CHOSEN_SECRETS = "LOUPE_TEST_ALLOW_CHOSEN_SECRET"

const create = DocumentedCommand.make(
  "create",
  {
    summary: "Create an API key and print it: it is shown this once only",
    details: [
      "With --client-id, the key is also an OAuth2 client by that id (as Nyckel's clients sign in: POST /connect/token " +
      "with the client id and the key as secret), and both are printed. Every key is a client by its id otherwise. " +
      `--secret sets the secret instead of drawing one, for test setups only: it is refused unless ${CHOSEN_SECRETS}=1.`
    ],
    examples: ["loupe keys create --name my-app --store ./store", "loupe keys create --name nyckel-app --client-id my-app --store ./store"]
  },
  {
    store,
    file,
    json,
    name: pipe(Flag.text("name", "<name>", "What the key is for"), Flag.withDefault("default")),
    clientId: pipe(Flag.text("client-id", "<id>", "An OAuth2 client id for the key (for Nyckel's clients)"), Flag.optional()),
    secret: pipe(Flag.text("secret", "<secret>", `Test setups only (needs ${CHOSEN_SECRETS}=1): use this secret instead of a random key`), Flag.optional())
  },
  (flags) =>
    Effect.gen(function*() {
      const secret = Option.getOrUndefined(flags.secret)
      if (secret !== undefined && process.env[CHOSEN_SECRETS] !== "1") {
        return yield* new DeployError.DeployError({
          reason: "InvalidRequest",
          field: "secret",
          message: `--secret is for test setups only: set ${CHOSEN_SECRETS}=1 to use a chosen secret`
        })
      }
      const keys = yield* keysIn(flags)
      const key = yield* keys.create(flags.name, { clientId: Option.getOrUndefined(flags.clientId), secret })
      if (flags.json) return yield* Console.log(JSON.stringify({ ...key, file: keys.file }))
      if (key.clientId !== undefined) {
        yield* Console.log(`client id:     ${key.clientId}\nclient secret: ${key.token}`)
        return yield* Console.error(`Created key ${key.id} (${key.name}) in ${keys.file}. The secret is shown only now; trade both for an access token at POST /connect/token.`)
      }
      yield* Console.log(key.token)
      yield* Console.error(`Created key ${key.id} (${key.name}) in ${keys.file}. It is shown only now; send it as "Authorization: Bearer <key>".`)
    }).pipe(Effect.scoped)
)

const list = DocumentedCommand.make(
  "list",
  {
    summary: "List the API keys: ids, names and dates (the keys themselves are stored hashed only)",
    examples: ["loupe keys list --store ./store"]
  },
  { store, file, json },
  (flags) =>
  Effect.gen(function*() {
    const keys = yield* keysIn(flags)
    const all = yield* keys.list
    if (flags.json) return yield* Console.log(JSON.stringify({ keys: all }))
    for (const k of all) {
      yield* Console.log(`${k.id}\t${k.name}\t${k.createdAt}${k.revokedAt === undefined ? "" : `\trevoked ${k.revokedAt}`}`)
    }
  }).pipe(Effect.scoped)
)

const revoke = DocumentedCommand.make(
  "revoke",
  { summary: "Revoke an API key: a running server refuses it within a second", examples: ["loupe keys revoke 3f9a2c1e --store ./store"] },
  { store, file, json, id: Arg.text("key-id", "The key's id, as `loupe keys list` shows it") },
  (flags) =>
  Effect.gen(function*() {
    const keys = yield* keysIn(flags)
    const revoked = yield* keys.revoke(flags.id)
    yield* Console.log(flags.json ? JSON.stringify(revoked) : `Revoked ${revoked.id} (${revoked.name})`)
  }).pipe(Effect.scoped)
)

export const command = DocumentedCommand.group(
  "keys",
  { summary: "The API keys that `loupe serve` accepts", examples: ["loupe keys create --name my-app --store ./store"] },
  [create, list, revoke]
)
