/**
 * A `loupe` command made from documented flags and arguments: the @effect/cli `Command` that parses and runs it,
 * and the `CommandDoc` that `HelpText` renders. Both come from the same definitions (one source of truth).
 */
import { Command } from "@effect/cli"
import type { Effect } from "effect"
import { Record } from "effect"
import type { Arg, ArgDoc } from "./Arg.js"
import type { Flag, FlagDoc } from "./Flag.js"

export interface About {
  /** One line, for command lists. */
  readonly summary: string
  /** Paragraphs shown under the usage line. */
  readonly details?: ReadonlyArray<string>
  /** Complete command lines, starting with `loupe`. */
  readonly examples: readonly [string, ...Array<string>]
}

export interface CommandDoc extends About {
  readonly name: string
  readonly args: ReadonlyArray<ArgDoc>
  readonly flags: ReadonlyArray<FlagDoc>
  readonly subcommands: ReadonlyArray<CommandDoc>
}

export interface Documented<Name extends string, R, E> {
  readonly command: Command.Command<Name, R, E, any>
  readonly doc: CommandDoc
}

type Spec = Readonly<Record<string, Flag<any> | Arg<any>>>

/** What the handler receives: each flag's and argument's parsed value, by key. */
export type Parsed<S extends Spec> = {
  readonly [K in keyof S]: S[K] extends Flag<infer A> ? A : S[K] extends Arg<infer A> ? A : never
}

/** A command that runs `handler` on its parsed flags and arguments (arguments are taken in the order of `spec`). */
export const make = <Name extends string, const S extends Spec, R, E>(
  name: Name,
  about: About,
  spec: S,
  handler: (parsed: Parsed<S>) => Effect.Effect<void, E, R>
): Documented<Name, R, E> => {
  const config = Record.map(spec, (input): Command.Command.Config[string] => (input._tag === "Flag" ? input.options : input.args))
  const inputs = Object.values(spec)
  return {
    // The config maps each key to the Options or Args of the same key, so @effect/cli parses exactly `Parsed<S>`.
    command: Command.make(name, config, handler as (parsed: unknown) => Effect.Effect<void, E, R>).pipe(
      Command.withDescription(about.summary)
    ),
    doc: {
      name,
      ...about,
      args: inputs.flatMap((i) => (i._tag === "Arg" ? [i.doc] : [])),
      flags: inputs.flatMap((i) => (i._tag === "Flag" ? [i.doc] : [])),
      subcommands: []
    }
  }
}

type AnyDocumented = Documented<any, any, any>

type RequirementsOf<D> = D extends Documented<any, infer R, any> ? R : never
type ErrorOf<D> = D extends Documented<any, any, infer E> ? E : never

/** A command that only groups subcommands (`loupe function add|invoke|...`). */
export const group = <Name extends string, const Subs extends readonly [AnyDocumented, ...Array<AnyDocumented>]>(
  name: Name,
  about: About,
  subcommands: Subs
): Documented<Name, RequirementsOf<Subs[number]>, ErrorOf<Subs[number]>> => {
  const [first, ...rest] = subcommands
  return {
    command: Command.make(name).pipe(
      Command.withDescription(about.summary),
      Command.withSubcommands([first.command, ...rest.map((s) => s.command)])
    ),
    doc: { name, ...about, args: [], flags: [], subcommands: subcommands.map((s) => s.doc) }
  }
}
