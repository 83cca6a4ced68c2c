/**
 * Raft's own CPU cost, without I/O: three RaftGroups in one process, a driver loop that hands every
 * Ready's messages straight to their targets, proposals of 100 bytes in batches. Prints figures;
 * asserts nothing (benchmarks are commands, not tests). Run: node dist/test/raft/throughput.js
 */
import { RaftGroup } from '../../src/raft/raft-group.js';
import type { Message, NodeId } from '../../src/raft/types.js';
import { testConfig } from './network.js';
import { conf } from './util.js';

function measure(entries: number, batch: number): void {
  const ids: NodeId[] = ['a', 'b', 'c'];
  const c = conf(ids);
  const nodes = new Map<NodeId, RaftGroup>();
  ids.forEach((id, i) => {
    const cfg = testConfig(
      id,
      { checkQuorum: true, preVote: true, maxProposalQueue: 1 << 20 },
      i + 1,
      () => ({
        index: 0,
        term: 0,
        conf: c,
      }),
    );
    nodes.set(
      id,
      new RaftGroup(cfg, {
        hardState: { term: 0, vote: '', commit: 0 },
        snapshot: null,
        entries: [],
        conf: c,
        applied: 0,
      }),
    );
  });
  let queue: Message[] = [];
  let messages = 0;
  const pump = () => {
    for (;;) {
      let moved = false;
      for (const r of nodes.values()) {
        if (!r.hasReady()) continue;
        const rd = r.ready();
        queue.push(...rd.messages);
        r.advance(rd);
        moved = true;
      }
      if (queue.length > 0) {
        const batchOfMessages = queue;
        queue = [];
        messages += batchOfMessages.length;
        for (const m of batchOfMessages) nodes.get(m.to)!.step(m);
        moved = true;
      }
      if (!moved) return;
    }
  };
  nodes.get('a')!.campaign();
  pump();
  const data = Buffer.alloc(100);
  messages = 0;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < entries; i += batch) {
    for (let j = 0; j < batch; j++) nodes.get('a')!.propose(data);
    pump();
  }
  const used = process.cpuUsage(cpu0);
  const cpuMs = (used.user + used.system) / 1000;
  const committed = nodes.get('c')!.status().commit;
  console.log(
    `batch ${String(batch).padStart(3)}: ${entries} entries committed on 3 replicas (commit ${committed}), ` +
      `${messages} messages, ${cpuMs.toFixed(0)} ms CPU => ${Math.round((entries / cpuMs) * 1000)} entries per CPU-second`,
  );
}

measure(20_000, 1);
measure(100_000, 16);
measure(100_000, 64);
