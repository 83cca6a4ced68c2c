/**
 * One AtlasDB server process: the parts composed into a running node (DESIGN.md §2, §6).
 *
 *   data dir (locked, identity checked) ─┬─ wal/   WriteAheadLog ── WalLogStorage ─┐
 *                                        └─ store/ LmdbStore ──────────────────────┼─ RaftNode ── InstrumentedKvService ── HttpApiServer
 *   TCP PeerTransport ── PeerTransportAdapter ────────────────────────────────────┘
 *   pino (node id; term and role on Raft lines), ServerMetrics (/metrics) fed by hooks, onSync, the adapter
 *
 * Start order: lock the data dir, open the WAL and the store (recovery), bind the peer listener,
 * open and start the node, bind the client listener, then (for --join on an empty node) ask the
 * cluster to add this node. Any failure closes what was opened, in reverse, and releases the lock.
 *
 * Graceful close (SIGTERM/SIGINT in the CLI, close() when embedded): stop accepting clients and let
 * requests in flight finish; hand leadership to another voter if this node leads; stop the node
 * (answers what still waits, waits for the append in flight); close the WAL (final fdatasync);
 * sync and close the store; close peer connections; release the lock.
 */
import type { ConfigIssue } from '../config/load-node-config.js';
import { ConfigError } from '../config/load-node-config.js';
import {
  type NodeConfig,
  SETTING_KEYS,
  type SettingKey,
  nodeConfigSchema,
  settingName,
} from '../config/node-config.js';
import { HttpApiServer, httpApiLimitsFromConfig } from '../api/http/http-api-server.js';
import { LmdbStore } from '../kv/lmdb-store.js';
import { MemoryStore } from '../kv/memory-store.js';
import type { StateStore } from '../kv/state-store.js';
import type { KvService } from '../node/kv-service.js';
import type { LogStorage } from '../node/log-storage.js';
import type { MemberAddress } from '../node/membership.js';
import { MemoryLogStorage } from '../node/memory-log-storage.js';
import { DATA_GROUP, RaftNode } from '../node/raft-node.js';
import { readStoreConf } from '../node/recovery.js';
import type { PlantedBug } from '../raft/types.js';
import { WalLogStorage } from '../node/wal-log-storage.js';
import { formatHostPort } from '../transport/address.js';
import { PeerTransport as TcpPeerTransport } from '../transport/peer-transport.js';
import { WalCorruptionError } from '../wal/errors.js';
import { WriteAheadLog } from '../wal/write-ahead-log.js';
import { type OpenedDataDir, openDataDir } from './data-dir.js';
import { openGlibcMalloc } from './glibc-malloc.js';
import { InstrumentedKvService } from './instrumented-kv-service.js';
import { openFullGc } from './full-gc.js';
import { MemoryReclaimer, v8YoungGenerationBytes } from './memory-reclaimer.js';
import { openFileLimit, openFileLimitWarning } from './open-file-limit.js';
import { PeerTransportAdapter } from './peer-transport-adapter.js';
import { type Logger, createServerLogger, raftLogger } from './server-logger.js';
import { ServerMetrics } from './server-metrics.js';
import {
  SettingsError,
  nodeSettingsFromConfig,
  storeLimitsFromConfig,
  transportLimitsFromConfig,
  walOptionsFromConfig,
} from './settings-mapping.js';

export interface ServerRuntimeOptions {
  /** Where logs go; default: JSON lines on stdout at the configured log level. */
  logger?: Logger;
  /** Process metrics (CPU, memory, event loop) in /metrics; default true. */
  processMetrics?: boolean;
  /** How long joining may take before start fails (default 60 s). */
  joinDeadlineMs?: number;
  /**
   * TEST-ONLY: Raft/driver bugs to plant (src/raft/types.ts PlantedBug), so fault tests can prove
   * they detect them. Set only by `atlas start` from ATLAS_TEST_PLANTED_BUG; logged loudly.
   */
  plantedBugs?: ReadonlySet<PlantedBug>;
}

/** A running node. */
export interface AtlasNode {
  readonly id: string;
  /** The node's key-value service: the same calls the HTTP API makes (src/node/kv-service.ts). */
  readonly service: KvService;
  /** The client URL other members and clients use (the bound one when listen-client had port 0). */
  readonly clientUrl: string;
  /** The peer address other members dial. */
  readonly peerAddress: string;
  /** Absolute path of the data directory. */
  readonly dataDir: string;
  readonly config: NodeConfig;
  readonly metrics: ServerMetrics;
  readonly logger: Logger;
  /**
   * Settles when the node has stopped: with null after close(), with the error after the node
   * stopped on its own (a storage failure: it then closes itself).
   */
  readonly stopped: Promise<Error | null>;
  /** Graceful shutdown (idempotent): finish in-flight requests, fsync, close everything. */
  close(): Promise<void>;
}

/** Settings of an embedded node: the keys of the YAML config file, in camelCase; `id` is required. */
export type NodeSettingsInput = { id: string } & Partial<
  Record<Exclude<SettingKey, 'id'>, string | number | readonly string[] | Readonly<Record<string, string>>>
>;

export interface StartNodeOptions extends NodeSettingsInput, ServerRuntimeOptions {}

const DEFAULT_JOIN_DEADLINE_MS = 60_000;
/** A leader shutting down waits at most this long for leadership to move. */
const MAX_SHUTDOWN_TRANSFER_MS = 3000;

/**
 * Runs a node in this process: `import { startNode } from 'atlasdb'`. Settings are validated with
 * the same schema as `atlas start` (a ConfigError lists every problem); environment variables and
 * config files are not read. Resolves once the node serves clients (and, with `join`, is a member).
 */
export async function startNode(options: StartNodeOptions): Promise<AtlasNode> {
  const unknown: ConfigIssue[] = [];
  const runtimeKeys = new Set(['logger', 'processMetrics', 'joinDeadlineMs']);
  for (const key of Object.keys(options)) {
    if (!runtimeKeys.has(key) && !(SETTING_KEYS as string[]).includes(key)) {
      unknown.push({ source: 'default', setting: key, message: `${key}: unknown setting` });
    }
  }
  if (unknown.length > 0) throw new ConfigError(unknown);
  // Every setting present (undefined = not given), as the schema expects from the config loader.
  const given = options as Partial<Record<SettingKey, unknown>>;
  const raw = Object.fromEntries(SETTING_KEYS.map((key) => [key, given[key]]));
  const parsed = nodeConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const key = issue.path[0];
        const name = typeof key === 'string' ? settingName(key as SettingKey) : '';
        return {
          source: 'default',
          setting: name,
          message: name === '' ? issue.message : `${name}: ${issue.message}`,
        };
      }),
    );
  }
  const runtime: ServerRuntimeOptions = {};
  if (options.logger !== undefined) runtime.logger = options.logger;
  if (options.processMetrics !== undefined) runtime.processMetrics = options.processMetrics;
  if (options.joinDeadlineMs !== undefined) runtime.joinDeadlineMs = options.joinDeadlineMs;
  return startServer(parsed.data, runtime);
}

/** Starts a node from a resolved configuration (what `atlas start` calls after loadNodeConfig). */
export async function startServer(
  config: NodeConfig,
  runtime: ServerRuntimeOptions = {},
): Promise<AtlasNode> {
  const started = performance.now();
  const logger = runtime.logger ?? createServerLogger(config.id, config.logLevel);
  const plantedBugs = runtime.plantedBugs ?? new Set<PlantedBug>();
  if (plantedBugs.size > 0) {
    logger.fatal(
      { plantedBugs: [...plantedBugs] },
      'TEST-ONLY PLANTED BUGS ARE ACTIVE: this node deliberately breaks Raft safety; never run it with real data',
    );
  }
  const cleanup: Array<{ what: string; run: () => Promise<void> | void }> = [];
  const unwind = async () => {
    for (const step of cleanup.reverse()) {
      try {
        await step.run();
      } catch (e) {
        logger.warn({ step: step.what, err: errorMessage(e) }, 'cleanup after a failed start went wrong');
      }
    }
  };
  try {
    const walOptions = config.storeBackend === 'lmdb' ? walOptionsFromConfig(config) : null;
    const dataDir = openDataDir(config.dataDir, {
      nodeId: config.id,
      clusterId: config.clusterId,
      storeBackend: config.storeBackend,
    });
    cleanup.push({ what: 'release data dir lock', run: () => dataDir.release() });
    checkVolatileRestart(config, dataDir);

    const metrics = new ServerMetrics(config.id, runtime.processMetrics ?? true);
    const { storage, store } = await openStorage(config, dataDir, walOptions, metrics, logger, cleanup);

    // Raft lines carry the node's term and role; `node` is set once it is open.
    let node: RaftNode | null = null;
    const nodeLogger = raftLogger(logger, () => {
      if (node === null || node.isHalted) return null;
      const s = node.status();
      return { term: s.term, role: s.role };
    });

    const tcp = new TcpPeerTransport<unknown>({
      id: config.id,
      clusterId: config.clusterId,
      listen: config.listenPeer,
      // No address book here: the node tells the transport every member's address, from the
      // bootstrap configuration or, after a restart, from the membership in its store.
      limits: transportLimitsFromConfig(config),
      defaultRequestTimeoutMs: config.requestTimeoutMs,
      logger: logger.child({ component: 'transport' }),
    });
    cleanup.push({ what: 'close peer transport', run: () => tcp.close() });
    const boundPeer = await listenOrExplain('peers', formatHostPort(config.listenPeer), () => tcp.start());
    const adapter = new PeerTransportAdapter(tcp, {
      logger: nodeLogger,
      onForwardOutcome: (outcome) => metrics.forwardedRequest(outcome),
    });
    cleanup.push({ what: 'stop forward tracking', run: () => adapter.dispose() });

    const fatal: { error: Error | null; handle: (error: Error) => void } = { error: null, handle: () => {} };
    const bootstrap: MemberAddress[] = config.initialCluster.map((m) => ({
      id: m.id,
      peerAddress: m.peerAddress,
      // Identical on every founder (the bootstrap entry must be byte-identical); client URLs of
      // founders are not known cluster-wide (docs/operations.md).
      clientUrl: '',
      promote: false,
    }));
    node = await RaftNode.open({
      id: config.id,
      groups: [{ group: DATA_GROUP, store, bootstrap }],
      transport: adapter,
      storage,
      settings:
        plantedBugs.size > 0
          ? { ...nodeSettingsFromConfig(config), bugs: plantedBugs }
          : nodeSettingsFromConfig(config),
      hooks: metrics.nodeHooks(),
      logger: nodeLogger,
      onFatal: (error) => {
        fatal.error = error;
        fatal.handle(error);
      },
    });
    const raftNode = node;
    raftNode.start();
    cleanup.push({ what: 'stop node', run: () => raftNode.stop() });
    const reclaimer = startMemoryReclaimer(config.memoryReclaimIntervalMs, metrics, logger);
    if (reclaimer !== null) cleanup.push({ what: 'stop memory reclaims', run: () => reclaimer.stop() });
    const recovered = raftNode.status();

    const fileLimitWarning = openFileLimitWarning(config.maxClientConnections, openFileLimit());
    if (fileLimitWarning !== null)
      logger.warn({ maxClientConnections: config.maxClientConnections }, fileLimitWarning);

    const service = new InstrumentedKvService(raftNode, metrics);
    const http = new HttpApiServer({
      service,
      metrics,
      limits: httpApiLimitsFromConfig(config),
      logger: logger.child({ component: 'http' }),
      shutdownGraceMs: config.requestTimeoutMs + 2000,
    });
    const boundClient = await listenOrExplain('clients', formatHostPort(config.listenClient), () =>
      http.listen(config.listenClient),
    );
    cleanup.push({ what: 'close HTTP API', run: () => http.close(0) });
    const clientUrl =
      config.listenClient.port === 0 &&
      config.advertiseClientUrl === `http://${formatHostPort(config.listenClient)}`
        ? `http://${formatHostPort(boundClient)}`
        : config.advertiseClientUrl;
    metrics.attach({ transportStats: () => tcp.stats(), droppedPeerMessages: () => raftNode.dropped });

    const fresh = recovered.term === 0 && recovered.lastIndex === 0 && recovered.lastApplied === 0;
    const joinAbort = new AbortController();
    cleanup.push({ what: 'cancel join', run: () => joinAbort.abort() });
    if (config.join.length > 0) {
      if (fresh) {
        const { joinCluster } = await import('./join-cluster.js'); // undici is only needed here
        await joinCluster(
          config.join,
          { id: config.id, peerAddress: config.advertisePeer, clientUrl },
          {
            deadlineMs: runtime.joinDeadlineMs ?? DEFAULT_JOIN_DEADLINE_MS,
            logger,
            signal: joinAbort.signal,
          },
        );
      } else {
        logger.info(
          { lastIndex: recovered.lastIndex },
          "the data dir holds this node's log already: not joining again",
        );
      }
    }

    let resolveStopped!: (e: Error | null) => void;
    const stopped = new Promise<Error | null>((resolve) => {
      resolveStopped = resolve;
    });
    let closing: Promise<void> | null = null;
    const close = (): Promise<void> => {
      if (closing !== null) return closing;
      closing = (async () => {
        const t0 = performance.now();
        logger.info({}, 'shutting down: no new client requests');
        await http.close();
        await handOffLeadership(raftNode, logger, config.electionTimeoutMs);
        const steps: Array<[string, () => Promise<void> | void]> = [
          ['stop memory reclaims', () => reclaimer?.stop()],
          ['stop node', () => raftNode.stop()],
          ['close WAL', () => storage.close()],
          ['sync store', () => store.sync()],
          ['close store', () => store.close()],
          ['close peer transport', () => tcp.close()],
          ['stop forward tracking', () => adapter.dispose()],
        ];
        let failure: Error | null = null;
        for (const [what, run] of steps) {
          try {
            await run();
          } catch (e) {
            failure ??= e instanceof Error ? e : new Error(String(e));
            logger.error({ step: what, err: errorMessage(e) }, 'shutdown step failed');
          }
        }
        dataDir.release();
        logger.info(
          { ms: Math.round(performance.now() - t0) },
          failure === null ? 'node stopped' : 'node stopped with errors',
        );
        resolveStopped(fatal.error);
        if (failure !== null) throw failure;
      })();
      return closing;
    };
    fatal.handle = (error) => {
      logger.fatal(
        {
          err: error.message,
          ...(error instanceof WalCorruptionError ? { file: error.file, offset: error.offset } : {}),
        },
        'node stopped on an unrecoverable error',
      );
      close().catch(() => {});
    };
    if (fatal.error !== null) fatal.handle(fatal.error);

    logger.info(
      {
        clientUrl,
        peerAddress: config.advertisePeer,
        listenPeer: formatHostPort(boundPeer),
        dataDir: dataDir.path,
        storeBackend: config.storeBackend,
        ...(config.join.length > 0
          ? { join: config.join }
          : { initialCluster: config.initialCluster.map((m) => m.id) }),
        lastIndex: recovered.lastIndex,
        applied: recovered.lastApplied,
        term: recovered.term,
        startupMs: Math.round(performance.now() - started),
      },
      'node started',
    );
    return {
      id: config.id,
      service,
      clientUrl,
      peerAddress: config.advertisePeer,
      dataDir: dataDir.path,
      config,
      metrics,
      logger,
      stopped,
      close,
    };
  } catch (e) {
    await unwind();
    throw e;
  }
}

async function openStorage(
  config: NodeConfig,
  dataDir: OpenedDataDir,
  walOptions: { segmentSize: number; syncMode: string } | null,
  metrics: ServerMetrics,
  logger: Logger,
  cleanup: Array<{ what: string; run: () => Promise<void> | void }>,
): Promise<{ storage: LogStorage; store: StateStore }> {
  if (walOptions === null) {
    logger.warn(
      { dataDir: dataDir.path },
      'store-backend memory: the log and the store live in memory only; nothing survives a restart (for tests)',
    );
    return {
      storage: new MemoryLogStorage(),
      store: new MemoryStore({ limits: storeLimitsFromConfig(config) }),
    };
  }
  const wal = await WriteAheadLog.open(dataDir.walDir, {
    ...walOptions,
    onSync: (s) => metrics.observeWalFsync(s.latencyMs / 1000),
  });
  cleanup.push({ what: 'close WAL', run: () => wal.close() });
  const store = LmdbStore.open(dataDir.storeDir, {
    limits: storeLimitsFromConfig(config),
    commitDelayMs: config.storeCommitDelayMs,
  });
  cleanup.push({ what: 'close store', run: () => store.close() });
  const storage = new WalLogStorage(wal, {
    confOf: () => readStoreConf(store),
    logger: raftLogger(logger, () => null),
  });
  return { storage, store };
}

/**
 * A memory-backend node forgets its log and votes when it stops. Coming back under the same id into
 * a cluster that knows it could make it vote twice in one term (two leaders): refused.
 */
function checkVolatileRestart(config: NodeConfig, dataDir: OpenedDataDir): void {
  if (config.storeBackend !== 'memory' || dataDir.previous === null) return;
  const clustered = config.join.length > 0 || config.initialCluster.some((m) => m.id !== config.id);
  if (!clustered) return;
  throw new SettingsError(
    `store-backend memory keeps nothing across restarts, and node ${config.id} already ran from ${dataDir.path} ` +
      `(since ${dataDir.previous.createdAt}) as a member of a cluster: restarting it with empty state under the same id ` +
      'could let it vote twice in one term. Remove the member (DELETE /cluster/members/<id>), delete the data dir, and join again.',
  );
}

/** The periodic reclaim (memory-reclaimer.ts), or null when switched off or not glibc. */
function startMemoryReclaimer(
  intervalMs: number,
  metrics: ServerMetrics,
  logger: Logger,
): MemoryReclaimer | null {
  if (intervalMs === 0) return null;
  const { binding, reason } = openGlibcMalloc();
  if (binding === null) {
    logger.info({ reason }, 'freed native memory is left to the allocator (no malloc_trim here)');
    return null;
  }
  const reclaimer = new MemoryReclaimer({
    malloc: binding,
    fullGc: openFullGc(),
    youngGenerationBytes: v8YoungGenerationBytes,
    intervalMs,
    onReclaim: (r) => metrics.memoryReclaimed(r.collected, r.releasedBytes, r.durationMs / 1000),
  });
  reclaimer.start();
  return reclaimer;
}

async function listenOrExplain<T>(what: string, address: string, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new SettingsError(`cannot listen for ${what} on ${address}: the address is already in use`);
    if (code === 'EADDRNOTAVAIL')
      throw new SettingsError(`cannot listen for ${what} on ${address}: no such local address`);
    if (code === 'EACCES')
      throw new SettingsError(`cannot listen for ${what} on ${address}: permission denied`);
    throw e;
  }
}

/** A leader that stops hands leadership to the most caught-up voter first, so writes pause only briefly. */
async function handOffLeadership(node: RaftNode, logger: Logger, electionTimeoutMs: number): Promise<void> {
  if (node.isHalted) return;
  const status = node.status();
  const others = status.members.filter((m) => m.role === 'voter' && m.id !== status.id);
  if (status.role !== 'leader' || others.length === 0) return;
  const limit = Math.min(MAX_SHUTDOWN_TRANSFER_MS, 2 * electionTimeoutMs);
  let timer: NodeJS.Timeout | undefined;
  try {
    const to = await Promise.race([
      node.transferLeadership(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no transfer within ${limit} ms`)), limit);
      }),
    ]);
    logger.info({ to }, 'handed leadership over before stopping');
  } catch (e) {
    logger.warn(
      { err: errorMessage(e) },
      'could not hand leadership over before stopping; the others will elect a leader',
    );
  } finally {
    clearTimeout(timer);
  }
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
