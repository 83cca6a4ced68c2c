/**
 * Wire framing for peer connections. A frame is
 *
 *   u32 big-endian body length | u32 big-endian CRC32C of the body | body
 *
 * and a body is one or more msgpack values (envelopes) back to back, so that many small messages
 * share one header and one checksum. The length is checked against a maximum before anything is
 * buffered: a peer (or anything that connects to the port) is untrusted input.
 */
import { crc32c } from '@node-rs/crc32';

export const FRAME_HEADER_BYTES = 8;
/** Upper bound for any configured maximum frame size: the length field must stay far from 2^32. */
export const FRAME_BODY_HARD_LIMIT = 1024 * 1024 * 1024;

export type FrameErrorReason = 'frame_too_large' | 'empty_frame' | 'checksum_mismatch';

export class FrameError extends Error {
  constructor(
    readonly reason: FrameErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Builds a frame header for a body made of `parts` (not copied). */
export function frameHeader(parts: readonly Buffer[]): Buffer {
  let length = 0;
  let crc = 0;
  for (const part of parts) {
    length += part.length;
    crc = crc32c(part, crc);
  }
  if (length === 0) throw new Error('frameHeader: a frame body cannot be empty');
  if (length > FRAME_BODY_HARD_LIMIT)
    throw new Error(`frameHeader: body of ${length} bytes exceeds the hard limit`);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(length, 0);
  header.writeUInt32BE(crc, 4);
  return header;
}

/** A whole frame in one Buffer (handshakes and tests; the send path writes header and parts separately). */
export function encodeFrame(body: Buffer): Buffer {
  return Buffer.concat([frameHeader([body]), body]);
}

/**
 * Incremental decoder for a byte stream of frames. Chunks are kept as received and concatenated
 * only once a whole header or a whole frame is present, so a large frame arriving in many chunks
 * costs one copy, not one per chunk.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Body length of the frame being assembled, once its header has been read. */
  private pendingBodyLength = -1;
  private pendingCrc = 0;

  constructor(private maxBodyBytes: number) {
    FrameDecoder.checkLimit(maxBodyBytes);
  }

  private static checkLimit(maxBodyBytes: number): void {
    if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1 || maxBodyBytes > FRAME_BODY_HARD_LIMIT) {
      throw new Error(`FrameDecoder: max frame body must be an integer in [1, ${FRAME_BODY_HARD_LIMIT}]`);
    }
  }

  /** Changes the limit for frames not yet started (the handshake uses a small one). */
  setMaxBodyBytes(maxBodyBytes: number): void {
    FrameDecoder.checkLimit(maxBodyBytes);
    this.maxBodyBytes = maxBodyBytes;
  }

  /** Bytes held while waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Appends one chunk of the stream. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The body of the next complete frame, or undefined until more bytes arrive. One frame at a
   * time, so the caller can change the limit between frames (after a handshake). Throws FrameError
   * on an oversize length, an empty frame or a checksum mismatch; the stream is unusable afterwards.
   */
  next(): Buffer | undefined {
    if (this.pendingBodyLength < 0) {
      if (this.buffered < FRAME_HEADER_BYTES) return undefined;
      const header = this.take(FRAME_HEADER_BYTES);
      const length = header.readUInt32BE(0);
      if (length === 0) throw new FrameError('empty_frame', 'frame with an empty body');
      if (length > this.maxBodyBytes) {
        throw new FrameError(
          'frame_too_large',
          `frame body of ${length} bytes exceeds the maximum of ${this.maxBodyBytes} bytes`,
        );
      }
      this.pendingBodyLength = length;
      this.pendingCrc = header.readUInt32BE(4);
    }
    if (this.buffered < this.pendingBodyLength) return undefined;
    const body = this.take(this.pendingBodyLength);
    const actual = crc32c(body);
    if (actual !== this.pendingCrc) {
      throw new FrameError(
        'checksum_mismatch',
        `frame checksum mismatch: header says ${this.pendingCrc.toString(16)}, body has ${actual.toString(16)}`,
      );
    }
    this.pendingBodyLength = -1;
    return body;
  }

  /** Removes and returns the first `n` buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const joined = Buffer.concat(this.chunks, this.buffered);
      out = joined.subarray(0, n);
      this.chunks = joined.length > n ? [joined.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}
