// UrlFetch: the address classifier, the guarded lookup, and fetches from a real server on 127.0.0.1 (refused by
// default, fetched when allowed, redirects re-checked hop by hop, the byte cap while streaming, the timeout).
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { UrlFetch } from "@loupe/deploy"
import type * as dns from "node:dns"
import * as http from "node:http"

describe("classifyAddress", () => {
  const cases: ReadonlyArray<readonly [string, UrlFetch.AddressKind]> = [
    // IPv4
    ["8.8.8.8", "public"],
    ["93.184.216.34", "public"],
    ["1.1.1.1", "public"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "thisNetwork"],
    ["10.0.0.1", "private"],
    ["10.255.255.255", "private"],
    ["11.0.0.1", "public"],
    ["100.63.255.255", "public"],
    ["100.64.0.1", "carrierGradeNat"],
    ["100.127.255.254", "carrierGradeNat"],
    ["100.128.0.0", "public"],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["169.254.169.254", "linkLocal"],
    ["172.15.255.255", "public"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.0", "public"],
    ["192.0.0.8", "reserved"],
    ["192.0.2.1", "documentation"],
    ["192.88.99.1", "reserved"],
    ["192.168.1.1", "private"],
    ["198.18.0.1", "benchmarking"],
    ["198.19.255.255", "benchmarking"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.9", "documentation"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["240.0.0.1", "reserved"],
    ["255.255.255.255", "broadcast"],
    // IPv6
    ["2606:4700:4700::1111", "public"],
    ["2a00:1450:4001:82b::200e", "public"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["fe80::1", "linkLocal"],
    ["fe80::1%eth0", "linkLocal"],
    ["febf:ffff::1", "linkLocal"],
    ["fec0::1", "siteLocal"],
    ["fc00::1", "uniqueLocal"],
    ["fd12:3456:789a::1", "uniqueLocal"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "documentation"],
    ["2001::1", "reserved"],
    ["100::1", "reserved"],
    ["4000::1", "reserved"],
    // IPv4 inside IPv6: judged by the IPv4 address.
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::FFFF:169.254.169.254", "linkLocal"],
    ["::ffff:10.1.2.3", "private"],
    ["::ffff:0.0.0.0", "unspecified"],
    ["::ffff:8.8.8.8", "public"],
    ["::127.0.0.1", "loopback"],
    ["::8.8.8.8", "reserved"],
    ["64:ff9b::192.168.0.1", "private"],
    ["64:ff9b::8.8.8.8", "public"],
    ["64:ff9b:1::1", "private"],
    ["2002:7f00:1::", "loopback"],
    ["2002:0808:0808::1", "public"],
    // Not addresses
    ["localhost", "invalid"],
    ["", "invalid"],
    ["256.1.1.1", "invalid"],
    ["0x7f.0.0.1", "invalid"]
  ]

  it(`classifies ${cases.length} IPv4 and IPv6 addresses`, () => {
    const got = cases.map(([address]) => [address, UrlFetch.classifyAddress(address)])
    expect(got).toEqual(cases.map(([address, kind]) => [address, kind]))
    expect(UrlFetch.describeAddressKind("loopback")).toBe("a loopback address")
  })
})

describe("guardedLookup", () => {
  /** A resolver answering `addresses` for every name. */
  const resolver = (addresses: ReadonlyArray<string>): UrlFetch.Resolver => (_hostname, _options, callback) =>
    callback(null, addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 })))
  const lookup = (policy: UrlFetch.AddressPolicy, addresses: ReadonlyArray<string>, options: dns.LookupOptions) =>
    new Promise<{ error: Error | null; address: unknown; family: unknown }>((resolve) =>
      UrlFetch.guardedLookup(policy, resolver(addresses))("images.example", options, (error, address, family) =>
        resolve({ error, address, family })))

  it("refuses a name when any of its addresses is not allowed, and passes the checked ones on", async () => {
    // One public and one private answer (what a rebinding name serves): refused, whichever would be used.
    const mixed = await lookup(false, ["93.184.216.34", "10.0.0.5"], { all: true })
    expect(mixed.error?.message).toBe("images.example resolves to 10.0.0.5, a private (RFC 1918) address, which is not allowed")
    expect((await lookup(false, ["2606:4700::1", "::ffff:127.0.0.1"], { all: true })).error?.message).toMatch(/loopback/)
    expect(await lookup(false, ["93.184.216.34", "2606:4700::1"], { all: true })).toEqual({
      error: null,
      address: [{ address: "93.184.216.34", family: 4 }, { address: "2606:4700::1", family: 6 }],
      family: undefined
    })
    expect(await lookup(false, ["93.184.216.34"], {})).toEqual({ error: null, address: "93.184.216.34", family: 4 })
    expect((await lookup(true, ["10.0.0.5"], {})).address).toBe("10.0.0.5")
    const onlyLoopback = (_: string, kind: UrlFetch.AddressKind) => kind === "loopback"
    expect((await lookup(onlyLoopback, ["127.0.0.1"], {})).address).toBe("127.0.0.1")
    expect((await lookup(onlyLoopback, ["169.254.169.254"], {})).error?.message).toMatch(/169\.254\.169\.254, a link-local address/)
  })
})

describe("fetchBytes", () => {
  const image = Buffer.from("\xff\xd8\xff\xe0 pretend this is a JPEG", "latin1")
  /** Bytes the /stream route had written when its connection closed. */
  let streamed: Promise<number> = Promise.resolve(0)
  /** Whether the /slow route's connection was closed by the client. */
  let slowClosed: Promise<boolean> = Promise.resolve(false)
  const requests: Array<string> = []
  let origin: http.Server
  let base = ""

  beforeAll(async () => {
    origin = http.createServer((req, res) => {
      requests.push(req.url ?? "")
      const port = (origin.address() as { port: number }).port
      switch (req.url) {
        case "/cat.jpg":
          return res.writeHead(200, { "content-type": "image/jpeg" }).end(image)
        case "/to-cat":
          return res.writeHead(302, { location: "/cat.jpg" }).end()
        case "/to-metadata":
          return res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/" }).end()
        case "/to-other-loopback":
          return res.writeHead(307, { location: `http://127.0.0.2:${port}/cat.jpg` }).end()
        case "/to-file":
          return res.writeHead(302, { location: "file:///etc/passwd" }).end()
        case "/loop":
          return res.writeHead(302, { location: "/loop" }).end()
        case "/missing":
          return res.writeHead(404).end("no")
        case "/declared-big":
          return res.writeHead(200, { "content-length": "10000000" }).end()
        case "/stream": {
          // 64 MiB, chunked (no Content-Length), written as fast as the client reads.
          const chunk = Buffer.alloc(64 * 1024)
          let sent = 0
          streamed = new Promise((resolve) => res.on("close", () => resolve(sent)))
          res.writeHead(200, { "content-type": "image/jpeg" })
          const pump = () => {
            while (sent < 64 * 1024 * 1024 && !res.destroyed) {
              sent += chunk.length
              if (!res.write(chunk)) return res.once("drain", pump)
            }
            res.end()
          }
          return pump()
        }
        case "/slow":
          slowClosed = new Promise((resolve) => res.on("close", () => resolve(true)))
          res.writeHead(200, { "content-type": "image/jpeg" })
          return res.write(image.subarray(0, 4))
        default:
          return res.writeHead(500).end()
      }
    })
    await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve))
    base = `http://127.0.0.1:${(origin.address() as { port: number }).port}`
  })

  afterAll(() => {
    origin.closeAllConnections()
    origin.close()
  })

  const message = (effect: Effect.Effect<unknown, { readonly message: string; readonly field?: string | undefined }>) =>
    Effect.map(Effect.flip(effect), (e) => e.message)

  it.live("refuses a loopback server by default, with the reason in plain words, before connecting", () =>
    Effect.gen(function*() {
      requests.length = 0
      const error = yield* Effect.flip(UrlFetch.fetchBytes(`${base}/cat.jpg`, { maxBytes: 1000, field: "data" }))
      expect(error).toMatchObject({ _tag: "DeployError", reason: "InvalidImage", field: "data" })
      expect(error.message).toBe(
        `data: ${base}/cat.jpg resolves to 127.0.0.1, a loopback address; private addresses are not fetched (allowPrivateAddresses allows them)`
      )
      const port = new URL(base).port
      const hint = "start it with --allow-private-urls to allow them"
      expect(yield* message(UrlFetch.fetchBytes(`http://[::1]:${port}/cat.jpg`, { maxBytes: 1000, privateAddressHint: hint }))).toBe(
        `url: http://[::1]:${port}/cat.jpg resolves to ::1, a loopback address; ${hint}`
      )
      expect(yield* message(UrlFetch.fetchBytes(`http://[::ffff:127.0.0.1]:${port}/cat.jpg`, { maxBytes: 1000 }))).toMatch(
        /resolves to ::ffff:7f00:1, a loopback address/
      )
      // Other spellings of 127.0.0.1 are normalised by the URL parser, then checked.
      expect(yield* message(UrlFetch.fetchBytes(`http://0x7f.1:${port}/cat.jpg`, { maxBytes: 1000 }))).toMatch(/resolves to 127\.0\.0\.1, a loopback/)
      expect(yield* message(UrlFetch.fetchBytes(`http://2130706433:${port}/cat.jpg`, { maxBytes: 1000 }))).toMatch(/resolves to 127\.0\.0\.1/)
      expect(yield* message(UrlFetch.fetchBytes("http://169.254.169.254/latest/meta-data/", { maxBytes: 1000 }))).toMatch(
        /resolves to 169\.254\.169\.254, a link-local address/
      )
      expect(yield* message(UrlFetch.fetchBytes("http://10.0.0.1/x.jpg", { maxBytes: 1000 }))).toMatch(/a private \(RFC 1918\) address/)
      // A host name goes through the guarded lookup: `localhost` resolves to loopback addresses only.
      expect(yield* message(UrlFetch.fetchBytes(`http://localhost:${port}/cat.jpg`, { maxBytes: 1000 }))).toMatch(
        new RegExp(`^url: http://localhost:${port}/cat\\.jpg resolves to (127\\.0\\.0\\.1|::1), a loopback address;`)
      )
      expect(requests).toEqual([])
    }))

  it.live("fetches from private addresses when they are allowed", () =>
    Effect.gen(function*() {
      const fetched = yield* UrlFetch.fetchBytes(`${base}/cat.jpg`, { maxBytes: 1000, allowPrivateAddresses: true })
      expect(Buffer.from(fetched.bytes)).toEqual(image)
      expect(fetched).toMatchObject({ mediaType: "image/jpeg", url: `${base}/cat.jpg` })
      const port = new URL(base).port
      // localhost may resolve to ::1 first, where nothing listens; node then tries 127.0.0.1.
      const viaName = yield* UrlFetch.fetchBytes(`http://localhost:${port}/cat.jpg`, {
        maxBytes: 1000,
        allowPrivateAddresses: (address) => address === "127.0.0.1" || address === "::1"
      })
      expect(Buffer.from(viaName.bytes)).toEqual(image)
    }))

  it.live("follows a few redirects, checking every hop's scheme and address", () =>
    Effect.gen(function*() {
      requests.length = 0
      // Allowed here: 127.0.0.1 only (the test server), so the hops below it redirects to are private and refused.
      const onlyTestServer = { maxBytes: 1000, field: "data", allowPrivateAddresses: (address: string) => address === "127.0.0.1" }
      const followed = yield* UrlFetch.fetchBytes(`${base}/to-cat`, onlyTestServer)
      expect(Buffer.from(followed.bytes)).toEqual(image)
      expect(followed.url).toBe(`${base}/cat.jpg`)
      expect(yield* message(UrlFetch.fetchBytes(`${base}/to-metadata`, onlyTestServer))).toBe(
        `data: ${base}/to-metadata redirects to http://169.254.169.254/latest/meta-data/, which resolves to 169.254.169.254, a link-local address; private addresses are not fetched (allowPrivateAddresses allows them)`
      )
      const port = new URL(base).port
      expect(yield* message(UrlFetch.fetchBytes(`${base}/to-other-loopback`, onlyTestServer))).toMatch(
        `redirects to http://127.0.0.2:${port}/cat.jpg, which resolves to 127.0.0.2, a loopback address`
      )
      expect(yield* message(UrlFetch.fetchBytes(`${base}/to-file`, onlyTestServer))).toBe(
        `data: ${base}/to-file redirects to file:///etc/passwd, which is not an http(s) URL`
      )
      expect(yield* message(UrlFetch.fetchBytes(`${base}/loop`, onlyTestServer))).toBe(`data: ${base}/loop redirects more than 3 times`)
      expect(yield* message(UrlFetch.fetchBytes(`${base}/to-cat`, { ...onlyTestServer, maxRedirects: 0 }))).toBe(
        `data: ${base}/to-cat redirects to /cat.jpg; redirects are not followed`
      )
      // The refused hops were never requested; /loop was asked 4 times (the URL, then 3 redirects).
      expect(requests).toEqual(["/to-cat", "/cat.jpg", "/to-metadata", "/to-other-loopback", "/to-file", "/loop", "/loop", "/loop", "/loop", "/to-cat"])
    }))

  it.live("checks the connected address once more, after the lookup", () =>
    Effect.gen(function*() {
      requests.length = 0
      // A policy that allows the address once (the check of the literal before connecting) and refuses it after:
      // the check of the connected socket's address catches it, before the request is written.
      let asked = 0
      const error = yield* message(UrlFetch.fetchBytes(`${base}/cat.jpg`, {
        maxBytes: 1000,
        allowPrivateAddresses: (address) => address === "127.0.0.1" && ++asked === 1
      }))
      expect(error).toMatch(/resolves to (::ffff:)?127\.0\.0\.1, a loopback address/)
      expect(asked).toBe(2)
      expect(requests).toEqual([])
    }))

  it.live("refuses other schemes, credentials and invalid URLs", () =>
    Effect.gen(function*() {
      const refused = (url: string) => message(UrlFetch.fetchBytes(url, { maxBytes: 1000, allowPrivateAddresses: true, field: "samples[3].data" }))
      expect(yield* refused("ftp://example.com/cat.jpg")).toBe("samples[3].data: ftp://example.com/cat.jpg is not an http(s) URL")
      expect(yield* refused("file:///etc/passwd")).toBe("samples[3].data: file:///etc/passwd is not an http(s) URL")
      expect(yield* refused(`${base.replace("//", "//user:secret@")}/cat.jpg`)).toBe(
        `samples[3].data: ${base}/cat.jpg carries a user name or password; URLs with credentials are not fetched`
      )
      expect(yield* refused("http://")).toBe("samples[3].data: http:// is not a valid URL")
      expect(yield* refused(`${base}/missing`)).toBe(`samples[3].data: cannot fetch ${base}/missing: HTTP 404 Not Found`)
    }))

  it.live("stops a body over the byte cap while it streams, and one declared too large before reading it", () =>
    Effect.gen(function*() {
      const allowed = { maxBytes: 100_000, allowPrivateAddresses: true }
      // BodyTooLarge (413), as for a request body over the limit, not InvalidImage (400).
      expect(yield* Effect.flip(UrlFetch.fetchBytes(`${base}/declared-big`, allowed))).toMatchObject({
        reason: "BodyTooLarge",
        field: "url",
        message: `url: ${base}/declared-big is too large: 10000000 bytes is over the 100000-byte limit`
      })
      expect(yield* Effect.flip(UrlFetch.fetchBytes(`${base}/stream`, allowed))).toMatchObject({
        reason: "BodyTooLarge",
        message: `url: ${base}/stream is too large: over the 100000-byte limit`
      })
      // The connection was dropped: the server wrote far less than its 64 MiB (socket buffers hold a few MiB at most).
      expect(yield* Effect.promise(() => streamed)).toBeLessThan(16 * 1024 * 1024)
    }))

  it.live("gives up after the timeout and closes the connection", () =>
    Effect.gen(function*() {
      const started = Date.now()
      expect(yield* message(UrlFetch.fetchBytes(`${base}/slow`, { maxBytes: 1000, allowPrivateAddresses: true, timeoutMs: 300 }))).toBe(
        `url: cannot fetch ${base}/slow: no complete answer within 300 ms`
      )
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(yield* Effect.promise(() => slowClosed)).toBe(true)
    }))
})
