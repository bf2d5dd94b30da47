// The console's shell over HTTP (`Server.layer({ console: true })`): sign-in with an API key, the session cookie's
// attributes, CSRF refusal, the security headers, static files, sign-out, and the console being off by default.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpServer } from "@effect/platform"
import { ApiKeys, Server as DeployServer } from "@loupe/deploy"
import { NodeFileSystem } from "@effect/platform-node"
import { Server } from "@loupe/functions"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { functionsEnvironment } from "./fixtures/environment.js"
import { ConsoleClient, startServer } from "./fixtures/console.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-console-shell-"))
const store = path.join(work, "store")

let server: Awaited<ReturnType<typeof startServer>>
let token = ""

beforeAll(async () => {
  server = await startServer(work)
  token = server.token
})

afterAll(() => server.close())

describe("the console's shell", () => {
  it("is off unless asked for", async () => {
    const scope = Effect.runSync(Scope.make())
    try {
      const serving = Server.layer({ store: path.join(work, "plain"), port: 0 }).pipe(Layer.provide(functionsEnvironment(path.join(work, "cache"))))
      const context = await Effect.runPromise(Layer.buildWithScope(serving, scope))
      const base = Effect.runSync(Effect.provide(DeployServer.url, Context.pick(HttpServer.HttpServer)(context)))
      const response = await fetch(`${base}/console/sign-in`)
      expect(response.status).toBe(404)
      expect(response.headers.get("content-type")).toContain("application/json")
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })

  it("sends a browser that is not signed in to the sign-in page, and answers htmx with 401", async () => {
    const page = await fetch(`${server.base}/console/functions`, { redirect: "manual" })
    expect(page.status).toBe(303)
    expect(page.headers.get("location")).toBe("/console/sign-in?next=%2Fconsole%2Ffunctions")
    const fragment = await fetch(`${server.base}/console/functions`, { redirect: "manual", headers: { "hx-request": "true" } })
    expect(fragment.status).toBe(401)
    expect(fragment.headers.get("hx-redirect")).toBe("/console/sign-in")
  })

  it("signs in with an API key for an HttpOnly, SameSite=Strict cookie on /console", async () => {
    const client = new ConsoleClient(server.base)
    const form = await client.get("/console/sign-in")
    expect(form.status).toBe(200)
    const signin = form.setCookies.find((c) => c.startsWith("loupe_console_signin="))!
    expect(signin).toMatch(/HttpOnly/)
    expect(signin).toMatch(/SameSite=Strict/)
    const response = await client.signIn(token)
    expect(response.status).toBe(303)
    expect(response.headers.get("location")).toBe("/console/functions")
    const session = response.setCookies.find((c) => c.startsWith("loupe_console="))!
    expect(session).toMatch(/^loupe_console=[A-Za-z0-9_-]{43};/)
    expect(session).toMatch(/; HttpOnly/)
    expect(session).toMatch(/; SameSite=Strict/)
    expect(session).toMatch(/; Path=\/console/)
    expect(session).not.toMatch(/; Secure/)
    const page = await client.get("/console/functions")
    expect(page.status).toBe(200)
    expect(page.text).toContain("<h1>Functions</h1>")
  })

  it("marks the cookie Secure behind an https proxy", async () => {
    const client = new ConsoleClient(server.base, { "x-forwarded-proto": "https" })
    await client.get("/console/sign-in")
    const response = await client.signIn(token)
    expect(response.setCookies.find((c) => c.startsWith("loupe_console="))).toMatch(/; Secure/)
  })

  it("refuses a wrong key, and a sign-in post without the form's own token", async () => {
    const client = new ConsoleClient(server.base)
    await client.get("/console/sign-in")
    const wrong = await client.signIn("loupe_00000000_" + "a".repeat(32))
    expect(wrong.status).toBe(401)
    expect(wrong.setCookies.some((c) => c.startsWith("loupe_console="))).toBe(false)
    // A cross-site form: the key is right, but the browser has no sign-in cookie matching the form's token.
    const forged = await fetch(`${server.base}/console/sign-in`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ key: token, _signin: "forged" })
    })
    expect(forged.status).toBe(403)
    expect(forged.headers.get("set-cookie") ?? "").not.toMatch(/loupe_console=[^;]/)
  })

  it("refuses a change without the session's CSRF token with 403, and makes it with the token", async () => {
    const client = await ConsoleClient.signedIn(server.base, token)
    const without = await client.post("/console/functions", { name: "NoToken" }, { csrf: false })
    expect(without.status).toBe(403)
    const wrong = await client.post("/console/functions", { name: "WrongToken", _csrf: "x".repeat(43) }, { csrf: false })
    expect(wrong.status).toBe(403)
    const viaHeader = await client.post("/console/functions", { name: "HeaderToken" }, { csrf: false, headers: { "x-csrf-token": "nope" } })
    expect(viaHeader.status).toBe(403)
    expect((await client.get("/console/functions")).text).not.toMatch(/NoToken|WrongToken|HeaderToken/)
    const made = await client.post("/console/functions", { name: "WithToken", preset: "fast" })
    expect(made.status).toBe(303)
    expect(made.headers.get("location")).toMatch(/^\/console\/functions\/function_[0-9a-f]+\/data$/)
    // Another session's token is no good either.
    const other = await ConsoleClient.signedIn(server.base, token)
    const crossed = await other.post("/console/functions", { name: "Crossed", _csrf: client.csrf }, { csrf: false })
    expect(crossed.status).toBe(403)
  })

  it("sets the Content-Security-Policy and the other security headers on every page", async () => {
    const client = await ConsoleClient.signedIn(server.base, token)
    for (const route of ["/console/sign-in", "/console/functions", "/console/no-such-page"]) {
      const response = await client.get(route)
      const csp = response.headers.get("content-security-policy") ?? ""
      expect(csp, route).toContain("script-src 'self'")
      expect(csp, route).toContain("frame-ancestors 'none'")
      expect(csp, route).toContain("default-src 'none'")
      expect(csp, route).not.toContain("unsafe-inline")
      expect(response.headers.get("x-content-type-options"), route).toBe("nosniff")
      expect(response.headers.get("referrer-policy"), route).toBe("same-origin")
    }
    const page = (await client.get("/console/functions")).text
    // No inline scripts or handlers: every <script> has a src, and no attribute starts with "on".
    expect(page.match(/<script\b[^>]*>/g)?.every((tag) => / src="\/console\/static\//.test(tag))).toBe(true)
    expect(page).not.toMatch(/\son[a-z]+=/i)
    expect(page).not.toMatch(/\sstyle=/i)
  })

  it("serves htmx, the stylesheet, the script and the icon at versioned paths cached for a year", async () => {
    const client = await ConsoleClient.signedIn(server.base, token)
    const page = (await client.get("/console/functions")).text
    const assets = [...page.matchAll(/(?:src|href)="(\/console\/static\/[^"]+)"/g)].map((m) => m[1]!)
    expect(assets).toContain("/console/static/htmx-2.0.11.min.js")
    expect(assets.some((a) => /\/console-[0-9a-f]{12}\.css$/.test(a))).toBe(true)
    expect(assets.some((a) => /\/console-[0-9a-f]{12}\.js$/.test(a))).toBe(true)
    for (const asset of assets) {
      const response = await fetch(`${server.base}${asset}`)
      expect(response.status, asset).toBe(200)
      expect(response.headers.get("cache-control"), asset).toBe("public, max-age=31536000, immutable")
      expect(response.headers.get("content-type"), asset).toMatch(/^(text\/(javascript|css)|image\/svg\+xml)/)
    }
    const htmx = await (await fetch(`${server.base}/console/static/htmx-2.0.11.min.js`)).text()
    expect(htmx).toContain("htmx")
  })

  it("signs out, after which the cookie opens nothing", async () => {
    const client = await ConsoleClient.signedIn(server.base, token)
    const out = await client.post("/console/sign-out", {})
    expect(out.status).toBe(303)
    expect(out.headers.get("location")).toBe("/console/sign-in")
    expect(out.setCookies.find((c) => c.startsWith("loupe_console="))).toMatch(/Max-Age=0/)
    const stale = await fetch(`${server.base}/console/functions`, { redirect: "manual", headers: { cookie: `loupe_console=${client.session}` } })
    expect(stale.status).toBe(303)
  })

  it("ends sessions whose API key is revoked", async () => {
    const keys = await Effect.runPromise(ApiKeys.make(ApiKeys.fileIn(store)).pipe(Effect.provide(NodeFileSystem.layer)))
    const doomed = await Effect.runPromise(keys.create("doomed"))
    const client = await ConsoleClient.signedIn(server.base, doomed.token)
    expect((await client.get("/console/functions")).status).toBe(200)
    await Effect.runPromise(keys.revoke(doomed.id))
    // The server re-reads the key file within a second.
    await new Promise((r) => setTimeout(r, 1200))
    expect((await client.get("/console/functions")).status).toBe(303)
  })
})
