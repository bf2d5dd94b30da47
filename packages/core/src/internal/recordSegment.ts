/**
 * Segment files of the disk embedding cache: immutable files holding many records, each a 32-byte key (a sha256)
 * and a value of a fixed number of bytes (a float32 vector, or another sha256).
 *
 * A segment is written to a temporary name, synced and renamed into place, so a reader sees either nothing or the
 * whole file. Readers still check the size and a sha256 of the body, so a file damaged in any other way (a disk
 * that lost the tail, a partial copy) is rejected instead of read.
 *
 * Layout (little-endian):
 *   magic "LOUPESEG" | version u32 | value bytes u32 | count u32 | reserved u32 | sha256(body) 32 bytes
 *   body: count keys of 32 bytes, then count values
 * The header is 56 bytes, so float32 values are 4-byte aligned.
 *
 * @internal
 */
import { createHash, randomBytes } from "node:crypto"
// node:fs, not FileSystem: `readValue` reads synchronously at a position of an open descriptor, which FileSystem
// cannot (its reads are effects on a File with a cursor), and the cache's `get` runs per image on the hot path.
import * as fsSync from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"

const MAGIC = Buffer.from("LOUPESEG", "latin1")
const VERSION = 1
const HEADER = 56
const KEY = 32
/** Bytes of values hashed or copied per read or write. */
const CHUNK = 1 << 20

export const SEGMENT_SUFFIX = ".seg"
export const TEMP_PREFIX = ".tmp-"

/** An open, verified segment. `keys[i]` (hex) is the key of value `i`. */
export interface Segment {
  readonly file: string
  readonly handle: fs.FileHandle
  readonly valueBytes: number
  readonly keys: ReadonlyArray<string>
}

/**
 * Read value `index` of a segment, into its own (aligned) buffer. Synchronously: values are a few kilobytes, usually
 * in the page cache, and a thread-pool round trip would cost more than the read itself.
 */
export const readValue = (segment: Segment, index: number): Uint8Array => {
  const out = new Uint8Array(segment.valueBytes)
  const position = HEADER + segment.keys.length * KEY + index * segment.valueBytes
  const bytesRead = fsSync.readSync(segment.handle.fd, out, 0, out.length, position)
  if (bytesRead !== out.length) throw new Error(`${segment.file} ended early`)
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
): Promise<{ readonly valueBytes: number; readonly keys: ReadonlyArray<string> } | string> => {
  const { size } = await handle.stat()
  const header = Buffer.alloc(HEADER)
  await handle.read(header, 0, HEADER, 0)
  if (size < HEADER || !header.subarray(0, 8).equals(MAGIC)) return "not a Loupe cache segment"
  if (header.readUInt32LE(8) !== VERSION) return `segment version ${header.readUInt32LE(8)}, expected ${VERSION}`
  const valueBytes = header.readUInt32LE(12)
  const count = header.readUInt32LE(16)
  const expected = HEADER + count * (KEY + valueBytes)
  if (size !== expected) return `${size} bytes where ${count} records of ${valueBytes} bytes need ${expected} (torn write)`
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
  return { valueBytes, keys }
}

/**
 * Write records into a new segment in `dir`, atomically: `keys` are hex sha256 strings, `valueAt(i)` supplies value
 * `i` (it may read from other segments). Returns the new segment, open for reading.
 */
export const write = async (
  dir: string,
  valueBytes: number,
  keys: ReadonlyArray<string>,
  valueAt: (index: number) => Uint8Array | Promise<Uint8Array>
): Promise<Segment> => {
  const tag = `${Date.now().toString(36)}-${process.pid}-${randomBytes(6).toString("hex")}`
  const temp = path.join(dir, `${TEMP_PREFIX}${tag}`)
  const handle = await fs.open(temp, "wx")
  const filled = fill(handle, valueBytes, keys, valueAt).finally(() => handle.close())
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
  return { file, handle: reader, valueBytes, keys }
}

const fill = async (
  handle: fs.FileHandle,
  valueBytes: number,
  keys: ReadonlyArray<string>,
  valueAt: (index: number) => Uint8Array | Promise<Uint8Array>
): Promise<void> => {
  const hash = createHash("sha256")
  const keyBytes = Buffer.alloc(keys.length * KEY)
  keys.forEach((k, i) => keyBytes.write(k, i * KEY, KEY, "hex"))
  hash.update(keyBytes)
  await handle.write(keyBytes, 0, keyBytes.length, HEADER)
  const perChunk = Math.max(1, Math.floor(CHUNK / valueBytes))
  let position = HEADER + keyBytes.length
  for (let start = 0; start < keys.length; start += perChunk) {
    const n = Math.min(perChunk, keys.length - start)
    const block = new Uint8Array(n * valueBytes)
    for (let i = 0; i < n; i++) {
      const v = await valueAt(start + i)
      if (v.length !== valueBytes) throw new Error(`value ${start + i} has ${v.length} bytes, expected ${valueBytes}`)
      block.set(v, i * valueBytes)
    }
    hash.update(block)
    await handle.write(block, 0, block.length, position)
    position += block.length
  }
  const header = Buffer.alloc(HEADER)
  MAGIC.copy(header, 0)
  header.writeUInt32LE(VERSION, 8)
  header.writeUInt32LE(valueBytes, 12)
  header.writeUInt32LE(keys.length, 16)
  hash.digest().copy(header, 24)
  await handle.write(header, 0, HEADER, 0)
  // Data on disk before the rename makes it visible: a crash never leaves a complete-looking name on torn data.
  await handle.sync()
}
