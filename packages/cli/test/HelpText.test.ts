// `loupe ... --help` as a new user reads it, for every command: found by following the "Commands:" lists from
// `loupe --help`, so a new command is checked without being listed here.
import { describe, expect, it } from "vitest"
import { loupe } from "./fixtures/cli.js"

const texts = new Map<string, string>()

/** `loupe <path> --help`, run once per path (each run starts a Node process). */
const help = (path: ReadonlyArray<string>): string => {
  const key = path.join(" ")
  if (!texts.has(key)) {
    const run = loupe([...path, "--help"])
    expect(run.status, run.stderr).toBe(0)
    expect(run.stderr).toBe("")
    texts.set(key, run.stdout)
  }
  return texts.get(key)!
}

/** The subcommands a help text lists under "Commands:". */
const subcommands = (text: string): Array<string> => {
  const section = /^Commands:\n((?: {2}.*\n?)+)/m.exec(text)?.[1] ?? ""
  return section.split("\n").flatMap((line) => /^ {2}([a-z][a-z-]*) /.exec(line)?.[1] ?? [])
}

const allCommands = (): Array<Array<string>> => {
  const found: Array<Array<string>> = []
  const visit = (path: Array<string>) => {
    found.push(path)
    for (const sub of subcommands(help(path))) visit([...path, sub])
  }
  visit([])
  return found
}

const commands = allCommands()

describe("loupe --help", () => {
  it("finds every command", () => {
    expect(commands.map((c) => c.join(" "))).toEqual(expect.arrayContaining(["train", "predict", "evaluate", "function add", "serve", "keys create", "export"]))
  })

  it.each(commands.map((c) => [c.join(" ") || "(root)", c] as const))("%s: usage, example, width, no filler", (_, path) => {
    const text = help(path)
    const name = ["loupe", ...path].join(" ")
    const lines = text.split("\n")
    expect(lines.filter((l) => l.startsWith("Usage: "))).toEqual([expect.stringMatching(new RegExp(`^Usage: ${name}( |$)`))])
    const examples = lines.slice(lines.findIndex((l) => /^Examples?:$/.test(l)) + 1)
    expect(examples[0]).toMatch(new RegExp(`^ {2}${name}\\b`))
    expect(lines.filter((l) => l.length > 100)).toEqual([])
    expect(text).not.toMatch(/A user-defined piece of text|This setting is optional|\x1b\[/)
    // Every option says what it does.
    for (const line of lines.filter((l) => /^ {2}--/.test(l))) expect(line.replace(/^ {2}--\S+( <[^>]+>)?( \.\.\.)?/, "").trim()).not.toBe("")
  })

  it("shows defaults, and that repeatable options are optional", () => {
    const train = help(["train"])
    expect(train).toMatch(/--out <dir> +[^\n]*(\n {4,}[^\n]*)*\(default: \.\/loupe-model\)/)
    expect(train).toMatch(/\(default: fast\)/)
    expect(train).toMatch(/--seed <n> +\S/)
    expect(train).toMatch(/--backbone <id> \.\.\. +[^\n]*(\n {4,}[^\n]*)*\(repeatable\)/)
    expect(train).not.toMatch(/--backbone text/)
    expect(help(["serve"])).toMatch(/\(default: 8080\)/)
  })

  it("answers a usage mistake with the command's help hint", () => {
    const run = loupe(["train"])
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(/Missing argument <dir>/)
    expect(run.stderr).toMatch(/Run `loupe train --help` for usage/)
  })
})
