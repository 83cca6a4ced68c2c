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
import { MAX_SEGMENT_SIZE } from '../wal/limits.js';

const MiB = 1024 * 1024;
/** Raft entries kept in memory below a compaction point for slightly slow followers (at most). */
const MAX_KEEP_TAIL = 1000;

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

/**
 * Raft runs on ticks of one heartbeat interval (etcd's model): the leader heartbeats every tick and
 * a follower campaigns after electionTimeout/heartbeat ticks without hearing from it (Raft §5.2;
 * the group randomizes within [electionTick, 2 * electionTick)).
 */
export function nodeSettingsFromConfig(config: NodeConfig): Partial<NodeSettings> {
  return {
    tickMs: config.heartbeatIntervalMs,
    heartbeatTick: 1,
    electionTick: Math.max(2, Math.round(config.electionTimeoutMs / config.heartbeatIntervalMs)),
    requestTimeoutMs: config.requestTimeoutMs,
    maxPendingRequests: config.proposalQueueBound,
    snapshotEntries: config.snapshotThresholdEntries,
    // A tail longer than the snapshot interval would keep every entry since the previous snapshot.
    keepTail: Math.min(MAX_KEEP_TAIL, config.snapshotThresholdEntries),
    txnLimits: {
      maxKeyBytes: config.maxKeySize,
      maxValueBytes: config.maxValueSize,
      // The API bounds each of a txn's three lists by max-txn-ops; the node bounds their sum.
      maxOpsPerTxn: 3 * config.maxTxnOps,
    },
  };
}

export function storeLimitsFromConfig(config: NodeConfig): Partial<StoreLimits> {
  return { maxKeyBytes: config.maxKeySize, maxValueBytes: config.maxValueSize, maxTxnOps: config.maxTxnOps };
}

/**
 * The largest peer frame must hold the largest entry a client may send (one request body) with its
 * envelope, and a full AppendEntries batch; 16 MiB or twice the request size, whichever is larger.
 */
export function transportLimitsFromConfig(config: NodeConfig): Partial<TransportLimits> {
  const maxFrameBytes = Math.min(FRAME_BODY_HARD_LIMIT, Math.max(16 * MiB, 2 * config.maxRequestSize + MiB));
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
