/**
 * `loupe ... --help`, written for people: what the command does, its usage line, its arguments and options with
 * their defaults, and an example, wrapped to 100 columns. Rendered from the commands' own definitions
 * (`DocumentedCommand`); @effect/cli's generated help repeats type names and "This setting is optional." on every
 * option, on lines hundreds of columns wide, and none of its settings (`CliConfig`) turns that off.
 */
import type { CommandDoc } from "./DocumentedCommand.js"
import type { FlagDoc } from "./Flag.js"

/** The widest line help prints. */
export const WIDTH = 100

/** The widest left column (flag or argument) before its description moves to the next line. */
const COLUMN = 30

/** Greedy word wrap; a word longer than `width` stays whole on its own line. */
export const wrap = (text: string, width: number): Array<string> => {
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line.length === 0 ? word : `${line} ${word}`
    }
  }
  if (line.length > 0) lines.push(line)
  return lines
}

/** Rows of `left  right`, the right column wrapped, aligned on the widest left cell up to `COLUMN`. */
const twoColumns = (rows: ReadonlyArray<readonly [string, string]>): Array<string> => {
  const column = Math.min(COLUMN, Math.max(...rows.map(([left]) => left.length)))
  const indent = 2 + column + 2
  return rows.flatMap(([left, right]) => {
    const wrapped = wrap(right, WIDTH - indent)
    const pad = " ".repeat(indent)
    if (left.length > column) return [`  ${left}`, ...wrapped.map((l) => pad + l)]
    return [`  ${left.padEnd(column)}  ${wrapped[0] ?? ""}`, ...wrapped.slice(1).map((l) => pad + l)]
  })
}

const flagLabel = (f: FlagDoc) => `--${f.name}${f.value === undefined ? "" : ` ${f.value}`}${f.repeatable ? " ..." : ""}`

const flagText = (f: FlagDoc) =>
  `${f.description}${f.repeatable ? " (repeatable)" : ""}${f.default === undefined ? "" : ` (default: ${f.default})`}`

/** The options @effect/cli adds to every command; the root also answers `--version` and `--completions`. */
const builtIns = (isRoot: boolean): ReadonlyArray<readonly [string, string]> => [
  ["-h, --help", "Show this help"],
  ...(isRoot
    ? [
      ["--version", "Show Loupe's version"],
      ["--completions <shell>", "Print a completion script for sh, bash, fish or zsh"]
    ] as const
    : [])
]

const usage = (names: string, doc: CommandDoc) => {
  if (doc.subcommands.length > 0) return `${names} <command> [options]`
  const args = doc.args.map((a) => `<${a.name}>${a.variadic ? "..." : ""}`)
  return [names, ...args, ...(doc.flags.length > 0 ? ["[options]"] : [])].join(" ")
}

/** The help of the last command of `path` (the root first, e.g. `[loupe, function, add]`). */
export const render = (path: readonly [CommandDoc, ...Array<CommandDoc>], version: string): string => {
  const doc = path[path.length - 1]!
  const names = path.map((c) => c.name).join(" ")
  const isRoot = path.length === 1
  const sections: Array<Array<string>> = [
    wrap(isRoot ? `${names} ${version}: ${doc.summary}` : doc.summary, WIDTH),
    [`Usage: ${usage(names, doc)}`],
    ...(doc.details ?? []).map((p) => wrap(p, WIDTH))
  ]
  if (doc.subcommands.length > 0) {
    sections.push(["Commands:", ...twoColumns(doc.subcommands.map((s) => [s.name, s.summary]))])
  }
  if (doc.args.length > 0) {
    sections.push(["Arguments:", ...twoColumns(doc.args.map((a) => [`<${a.name}>${a.variadic ? "..." : ""}`, a.description]))])
  }
  sections.push(["Options:", ...twoColumns([...doc.flags.map((f) => [flagLabel(f), flagText(f)] as const), ...builtIns(isRoot)])])
  sections.push([doc.examples.length > 1 ? "Examples:" : "Example:", ...doc.examples.map((e) => `  ${e}`)])
  if (doc.subcommands.length > 0) sections.push([`Run \`${names} <command> --help\` for a command's arguments and options.`])
  return sections.map((lines) => lines.join("\n")).join("\n\n")
}

/**
 * The command path that `args` (the arguments after `loupe`) names, e.g. `[loupe, function, add]` for
 * `function add --help`: the leading words that name subcommands.
 */
export const commandPath = (root: CommandDoc, args: ReadonlyArray<string>): readonly [CommandDoc, ...Array<CommandDoc>] => {
  const path: [CommandDoc, ...Array<CommandDoc>] = [root]
  for (const word of args) {
    const next = path[path.length - 1]!.subcommands.find((s) => s.name === word)
    if (next === undefined) break
    path.push(next)
  }
  return path
}

/**
 * Whether `args` asks for help: `-h` or `--help` before any `--`, or a command that only groups others given
 * nothing else (`loupe`, `loupe function`).
 */
export const isRequested = (root: CommandDoc, args: ReadonlyArray<string>): boolean => {
  const end = args.indexOf("--")
  const flags = end === -1 ? args : args.slice(0, end)
  if (flags.includes("--help") || flags.includes("-h")) return true
  const path = commandPath(root, args)
  return path[path.length - 1]!.subcommands.length > 0 && args.length === path.length - 1
}
