/**
 * Every setting of a node, in one zod schema (DESIGN.md §6). The schema's input is the merged raw
 * values (strings from flags and the environment, YAML values from the file; absent settings are
 * undefined); its output is a fully resolved NodeConfig with defaults and derived values filled in.
 * Cross-field checks run in the schema too; their issues name the related settings in
 * `params.related` so the loader can say where each value came from.
 */
import { z } from 'zod';
import { type HostPort, formatHostPort } from '../transport/address.js';
import {
  type InitialMember,
  SettingValueError,
  type WalSyncMode,
  formatSize,
  parseChoice,
  parseHttpUrl,
  parseId,
  parseInitialCluster,
  parseList,
  parseListenAddress,
  parseNonNegativeInteger,
  parsePeerAddress,
  parsePositiveInteger,
  parseSize,
  parseText,
  parseWalSync,
} from './setting-parsers.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const STORE_BACKENDS = ['lmdb', 'memory'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type StoreBackend = (typeof STORE_BACKENDS)[number];
export type { InitialMember, WalSyncMode };

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
/** Most members an initial cluster may list (Raft groups of more than a handful of voters are slow). */
export const MAX_INITIAL_MEMBERS = 15;
/**
 * Applied entries between snapshots (log compactions) by default. Raft keeps every entry since the
 * last compaction in memory (plus a tail of at most 1,000 below it for slow followers), and a
 * restart replays them from the WAL, so this count bounds both. Measured with bench:scale
 * (docs/benchmarks.md "Scale"): at 10,000, a 1,000,000-key load in 128-put batches (~15 KiB entries)
 * was never compacted and held ~120 MiB of entries on each follower, ~300 MiB on the leader. A
 * compaction costs one store sync and a marker record, so compacting ten times as often is cheap,
 * and the tail kept for lagging followers is unchanged (it was 1,000 entries at either value).
 */
export const DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES = 1000;
/**
 * Applied entries wait this long to share one LMDB commit (two disk flushes each): the WAL holds
 * them durably meanwhile, and writes are answered and reads see them (through the store's buffer
 * of pending writes) once their results are known, so the delay costs no read any freshness.
 * 10 -> 50 ms: the store commits per second at 64-connection writes fell from ~100 to ~40 per node
 * and CPU per write by 5-20% on every node (docs/benchmarks.md, eighth round). 50 -> 100 ms (etcd's
 * backend batch interval): each commit rewrites fewer pages per write, and the cluster's CPU per
 * write fell ~9% (ninth round); 200 ms saved nothing more.
 */
export const DEFAULT_STORE_COMMIT_DELAY_MS = 100;
/**
 * How often a node hands freed native memory back to the kernel (src/server/memory-reclaimer.ts):
 * malloc_trim, and a full GC first once per idle period. Measured in docs/benchmarks.md "Memory".
 */
export const DEFAULT_MEMORY_RECLAIM_INTERVAL_MS = 5000;
/**
 * ... or applied bytes of entries between snapshots, whichever comes first: the entry count alone
 * bounds raft's in-memory log only for small entries (1,000 entries of 1 MiB values held 1 GiB).
 * At 1,000,000 keys loaded in ~15.5 KiB batches it compacts every ~530 entries instead of 1,000.
 */
export const DEFAULT_SNAPSHOT_THRESHOLD_SIZE = 8 * MiB;
/** Election timeout must be at least this many heartbeat intervals, so a few lost heartbeats do not start an election. */
export const ELECTION_TO_HEARTBEAT_RATIO = 5;

/** Wraps a parser as a zod field; `fallback` applies when the setting was given nowhere. */
function setting<T>(parse: (raw: unknown) => T, fallback: T | (() => never)) {
  return z.unknown().transform((raw, ctx): T => {
    try {
      if (raw === undefined) return typeof fallback === 'function' ? (fallback as () => never)() : fallback;
      return parse(raw);
    } catch (error) {
      if (!(error instanceof SettingValueError)) throw error;
      ctx.addIssue({ code: 'custom', message: error.message });
      return z.NEVER;
    }
  });
}

function required(): never {
  throw new SettingValueError('is required');
}

/** A setting whose default depends on others; resolved after parsing. */
function derived<T>(parse: (raw: unknown) => T) {
  return setting<T | undefined>(parse, undefined);
}

/** The schema's fields: one parser per setting (the loader also validates each source's value with these). */
export const nodeConfigFields = {
  id: setting(parseId, required),
  dataDir: derived((raw) => parseText(raw, 4096)),
  listenClient: setting(parseListenAddress, { host: '127.0.0.1', port: 8081 }),
  listenPeer: setting(parseListenAddress, { host: '127.0.0.1', port: 7081 }),
  advertiseClientUrl: derived(parseHttpUrl),
  advertisePeer: derived(parsePeerAddress),
  initialCluster: derived((raw) => parseInitialCluster(raw, MAX_INITIAL_MEMBERS)),
  join: setting((raw) => parseList(raw).map(parseHttpUrl), [] as string[]),
  clusterId: setting(parseId, 'atlas'),
  heartbeatIntervalMs: setting((raw) => parsePositiveInteger(raw, 60_000), 50),
  electionTimeoutMs: setting((raw) => parsePositiveInteger(raw, 600_000), 500),
  snapshotThresholdEntries: setting(
    (raw) => parsePositiveInteger(raw, 100_000_000),
    DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES,
  ),
  snapshotThresholdSize: setting((raw) => parseSize(raw, 1 * MiB, 4 * GiB), DEFAULT_SNAPSHOT_THRESHOLD_SIZE),
  walSegmentSize: setting((raw) => parseSize(raw, 1 * MiB, 4 * GiB), 64 * MiB),
  walSync: setting<WalSyncMode>(parseWalSync, { mode: 'always' }),
  maxKeySize: setting((raw) => parseSize(raw, 1, 64 * KiB), 4 * KiB),
  maxValueSize: setting((raw) => parseSize(raw, 1, 64 * MiB), 1 * MiB),
  maxRequestSize: setting((raw) => parseSize(raw, 1 * KiB, 128 * MiB), 2 * MiB),
  maxTxnOps: setting((raw) => parsePositiveInteger(raw, 10_000), 128),
  proposalQueueBound: setting((raw) => parsePositiveInteger(raw, 1_000_000), 1024),
  requestTimeoutMs: setting((raw) => parsePositiveInteger(raw, 3_600_000), 5000),
  maxClientConnections: setting((raw) => parsePositiveInteger(raw, 1_000_000), 1024),
  logLevel: setting((raw) => parseChoice(raw, LOG_LEVELS), 'info' as LogLevel),
  storeBackend: setting((raw) => parseChoice(raw, STORE_BACKENDS), 'lmdb' as StoreBackend),
  // At most LmdbStore's MAX_COMMIT_DELAY_MS (not imported: config stays free of the store's modules).
  storeCommitDelayMs: setting((raw) => parseNonNegativeInteger(raw, 1000), DEFAULT_STORE_COMMIT_DELAY_MS),
  memoryReclaimIntervalMs: setting(
    (raw) => parseNonNegativeInteger(raw, 86_400_000),
    DEFAULT_MEMORY_RECLAIM_INTERVAL_MS,
  ),
};

export type SettingKey = keyof typeof nodeConfigFields;
export const SETTING_KEYS = Object.keys(nodeConfigFields) as SettingKey[];

/** What each setting means, for `--help` and docs/configuration.md. */
export const SETTING_DESCRIPTIONS: Record<SettingKey, string> = {
  id: "this node's id (required): 1-64 of A-Z a-z 0-9 . _ -",
  dataDir: 'directory for the WAL and the store (default ./atlas-data/<id>)',
  listenClient: 'host:port of the client HTTP API (default 127.0.0.1:8081)',
  listenPeer: 'host:port for peer connections (default 127.0.0.1:7081)',
  advertiseClientUrl: 'client URL other nodes and clients use (default http://<listen-client>)',
  advertisePeer: 'peer address other nodes dial (default: own initial-cluster entry, else listen-peer)',
  initialCluster: 'initial voters, id=host:port,... (default: this node alone)',
  join: 'client URLs of an existing cluster to join as a learner, comma-separated',
  clusterId: 'cluster id; peers with another id are refused (default atlas)',
  heartbeatIntervalMs: 'leader heartbeat interval in ms (default 50)',
  electionTimeoutMs: 'election timeout in ms, at least 5x the heartbeat (default 500)',
  snapshotThresholdEntries: `applied entries between snapshots (default ${DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES})`,
  snapshotThresholdSize: `or applied entry bytes between snapshots, whichever comes first (default ${DEFAULT_SNAPSHOT_THRESHOLD_SIZE / MiB}MiB)`,
  walSegmentSize: 'WAL segment file size, e.g. 64MiB (default 64MiB)',
  walSync: 'WAL fsync policy: always | interval:<ms> (default always)',
  maxKeySize: 'largest key (default 4KiB)',
  maxValueSize: 'largest value (default 1MiB)',
  maxRequestSize: 'largest client request body (default 2MiB)',
  maxTxnOps: 'most operations in each list of a transaction (default 128)',
  proposalQueueBound: 'proposals waiting for Raft before clients get 503 (default 1024)',
  requestTimeoutMs: 'how long a client request may take in ms (default 5000)',
  maxClientConnections: 'open client HTTP connections at most (default 1024)',
  logLevel: `log level: ${LOG_LEVELS.join(' | ')} (default info)`,
  storeBackend: `state machine store: ${STORE_BACKENDS.join(' | ')} (default lmdb)`,
  storeCommitDelayMs: `how long applied entries wait to share one store commit, in ms; 0 commits each at once (default ${DEFAULT_STORE_COMMIT_DELAY_MS})`,
  memoryReclaimIntervalMs: `how often freed native memory is handed back to the OS (glibc malloc_trim; a full GC first when the node was idle), in ms; 0 never (default ${DEFAULT_MEMORY_RECLAIM_INTERVAL_MS})`,
};

/** `heartbeatIntervalMs` → `heartbeat-interval-ms` (flags and YAML keys). */
export function settingName(key: SettingKey): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `heartbeatIntervalMs` → `ATLAS_HEARTBEAT_INTERVAL_MS`. */
export function settingEnvName(key: SettingKey): string {
  return `ATLAS_${settingName(key).replace(/-/g, '_').toUpperCase()}`;
}

function isUnspecifiedHost(address: HostPort): boolean {
  return address.host === '0.0.0.0' || address.host === '::';
}

type Parsed = z.output<z.ZodObject<typeof nodeConfigFields>>;

function crossCheck(c: Parsed, ctx: z.RefinementCtx): void {
  const issue = (key: SettingKey, related: SettingKey[], message: string) =>
    ctx.addIssue({ code: 'custom', path: [key], message, params: { related } });
  const minElection = ELECTION_TO_HEARTBEAT_RATIO * c.heartbeatIntervalMs;
  if (c.electionTimeoutMs < minElection) {
    issue(
      'electionTimeoutMs',
      ['heartbeatIntervalMs'],
      `must be at least ${ELECTION_TO_HEARTBEAT_RATIO} x heartbeat-interval-ms = ${minElection}, got ${c.electionTimeoutMs}`,
    );
  }
  if (c.requestTimeoutMs < 2 * c.electionTimeoutMs) {
    issue(
      'requestTimeoutMs',
      ['electionTimeoutMs'],
      `must be at least 2 x election-timeout-ms = ${2 * c.electionTimeoutMs} so a request can outlast an election, got ${c.requestTimeoutMs}`,
    );
  }
  if (c.maxValueSize > c.maxRequestSize) {
    issue(
      'maxValueSize',
      ['maxRequestSize'],
      `${formatSize(c.maxValueSize)} exceeds max-request-size ${formatSize(c.maxRequestSize)}`,
    );
  }
  if (c.maxKeySize > c.maxRequestSize) {
    issue('maxKeySize', ['maxRequestSize'], `${formatSize(c.maxKeySize)} exceeds max-request-size`);
  }
  if (c.walSegmentSize < 2 * c.maxRequestSize) {
    issue(
      'walSegmentSize',
      ['maxRequestSize'],
      `must be at least 2 x max-request-size = ${formatSize(2 * c.maxRequestSize)} so the largest entry fits a segment, got ${formatSize(c.walSegmentSize)}`,
    );
  }
  if (c.join.length > 0 && c.initialCluster) {
    issue(
      'join',
      ['initialCluster'],
      'cannot be combined with initial-cluster: a node either founds a cluster or joins one',
    );
  }
  const own = c.initialCluster?.find((m) => m.id === c.id);
  if (c.initialCluster && !own) {
    issue(
      'initialCluster',
      ['id'],
      `does not contain this node's id ${JSON.stringify(c.id)} (members: ${c.initialCluster.map((m) => m.id).join(', ')})`,
    );
  }
  if (own && c.advertisePeer && own.peerAddress !== c.advertisePeer) {
    issue(
      'advertisePeer',
      ['initialCluster'],
      `${c.advertisePeer} differs from this node's initial-cluster entry ${own.id}=${own.peerAddress}`,
    );
  }
  if (isUnspecifiedHost(c.listenClient) && !c.advertiseClientUrl) {
    issue(
      'advertiseClientUrl',
      ['listenClient'],
      `is required when listen-client binds all interfaces (${formatHostPort(c.listenClient)})`,
    );
  }
  if (isUnspecifiedHost(c.listenPeer) && !c.advertisePeer && !own) {
    issue(
      'advertisePeer',
      ['listenPeer'],
      `is required when listen-peer binds all interfaces (${formatHostPort(c.listenPeer)})`,
    );
  }
  if (c.listenPeer.port === 0 && !c.advertisePeer && !own) {
    issue(
      'advertisePeer',
      ['listenPeer'],
      'is required when listen-peer uses port 0 (the port is not known in advance)',
    );
  }
  if (
    c.listenClient.port !== 0 &&
    c.listenClient.port === c.listenPeer.port &&
    (c.listenClient.host === c.listenPeer.host ||
      isUnspecifiedHost(c.listenClient) ||
      isUnspecifiedHost(c.listenPeer))
  ) {
    issue('listenPeer', ['listenClient'], `${formatHostPort(c.listenPeer)} collides with listen-client`);
  }
}

function resolve(c: Parsed) {
  const ownEntry = c.initialCluster?.find((m) => m.id === c.id);
  const advertisePeer = c.advertisePeer ?? ownEntry?.peerAddress ?? formatHostPort(c.listenPeer);
  const initialCluster: InitialMember[] =
    c.initialCluster ?? (c.join.length > 0 ? [] : [{ id: c.id, peerAddress: advertisePeer }]);
  return {
    ...c,
    dataDir: c.dataDir ?? `./atlas-data/${c.id}`,
    advertiseClientUrl: c.advertiseClientUrl ?? `http://${formatHostPort(c.listenClient)}`,
    advertisePeer,
    initialCluster,
  };
}

export const nodeConfigSchema = z.object(nodeConfigFields).superRefine(crossCheck).transform(resolve);

/** A node's resolved configuration. */
export type NodeConfig = z.output<typeof nodeConfigSchema>;
