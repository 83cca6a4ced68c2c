/**
 * How the operator's settings (src/config) become the tunables of each part: the Raft node, the
 * store, the WAL, the peer transport and the HTTP API. One limit per resource, enforced with the
 * same value everywhere it is checked (DESIGN.md §10 "Size limits").
 */
import type { NodeConfig } from '../config/node-config.js';
import type { StoreLimits } from '../kv/limits.js';
import type { NodeSettings } from '../node/group-replica.js';
import { FRAME_BODY_HARD_LIMIT } from '../transport/frame-codec.js';
import type { TransportLimits } from '../transport/peer-transport.js';
import { MAX_SEGMENT_SIZE, maxRecordBytes } from '../wal/limits.js';
import { DEFAULT_NODE_SETTINGS } from '../node/raft-node.js';

const MiB = 1024 * 1024;
/** Raft entries kept in memory below a compaction point for slightly slow followers (at most). */
const MAX_KEEP_TAIL = 1000;
/** ... and bytes of them: a follower further behind gets a snapshot (DESIGN.md §10 "Size limits"). */
const MAX_KEEP_TAIL_BYTES = 4 * MiB;

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

/** WAL framing around an entry's data (frame header, entry header), with room to spare. */
const ENTRY_FRAMING_BYTES = 4 * 1024;
/** Encoding of a write command around its key and value bytes: fixed part, and per operation. */
const COMMAND_FIXED_OVERHEAD_BYTES = 64 * 1024;
const COMMAND_PER_OP_OVERHEAD_BYTES = 32;

/**
 * The size chain of one write, from the client to the disk, so that no stage refuses what the
 * previous one accepted (a WAL refusing an entry would stop the node):
 *   request body <= max-request-size (API)
 *   key + value bytes of the txn <= maxTxnBytes (node)       = max-request-size, less the encoding margin
 *   encoded entry <= maxMsgBytes (Raft refuses a larger proposal; also the AppendEntries budget)
 *   framed WAL record <= wal-segment-size / 2 (the WAL's record limit)
 *   peer frame >= 2 x maxMsgBytes (transportLimitsFromConfig)
 */
export function entrySizeLimits(config: NodeConfig): { maxMsgBytes: number; maxTxnBytes: number } {
  const walEntryLimit = maxRecordBytes(config.walSegmentSize) - ENTRY_FRAMING_BYTES;
  const maxMsgBytes = Math.min(Math.max(DEFAULT_NODE_SETTINGS.maxMsgBytes, 2 * config.maxRequestSize), walEntryLimit);
  const margin = COMMAND_FIXED_OVERHEAD_BYTES + 3 * config.maxTxnOps * COMMAND_PER_OP_OVERHEAD_BYTES;
  const maxTxnBytes = Math.min(config.maxRequestSize, maxMsgBytes - margin);
  if (maxTxnBytes < config.maxValueSize) {
    throw new SettingsError(
      `max-value-size ${config.maxValueSize} does not fit one log entry: with wal-segment-size ${config.walSegmentSize} ` +
        `and max-txn-ops ${config.maxTxnOps} a write may carry ${maxTxnBytes} bytes; raise wal-segment-size`,
    );
  }
  return { maxMsgBytes, maxTxnBytes };
}

/**
 * Raft runs on ticks of one heartbeat interval (etcd's model): the leader heartbeats every tick and
 * a follower campaigns after electionTimeout/heartbeat ticks without hearing from it (Raft §5.2;
 * the group randomizes within [electionTick, 2 * electionTick)).
 */
export function nodeSettingsFromConfig(config: NodeConfig): Partial<NodeSettings> {
  const { maxMsgBytes, maxTxnBytes } = entrySizeLimits(config);
  return {
    tickMs: config.heartbeatIntervalMs,
    heartbeatTick: 1,
    electionTick: Math.max(2, Math.round(config.electionTimeoutMs / config.heartbeatIntervalMs)),
    requestTimeoutMs: config.requestTimeoutMs,
    maxPendingRequests: config.proposalQueueBound,
    snapshotEntries: config.snapshotThresholdEntries,
    // A tail longer than the snapshot interval would keep every entry since the previous snapshot.
    keepTail: Math.min(MAX_KEEP_TAIL, config.snapshotThresholdEntries),
    snapshotBytes: config.snapshotThresholdSize,
    keepTailBytes: Math.min(MAX_KEEP_TAIL_BYTES, config.snapshotThresholdSize),
    maxMsgBytes,
    txnLimits: {
      maxKeyBytes: config.maxKeySize,
      maxValueBytes: config.maxValueSize,
      // The API bounds each of a txn's three lists by max-txn-ops; the node bounds their sum.
      maxOpsPerTxn: 3 * config.maxTxnOps,
      maxTxnBytes,
    },
  };
}

export function storeLimitsFromConfig(config: NodeConfig): Partial<StoreLimits> {
  return { maxKeyBytes: config.maxKeySize, maxValueBytes: config.maxValueSize, maxTxnOps: config.maxTxnOps };
}

/** The largest peer frame holds a full AppendEntries (at least one maximal entry) with room to spare. */
export function transportLimitsFromConfig(config: NodeConfig): Partial<TransportLimits> {
  const { maxMsgBytes } = entrySizeLimits(config);
  const maxFrameBytes = Math.min(FRAME_BODY_HARD_LIMIT, Math.max(16 * MiB, 2 * maxMsgBytes));
  return { maxFrameBytes, maxQueueBytes: Math.max(64 * MiB, 4 * maxFrameBytes) };
}

/** The WAL's settings; refuses a segment size the WAL cannot use (the config allows up to 4 GiB). */
export function walOptionsFromConfig(config: NodeConfig): { segmentSize: number; syncMode: string } {
  if (config.walSegmentSize > MAX_SEGMENT_SIZE) {
    throw new SettingsError(
      `wal-segment-size ${config.walSegmentSize} exceeds the WAL's largest segment of ${MAX_SEGMENT_SIZE} bytes (1GiB)`,
    );
  }
  if (config.walSegmentSize % 4096 !== 0) {
    throw new SettingsError(`wal-segment-size ${config.walSegmentSize} must be a multiple of 4096 bytes`);
  }
  const syncMode = config.walSync.mode === 'always' ? 'always' : `interval:${config.walSync.intervalMs}`;
  return { segmentSize: config.walSegmentSize, syncMode };
}
