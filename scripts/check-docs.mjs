#!/usr/bin/env node
// Checks that every public export of every package carries a doc comment with `@since`.
//
// The public surface of a package is what its `src/index.ts` re-exports: `export * as X from "./X.js"` and
// `export * from "./X.js"` make every export of X public (and X a public module, whose file-level doc, the first
// `/** */` block, must carry `@since` too); `export { a, b as c } from "./X.js"` makes only those names public. A
// public module's own re-exports are followed the same way. Files under `src/internal/` are never public modules.
//
// An export is documented when a `/** */` block with some text besides its tags sits directly above its declaration
// (only whitespace between). For `export { a }` of a local binding, the doc of `a`'s declaration counts, else the
// doc above the `export` statement. Overloads count once, at the first signature.
//
// It parses with the TypeScript compiler the repository already has (no type checking, so it takes about a second).
//
// Usage: node scripts/check-docs.mjs [--report] [package ...]
//   --report   print the counts and the missing exports, but exit 0 (to measure progress)
//   package    only these packages (directory names under packages/, e.g. `metrics`)
// Exit status: 1 when an export or a public module lacks its doc or its `@since` (without --report), 2 on a usage or
// parse problem.
import { existsSync, readdirSync, readFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const reportOnly = args.includes("--report")
const unknownFlags = args.filter((a) => a.startsWith("-") && a !== "--report")
if (unknownFlags.length > 0) {
  console.error(`check-docs: unknown option ${unknownFlags.join(", ")}; usage: check-docs.mjs [--report] [package ...]`)
  process.exit(2)
}
const packagesDir = path.join(root, "packages")
const allPackages = readdirSync(packagesDir).filter((d) => existsSync(path.join(packagesDir, d, "src", "index.ts"))).sort()
const wanted = args.filter((a) => !a.startsWith("-"))
for (const name of wanted) {
  if (!allPackages.includes(name)) {
    console.error(`check-docs: no package "${name}" (packages/${name}/src/index.ts); packages: ${allPackages.join(", ")}`)
    process.exit(2)
  }
}
const packages = wanted.length > 0 ? wanted : allPackages

const since = /@since\s+\d+\.\d+\.\d+/

// ---------------------------------------------------------------------------------------------------------------
// Parsing one file

const parsed = new Map()

/** The source file at `file`, parsed once. */
const parse = (file) => {
  let source = parsed.get(file)
  if (source === undefined) {
    source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
    parsed.set(file, source)
  }
  return source
}

/** The `/** *\/` blocks directly above `node` (only whitespace between them and it), as text. */
const leadingDocs = (source, node) => {
  const ranges = ts.getLeadingCommentRanges(source.text, node.getFullStart()) ?? []
  const docs = []
  // Walk back from the node: stop at the first non-JSDoc comment, since it separates the block from the node.
  for (let i = ranges.length - 1; i >= 0; i--) {
    const text = source.text.slice(ranges[i].pos, ranges[i].end)
    if (!text.startsWith("/**") || text.startsWith("/**/")) break
    docs.unshift(text)
  }
  return docs
}

/** The file-level doc: the first `/** *\/` block before any code, or `undefined`. */
const fileDoc = (source) => {
  const first = source.statements[0]
  const ranges = first === undefined
    ? ts.getLeadingCommentRanges(source.text, 0) ?? []
    : ts.getLeadingCommentRanges(source.text, first.getFullStart()) ?? []
  const doc = ranges.map((r) => source.text.slice(r.pos, r.end)).find((t) => t.startsWith("/**") && !t.startsWith("/**/"))
  return doc
}

/** The doc block of a declaration statement: the last block above it that is not the file-level doc. */
const declarationDoc = (source, node) => {
  const docs = leadingDocs(source, node)
  if (docs.length === 0) return undefined
  const last = docs[docs.length - 1]
  // Above the first statement, a lone block is the file's doc, not the declaration's.
  if (node === source.statements[0] && docs.length === 1 && last === fileDoc(source)) return undefined
  return last
}

/** Whether a doc block says something before its first tag line (`@since`, `@example`, ...). */
const hasText = (doc) => {
  const lines = doc.replace(/^\/\*\*|\*\/$/g, "").split("\n").map((l) => l.replace(/^\s*\*\s?/, "").trim())
  const firstTag = lines.findIndex((l) => /^@[a-zA-Z]+(\s|$)/.test(l))
  return lines.slice(0, firstTag === -1 ? lines.length : firstTag).some((l) => l !== "")
}

const hasModifier = (node, kind) => (ts.canHaveModifiers(node) ? ts.getModifiers(node) ?? [] : []).some((m) => m.kind === kind)

const lineOf = (source, node) => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1

/** Names bound by a (possibly destructuring) binding. */
const bindingNames = (name) =>
  ts.isIdentifier(name) ? [name.text] : name.elements.flatMap((e) => (ts.isOmittedExpression(e) ? [] : bindingNames(e.name)))

/** The names a statement declares, when it is a declaration. */
const declaredNames = (statement) => {
  if (ts.isVariableStatement(statement)) return statement.declarationList.declarations.flatMap((d) => bindingNames(d.name))
  if (
    ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isInterfaceDeclaration(statement) ||
    ts.isTypeAliasDeclaration(statement) || ts.isEnumDeclaration(statement) || ts.isModuleDeclaration(statement)
  ) {
    return statement.name === undefined ? [] : [statement.name.text]
  }
  return []
}

/** Resolves `./X.js` (as written in TypeScript sources) from `file` to a `.ts` file, or `undefined` when external. */
const resolve = (file, specifier) => {
  if (!specifier.startsWith(".")) return undefined
  const base = path.resolve(path.dirname(file), specifier)
  const candidates = [base.replace(/\.(m|c)?js$/, ".$1ts"), `${base}.ts`, path.join(base, "index.ts"), base]
  const found = candidates.find((c) => c.endsWith(".ts") && existsSync(c))
  if (found === undefined) throw new Error(`${path.relative(root, file)}: cannot resolve "${specifier}"`)
  return found
}

// ---------------------------------------------------------------------------------------------------------------
// The exports of one module

/**
 * Every export of `file`, each as `{ name, file, line, doc }` where `file`/`line` locate the declaration whose doc
 * counts. `modules` collects the files that become public modules through `export * as`.
 */
const moduleExports = (file, modules, seen = new Set()) => {
  if (seen.has(file)) return [] // an export cycle adds nothing new
  seen.add(file)
  const source = parse(file)
  const out = []
  const record = (name, node) => out.push({ name, file, line: lineOf(source, node), doc: declarationDoc(source, node) })
  const functionsSeen = new Set()
  const locals = new Map() // name -> declaring statement (first one)
  const imports = new Map() // local name -> { specifier, imported }
  for (const statement of source.statements) {
    for (const name of declaredNames(statement)) if (!locals.has(name)) locals.set(name, statement)
    if (ts.isImportDeclaration(statement) && statement.importClause !== undefined) {
      const specifier = statement.moduleSpecifier.text
      const clause = statement.importClause
      if (clause.name !== undefined) imports.set(clause.name.text, { specifier, imported: "default" })
      const bindings = clause.namedBindings
      if (bindings !== undefined && ts.isNamedImports(bindings)) {
        for (const el of bindings.elements) {
          imports.set(el.name.text, { specifier, imported: (el.propertyName ?? el.name).text })
        }
      }
    }
  }
  /** The exports named `name` of the module `specifier` (relative to this file), renamed `as`. */
  const fromModule = (specifier, name, as, statement) => {
    const target = resolve(file, specifier)
    if (target === undefined) return [{ name: as, file, line: lineOf(source, statement), doc: declarationDoc(source, statement) }]
    const found = moduleExports(target, modules, new Set(seen)).filter((e) => e.name === name)
    if (found.length === 0) throw new Error(`${path.relative(root, file)}: "${specifier}" has no export ${name}`)
    return found.map((e) => ({ ...e, name: as }))
  }
  for (const statement of source.statements) {
    if (ts.isExportDeclaration(statement)) {
      const specifier = statement.moduleSpecifier?.text
      const clause = statement.exportClause
      if (clause === undefined) {
        // export * from "./X.js"
        const target = resolve(file, specifier)
        if (target === undefined) record(`* from "${specifier}"`, statement)
        else out.push(...moduleExports(target, modules, new Set(seen)).filter((e) => e.name !== "default"))
      } else if (ts.isNamespaceExport(clause)) {
        // export * as X from "./X.js": X is a public module
        const target = resolve(file, specifier)
        if (target === undefined) record(clause.name.text, statement)
        else {
          modules.add(target)
          out.push(...moduleExports(target, modules, new Set(seen)).map((e) => ({ ...e, name: `${clause.name.text}.${e.name}` })))
        }
      } else {
        for (const el of clause.elements) {
          const local = (el.propertyName ?? el.name).text
          const as = el.name.text
          if (specifier !== undefined) out.push(...fromModule(specifier, local, as, statement))
          else if (locals.has(local)) {
            const decl = locals.get(local)
            out.push({ name: as, file, line: lineOf(source, decl), doc: declarationDoc(source, decl) ?? declarationDoc(source, statement) })
          } else if (imports.has(local) && imports.get(local).specifier.startsWith(".")) {
            const { specifier: from, imported } = imports.get(local)
            out.push(...fromModule(from, imported, as, statement))
          } else record(as, statement)
        }
      }
      continue
    }
    if (ts.isExportAssignment(statement)) {
      record(statement.isExportEquals ? "export =" : "default", statement)
      continue
    }
    if (!hasModifier(statement, ts.SyntaxKind.ExportKeyword)) continue
    const isDefault = hasModifier(statement, ts.SyntaxKind.DefaultKeyword)
    if (ts.isFunctionDeclaration(statement)) {
      const name = isDefault ? "default" : statement.name.text
      if (functionsSeen.has(name)) continue // a later overload or the implementation
      functionsSeen.add(name)
      record(name, statement)
      continue
    }
    const names = declaredNames(statement)
    for (const name of isDefault ? ["default"] : names) record(name, statement)
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Per package

const isInternal = (pkgDir, file) => path.relative(path.join(pkgDir, "src"), file).split(path.sep)[0] === "internal"

let failing = false
const rows = []
const missing = []
for (const pkg of packages) {
  const pkgDir = path.join(packagesDir, pkg)
  const index = path.join(pkgDir, "src", "index.ts")
  const modules = new Set([index])
  let entries
  try {
    entries = moduleExports(index, modules)
  } catch (error) {
    console.error(`check-docs: ${pkg}: ${error.message}`)
    process.exit(2)
  }
  // One entry per declaration: a declaration reached twice (`export * as Heads` and `export { heads }`) counts once.
  const unique = new Map()
  for (const e of entries) {
    const key = `${e.file}:${e.line}:${e.name.split(".").pop()}`
    if (!unique.has(key)) unique.set(key, e)
  }
  const declarations = [...unique.values()]
  const documented = declarations.filter((e) => e.doc !== undefined && hasText(e.doc))
  const withSince = declarations.filter((e) => e.doc !== undefined && since.test(e.doc))
  const problems = []
  for (const e of declarations) {
    const what = e.doc === undefined
      ? "no doc comment"
      : [...(hasText(e.doc) ? [] : ["doc has no text"]), ...(since.test(e.doc) ? [] : ["no @since"])].join(", ")
    if (what !== "") problems.push({ file: e.file, line: e.line, text: `${e.name}: ${what}` })
  }
  const publicModules = [...modules].filter((m) => !isInternal(pkgDir, m)).sort()
  let modulesWithSince = 0
  for (const m of publicModules) {
    const doc = fileDoc(parse(m))
    if (doc !== undefined && since.test(doc)) modulesWithSince++
    else problems.push({ file: m, line: 1, text: `(module doc) ${doc === undefined ? "no file-level doc comment" : "no @since"}` })
  }
  problems.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line)
  rows.push({
    pkg,
    exports: declarations.length,
    documented: documented.length,
    since: withSince.length,
    modules: publicModules.length,
    modulesWithSince,
    missing: problems.length
  })
  for (const p of problems) missing.push(`${path.relative(root, p.file)}:${p.line} ${p.text}`)
  if (problems.length > 0) failing = true
}

if (missing.length > 0) {
  console.log(missing.join("\n"))
  console.log("")
}
const header = ["package", "exports", "documented", "with @since", "modules", "module @since", "missing"]
const table = [
  header,
  ...rows.map((r) => [r.pkg, r.exports, r.documented, r.since, r.modules, r.modulesWithSince, r.missing].map(String))
]
const total = rows.reduce(
  (t, r) => [t[0] + r.exports, t[1] + r.documented, t[2] + r.since, t[3] + r.modules, t[4] + r.modulesWithSince, t[5] + r.missing],
  [0, 0, 0, 0, 0, 0]
)
if (rows.length > 1) table.push(["total", ...total.map(String)])
const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)))
for (const row of table) console.log(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  "))
if (failing) {
  console.log(`\n${total[5]} missing: every public export and public module needs a doc comment with @since`)
}
process.exit(failing && !reportOnly ? 1 : 0)
