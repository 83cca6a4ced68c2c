/**
 * Randomized runs of a five-node group under message loss, duplication, reordering, partitions,
 * crashes with restarts from disk, compaction, leadership transfers and reads, checking after every
 * tick: at most one leader per term (Election Safety), every node applies the same entry at an
 * index (State Machine Safety), and every read index covers everything committed before the read
 * was requested (ReadIndex safety). At the end the network heals and the group must make progress.
 * A small, seeded precursor of the full simulator (test/sim/), kept fast.
 */
import assert from 'node:assert/strict';
import type { PlantedBug } from '../../src/raft/types.js';
import { seededRandom, TestNetwork } from './network.js';

const IDS = ['a', 'b', 'c', 'd', 'e'];

interface RunResult {
  violation: string | null;
  commits: number;
}

export function run(seed: number, steps: number, bugs: PlantedBug[] = [], trace = false): RunResult {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const net = new TestNetwork(
    IDS,
    { preVote: true, checkQuorum: true, maxInflightMsgs: 4, maxMsgBytes: 256, bugs },
    [],
    seed * 7,
  );
  net.chaos = { random: rnd, drop: 0.1, duplicate: 0.05 };
  const leaderOfTerm = new Map<number, string>();
  const appliedAt = new Map<number, string>();
  const readFloor = new Map<string, number>();
  let reads = 0;
  let writes = 0;

  const globalCommit = () => Math.max(...IDS.map((id) => net.raft(id).status().commit));
  const check = (): string | null => {
    for (const id of IDS) {
      if (net.isDown(id)) continue;
      const s = net.raft(id).status();
      if (s.role === 'leader') {
        const other = leaderOfTerm.get(s.term);
        if (other !== undefined && other !== id) return `two leaders in term ${s.term}: ${other}, ${id}`;
        leaderOfTerm.set(s.term, id);
      }
      for (const e of net.node(id).applied) {
        const v = `${e.term}:${e.data}`;
        const seen = appliedAt.get(e.index);
        if (seen === undefined) appliedAt.set(e.index, v);
        else if (seen !== v) return `index ${e.index} applied as ${seen} and as ${v} (on ${id})`;
      }
      for (const r of net.node(id).readStates) {
        const floor = readFloor.get(r.context.toString());
        if (floor !== undefined && r.index < floor) {
          return `read ${r.context} at index ${r.index} misses committed index ${floor}`;
        }
      }
    }
    return null;
  };

  for (let step = 0; step < steps; step++) {
    const r = rnd();
    const up = IDS.filter((id) => !net.isDown(id));
    const leader = net.leaders()[0];
    try {
      // Faults keep a majority connected most of the time, so the group should keep committing.
      if (r < 0.02 && up.length > 3) net.crash(pick(up));
      else if (r < 0.05) {
        const down = IDS.filter((id) => net.isDown(id));
        if (down.length > 0) net.restart(pick(down));
      } else if (r < 0.07) {
        net.heal();
        const cut = IDS.filter(() => rnd() < 0.3).slice(0, 2);
        net.partition(
          cut,
          IDS.filter((id) => !cut.includes(id)),
        );
      } else if (r < 0.12) net.heal();
      else if (r < 0.4 && leader !== undefined) {
        net.raft(leader).propose(Buffer.from(`w${writes++}`));
      } else if (r < 0.5 && up.length > 0) {
        const ctx = `r${reads++}`;
        readFloor.set(ctx, globalCommit());
        net.raft(pick(up)).readIndex(Buffer.from(ctx));
      } else if (r < 0.53 && up.length > 0) {
        net.node(pick(up)).compact(Math.floor(rnd() * 4));
      } else if (r < 0.55 && leader !== undefined) {
        net.raft(leader).transferLeadership(pick(IDS));
      }
    } catch (e) {
      // Refusals (not leader, transfer in progress, queue full) are part of the protocol.
      if (!(e instanceof Error) || !/not the leader|no leader|dropped/.test(e.message)) throw e;
    }
    net.stabilize();
    net.tick(up.filter((id) => !net.isDown(id)));
    if (trace) {
      const desc = IDS.map((id) => {
        if (net.isDown(id)) return `${id}:down`;
        const s = net.raft(id).status();
        return `${id}:${s.role[0]}${s.term}/${s.commit}`;
      });
      console.log(step, r.toFixed(2), desc.join(' '));
    }
    const v = check();
    if (v !== null) return { violation: `seed ${seed} step ${step}: ${v}`, commits: globalCommit() };
  }

  // Heal everything: the group must elect a leader and commit a new write on every node.
  net.chaos = null;
  net.heal();
  for (const id of IDS) if (net.isDown(id)) net.restart(id);
  let leader: string | undefined;
  for (let t = 0; t < 200 && leader === undefined; t++) {
    net.tickAll();
    leader = net.leaders()[0];
  }
  assert.ok(leader !== undefined, `seed ${seed}: no leader after healing`);
  // A transfer begun during the run may still be in flight: proposals wait for it to end.
  let index = 0;
  for (let t = 0; t < 50 && index === 0; t++) {
    const l = net.leaders()[0];
    if (l !== undefined && net.raft(l).status().transferee === undefined) {
      index = net.raft(l).propose(Buffer.from('final')).index;
    } else net.tickAll();
  }
  assert.ok(index > 0, `seed ${seed}: no leader accepts proposals after healing`);
  net.tickAll(3);
  for (const id of IDS) {
    const l = net.leaders()[0];
    const detail = () =>
      JSON.stringify({ leader: l, st: net.raft(id).status(), pr: l && net.raft(l).status().progress });
    assert.ok(net.raft(id).status().applied >= index, `seed ${seed}: ${id} did not catch up ${detail()}`);
  }
  return { violation: check(), commits: globalCommit() };
}
