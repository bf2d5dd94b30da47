// @ts-check
// `loupe serve` under load, for bench/serve and bench/scale: start the built CLI's server on a store (a folder or a
// postgres:// URL) in its own process, train a function on 10 + 10 cats-vs-dogs photos through the API, and invoke
// it with one image at a given concurrency, timing each request and the server's CPU.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { sharedDir } from "../../test/fixtures/shared.mjs"
import { cli, runLoupe } from "./cli.mjs"

export { cli }

/** Run the CLI to completion with `env` and return its stdout. */
export const loupe = runLoupe

/** Resident memory (MiB) and CPU time (ms, user + system) of a process, from /proc. */
export const processStats = (/** @type {number} */ pid) => {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")
  const ticks = Number(fields[11]) + Number(fields[12])
  return { rss, cpuMs: (ticks * 1000) / 100 }
}

/** The `p`th percentile of ascending `sorted`. */
export const percentile = (/** @type {Array<number>} */ sorted, /** @type {number} */ p) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

/**
 * `loupe serve --store <store> --port 0` with a rate limit high enough not to interfere, plus `args`; answers once it
 * listens, with its URL, pid, an API key made for it, a JSON `call` helper and `stop`.
 */
export const startServe = async (
  /** @type {{ readonly store: string; readonly env: Record<string, string | undefined>; readonly args?: Array<string> }} */ options
) => {
  const { env, store } = options
  const token = JSON.parse(String(await loupe(env, ["keys", "create", "--store", store, "--name", "bench", "--json"]))).token
  const server = spawn(process.execPath, [cli, "serve", "--store", store, "--port", "0", "--rate-limit", "100000", ...(options.args ?? [])], {
    env,
    stdio: ["ignore", "pipe", "inherit"]
  })
  /** @type {string} */
  const url = await new Promise((resolve, reject) => {
    let out = ""
    server.stdout.on("data", (c) => {
      out += c
      const match = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (match) resolve(match[1])
    })
    server.on("exit", (code) => reject(new Error(`loupe serve exited with ${code}`)))
  })
  const call = async (/** @type {string} */ method, /** @type {string} */ route, /** @type {unknown} */ body) => {
    const response = await fetch(`${url}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return response.json()
  }
  let stopping = false
  const stopped = new Promise((resolve) =>
    server.on("exit", (code, signal) => {
      if (!stopping) console.error(`loupe serve on ${store} exited by itself: code ${code}, signal ${signal}`)
      resolve(undefined)
    })
  )
  return {
    url,
    token,
    pid: /** @type {number} */ (server.pid),
    call,
    stop: async () => {
      stopping = true
      server.kill("SIGTERM")
      await stopped
    }
  }
}

/**
 * A function trained through the API on the first 10 + 10 cats-vs-dogs train photos (`fast` preset, with `overrides`);
 * answers its id and its detail once its model serves and no retrain is pending.
 */
export const trainedFunction = async (
  /** @type {(method: string, route: string, body?: unknown) => Promise<any>} */ call,
  /** @type {Record<string, unknown> | undefined} */ overrides
) => {
  const fn = (await call("POST", "/v1/functions", { name: "bench", preset: "fast", ...(overrides ? { overrides } : {}) })).id
  for (const label of ["cats", "dogs"]) {
    const dir = path.join(sharedDir, "datasets/cats-vs-dogs/train", label)
    for (const file of fs.readdirSync(dir).sort().slice(0, 10)) {
      const data = `data:image/jpeg;base64,${fs.readFileSync(path.join(dir, file)).toString("base64")}`
      await call("POST", `/v1/functions/${fn}/samples`, { data, annotation: { labelName: label } })
    }
  }
  // A GET again when the connection drops: while the server trains in process its event loop can stall past the
  // server's 3 s header timeout under load, and it then drops the keep-alive connection the request was sent on.
  const get = () => call("GET", `/v1/functions/${fn}`).catch(() => call("GET", `/v1/functions/${fn}`))
  let detail = await get()
  while (detail.model === null || detail.training.phase !== "idle") {
    await new Promise((r) => setTimeout(r, 200))
    detail = await get()
  }
  return { fn, detail }
}

/**
 * Invokes of function `fn` on the server at `url` with `image` as a raw image/jpeg body: `total` requests by
 * `concurrency` workers; answers each one's latency (ms, ascending), the errors and the wall time (s). `onRequest`
 * is called with the running count (e.g. to sample the server's memory).
 */
export const invokeLoad = async (
  /** @type {{ readonly url: string; readonly token: string; readonly fn: string; readonly image: Uint8Array; readonly concurrency: number; readonly total: number; readonly onRequest?: (n: number) => void }} */ options
) => {
  const { concurrency, fn, image, token, total, url } = options
  const invoke = async () => {
    const response = await fetch(`${url}/v1/functions/${fn}/invoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "image/jpeg" },
      body: image
    })
    const body = await response.text()
    if (response.status !== 200) throw new Error(`${response.status} ${body}`)
  }
  /** @type {Array<number>} */
  const latencies = []
  let errors = 0
  let next = 0
  const worker = async () => {
    while (next < total) {
      // Counted apart from the call: `onRequest?.(++next)` skips the increment when there is no `onRequest`.
      next++
      options.onRequest?.(next)
      const t = performance.now()
      try {
        await invoke()
        latencies.push(performance.now() - t)
      } catch (e) {
        if (errors++ < 3) console.error(String(e))
      }
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  return { seconds, latencies, errors }
}
