/**
 * Byte helpers.
 *
 * @internal
 */

/** A plain Uint8Array view of the bytes Node's FileSystem returns (a Buffer), so callers compare and copy them as bytes. */
export const plainBytes = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
