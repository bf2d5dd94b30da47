/**
 * Exact JSON encodings of fitted state: Float64 and Float32 arrays as base64 of their little-endian bytes, so a
 * fitted head loads back bit for bit and stays compact (a kNN head keeps every training row).
 */
import { ParseResult, Schema } from "effect"

const floatArray = <A extends Float64Array | Float32Array>(
  name: string,
  bytesPer: number,
  ctor: new(n: number) => A,
  read: (view: DataView, offset: number) => number,
  write: (view: DataView, offset: number, value: number) => void
) =>
  Schema.transformOrFail(Schema.Uint8ArrayFromBase64, Schema.instanceOf(ctor), {
    strict: true,
    decode: (bytes, _, ast) => {
      if (bytes.byteLength % bytesPer !== 0) {
        return ParseResult.fail(
          new ParseResult.Type(ast, bytes, `${name}: ${bytes.byteLength} bytes is not a whole number of values`)
        )
      }
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      const out = new ctor(bytes.byteLength / bytesPer)
      for (let i = 0; i < out.length; i++) out[i] = read(view, i * bytesPer)
      return ParseResult.succeed(out)
    },
    encode: (values) => {
      const bytes = new Uint8Array(values.length * bytesPer)
      const view = new DataView(bytes.buffer)
      for (let i = 0; i < values.length; i++) write(view, i * bytesPer, values[i]!)
      return ParseResult.succeed(bytes)
    }
  })

/** A Float64Array stored as base64 of its little-endian bytes. */
export const Float64 = floatArray(
  "Float64",
  8,
  Float64Array,
  (v, o) => v.getFloat64(o, true),
  (v, o, x) => v.setFloat64(o, x, true)
)

/** A Float32Array stored as base64 of its little-endian bytes. */
export const Float32 = floatArray(
  "Float32",
  4,
  Float32Array,
  (v, o) => v.getFloat32(o, true),
  (v, o, x) => v.setFloat32(o, x, true)
)
