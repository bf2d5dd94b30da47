// Two `loupe serve` layers on one store (a SQLite folder; Postgres beside it once the store speaks it): a function
// made through one server, samples through both, and promotions made by one server (a retrain, then a rollback)
// answered with by the other from its next invocation, while invocations kept running on it all fail none.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "@effect/platform"
import { ApiKeys, Server as DeployServer } from "@loupe/deploy"
import { NodeFileSystem } from "@effect/platform-node"
import { Server } from "@loupe/functions"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { catsVsDogsPhotos as photos, functionsEnvironment } from "./fixtures/environment.js"
import { jsonCall } from "../../../test/fixtures/loopback.mjs"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-servers-"))
const store = path.join(work, "store")
const environment = functionsEnvironment(path.join(work, "cache"))

let scope: Scope.CloseableScope
let token = ""
const servers: Array<string> = []

/** A server on `store`, as `loupe serve --store` starts one; its base URL. */
const serve = async () => {
  const layer = Server.layer({
    store,
    port: 0,
    debounce: "100 millis",
    rateLimit: { perSecond: 10_000, burst: 10_000 },
    capture: { lowConfidence: 0, rareClassShare: 0, randomFraction: 0, perMinute: 1 }
  }).pipe(Layer.provide(environment))
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  return Effect.runSync(Effect.provide(DeployServer.url, Context.pick(HttpServer.HttpServer)(context)))
}

beforeAll(async () => {
  token = (await Effect.runPromise(Effect.flatMap(ApiKeys.make(ApiKeys.fileIn(store)), (k) => k.create("tests")).pipe(Effect.provide(NodeFileSystem.layer)))).token
  scope = Effect.runSync(Scope.make())
  servers.push(await serve(), await serve())
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  fs.rmSync(work, { recursive: true, force: true })
})

const api = (server: number, method: string, route: string, body?: unknown) =>
  jsonCall(servers[server]!, token, method, route, body)

const dataUri = (file: string) => `data:image/jpeg;base64,${fs.readFileSync(file).toString("base64")}`

/** Polls `probe` until `done` (two minutes at most). */
const until = async <A>(probe: () => Promise<A>, done: (a: A) => boolean): Promise<A> => {
  const deadline = Date.now() + 120_000
  while (true) {
    const value = await probe()
    if (done(value) || Date.now() > deadline) return value
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** The function's model once neither server is training it and it saw every sample. */
const settled = async (fn: string) => {
  const idle = (r: { body: any }) => r.body.model !== null && r.body.model.upToDate && r.body.training.phase === "idle"
  await until(() => api(1, "GET", `/v1/functions/${fn}`), idle)
  return (await until(() => api(0, "GET", `/v1/functions/${fn}`), idle)).body.model.id as string
}

describe("several servers on one store", () => {
  it("answer with a promotion made by another server from the next invocation, failing none meanwhile", async () => {
    const fn = (await api(0, "POST", "/v1/functions", { name: "Shared", preset: "fast", overrides: { folds: 3 } })).body.id
    // Samples through both servers: each schedules its own retrain, and the store keeps one promoted model.
    const posted = await Promise.all(["cats", "dogs"].flatMap((label) =>
      photos("train", label as "cats" | "dogs", 0, 4).map((file, i) =>
        api(i % 2, "POST", `/v1/functions/${fn}/samples`, { data: dataUri(file), annotation: { labelName: label } })
      )
    ))
    expect(posted.map((p) => p.status)).toEqual(Array(8).fill(201))
    const first = await settled(fn)
    expect((await api(1, "GET", `/v1/functions/${fn}/samples?limit=100`)).body.map((s: any) => s.id).sort())
      .toEqual(posted.map((p) => p.body.id).sort())

    const probe = photos("test", "cats", 0, 1)[0]!
    const invoke = (server: number) => api(server, "POST", `/v1/functions/${fn}/invoke`, { data: dataUri(probe) })
    expect((await invoke(1)).body.modelId).toBe(first)

    // Server 2 keeps invoking while server 1 retrains, promotes, and is rolled back.
    let running = true
    const answers: Array<{ status: number; modelId: string | undefined }> = []
    const load = (async () => {
      while (running) {
        const r = await invoke(1)
        answers.push({ status: r.status, modelId: r.body.modelId })
      }
    })()

    const more = await Promise.all(["cats", "dogs"].flatMap((label) =>
      photos("train", label as "cats" | "dogs", 4, 1).map((file) =>
        api(0, "POST", `/v1/functions/${fn}/samples`, { data: dataUri(file), annotation: { labelName: label } })
      )
    ))
    expect(more.map((p) => p.status)).toEqual([201, 201])
    const second = await settled(fn)
    expect(second).not.toBe(first)
    // Server 1 promoted `second`; server 2's next invocation answers with it.
    expect((await invoke(1)).body.modelId).toBe(second)

    // A rollback through server 1: server 2 answers with the rolled-back version from its next call, and back.
    expect((await api(0, "POST", `/v1/functions/${fn}/models/${first}/promote`)).status).toBe(200)
    expect((await invoke(1)).body.modelId).toBe(first)
    expect((await api(0, "POST", `/v1/functions/${fn}/models/${second}/promote`)).status).toBe(200)
    expect((await invoke(1)).body.modelId).toBe(second)

    running = false
    await load
    expect(answers.length).toBeGreaterThan(0)
    expect(answers.filter((a) => a.status !== 200)).toEqual([])
    expect(answers.filter((a) => a.modelId !== first && a.modelId !== second)).toEqual([])
  })
})
