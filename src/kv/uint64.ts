/**
 * Little-endian unsigned 64-bit integers as JS numbers, without BigInt (which is slow on hot paths).
 * Only safe integers (< 2^53) are written; a read may yield an unsafe number, which callers that
 * decode untrusted bytes must reject with Number.isSafeInteger.
 */

const TWO_POW_32 = 0x1_0000_0000;

export function writeUint64LE(buffer: Buffer, offset: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`cannot encode ${value} as an unsigned 64-bit integer`);
  }
  buffer.writeUInt32LE(value >>> 0, offset);
  buffer.writeUInt32LE(Math.floor(value / TWO_POW_32), offset + 4);
}

export function readUint64LE(buffer: Uint8Array, offset: number): number {
  const lo =
    buffer[offset]! +
    buffer[offset + 1]! * 0x100 +
    buffer[offset + 2]! * 0x1_0000 +
    buffer[offset + 3]! * 0x100_0000;
  const hi =
    buffer[offset + 4]! +
    buffer[offset + 5]! * 0x100 +
    buffer[offset + 6]! * 0x1_0000 +
    buffer[offset + 7]! * 0x100_0000;
  return hi * TWO_POW_32 + lo;
}
