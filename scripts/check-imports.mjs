#!/usr/bin/env node
// The import rules of ../shared/docs/ARCHITECTURE.md, checked from the sources: which package may import which, and
// that examples and benchmarks use package entry points only. It reads every import in packages/*/src, examples and
// bench (static, dynamic and `export ... from`) and each package.json, and exits 1 listing every edge that breaks a
// rule. Run by `pnpm test` (and so by CI).
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

// package -> the packages it may import. Dependencies point down; nothing else is allowed.
const allowed = {
  core: [],
  backbones: ["core"],
  metrics: ["core"],
  trainers: ["core", "metrics"],
  deploy: ["core", "backbones"],
  functions: ["core", "backbones", "trainers", "metrics", "deploy"],
  cli: ["core", "backbones", "trainers", "metrics", "deploy", "functions"]
}

const sourceFile = /\.(ts|mts|js|mjs)$/
const walk = (dir) =>
  fs.existsSync(dir)
    ? fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) return ["node_modules", "dist", ".turbo"].includes(entry.name) ? [] : walk(full)
      return sourceFile.test(entry.name) && !entry.name.endsWith(".d.ts") ? [full] : []
    })
    : []

// `import ... from "x"`, `export ... from "x"`, `import "x"`, `import("x")`, `import type ... from "x"`, and a
// dynamic import of a computed path into packages/ (`import(`${root}/packages/core/dist/index.js`)`).
const specifierPattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm
const computedPattern = /\bimport\s*\(\s*(?:`[^`]*(\/packages\/[^`]*)`|new\s+URL\(\s*["'`]([^"'`]*(?:packages|node_modules)\/[^"'`]*)["'`])/gm
// Comments are blanked (newlines kept, so line numbers hold): doc examples show imports that are not edges.
const withoutComments = (text) =>
  text.replace(/^\s*\/\*[\s\S]*?\*\//gm, (c) => c.replace(/[^\n]/g, " ")).replace(/^\s*\/\/.*$/gm, "")
const importsOf = (file) => {
  const text = withoutComments(fs.readFileSync(file, "utf8"))
  const at = (m) => text.slice(0, m.index).split("\n").length
  return [
    ...[...text.matchAll(specifierPattern)].map((m) => ({ specifier: m[1], line: at(m) })),
    ...[...text.matchAll(computedPattern)].map((m) => ({ specifier: `<computed>${m[1] ?? m[2]}`, line: at(m), computed: true }))
  ]
}

const relative = (file) => path.relative(root, file)
const problems = []
const packages = fs.readdirSync(path.join(root, "packages")).filter((p) =>
  fs.existsSync(path.join(root, "packages", p, "package.json"))
)

// The entry points each package declares (`exports` keys): `@loupe/core`, `@loupe/core/onnx`, ...
const entryPoints = new Set(packages.flatMap((p) => {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, "packages", p, "package.json"), "utf8"))
  return Object.keys(manifest.exports ?? { ".": null }).map((key) => path.posix.join(manifest.name, key))
}))

for (const pkg of packages) {
  if (!(pkg in allowed)) {
    problems.push(`packages/${pkg}: not in the import rules (scripts/check-imports.mjs); add it where it belongs`)
    continue
  }
  const may = new Set(allowed[pkg])
  const used = new Set()
  for (const file of walk(path.join(root, "packages", pkg, "src"))) {
    for (const { line, specifier } of importsOf(file)) {
      if (specifier.startsWith(".")) {
        const target = path.resolve(path.dirname(file), specifier)
        if (!target.startsWith(path.join(root, "packages", pkg, "src") + path.sep)) {
          problems.push(`${relative(file)}:${line}: imports ${specifier}, outside its package's src`)
        }
        continue
      }
      const match = /^@loupe\/([^/]+)/.exec(specifier)
      if (!match) continue
      const target = match[1]
      if (target === pkg) {
        problems.push(`${relative(file)}:${line}: imports its own package by name (${specifier}); use a relative import`)
        continue
      }
      used.add(target)
      if (!may.has(target)) problems.push(`${relative(file)}:${line}: ${pkg} -> ${target} is not allowed (${specifier})`)
      else if (!entryPoints.has(specifier)) problems.push(`${relative(file)}:${line}: ${specifier} is not an entry point of @loupe/${target}`)
    }
  }
  // A declared workspace dependency must be allowed and used; an import must be declared.
  const manifest = JSON.parse(fs.readFileSync(path.join(root, "packages", pkg, "package.json"), "utf8"))
  const declared = Object.keys(manifest.dependencies ?? {}).filter((d) => d.startsWith("@loupe/")).map((d) => d.slice(7))
  for (const d of declared) {
    if (!may.has(d)) problems.push(`packages/${pkg}/package.json: depends on @loupe/${d}, which ${pkg} may not import`)
    else if (!used.has(d)) problems.push(`packages/${pkg}/package.json: depends on @loupe/${d} and never imports it`)
  }
  for (const u of used) {
    if (!declared.includes(u)) problems.push(`packages/${pkg}: imports @loupe/${u} without declaring it in package.json`)
  }
}

// Examples and benchmarks: public entry points only, never a package's files by path.
for (const dir of ["examples", "bench"]) {
  for (const file of walk(path.join(root, dir))) {
    for (const { computed, line, specifier } of importsOf(file)) {
      const intoPackages = computed === true || specifier.startsWith(".") &&
        path.resolve(path.dirname(file), specifier).startsWith(path.join(root, "packages") + path.sep)
      const deep = /^@loupe\//.test(specifier) && !entryPoints.has(specifier)
      const intoModules = /(^|\/)node_modules\//.test(specifier)
      if (intoPackages || deep || intoModules) {
        problems.push(`${relative(file)}:${line}: imports ${specifier}; use a package entry point (@loupe/<name>)`)
      }
    }
  }
}

if (problems.length > 0) {
  console.error(`check-imports: ${problems.length} import rule(s) broken:\n  ${problems.join("\n  ")}`)
  process.exit(1)
}
console.log(`check-imports: ${packages.length} packages, examples and bench follow the import rules`)
