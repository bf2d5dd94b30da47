/**
 * Fetching an image from an `http(s)` URL that a caller handed us, guarded against server-side request forgery
 * (SSRF): the one implementation behind the invoke server's URL data (`loupe serve --allow-url-fetch`) and the
 * function API's URL samples.
 *
 * - Only `http:` and `https:` URLs, and none with a user name or password in them.
 * - An address policy applied to the address actually connected to. A host name is resolved by `guardedLookup`,
 *   which checks every address the resolver returns and refuses them all if one is not allowed; node then connects
 *   to one of exactly those addresses, so a name that resolves to a public address when checked and to a private
 *   one later (DNS rebinding) cannot slip through. Node does not call `lookup` for an IP literal
 *   (`http://127.0.0.1/`, `http://[::1]/`), so a literal is checked before connecting. Last, the connected socket's
 *   remote address is checked again before the request goes out.
 * - By default every address that is not public unicast is refused (see `classifyAddress`): loopback, private
 *   (RFC 1918), carrier-grade NAT, link-local, unique-local, site-local, unspecified, "this network" (0/8),
 *   multicast, broadcast, documentation, benchmarking and reserved ranges, and the IPv4-mapped, IPv4-compatible,
 *   NAT64 and 6to4 IPv6 forms of these. `allowPrivateAddresses: true` lifts the policy (for an intranet, or tests
 *   serving images from 127.0.0.1); a function decides address by address.
 * - Redirects: at most `maxRedirects` (default 3) are followed, and every hop's URL goes through the same checks
 *   (scheme, credentials, address) as the first.
 * - The byte cap is enforced from `Content-Length` and while the body streams in: the connection is dropped as
 *   soon as the body is over it, and the refusal is `BodyTooLarge` (HTTP 413), as for a request body that size.
 * - One timeout covers the whole fetch, redirects included.
 *
 * No proxy, no cookies, no connection reuse: each hop is one fresh connection with no headers from the caller.
 *
 * ```ts
 * const { bytes, mediaType } = yield* UrlFetch.fetchBytes("https://example.com/cat.jpg", { maxBytes: 16_000_000, field: "data" })
 * ```
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as dns from "node:dns"
import * as http from "node:http"
import * as https from "node:https"
import * as net from "node:net"
import { DeployError } from "./DeployError.js"

/**
 * What an IP address is, for the address policy. Only `"public"` is fetched by default.
 *
 * @since 0.1.0
 * @category models
 */
export type AddressKind =
  | "public"
  | "loopback"
  | "private"
  | "carrierGradeNat"
  | "linkLocal"
  | "uniqueLocal"
  | "siteLocal"
  | "unspecified"
  | "thisNetwork"
  | "multicast"
  | "broadcast"
  | "documentation"
  | "benchmarking"
  | "reserved"
  | "invalid"

const descriptions: Readonly<Record<AddressKind, string>> = {
  public: "a public address",
  loopback: "a loopback address",
  private: "a private (RFC 1918) address",
  carrierGradeNat: "a carrier-grade NAT (100.64.0.0/10) address",
  linkLocal: "a link-local address",
  uniqueLocal: "a unique-local (fc00::/7) address",
  siteLocal: "a site-local (fec0::/10) address",
  unspecified: "the unspecified address",
  thisNetwork: "a \"this network\" (0.0.0.0/8) address",
  multicast: "a multicast address",
  broadcast: "the broadcast address",
  documentation: "a documentation address",
  benchmarking: "a benchmarking (198.18.0.0/15) address",
  reserved: "a reserved address",
  invalid: "not an IP address"
}

/**
 * The kind in words, with its article: `"a loopback address"`.
 *
 * @since 0.1.0
 * @category getters
 */
export const describeAddressKind = (kind: AddressKind): string => descriptions[kind]

/** IPv4 special-purpose ranges (IANA registry), as [first octets, prefix length, kind]; the first match wins. */
const ipv4Ranges: ReadonlyArray<readonly [string, number, AddressKind]> = [
  ["0.0.0.0", 32, "unspecified"],
  ["0.0.0.0", 8, "thisNetwork"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "carrierGradeNat"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "linkLocal"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "reserved"],
  ["192.0.2.0", 24, "documentation"],
  ["192.88.99.0", 24, "reserved"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["198.51.100.0", 24, "documentation"],
  ["203.0.113.0", 24, "documentation"],
  ["224.0.0.0", 4, "multicast"],
  ["255.255.255.255", 32, "broadcast"],
  ["240.0.0.0", 4, "reserved"]
]

/** A dotted quad as an unsigned 32-bit number. */
const ipv4Number = (address: string): number =>
  address.split(".").reduce((n, octet) => n * 256 + Number(octet), 0)

const ipv4Table = ipv4Ranges.map(([first, bits, kind]) => ({
  first: ipv4Number(first),
  size: 2 ** (32 - bits),
  kind
}))

const classifyIpv4 = (n: number): AddressKind =>
  ipv4Table.find((range) => n >= range.first && n < range.first + range.size)?.kind ?? "public"

/** The eight 16-bit groups of a valid IPv6 address (a dotted IPv4 tail becomes the last two groups). */
const ipv6Groups = (address: string): Array<number> => {
  let text = address.toLowerCase().split("%")[0]!
  const tailStart = text.lastIndexOf(":") + 1
  if (text.slice(tailStart).includes(".")) {
    const v4 = ipv4Number(text.slice(tailStart))
    text = `${text.slice(0, tailStart)}${Math.floor(v4 / 65536).toString(16)}:${(v4 % 65536).toString(16)}`
  }
  const [head, tail] = text.split("::") as [string, string | undefined]
  const groups = (part: string | undefined) => (part === undefined || part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)))
  const before = groups(head)
  const after = groups(tail)
  return tail === undefined ? before : [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after]
}

/** The kind of an IPv4 address carried inside an IPv6 one; a public one keeps `whenPublic`. */
const embedded = (high: number, low: number, whenPublic: AddressKind): AddressKind => {
  const kind = classifyIpv4(high * 65536 + low)
  return kind === "public" ? whenPublic : kind
}

const classifyIpv6 = (g: ReadonlyArray<number>): AddressKind => {
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0)
  if (zeros(0, 8)) return "unspecified"
  if (zeros(0, 7) && g[7] === 1) return "loopback"
  // ::ffff:a.b.c.d (IPv4-mapped): the socket connects to the IPv4 address.
  if (zeros(0, 5) && g[5] === 0xffff) return embedded(g[6]!, g[7]!, "public")
  // ::a.b.c.d (IPv4-compatible, deprecated): never a legitimate destination.
  if (zeros(0, 6)) return embedded(g[6]!, g[7]!, "reserved")
  // 64:ff9b::/96 (NAT64): a translator reaches the IPv4 address inside.
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return embedded(g[6]!, g[7]!, "public")
  // 64:ff9b:1::/48: local-use NAT64.
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return "private"
  if ((g[0]! & 0xfe00) === 0xfc00) return "uniqueLocal"
  if ((g[0]! & 0xffc0) === 0xfe80) return "linkLocal"
  if ((g[0]! & 0xffc0) === 0xfec0) return "siteLocal"
  if ((g[0]! & 0xff00) === 0xff00) return "multicast"
  if ((g[0] === 0x2001 && g[1] === 0x0db8) || (g[0] === 0x3fff && g[1]! < 0x1000)) return "documentation"
  // 2001::/23: IETF protocol assignments (Teredo, ORCHID, benchmarking, ...).
  if (g[0] === 0x2001 && g[1]! < 0x0200) return "reserved"
  // 2002::/16 (6to4): the relay reaches the IPv4 address in the next 32 bits.
  if (g[0] === 0x2002) return embedded(g[1]!, g[2]!, "public")
  // Global unicast is 2000::/3; the rest is unassigned or special.
  return (g[0]! & 0xe000) === 0x2000 ? "public" : "reserved"
}

/**
 * What an IP address is: `"public"` for a global unicast address, otherwise the special range it is in (an
 * IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6 address is judged by the IPv4 address inside it), or
 * `"invalid"` for a string that is not an IP address.
 *
 * @since 0.1.0
 * @category getters
 */
export const classifyAddress = (address: string): AddressKind =>
  net.isIPv4(address) ? classifyIpv4(ipv4Number(address)) : net.isIPv6(address) ? classifyIpv6(ipv6Groups(address)) : "invalid"

/**
 * Which addresses may be fetched besides public ones: `false` (none, the default), `true` (all), or a function
 * deciding for each non-public address (say, one intranet host).
 *
 * @since 0.1.0
 * @category models
 */
export type AddressPolicy = boolean | ((address: string, kind: AddressKind) => boolean)

const allows = (policy: AddressPolicy) => (address: string): { readonly allowed: boolean; readonly kind: AddressKind } => {
  const kind = classifyAddress(address)
  return { allowed: kind === "public" || policy === true || (typeof policy === "function" && policy(address, kind)), kind }
}

/** A body over the byte cap, told apart from other failures: it is answered 413, like a request body that size. */
class OverLimit extends Error {}

/** A refused destination, raised inside node's connect path (a `lookup` callback or a socket), hence an `Error`. */
class AddressRefused extends Error {
  constructor(readonly host: string, readonly address: string, readonly kind: AddressKind) {
    super(`${host} resolves to ${address}, ${describeAddressKind(kind)}, which is not allowed`)
  }
}

/**
 * A resolver with `dns.lookup`'s shape, asked for all addresses: `guardedLookup` takes one to resolve with
 * (tests pass a fake one).
 *
 * @since 0.1.0
 * @category models
 */
export type Resolver = (
  hostname: string,
  options: dns.LookupAllOptions,
  callback: (error: NodeJS.ErrnoException | null, addresses: Array<dns.LookupAddress>) => void
) => void

/**
 * A `lookup` for `net`/`http`/`https` connections that resolves the host name (with `resolve`, `dns.lookup` by
 * default), checks every address returned, and fails the connection when any of them is not allowed by `policy`.
 * The connection then goes to one of the checked addresses, never to a second answer of the resolver.
 *
 * @since 0.1.0
 * @category constructors
 */
export const guardedLookup = (policy: AddressPolicy, resolve: Resolver = dns.lookup): net.LookupFunction => {
  const check = allows(policy)
  return (hostname, options, callback) =>
    resolve(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, [])
      for (const { address } of addresses) {
        const verdict = check(address)
        if (!verdict.allowed) return callback(new AddressRefused(hostname, address, verdict.kind), [])
      }
      if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), [])
      if (options.all === true) return callback(null, addresses)
      return callback(null, addresses[0]!.address, addresses[0]!.family)
    })
}

/**
 * How `fetch` fetches a URL: the body's byte limit (required), and the defaults of the rest: only public
 * addresses, 10 s for the whole fetch, 3 redirects.
 *
 * @since 0.1.0
 * @category models
 */
export interface UrlFetchOptions {
  /** Largest body accepted, in bytes. */
  readonly maxBytes: number
  /** The field named by errors (`data`, `samples[3].data`). Default `url`. */
  readonly field?: string | undefined
  /** Addresses fetched besides public ones. Default `false`: none. */
  readonly allowPrivateAddresses?: AddressPolicy | undefined
  /** Words appended to the refusal of a non-public address, saying how to allow it. */
  readonly privateAddressHint?: string | undefined
  /** Timeout of the whole fetch, redirects included. Default 10 s. */
  readonly timeoutMs?: number | undefined
  /** Redirects followed, each re-checked like the first URL. Default 3; 0 refuses redirects. */
  readonly maxRedirects?: number | undefined
}

/**
 * A fetched body: its bytes, the answer's media type and the final URL.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fetched {
  readonly bytes: Uint8Array
  /** The `Content-Type` of the answer, if any. */
  readonly mediaType: string | undefined
  /** The URL the bytes came from, after redirects. */
  readonly url: string
}

type Hop =
  | { readonly _tag: "Body"; readonly bytes: Uint8Array; readonly mediaType: string | undefined }
  | { readonly _tag: "Redirect"; readonly location: string }

const redirectStatuses = new Set([301, 302, 303, 307, 308])

const messageOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** One GET on a fresh connection: the body (at most `maxBytes`), or where a redirect points. */
const getOnce = (url: URL, policy: AddressPolicy, maxBytes: number): Effect.Effect<Hop, Error> =>
  Effect.async<Hop, Error>((resume) => {
    let settled = false
    const settle = (result: Effect.Effect<Hop, Error>) => {
      if (!settled) {
        settled = true
        resume(result)
      }
    }
    const fail = (cause: unknown) => settle(Effect.fail(cause instanceof Error ? cause : new Error(String(cause))))
    const options: https.RequestOptions = {
      method: "GET",
      agent: false,
      lookup: guardedLookup(policy),
      headers: { accept: "image/*", "user-agent": "loupe" }
    }
    const request = (url.protocol === "https:" ? https : http).request(url, options, (response) => {
      response.on("error", fail)
      const status = response.statusCode ?? 0
      if (redirectStatuses.has(status) && response.headers.location !== undefined) {
        request.destroy()
        return settle(Effect.succeed({ _tag: "Redirect", location: response.headers.location }))
      }
      if (status < 200 || status > 299) {
        request.destroy()
        return fail(new Error(`HTTP ${status}${response.statusMessage ? ` ${response.statusMessage}` : ""}`))
      }
      const declared = Number(response.headers["content-length"] ?? "0")
      if (declared > maxBytes) {
        request.destroy()
        return fail(new OverLimit(`${declared} bytes is over the ${maxBytes}-byte limit`))
      }
      const chunks: Array<Buffer> = []
      let size = 0
      response.on("data", (chunk: Buffer) => {
        size += chunk.length
        if (size > maxBytes) {
          request.destroy()
          fail(new OverLimit(`over the ${maxBytes}-byte limit`))
        } else {
          chunks.push(chunk)
        }
      })
      response.on("end", () => {
        const body = Buffer.concat(chunks, size)
        settle(Effect.succeed({
          _tag: "Body",
          bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
          mediaType: response.headers["content-type"]
        }))
      })
      response.on("close", () => fail(new Error("the connection closed before the body was complete")))
    })
    // The address actually connected to, checked once more before the request is written.
    request.on("socket", (socket) => {
      const check = () => {
        // A connected socket always has a remote address; none would be refused ("invalid") unless all are allowed.
        const address = socket.remoteAddress ?? ""
        const verdict = allows(policy)(address)
        if (!verdict.allowed) request.destroy(new AddressRefused(url.hostname, address, verdict.kind))
      }
      if (socket.connecting) socket.once("connect", check)
      else check()
    })
    request.on("error", fail)
    request.end()
    return Effect.sync(() => request.destroy())
  })

/** A URL fit for a message: no credentials, not too long. */
const shown = (url: URL | string): string => {
  const parsed = url instanceof URL ? url : URL.canParse(url) ? new URL(url) : undefined
  let text = parsed?.href ?? String(url)
  if (parsed !== undefined && (parsed.username !== "" || parsed.password !== "")) {
    const bare = new URL(parsed.href)
    bare.username = ""
    bare.password = ""
    text = bare.href
  }
  return text.length > 200 ? `${text.slice(0, 200)}...` : text
}

/** The error of every failure but an oversized body: `InvalidImage`, naming the field. */
const refusal = (field: string, message: string, cause?: unknown) =>
  new DeployError({ reason: "InvalidImage", field, message: `${field}: ${message}`, cause })

/**
 * The bytes behind an `http(s)` URL, under the address policy, byte cap, redirect limit and timeout of `options`
 * (see the module's description). Every failure is a `DeployError` naming `options.field`, whose message says why:
 * reason `BodyTooLarge` for a body over `maxBytes` (declared or streamed), `InvalidImage` for the rest (`data:
 * http://127.0.0.1:8080/cat.jpg resolves to 127.0.0.1, a loopback address; ...`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fetchBytes: (url: string | URL, options: UrlFetchOptions) => Effect.Effect<Fetched, DeployError> = Effect.fn(
  "UrlFetch.fetchBytes"
)(
  function*(url: string | URL, options: UrlFetchOptions) {
    const field = options.field ?? "url"
    const policy = options.allowPrivateAddresses ?? false
    const maxRedirects = options.maxRedirects ?? 3
    const hint = options.privateAddressHint ?? "private addresses are not fetched (allowPrivateAddresses allows them)"
    const refuse = (message: string, cause?: unknown) => refusal(field, message, cause)

    const first = yield* Effect.try({
      try: () => (url instanceof URL ? url : new URL(url)),
      catch: (cause) => refuse(`${shown(url)} is not a valid URL`, cause)
    })
    let current = first
    for (let hops = 0;; hops++) {
      // "http://a/x" for the URL given, "http://a/x redirects to http://b/y, which" for a hop after it.
      const subject = hops === 0 ? shown(current) : `${shown(first)} redirects to ${shown(current)}, which`
      if (current.protocol !== "http:" && current.protocol !== "https:") {
        return yield* refuse(`${subject} is not an http(s) URL`)
      }
      if (current.username !== "" || current.password !== "") {
        return yield* refuse(`${subject} carries a user name or password; URLs with credentials are not fetched`)
      }
      // Node connects to an IP literal without calling `lookup`: check it here, before any connection.
      const host = current.hostname.replace(/^\[(.*)\]$/, "$1")
      if (net.isIP(host) !== 0) {
        const verdict = allows(policy)(host)
        if (!verdict.allowed) return yield* refuse(`${subject} resolves to ${host}, ${describeAddressKind(verdict.kind)}; ${hint}`)
      }
      const hop = yield* getOnce(current, policy, options.maxBytes).pipe(
        Effect.mapError((cause) =>
          cause instanceof AddressRefused
            ? refuse(`${subject} resolves to ${cause.address}, ${describeAddressKind(cause.kind)}; ${hint}`, cause)
            : cause instanceof OverLimit
            ? new DeployError({ reason: "BodyTooLarge", field, message: `${field}: ${shown(current)} is too large: ${cause.message}`, cause })
            : refuse(`cannot fetch ${shown(current)}: ${messageOf(cause)}`, cause)
        )
      )
      if (hop._tag === "Body") return { bytes: hop.bytes, mediaType: hop.mediaType, url: current.href }
      if (hops >= maxRedirects) {
        return yield* refuse(
          maxRedirects === 0
            ? `${subject} redirects to ${shown(hop.location)}; redirects are not followed`
            : `${shown(first)} redirects more than ${maxRedirects} times`
        )
      }
      const from = current
      current = yield* Effect.try({
        try: () => new URL(hop.location, from),
        catch: (cause) => refuse(`${shown(from)} redirects to ${shown(hop.location)}, not a valid URL`, cause)
      })
    }
  },
  (effect, url, options) =>
    Effect.timeoutFail(effect, {
      duration: options.timeoutMs ?? 10_000,
      onTimeout: () =>
        refusal(options.field ?? "url", `cannot fetch ${shown(url)}: no complete answer within ${options.timeoutMs ?? 10_000} ms`)
    })
)
