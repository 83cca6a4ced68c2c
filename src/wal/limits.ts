/**
 * The log's explicit limits (TIGER_STYLE: put a limit on everything). Each is enforced where data
 * enters the log and named in the error that reports it.
 */

export const KiB = 1024;
export const MiB = 1024 * KiB;

export const DEFAULT_SEGMENT_SIZE = 64 * MiB;
export const MIN_SEGMENT_SIZE = 4 * KiB;
export const MAX_SEGMENT_SIZE = 1024 * MiB;
/** Segment sizes are whole pages so zero-filling and writes stay page-aligned. */
export const SEGMENT_SIZE_MULTIPLE = 4 * KiB;

/**
 * A framed record may take at most half a segment, and so may the segment header that repeats
 * every group's hard state and snapshot marker. Both together always fit in a fresh segment,
 * so rolling to a new segment can never fail for lack of room.
 */
export function maxRecordBytes(segmentSize: number): number {
  return segmentSize / 2;
}
export function maxSegmentHeaderBytes(segmentSize: number): number {
  return segmentSize / 2;
}

/** A vote is a node id; its UTF-8 form is stored with a one-byte length. */
export const MAX_VOTE_BYTES = 255;
export const MAX_GROUP_ID = 0xffff_ffff;
export const MAX_ENTRY_TYPE = 0xff;
/** Segment numbers and offsets share one float64 position (seq * 2^32 + offset): seq < 2^21. */
export const MAX_SEGMENT_SEQ = 2 ** 21 - 1;

export const DEFAULT_MAX_PENDING_BYTES = 256 * MiB;
export const MIN_MAX_PENDING_BYTES = 1 * MiB;

export function checkSegmentSize(size: number): number {
  if (
    !Number.isInteger(size) ||
    size < MIN_SEGMENT_SIZE ||
    size > MAX_SEGMENT_SIZE ||
    size % SEGMENT_SIZE_MULTIPLE !== 0
  ) {
    throw new RangeError(
      `invalid WAL segmentSize ${size}: must be a multiple of ${SEGMENT_SIZE_MULTIPLE} from ${MIN_SEGMENT_SIZE} to ${MAX_SEGMENT_SIZE} bytes`,
    );
  }
  return size;
}
