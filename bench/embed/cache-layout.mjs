// Why the disk embedding cache stores segments: write and read back N vectors (1280 floats) with
// DiskEmbeddingCache, and the same with one small file per vector in 256 sharded folders (temp file + rename, the
// other layout considered). Run after `pnpm build`: node bench/embed/cache-layout.mjs [count]
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DiskEmbeddingCache } from "@loupe/core"
import { Effect } from "effect"

const count = Number(process.argv[2] ?? 1600)
const keys = Array.from({ length: count }, (_, i) => createHash("sha256").update(`image-${i}`).digest("hex"))
const vector = (i) => Float32Array.from({ length: 1280 }, (_, j) => i + j)
const time = async (run) => {
  const start = performance.now()
  await run()
  return performance.now() - start
}
const base = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-cache-layout-"))

// Segments, through the real cache (a fresh instance for reading, as a rerun would: the time includes opening and
// checking the segments).
const segDir = path.join(base, "segments")
const segWrite = await time(() =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const cache = yield* DiskEmbeddingCache.make(segDir)
    for (let i = 0; i < count; i++) yield* cache.set("ns", keys[i], vector(i))
  })))
)
const segRead = await time(() =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const cache = yield* DiskEmbeddingCache.make(segDir)
    for (let i = 0; i < count; i++) if ((yield* cache.get("ns", keys[i]))?.[0] !== i) throw new Error(`segment entry ${i}`)
  })))
)

// One file per vector: <dir>/<key[0..2]>/<key>, written to a temporary name and renamed; each get and set an
// Effect, as the cache's are.
const fileDir = path.join(base, "files")
const fileWrite = await time(() =>
  Effect.runPromise(Effect.gen(function*() {
    for (let i = 0; i < count; i++) {
      yield* Effect.tryPromise(async () => {
        const dir = path.join(fileDir, keys[i].slice(0, 2))
        await fs.promises.mkdir(dir, { recursive: true })
        const temp = path.join(dir, `.tmp-${process.pid}-${i}`)
        await fs.promises.writeFile(temp, new Uint8Array(vector(i).buffer))
        await fs.promises.rename(temp, path.join(dir, keys[i]))
      })
    }
  }))
)
const fileRead = await time(() =>
  Effect.runPromise(Effect.gen(function*() {
    for (let i = 0; i < count; i++) {
      const bytes = yield* Effect.tryPromise(() => fs.promises.readFile(path.join(fileDir, keys[i].slice(0, 2), keys[i])))
      if (new Float32Array(bytes.buffer, bytes.byteOffset, 1280)[0] !== i) throw new Error(`file entry ${i}`)
    }
  }))
)
fs.rmSync(base, { recursive: true, force: true })

const ms = (x) => `${x.toFixed(0).padStart(6)} ms`
console.log(`${count} vectors of 1280 float32; load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`)
console.log(`segments (DiskEmbeddingCache): write ${ms(segWrite)}, read back ${ms(segRead)}`)
console.log(`one file per vector:           write ${ms(fileWrite)}, read back ${ms(fileRead)}`)
console.log(`segments read back ${(fileRead / segRead).toFixed(1)}x faster, write ${(fileWrite / segWrite).toFixed(1)}x faster`)
