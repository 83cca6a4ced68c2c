/**
 * Prometheus metrics of one node, in a Registry of its own (never prom-client's global one, so
 * that several nodes in one process, as in `atlas dev` and the tests, keep separate numbers).
 *
 * The node feeds Raft, WAL and transport figures through the NodeMetrics interface; the HTTP
 * server records request latencies per route and refreshes the Raft gauges from
 * KvService.status() at every scrape, so they are current even between the node's updates.
 *
 * Per-request figures cost no prom-client call on the request path: latencies go to a
 * RequestLatencyHistogram (an array increment), and the in-flight gauge reads the servers' own
 * counts when it is scraped.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NodeStatus } from '../../node/kv-service.js';
import { type LatencySeries, RequestLatencyHistogram } from './latency-histogram.js';

export type NodeRole = NodeStatus['role'];
const ROLES: readonly NodeRole[] = ['leader', 'follower', 'candidate', 'preCandidate'];

export type ProposalOutcome = 'committed' | 'rejected' | 'failed';
const PROPOSAL_OUTCOMES: readonly ProposalOutcome[] = ['committed', 'rejected', 'failed'];
export type ForwardOutcome = 'ok' | 'error';

/** What the node reports. Every method is cheap (a number update). */
export interface NodeMetrics {
  setRole(role: NodeRole): void;
  setTerm(term: number): void;
  setCommitIndex(index: number): void;
  setLastApplied(index: number): void;
  /** The known leader changed (including to none). */
  leaderChanged(): void;
  /** A client proposal finished: committed and applied, rejected before Raft (full queue, not leader), or failed after. */
  proposal(outcome: ProposalOutcome): void;
  observeWalFsync(seconds: number): void;
  setPeerSendQueue(peer: string, messages: number, bytes: number): void;
  removePeer(peer: string): void;
  /** A client request this follower forwarded to the leader finished. */
  forwardedRequest(outcome: ForwardOutcome): void;
}

export interface AtlasMetricsOptions {
  /** Added as label `node` to every series. */
  nodeId: string;
  /** Process metrics (CPU, memory, event loop lag, GC); default true. */
  processMetrics?: boolean;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const FSYNC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** A gauge whose value, at each scrape, is the sum of its sources (counts the servers keep themselves). */
function summedGauge(name: string, help: string, sources: Set<() => number>, registry: Registry): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      let n = 0;
      for (const source of sources) n += source();
      this.set(n);
    },
  });
}

function addSource(sources: Set<() => number>, source: () => number): () => void {
  sources.add(source);
  return () => {
    sources.delete(source);
  };
}

export class AtlasMetrics implements NodeMetrics {
  readonly registry = new Registry();
  private readonly httpDuration: RequestLatencyHistogram;
  /** Requests being served, summed over the in-flight sources (read at scrape time). */
  readonly httpInFlight: Gauge;
  private readonly inFlightSources = new Set<() => number>();
  /** Open client connections, summed over the connection sources (read at scrape time). */
  readonly httpConnections: Gauge;
  private readonly connectionSources = new Set<() => number>();
  private readonly httpConnectionsDropped: Counter;
  private readonly role: Gauge<'role'>;
  private readonly term: Gauge;
  private readonly commitIndex: Gauge;
  private readonly lastApplied: Gauge;
  private readonly leaderChanges: Counter;
  /**
   * Counted here and handed to prom-client only when scraped: its `inc(labels)` hashes the labels
   * on every call, and this one runs once per client write.
   */
  private readonly proposalCounts: Record<ProposalOutcome, number> = { committed: 0, rejected: 0, failed: 0 };
  private readonly walFsync: Histogram;
  private readonly peerQueueMessages: Gauge<'peer'>;
  private readonly peerQueueBytes: Gauge<'peer'>;
  private readonly forwarded: Counter<'outcome'>;

  constructor(options: AtlasMetricsOptions) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: options.nodeId });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'atlas_' });
    this.httpDuration = new RequestLatencyHistogram(
      'atlas_http_request_duration_seconds',
      'HTTP API request latency by route, method and status',
      LATENCY_BUCKETS,
      this.registry,
    );
    this.httpInFlight = summedGauge(
      'atlas_http_requests_in_flight',
      'HTTP requests being served',
      this.inFlightSources,
      this.registry,
    );
    this.httpConnections = summedGauge(
      'atlas_http_open_connections',
      'client HTTP connections open',
      this.connectionSources,
      this.registry,
    );
    this.httpConnectionsDropped = new Counter({
      name: 'atlas_http_connections_dropped_total',
      help: 'client connections closed at once because max-client-connections were open',
      registers,
    });
    this.role = new Gauge({
      name: 'atlas_raft_role',
      help: '1 for the current Raft role, 0 for the others',
      labelNames: ['role'],
      registers,
    });
    this.term = new Gauge({ name: 'atlas_raft_term', help: 'current Raft term', registers });
    this.commitIndex = new Gauge({ name: 'atlas_raft_commit_index', help: 'Raft commit index', registers });
    this.lastApplied = new Gauge({
      name: 'atlas_raft_last_applied_index',
      help: 'last log index applied to the store',
      registers,
    });
    this.leaderChanges = new Counter({
      name: 'atlas_raft_leader_changes_total',
      help: 'changes of the known leader',
      registers,
    });
    const proposalCounts = this.proposalCounts;
    new Counter({
      name: 'atlas_raft_proposals_total',
      help: 'client proposals by outcome (committed, rejected, failed)',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        for (const outcome of PROPOSAL_OUTCOMES) {
          if (proposalCounts[outcome] > 0) this.inc({ outcome }, proposalCounts[outcome]);
        }
      },
    });
    this.walFsync = new Histogram({
      name: 'atlas_wal_fsync_duration_seconds',
      help: 'WAL fsync/fdatasync latency',
      buckets: FSYNC_BUCKETS,
      registers,
    });
    this.peerQueueMessages = new Gauge({
      name: 'atlas_peer_send_queue_messages',
      help: 'messages waiting in the send queue to each peer',
      labelNames: ['peer'],
      registers,
    });
    this.peerQueueBytes = new Gauge({
      name: 'atlas_peer_send_queue_bytes',
      help: 'bytes waiting in the send queue to each peer',
      labelNames: ['peer'],
      registers,
    });
    this.forwarded = new Counter({
      name: 'atlas_forwarded_requests_total',
      help: 'client requests forwarded to the leader, by outcome',
      labelNames: ['outcome'],
      registers,
    });
  }

  observeHttpRequest(route: string, method: string, status: number, seconds: number): void {
    this.httpDuration.observe(route, method, status, seconds);
  }

  /** The latency series of one route, method and status (look it up once, observe many times). */
  httpLatencySeries(route: string, method: string, status: number): LatencySeries {
    return this.httpDuration.series(route, method, status);
  }

  /**
   * Adds a count of requests in flight (an HTTP server's) to atlas_http_requests_in_flight;
   * the returned function removes it.
   */
  countInFlight(source: () => number): () => void {
    return addSource(this.inFlightSources, source);
  }

  /** Adds a count of open client connections to atlas_http_open_connections; the function removes it. */
  countConnections(source: () => number): () => void {
    return addSource(this.connectionSources, source);
  }

  /** A client connection was refused at the connection limit. */
  connectionDropped(): void {
    this.httpConnectionsDropped.inc();
  }

  /** Sets the Raft gauges from a status snapshot (called at scrape time). */
  observeStatus(status: NodeStatus): void {
    this.setRole(status.role);
    this.setTerm(status.term);
    this.setCommitIndex(status.commitIndex);
    this.setLastApplied(status.lastApplied);
  }

  setRole(role: NodeRole): void {
    for (const r of ROLES) this.role.set({ role: r }, r === role ? 1 : 0);
  }

  setTerm(term: number): void {
    this.term.set(term);
  }

  setCommitIndex(index: number): void {
    this.commitIndex.set(index);
  }

  setLastApplied(index: number): void {
    this.lastApplied.set(index);
  }

  leaderChanged(): void {
    this.leaderChanges.inc();
  }

  proposal(outcome: ProposalOutcome): void {
    this.proposalCounts[outcome]++;
  }

  observeWalFsync(seconds: number): void {
    this.walFsync.observe(seconds);
  }

  setPeerSendQueue(peer: string, messages: number, bytes: number): void {
    this.peerQueueMessages.set({ peer }, messages);
    this.peerQueueBytes.set({ peer }, bytes);
  }

  removePeer(peer: string): void {
    this.peerQueueMessages.remove({ peer });
    this.peerQueueBytes.remove({ peer });
  }

  forwardedRequest(outcome: ForwardOutcome): void {
    this.forwarded.inc({ outcome });
  }

  /** The Prometheus text exposition. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
