#!/usr/bin/env node
// Builds better-sqlite3's native binding for the Node that runs `pnpm install` (the root postinstall).
//
// Why here and not in better-sqlite3's own install script: that script runs `prebuild-install || node-gyp rebuild`,
// and with no GitHub access node-gyp tries to download Node's headers from nodejs.org, which fails unless
// `npm_config_nodedir` is exported. pnpm 12 reads `nodedir` neither from .npmrc nor from pnpm-workspace.yaml, and a
// .pnpmfile.cjs hook does not reach lifecycle scripts, so pnpm-workspace.yaml denies that script (`allowBuilds`) and
// this one runs the same steps, passing `--nodedir` when the running Node ships its headers beside it (Debian's
// /usr/bin/node has /usr/include/node; the `node` package on npm ships include/node too).
//
// Steps: skip when the binding already loads under this Node (same ABI); else try a prebuilt binary
// (prebuild-install, which fails fast offline); else compile with node-gyp. Run it by hand after switching Node
// versions: `node scripts/build-native.mjs`.
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const log = (msg) => console.log(`build-native: ${msg}`)

// better-sqlite3 as packages/functions resolves it (through @effect/sql-sqlite-node), so it is the copy the store loads.
const packageDir = (() => {
  try {
    const fromFunctions = createRequire(path.join(root, "packages/functions/package.json"))
    const sqliteNode = fromFunctions.resolve("@effect/sql-sqlite-node/package.json")
    return path.dirname(createRequire(sqliteNode).resolve("better-sqlite3/package.json"))
  } catch {
    return undefined
  }
})()
if (packageDir === undefined) {
  // A filtered install (`pnpm install --filter ...`) may leave the dependencies of packages/functions out.
  log("better-sqlite3 is not installed (the dependencies of packages/functions are not), nothing to build")
  process.exit(0)
}
const { version } = JSON.parse(readFileSync(path.join(packageDir, "package.json"), "utf8"))
const binding = path.join(packageDir, "build/Release/better_sqlite3.node")

// Loading in a child process: a binding built for another ABI throws, and the check must not leave this process
// holding a half-loaded module.
const loads = () =>
  existsSync(binding) &&
  spawnSync(process.execPath, ["-e", `process.dlopen({ exports: {} }, ${JSON.stringify(binding)})`], {
    stdio: "ignore"
  }).status === 0

const run = (file, args) =>
  spawnSync(file, args, { cwd: packageDir, stdio: "inherit", env: process.env }).status === 0

const label = `better-sqlite3 ${version} for Node ${process.version} (ABI ${process.versions.modules})`
if (loads()) {
  log(`${label}: binding loads, nothing to build`)
  process.exit(0)
}

const require = createRequire(path.join(packageDir, "package.json"))
const prebuildInstall = (() => {
  try {
    return path.join(path.dirname(require.resolve("prebuild-install/package.json")), "bin.js")
  } catch {
    return undefined
  }
})()
if (prebuildInstall !== undefined) {
  log(`${label}: trying a prebuilt binary`)
  if (run(process.execPath, [prebuildInstall]) && loads()) {
    log(`${label}: prebuilt binary installed`)
    process.exit(0)
  }
}

// node-gyp is a root devDependency, so this does not depend on pnpm putting its own copy on PATH.
const nodeGyp = path.join(
  path.dirname(createRequire(path.join(root, "package.json")).resolve("node-gyp/package.json")),
  "bin/node-gyp.js"
)
const headers = path.resolve(process.execPath, "../..")
const nodedir = existsSync(path.join(headers, "include/node/node.h")) ? headers : undefined
log(`${label}: compiling with node-gyp (${nodedir ? `headers from ${nodedir}` : "downloading Node's headers"})`)
const args = [nodeGyp, "rebuild", "--release", ...(nodedir ? [`--nodedir=${nodedir}`] : [])]
if (!run(process.execPath, args) || !loads()) {
  console.error(`build-native: could not build ${binding}`)
  process.exit(1)
}
log(`${label}: built ${path.relative(root, binding)}`)
