/**
 * A command-line option together with what its help says about it. The `Options` that parse a flag and the line
 * that documents it are made here together, so `--help` cannot drift from what the command accepts.
 */
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import { Config, Either } from "effect"
import type { Option } from "effect"

export interface FlagDoc {
  readonly name: string
  /** The value's placeholder, e.g. `<dir>`; none for a switch. */
  readonly value?: string
  readonly description: string
  /** The default as shown in help, e.g. `fast` or `$LOUPE_STORE_DIR, else ~/.local/share/loupe`. */
  readonly default?: string
  readonly repeatable: boolean
}

export interface Flag<A> {
  readonly _tag: "Flag"
  readonly options: Options.Options<A>
  readonly doc: FlagDoc
}

const make = <A>(options: Options.Options<A>, doc: Omit<FlagDoc, "repeatable">): Flag<A> => ({
  _tag: "Flag",
  // Kept on the Options too, for @effect/cli's completions and wizard.
  options: Options.withDescription(options, doc.description),
  doc: { ...doc, repeatable: false }
})

export const text = (name: string, value: string, description: string): Flag<string> =>
  make(Options.text(name), { name, value, description })

export const integer = (name: string, value: string, description: string): Flag<number> =>
  make(Options.integer(name), { name, value, description })

export const float = (name: string, value: string, description: string): Flag<number> =>
  make(Options.float(name), { name, value, description })

export const directory = (name: string, description: string, config?: Options.Options.PathOptionsConfig): Flag<string> =>
  make(Options.directory(name, config), { name, value: "<dir>", description })

export const file = (name: string, description: string, config?: Options.Options.PathOptionsConfig): Flag<string> =>
  make(Options.file(name, config), { name, value: "<file>", description })

export const choice = <const C extends ReadonlyArray<string>>(name: string, choices: C, description: string): Flag<C[number]> =>
  make(Options.choice(name, choices), { name, value: `<${choices.join("|")}>`, description })

/** A switch: off unless given. */
export const boolean = (name: string, description: string): Flag<boolean> =>
  make(Options.boolean(name), { name, description })

/** The flag may be left out (`Option.none()`); `shownDefault` says in help what happens then, when something does. */
export const optional = (shownDefault?: string) => <A>(self: Flag<A>): Flag<Option.Option<A>> => ({
  _tag: "Flag",
  options: Options.optional(self.options),
  doc: shownDefault === undefined ? self.doc : { ...self.doc, default: shownDefault }
})

export const withDefault = <A>(value: A, shown: string = String(value)) => (self: Flag<A>): Flag<A> => ({
  _tag: "Flag",
  options: Options.withDefault(self.options, value),
  doc: { ...self.doc, default: shown }
})

/** Read the environment variable `variable` when the flag is not given (before any default). */
export const withFallbackEnv = (variable: string) => (self: Flag<string>): Flag<string> => ({
  _tag: "Flag",
  options: Options.withFallbackConfig(self.options, Config.string(variable)),
  doc: self.doc
})

/** The flag may be given any number of times, zero included. */
export const repeated = <A>(self: Flag<A>): Flag<Array<A>> => ({
  _tag: "Flag",
  options: Options.repeated(self.options),
  doc: { ...self.doc, repeatable: true }
})

/** Check and convert the flag's value: `f` answers the value, or why it is invalid (shown as the command's error). */
export const mapEither = <A, B>(f: (a: A) => Either.Either<B, string>) => (self: Flag<A>): Flag<B> => ({
  _tag: "Flag",
  options: Options.mapEffect(self.options, (a) => Either.mapLeft(f(a), (why) => ValidationError.invalidValue(HelpDoc.p(why)))),
  doc: self.doc
})
