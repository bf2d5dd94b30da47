// @ts-check
// The built `loupe` command, for the benchmarks that run it in its own process (`pnpm build` first).
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The built CLI's entry, `packages/cli/dist/cli.js`. */
export const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../packages/cli/dist/cli.js")

/**
 * Run `loupe ...argv` with the environment `env` to completion; resolves with its stdout (its stderr goes to ours).
 *
 * @param {NodeJS.ProcessEnv} env
 * @param {Array<string>} argv
 * @returns {Promise<string>}
 */
export const runLoupe = (env, argv) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...argv], { env, stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.on("data", (c) => (out += c))
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`loupe ${argv.join(" ")} exited with ${code}`))))
  })
