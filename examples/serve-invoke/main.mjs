// @ts-check
/**
 * Serve a function over HTTP and call it the way an application would, with nothing but `fetch`:
 *
 *   pnpm build && node examples/serve-invoke/main.mjs [--store <dir>]
 *
 * 1. `loupe keys create` makes an API key; `loupe serve` starts the server on 127.0.0.1 (a free port).
 * 2. Create a function, post labelled photos (JSON with a data URI, and a multipart upload); it trains by itself.
 * 3. Invoke it on test photos (a raw image/jpeg body). Invocations the model is unsure about are captured.
 * 4. Review: list the captured invocations, annotate one (a retrain follows).
 * 5. `loupe export --format onnx`: the model as one ONNX graph; then SIGTERM stops the server gracefully.
 *
 * Plain Node 20, no TypeScript step: it runs the built `loupe` CLI from the workspace.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, "../..")
const shared = process.env["LOUPE_SHARED_DIR"] ?? path.resolve(repo, "../shared")
const dataset = path.join(shared, "datasets", "cats-vs-dogs")
const cli = path.join(repo, "packages/cli/dist/cli.js")
const { values: args } = parseArgs({
  options: { store: { type: "string", default: fs.mkdtempSync(path.join(os.tmpdir(), "loupe-serve-invoke-")) } }
})
const store = String(args.store)
const env = { ...process.env, LOUPE_MODELS_DIR: path.join(shared, "models") }

const photos = (/** @type {string} */ split, /** @type {string} */ label, /** @type {number} */ count) =>
  fs.readdirSync(path.join(dataset, split, label)).sort().slice(0, count).map((f) => path.join(dataset, split, label, f))

// 1. A key, and the server. The key is printed once; only its hash is stored (in <store>/keys.json).
const created = spawnSync(process.execPath, [cli, "keys", "create", "--store", store, "--name", "example", "--json"], { env, encoding: "utf8" })
if (created.status !== 0) throw new Error(created.stderr)
const { token } = JSON.parse(created.stdout)
// Every invocation the model is less than 90 % sure about is captured for review (the default is 60 %).
// Its log (training progress, warnings) goes to <store>/server.log.
const log = path.join(store, "server.log")
const server = spawn(process.execPath, [cli, "serve", "--store", store, "--port", "0", "--capture-low-confidence", "0.9"], {
  env,
  stdio: ["ignore", "pipe", fs.openSync(log, "a")]
})
/** @type {string} */
const url = await new Promise((resolve, reject) => {
  let out = ""
  server.stdout.on("data", (chunk) => {
    out += chunk
    const match = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
    if (match) resolve(match[1])
  })
  server.on("exit", (code) => reject(new Error(`loupe serve exited with ${code}`)))
})
console.log(`server: ${url} (API: ${url}/openapi.json, log: ${log})`)

const auth = { authorization: `Bearer ${token}` }
/** JSON in, JSON out; throws with the server's error (`{ _tag, reason, message, field }`) on a non-2xx answer. */
const api = async (/** @type {string} */ method, /** @type {string} */ route, /** @type {unknown} */ body) => {
  const response = await fetch(`${url}${route}`, {
    method,
    headers: { ...auth, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`)
  return text === "" ? undefined : JSON.parse(text)
}
const dataUri = (/** @type {string} */ file) => `data:image/jpeg;base64,${fs.readFileSync(file).toString("base64")}`

try {
  // 2. A function and its samples: cats as JSON with a data URI, dogs as multipart uploads.
  const fn = await api("POST", "/v1/functions", { name: "IsCatOrDog", preset: "fast" })
  console.log(`function: ${fn.id}`)
  for (const file of photos("train", "cats", 10)) {
    await api("POST", `/v1/functions/${fn.id}/samples`, { data: dataUri(file), annotation: { labelName: "cats" } })
  }
  for (const file of photos("train", "dogs", 10)) {
    const form = new FormData()
    form.append("data", new Blob([fs.readFileSync(file)], { type: "image/jpeg" }), path.basename(file))
    form.append("labelName", "dogs")
    const response = await fetch(`${url}/v1/functions/${fn.id}/samples`, { method: "POST", headers: auth, body: form })
    if (!response.ok) throw new Error(await response.text())
  }
  let status = await api("GET", `/v1/functions/${fn.id}`)
  while (status.model === null || status.training.phase !== "idle") {
    await new Promise((r) => setTimeout(r, 250))
    status = await api("GET", `/v1/functions/${fn.id}`)
  }
  console.log(`trained: model ${status.model.id}, cross-validated accuracy ${(100 * status.model.cvAccuracy).toFixed(1)} %`)

  // 3. Invoke on held-out photos, sending the JPEG bytes as they are.
  let correct = 0
  /** The true label of each captured invocation, to review it with. */
  const truth = new Map()
  const test = [...photos("test", "cats", 10).map((f) => [f, "cats"]), ...photos("test", "dogs", 10).map((f) => [f, "dogs"])]
  for (const [file, label] of test) {
    const response = await fetch(`${url}/v1/functions/${fn.id}/invoke`, {
      method: "POST",
      headers: { ...auth, "content-type": "image/jpeg" },
      body: fs.readFileSync(file)
    })
    const result = await response.json()
    if (result.labelName === label) correct++
    if (result.sampleId) truth.set(result.sampleId, label)
    console.log(`invoke ${path.basename(file)}: ${result.labelName} ${result.confidence.toFixed(3)}${result.sampleId ? " (captured for review)" : ""}`)
  }
  console.log(`test accuracy ${correct}/${test.length}`)

  // 4. The review queue (newest first): a reviewer annotates the first captured invocation with its true label.
  const queue = await api("GET", `/v1/functions/${fn.id}/captures`)
  console.log(`review queue: ${queue.length} captured invocation(s)`)
  if (queue.length > 0) {
    const capture = queue[0]
    const labelName = truth.get(capture.sampleId)
    const sample = await api("PUT", `/v1/functions/${fn.id}/samples/${capture.sampleId}/annotation`, { labelName })
    console.log(`annotated ${sample.id} (${capture.reason}, predicted ${capture.labelName} ${capture.confidence.toFixed(3)}) as ${labelName}: a retrain follows`)
    console.log(`review queue after: ${(await api("GET", `/v1/functions/${fn.id}/captures`)).length} captured invocation(s)`)
  }

  // 5. Take the model elsewhere: one ONNX graph, verified against Loupe's own predictor.
  const out = path.join(store, "export-onnx")
  const exported = spawnSync(process.execPath, [cli, "export", fn.id, "--store", store, "--format", "onnx", "--out", out, "--json"], { env, encoding: "utf8" })
  if (exported.status !== 0) throw new Error(exported.stderr)
  const onnx = JSON.parse(exported.stdout)
  console.log(`onnx: ${path.join(out, "model.onnx")}, verified on ${onnx.verification.inputs} images, max difference ${onnx.verification.maxAbsDiff.toExponential(1)}`)
} finally {
  // SIGTERM: the server finishes requests in flight, then exits.
  const exited = new Promise((resolve) => server.on("exit", resolve))
  server.kill("SIGTERM")
  console.log(`server stopped (exit code ${await exited})`)
}
