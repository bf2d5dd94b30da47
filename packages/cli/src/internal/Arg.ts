/**
 * A positional argument together with what its help says about it (see `Flag` for why they are made together).
 */
import { Args } from "@effect/cli"

export interface ArgDoc {
  readonly name: string
  readonly description: string
  /** Given one or more times. */
  readonly variadic: boolean
}

export interface Arg<A> {
  readonly _tag: "Arg"
  readonly args: Args.Args<A>
  readonly doc: ArgDoc
}

const make = <A>(args: Args.Args<A>, name: string, description: string): Arg<A> => ({
  _tag: "Arg",
  args: Args.withDescription(args, description),
  doc: { name, description, variadic: false }
})

export const text = (name: string, description: string): Arg<string> => make(Args.text({ name }), name, description)

export const directory = (name: string, description: string, config: Omit<Args.Args.PathArgsConfig, "name"> = {}): Arg<string> =>
  make(Args.directory({ ...config, name }), name, description)

export const file = (name: string, description: string, config: Omit<Args.Args.PathArgsConfig, "name"> = {}): Arg<string> =>
  make(Args.file({ ...config, name }), name, description)

export const path = (name: string, description: string, config: Omit<Args.Args.PathArgsConfig, "name"> = {}): Arg<string> =>
  make(Args.path({ ...config, name }), name, description)

/** One or more of the argument. */
export const atLeastOne = <A>(self: Arg<A>): Arg<[A, ...Array<A>]> => ({
  _tag: "Arg",
  args: Args.atLeast(self.args, 1),
  doc: { ...self.doc, variadic: true }
})
