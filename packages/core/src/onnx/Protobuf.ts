/**
 * The protobuf wire format, only as far as Loupe needs it to read and extend ONNX model files: walk the fields of a
 * message without a schema, and encode small messages (varints, floats, strings, nested messages).
 *
 * Readers throw `Error` on malformed input; callers wrap them in `Effect.try`. The wire format under `OnnxGraph`
 * (writing) and `OnnxModel` (reading and editing).
 *
 * @since 0.2.0
 */

/**
 * One field of a message. `start`/`end` delimit the payload of a length-delimited field (wire type 2).
 *
 * @since 0.2.0
 * @category models
 */
export interface Field {
  readonly number: number
  readonly wireType: 0 | 1 | 2 | 5
  /** The value of a varint field (wire type 0); exact up to 2^53. */
  readonly varint: number
  /** Where the field begins, its key included: `bytes.subarray(at, end)` is the whole field. */
  readonly at: number
  readonly start: number
  readonly end: number
}

const readVarint = (bytes: Uint8Array, at: number): [value: number, next: number] => {
  let value = 0
  let factor = 1
  let p = at
  for (let i = 0; i < 10; i++) {
    if (p >= bytes.length) throw new Error(`truncated varint at byte ${at}`)
    const b = bytes[p++]!
    value += (b & 0x7f) * factor
    if ((b & 0x80) === 0) return [value, p]
    factor *= 128
  }
  throw new Error(`varint longer than 10 bytes at byte ${at}`)
}

/**
 * The fields of the message stored in `bytes[start, end)`, in file order.
 *
 * @since 0.2.0
 * @category readers
 */
export function* fields(bytes: Uint8Array, start = 0, end = bytes.length): Generator<Field> {
  let p = start
  while (p < end) {
    const at = p
    const [key, afterKey] = readVarint(bytes, p)
    const number = Math.floor(key / 8)
    const wireType = key % 8
    p = afterKey
    switch (wireType) {
      case 0: {
        const [varint, next] = readVarint(bytes, p)
        yield { number, wireType, varint, at, start: p, end: next }
        p = next
        break
      }
      case 1:
      case 5: {
        const size = wireType === 1 ? 8 : 4
        yield { number, wireType, varint: 0, at, start: p, end: p + size }
        p += size
        break
      }
      case 2: {
        const [length, payload] = readVarint(bytes, p)
        if (payload + length > end) throw new Error(`field ${number} at byte ${p} runs past the end of its message`)
        yield { number, wireType, varint: length, at, start: payload, end: payload + length }
        p = payload + length
        break
      }
      default:
        throw new Error(`unsupported wire type ${wireType} for field ${number} at byte ${p}`)
    }
  }
  if (p !== end) throw new Error(`message ends inside a field (byte ${p}, expected ${end})`)
}

const decoder = new TextDecoder("utf-8", { fatal: true })
const encoder = new TextEncoder()

/**
 * The payload of a length-delimited field as a UTF-8 string.
 *
 * @since 0.2.0
 * @category readers
 */
export const string = (bytes: Uint8Array, field: Field): string => decoder.decode(bytes.subarray(field.start, field.end))

const varintBytes = (value: number): Array<number> => {
  const out: Array<number> = []
  if (value < 0) {
    // int64 fields carry a negative value as its 64-bit two's complement: always ten bytes.
    let big = BigInt.asUintN(64, BigInt(value))
    for (; big > 0x7fn; big >>= 7n) out.push(Number(big & 0x7fn) | 0x80)
    out.push(Number(big))
    return out
  }
  let v = value
  while (v > 0x7f) {
    out.push((v % 128) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return out
}

/**
 * The bytes of `parts`, one after another.
 *
 * @since 0.2.0
 * @category encoders
 */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/**
 * A varint field (int64, enum); negative values are encoded as int64.
 *
 * @since 0.2.0
 * @category encoders
 */
export const varintField = (number: number, value: number): Uint8Array =>
  Uint8Array.from([...varintBytes(number * 8), ...varintBytes(value)])

/**
 * A length-delimited field: a nested message, bytes or a string.
 *
 * @since 0.2.0
 * @category encoders
 */
export const message = (number: number, ...payload: ReadonlyArray<Uint8Array>): Uint8Array => {
  const body = concat(payload)
  return concat([Uint8Array.from([...varintBytes(number * 8 + 2), ...varintBytes(body.length)]), body])
}

/**
 * A string field.
 *
 * @since 0.2.0
 * @category encoders
 */
export const stringField = (number: number, value: string): Uint8Array => message(number, encoder.encode(value))

/**
 * A fixed32 field holding a float.
 *
 * @since 0.2.0
 * @category encoders
 */
export const float32Field = (number: number, value: number): Uint8Array => {
  const out = new Uint8Array([...varintBytes(number * 8 + 5), 0, 0, 0, 0])
  new DataView(out.buffer).setFloat32(out.length - 4, value, true)
  return out
}
