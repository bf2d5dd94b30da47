/**
 * Segment files of the disk embedding cache: immutable files holding many (sha256 key, float32 vector) records.
 *
 * A segment is written to a temporary name, synced and renamed into place, so a reader sees either nothing or the
 * whole file. Readers still check the size and a sha256 of the body, so a file damaged in any other way (a disk
 * that lost the tail, a partial copy) is rejected instead of read.
 *
 * Layout (little-endian):
 *   magic "LOUPEVEC" | version u32 | dim u32 | count u32 | reserved u32 | sha256(body) 32 bytes
 *   body: count keys of 32 bytes, then count vectors of dim float32
 * The header is 56 bytes, so vectors are 4-byte aligned.
 *
 * @internal
 */
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"

const MAGIC = Buffer.from("LOUPEVEC", "latin1")
const VERSION = 1
const HEADER = 56
const KEY = 32
/** Bytes of vector data hashed or copied per read or write. */
const CHUNK = 1 << 20

export const SEGMENT_SUFFIX = ".seg"
export const TEMP_PREFIX = ".tmp-"

/** An open, verified segment. `keys[i]` (hex) is the key of vector `i`. */
export interface Segment {
  readonly file: string
  readonly handle: fs.FileHandle
  readonly dim: number
  readonly keys: ReadonlyArray<string>
}

/** Read vector `index` of a segment. */
export const readVector = async (segment: Segment, index: number): Promise<Float32Array> => {
  const out = new Float32Array(segment.dim)
  const bytes = segment.dim * 4
  const position = HEADER + segment.keys.length * KEY + index * bytes
  const { bytesRead } = await segment.handle.read(new Uint8Array(out.buffer), 0, bytes, position)
  if (bytesRead !== bytes) throw new Error(`${segment.file} ended early`)
  return out
}

/**
 * Open and verify a segment. Resolves to a string saying what is wrong when the file is not a complete, intact
 * segment (the caller discards it); rejects only on I/O errors.
 */
export const open = async (file: string): Promise<Segment | string> => {
  const handle = await fs.open(file, "r")
  const problem = await verify(file, handle).catch(async (error: unknown) => {
    await handle.close()
    throw error
  })
  if (typeof problem === "string") {
    await handle.close()
    return problem
  }
  return { file, handle, ...problem }
}

const verify = async (
  file: string,
  handle: fs.FileHandle
): Promise<{ readonly dim: number; readonly keys: ReadonlyArray<string> } | string> => {
  const { size } = await handle.stat()
  const header = Buffer.alloc(HEADER)
  await handle.read(header, 0, HEADER, 0)
  if (size < HEADER || !header.subarray(0, 8).equals(MAGIC)) return "not a Loupe vector segment"
  if (header.readUInt32LE(8) !== VERSION) return `segment version ${header.readUInt32LE(8)}, expected ${VERSION}`
  const dim = header.readUInt32LE(12)
  const count = header.readUInt32LE(16)
  const expected = HEADER + count * (KEY + dim * 4)
  if (size !== expected) return `${size} bytes where ${count} vectors of ${dim} need ${expected} (torn write)`
  const hash = createHash("sha256")
  const keyBytes = Buffer.alloc(count * KEY)
  await handle.read(keyBytes, 0, keyBytes.length, HEADER)
  hash.update(keyBytes)
  const chunk = Buffer.alloc(Math.min(CHUNK, size))
  for (let position = HEADER + keyBytes.length; position < size;) {
    const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, size - position), position)
    if (bytesRead === 0) return "the file ended early"
    hash.update(chunk.subarray(0, bytesRead))
    position += bytesRead
  }
  if (!hash.digest().equals(header.subarray(24, 56))) return "checksum mismatch (damaged file)"
  const keys: Array<string> = []
  for (let i = 0; i < count; i++) keys.push(keyBytes.toString("hex", i * KEY, (i + 1) * KEY))
  return { dim, keys }
}

/**
 * Write `count` records into a new segment in `dir`, atomically. `vectorAt(i)` supplies vector `i` (it may read
 * from other segments); `keys` are hex sha256 strings. Returns the new segment, open for reading.
 */
export const write = async (
  dir: string,
  dim: number,
  keys: ReadonlyArray<string>,
  vectorAt: (index: number) => Float32Array | Promise<Float32Array>
): Promise<Segment> => {
  const tag = `${Date.now().toString(36)}-${process.pid}-${randomBytes(6).toString("hex")}`
  const temp = path.join(dir, `${TEMP_PREFIX}${tag}`)
  const handle = await fs.open(temp, "wx")
  const filled = fill(handle, dim, keys, vectorAt).finally(() => handle.close())
  await filled.catch(async (error: unknown) => {
    await fs.rm(temp, { force: true })
    throw error
  })
  // Opened before the rename, the handle stays valid even if another process compacts the new file away at once.
  const reader = await fs.open(temp, "r")
  const file = path.join(dir, `${tag}${SEGMENT_SUFFIX}`)
  await fs.rename(temp, file).catch(async (error: unknown) => {
    await reader.close()
    await fs.rm(temp, { force: true })
    throw error
  })
  return { file, handle: reader, dim, keys }
}

const fill = async (
  handle: fs.FileHandle,
  dim: number,
  keys: ReadonlyArray<string>,
  vectorAt: (index: number) => Float32Array | Promise<Float32Array>
): Promise<void> => {
  const hash = createHash("sha256")
  const keyBytes = Buffer.alloc(keys.length * KEY)
  keys.forEach((k, i) => keyBytes.write(k, i * KEY, KEY, "hex"))
  hash.update(keyBytes)
  await handle.write(keyBytes, 0, keyBytes.length, HEADER)
  const perChunk = Math.max(1, Math.floor(CHUNK / (dim * 4)))
  let position = HEADER + keyBytes.length
  for (let start = 0; start < keys.length; start += perChunk) {
    const n = Math.min(perChunk, keys.length - start)
    const block = new Float32Array(n * dim)
    for (let i = 0; i < n; i++) {
      const v = await vectorAt(start + i)
      if (v.length !== dim) throw new Error(`vector ${start + i} has ${v.length} values, expected ${dim}`)
      block.set(v, i * dim)
    }
    const bytes = new Uint8Array(block.buffer)
    hash.update(bytes)
    await handle.write(bytes, 0, bytes.length, position)
    position += bytes.length
  }
  const header = Buffer.alloc(HEADER)
  MAGIC.copy(header, 0)
  header.writeUInt32LE(VERSION, 8)
  header.writeUInt32LE(dim, 12)
  header.writeUInt32LE(keys.length, 16)
  hash.digest().copy(header, 24)
  await handle.write(header, 0, HEADER, 0)
  // Data on disk before the rename makes it visible: a crash never leaves a complete-looking name on torn data.
  await handle.sync()
}
