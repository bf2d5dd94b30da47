import { describe, expect, it } from "@effect/vitest"
import { Plugins } from "@loupe/cli"
import { Functions, Store, StoreLocation } from "@loupe/functions"
import { Effect, Either, Exit, Redacted } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const parsed = (input: string) => StoreLocation.parse(input, "--store", "/work")

describe("StoreLocation.parse", () => {
  it("paths are folders, resolved against the working directory; Windows drives are paths", () => {
    expect(parsed("./store")).toStrictEqual(Either.right(StoreLocation.directory("/work/store")))
    expect(parsed("store")).toStrictEqual(Either.right(StoreLocation.directory("/work/store")))
    expect(parsed("/srv/loupe")).toStrictEqual(Either.right(StoreLocation.directory("/srv/loupe")))
    expect(parsed("./odd:name")).toStrictEqual(Either.right(StoreLocation.directory("/work/odd:name")))
    expect(Either.getOrThrow(parsed("C:\\loupe"))._tag).toBe("Directory")
    expect(Either.getOrThrow(parsed("d:/loupe"))._tag).toBe("Directory")
  })

  it("postgres:// and postgresql:// are Postgres, the URL kept redacted", () => {
    for (const url of ["postgres://loupe:secret@db.internal:5432/loupe", "postgresql://loupe@localhost/loupe?host=/run/pg"]) {
      const location = Either.getOrThrow(parsed(url))
      expect(location._tag).toBe("Postgres")
      if (location._tag !== "Postgres") return
      expect(Redacted.value(location.url)).toBe(url)
      expect(String(location.url)).not.toContain("secret")
    }
  })

  it("describe masks the password", () => {
    const location = Either.getOrThrow(parsed("postgres://loupe:s3cret@db:5432/loupe"))
    expect(StoreLocation.describe(location)).toBe("postgres://loupe:***@db:5432/loupe")
    expect(JSON.stringify(location)).not.toContain("s3cret")
  })

  it("an unknown scheme is an error naming it and the flag, never a folder", () => {
    for (const [input, scheme] of [["s3://bucket/store", "s3:"], ["file:///tmp/x", "file:"], ["mysql://db/x", "mysql:"], ["foo:bar", "foo:"]]) {
      const error = Either.getLeft(parsed(input!))
      expect(error._tag).toBe("Some")
      if (error._tag !== "Some") return
      expect(error.value).toMatchObject({ reason: "InvalidInput", field: "--store" })
      expect(error.value.message).toContain(`unknown store scheme '${scheme}'; use a folder or postgres://`)
    }
  })

  it("a malformed postgres URL, an empty location and an unexpanded ~ are errors; passwords are not printed", () => {
    const noHost = Either.getLeft(parsed("postgres:loupe:hunter2@"))
    expect(noHost._tag).toBe("Some")
    if (noHost._tag === "Some") expect(noHost.value.message).not.toContain("hunter2")
    const badUrl = Either.getLeft(parsed("postgres://loupe:hunter2@[bad/loupe"))
    expect(badUrl._tag).toBe("Some")
    if (badUrl._tag === "Some") {
      expect(badUrl.value.message).toContain("is not a valid postgres:// URL")
      expect(badUrl.value.message).not.toContain("hunter2")
    }
    expect(Either.isLeft(parsed(" "))).toBe(true)
    expect(Either.getLeft(parsed("~/store"))).toMatchObject({ value: { field: "--store" } })
  })

  it("LOUPE_STORE_URL wins over LOUPE_STORE_DIR, and a URL in LOUPE_STORE_DIR is not a folder", () => {
    expect(StoreLocation.fromEnv({}, "/work")).toBeUndefined()
    expect(StoreLocation.fromEnv({ LOUPE_STORE_DIR: "./d" }, "/work")).toStrictEqual(
      Either.right(StoreLocation.directory(path.resolve("/work/d")))
    )
    const both = StoreLocation.fromEnv({ LOUPE_STORE_DIR: "./d", LOUPE_STORE_URL: "postgres://db/loupe" }, "/work")
    expect(both && Either.getOrThrow(both)._tag).toBe("Postgres")
    const urlInDir = StoreLocation.fromEnv({ LOUPE_STORE_DIR: "postgres://db/loupe" }, "/work")
    expect(urlInDir && Either.getOrThrow(urlInDir)._tag).toBe("Postgres")
    const unknown = StoreLocation.fromEnv({ LOUPE_STORE_URL: "s3://bucket" }, "/work")
    expect(unknown && Either.getLeft(unknown)).toMatchObject({ value: { field: "LOUPE_STORE_URL" } })
  })
})

describe("Store.layerPostgres", () => {
  it.live("a database that cannot be reached is StoreFailed naming the URL, without its password", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Effect.provide(Store.Store, Store.layerPostgres("postgres://loupe:hunter2@127.0.0.1:1/loupe"))
      )
      expect(exit).toStrictEqual(Exit.fail(expect.objectContaining({ reason: "StoreFailed", field: "store" })))
      const message = Exit.isFailure(exit) ? String(exit.cause) : ""
      expect(message).toContain("postgres://loupe:***@127.0.0.1:1/loupe")
      expect(message).not.toContain("hunter2")
    }))
})

describe("Functions.open", () => {
  it("an unknown scheme rejects with InvalidInput naming store, and no folder is made", async () => {
    const cwd = process.cwd()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-open-scheme-"))
    process.chdir(dir)
    try {
      await expect(Functions.open({ store: "s3://bucket/loupe", plugins: Plugins.builtins })).rejects.toMatchObject({
        reason: "InvalidInput",
        field: "store"
      })
    } finally {
      process.chdir(cwd)
    }
    expect(fs.readdirSync(dir)).toEqual([])
  })
})
