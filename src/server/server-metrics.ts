/**
 * The server's metrics: the API's AtlasMetrics (role, term, commit, applied, leader changes,
 * proposals, WAL fsync latency, peer send queues, forwarded requests), fed by the node's hooks,
 * the WAL's onSync and the transport adapter; plus the figures only the server sees (snapshot
 * events, dropped peer messages). Peer queue gauges and drop counts are read at scrape time.
 */
import { Counter, Gauge } from 'prom-client';
import { AtlasMetrics } from '../api/http/api-metrics.js';
import type { NodeHooks, SnapshotEvent } from '../node/hooks.js';
import type { ReadConsistency } from '../node/kv-service.js';
import type { TransportStats } from '../transport/peer-transport.js';

export interface ScrapeSources {
  transportStats(): TransportStats;
  /** Peer messages the node dropped in validation, by reason (cumulative). */
  droppedPeerMessages(): Readonly<Record<string, number>>;
}

export class ServerMetrics extends AtlasMetrics {
  private readonly snapshots: Counter<'event'>;
  /**
   * Reads served, by consistency, counted in plain numbers (the node reports every read, and a
   * labelled prom-client inc() hashes its labels each time); the counter reads them at scrape.
   */
  private readonly readCounts: Record<ReadConsistency, number> = { linearizable: 0, serializable: 0 };
  private readonly appliedEntries: Counter;
  private readonly dropped: Gauge<'reason'>;
  private readonly peerConnected: Gauge<'peer'>;
  private readonly peerSent: Gauge<'peer' | 'unit'>;
  private readonly memoryReclaims: Counter<'gc'>;
  private readonly memoryReclaimedBytes: Counter;
  private readonly memoryReclaimSeconds: Counter;
  private readonly knownPeers = new Set<string>();
  private sources: ScrapeSources | null = null;
  private lastLeader: string | null = null;

  constructor(nodeId: string, processMetrics = true) {
    super({ nodeId, processMetrics });
    const registers = [this.registry];
    this.snapshots = new Counter({
      name: 'atlas_raft_snapshot_events_total',
      help: 'snapshot transfers and compactions by event (streamStarted, streamDone, streamFailed, received, installed, compacted)',
      labelNames: ['event'],
      registers,
    });
    const readCounts = this.readCounts;
    // Lives in the registry; its collect() copies readCounts at each scrape.
    new Counter({
      name: 'atlas_reads_total',
      help: 'reads served, by consistency',
      labelNames: ['consistency'],
      registers,
      collect() {
        this.reset();
        for (const consistency of ['linearizable', 'serializable'] as const) {
          const n = readCounts[consistency];
          if (n > 0) this.inc({ consistency }, n);
        }
      },
    });
    this.appliedEntries = new Counter({
      name: 'atlas_raft_applied_entries_total',
      help: 'committed entries applied to the store',
      registers,
    });
    this.dropped = new Gauge({
      name: 'atlas_peer_messages_dropped_total',
      help: 'peer messages the node refused in validation, by reason (cumulative)',
      labelNames: ['reason'],
      registers,
    });
    this.peerConnected = new Gauge({
      name: 'atlas_peer_connected',
      help: '1 while the connection to a peer is open',
      labelNames: ['peer'],
      registers,
    });
    // Cumulative figures the transport keeps: a gauge set at scrape (a link's counters persist across its reconnects).
    this.peerSent = new Gauge({
      name: 'atlas_peer_sent_total',
      help: 'traffic sent to a peer (cumulative), by unit: messages, frames, socket writes (one per flush), bytes',
      labelNames: ['peer', 'unit'],
      registers,
    });
    this.memoryReclaims = new Counter({
      name: 'atlas_memory_reclaims_total',
      help: 'periodic reclaims of freed native memory (malloc_trim), by whether a full GC ran first (idle node)',
      labelNames: ['gc'],
      registers,
    });
    this.memoryReclaimedBytes = new Counter({
      name: 'atlas_memory_reclaimed_bytes_total',
      help: 'anonymous resident memory the periodic reclaims handed back to the OS (RssAnon before minus after)',
      registers,
    });
    this.memoryReclaimSeconds = new Counter({
      name: 'atlas_memory_reclaim_seconds_total',
      help: 'event-loop time spent in the periodic reclaims (GC and malloc_trim)',
      registers,
    });
  }

  /** One periodic reclaim (memory-reclaimer.ts): whether it collected, what it handed back, what it cost. */
  memoryReclaimed(collected: boolean, releasedBytes: number, seconds: number): void {
    this.memoryReclaims.inc({ gc: collected ? 'true' : 'false' });
    if (releasedBytes > 0) this.memoryReclaimedBytes.inc(releasedBytes);
    this.memoryReclaimSeconds.inc(seconds);
  }

  /** Where scrape-time figures come from (set once the transport and node exist). */
  attach(sources: ScrapeSources): void {
    this.sources = sources;
  }

  /** The node's observation hooks, turned into metric updates. */
  nodeHooks(): NodeHooks {
    return {
      leaderChanged: (e) => {
        this.setRole(e.role);
        this.setTerm(e.term);
        if (this.lastLeader !== null && this.lastLeader !== e.leader) this.leaderChanged();
        this.lastLeader = e.leader;
      },
      applied: (e) => {
        this.setLastApplied(e.index);
        this.appliedEntries.inc(e.entries);
      },
      read: (e) => {
        this.readCounts[e.consistency satisfies ReadConsistency] += e.count;
      },
      snapshot: (e) => this.snapshots.inc({ event: e.event satisfies SnapshotEvent }),
    };
  }

  override async render(): Promise<{ contentType: string; body: string }> {
    this.refresh();
    return super.render();
  }

  private refresh(): void {
    const sources = this.sources;
    if (sources === null) return;
    const seen = new Set<string>();
    for (const p of sources.transportStats().peers) {
      seen.add(p.id);
      this.setPeerSendQueue(p.id, p.queueMessages, p.queueBytes);
      this.peerConnected.set({ peer: p.id }, p.connected ? 1 : 0);
      this.peerSent.set({ peer: p.id, unit: 'messages' }, p.messagesSent);
      this.peerSent.set({ peer: p.id, unit: 'frames' }, p.framesSent);
      this.peerSent.set({ peer: p.id, unit: 'writes' }, p.writes);
      this.peerSent.set({ peer: p.id, unit: 'bytes' }, p.bytesSent);
    }
    for (const id of this.knownPeers) {
      if (seen.has(id)) continue;
      this.removePeer(id);
      this.peerConnected.remove({ peer: id });
      for (const unit of ['messages', 'frames', 'writes', 'bytes']) this.peerSent.remove({ peer: id, unit });
    }
    this.knownPeers.clear();
    for (const id of seen) this.knownPeers.add(id);
    for (const [reason, count] of Object.entries(sources.droppedPeerMessages()))
      this.dropped.set({ reason }, count);
  }
}
