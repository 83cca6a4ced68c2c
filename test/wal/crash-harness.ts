/**
 * Crash test with real processes: a child appends with fdatasync (several concurrent appenders,
 * small segments so that it rolls and releases) and reports each acknowledged write; the parent
 * kills it with SIGKILL at a random moment, reopens the log, and checks that
 *   - every acknowledged entry, hard state and snapshot marker is there (entries in order, each with
 *     exactly the bytes written), and
 *   - nothing after the tail is garbage: the last segment holds valid records, then only zeros.
 *
 * Run directly: node dist/test/wal/crash-harness.js --rounds N [--seed S] [--dir D]
 * (npm run test:crash -- --rounds N). test/wal/crash.test.ts runs `runCrashRound` in the suite.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WriteAheadLog } from '../../src/wal/index.js';
import { isAllZero, readFrame } from '../../src/wal/record-codec.js';

export const CRASH_SEGMENT_SIZE = 16 * 1024;
export const CRASH_APPENDERS = 4;

/** What the child reports once an append is acknowledged. */
export interface CrashAck {
  type: 'ack';
  group: number;
  index: number;
  commit?: number | undefined;
  snapshot?: number | undefined;
}

/** The bytes of entry `index` of `group`: the parent can check any entry it finds. */
export function crashPayload(group: number, index: number): Buffer {
  const length = 16 + ((group * 7919 + index * 104_729) % 300);
  const buf = Buffer.allocUnsafe(length);
  buf.writeUInt32LE(group, 0);
  buf.writeUInt32LE(index, 4);
  for (let k = 8; k < length; k++) buf[k] = (group * 31 + index * 17 + k * 13) & 0xff;
  return buf;
}

/** Everything acknowledged so far, per group (acknowledgements only grow). */
export class AckedState {
  readonly groups = new Map<number, { index: number; commit: number; snapshot: number }>();

  record(ack: CrashAck): void {
    const g = this.groups.get(ack.group) ?? { index: 0, commit: 0, snapshot: 0 };
    g.index = Math.max(g.index, ack.index);
    if (ack.commit !== undefined) g.commit = Math.max(g.commit, ack.commit);
    if (ack.snapshot !== undefined) g.snapshot = Math.max(g.snapshot, ack.snapshot);
    this.groups.set(ack.group, g);
  }

  get total(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.index;
    return n;
  }
}

export interface CrashRoundOptions {
  dir: string;
  acked: AckedState;
  /** Uniform in [0, 1). */
  random: () => number;
  segmentSize?: number;
  appenders?: number;
}

export interface CrashRoundResult {
  killedBeforeReady: boolean;
  runMs: number;
  ackedThisRound: number;
  recoveredEntries: number;
  segments: number;
}

const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));

/** One round: start the child, kill -9 it at a random moment, reopen and verify. Throws on a violation. */
export async function runCrashRound(options: CrashRoundOptions): Promise<CrashRoundResult> {
  const segmentSize = options.segmentSize ?? CRASH_SEGMENT_SIZE;
  const appenders = options.appenders ?? CRASH_APPENDERS;
  const before = options.acked.total;
  const child = fork(CHILD, [options.dir, String(segmentSize), String(appenders)], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    execArgv: [],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let ready = false;
  const readyPromise = new Promise<void>((resolve) => {
    child.on('message', (message: CrashAck | { type: 'ready' }) => {
      if (message.type === 'ready') {
        ready = true;
        resolve();
      } else {
        options.acked.record(message);
      }
    });
  });

  // One round in five kills the child early: during start-up or recovery of the previous crash.
  const killEarly = options.random() < 0.2;
  const started = performance.now();
  if (killEarly) {
    await sleep(options.random() * 150);
  } else {
    const outcome = await Promise.race([
      readyPromise.then(() => 'ready' as const),
      exited.then(() => 'exited' as const),
    ]);
    if (outcome === 'exited') throw new Error(`crash child exited before it was ready:\n${stderr}`);
    await sleep(10 + options.random() * 240);
  }
  const killedBeforeReady = !ready;
  kill(child);
  const { signal } = await exited;
  if (signal !== 'SIGKILL') throw new Error(`crash child ended on its own (signal ${signal}):\n${stderr}`);
  const runMs = performance.now() - started;

  const { recoveredEntries, segments } = await verifyLog(options.dir, segmentSize, options.acked);
  return {
    killedBeforeReady,
    runMs,
    ackedThisRound: options.acked.total - before,
    recoveredEntries,
    segments,
  };
}

function kill(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reopens the log and checks it against everything acknowledged. */
async function verifyLog(
  dir: string,
  segmentSize: number,
  acked: AckedState,
): Promise<{ recoveredEntries: number; segments: number }> {
  const wal = await WriteAheadLog.open(dir, { segmentSize });
  let recoveredEntries = 0;
  let segmentFiles: string[];
  try {
    for (const [group, a] of acked.groups) {
      const last = wal.lastIndex(group);
      const first = wal.firstIndex(group);
      const snapshot = wal.snapshot(group);
      const where = `group ${group}`;
      if (last < a.index)
        throw new Error(`${where}: acknowledged entry ${a.index} lost (last index ${last})`);
      if ((snapshot?.index ?? 0) < a.snapshot) {
        throw new Error(
          `${where}: acknowledged snapshot marker ${a.snapshot} lost (have ${snapshot?.index ?? 'none'})`,
        );
      }
      if (snapshot !== null && (snapshot.term !== 1 || snapshot.index !== first - 1)) {
        throw new Error(
          `${where}: snapshot marker ${JSON.stringify(snapshot)} does not match first index ${first}`,
        );
      }
      const hs = wal.hardState(group);
      if ((hs?.commit ?? 0) < a.commit) {
        throw new Error(
          `${where}: acknowledged commit ${a.commit} lost (have ${hs?.commit ?? 'no hard state'})`,
        );
      }
      const read = wal.entries(group, first, last + 1);
      for (const [k, e] of read.entries()) {
        const index = first + k;
        if (e.index !== index || e.term !== 1 || !e.data.equals(crashPayload(group, index))) {
          throw new Error(
            `${where}: entry ${index} is not what was written (index ${e.index}, term ${e.term})`,
          );
        }
      }
      recoveredEntries += read.length;
    }
    segmentFiles = wal.segmentFiles();
  } finally {
    await wal.close();
  }
  // Nothing after the tail is garbage: the newest segment is records, then zeros to its end.
  const tail = readFileSync(segmentFiles[segmentFiles.length - 1]!);
  let offset = 0;
  for (;;) {
    const frame = readFrame(tail, offset, tail.length);
    if (frame.kind !== 'record') break;
    offset = frame.next;
  }
  if (!isAllZero(tail, offset, tail.length)) {
    throw new Error(
      `bytes after the last record at offset ${offset} of ${segmentFiles[segmentFiles.length - 1]} are not zero`,
    );
  }
  return { recoveredEntries, segments: segmentFiles.length };
}

/** Deterministic PRNG (mulberry32) so a failing run can be replayed with --seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export async function runCrashRounds(options: {
  rounds: number;
  seed: number;
  dir: string;
  log?: (line: string) => void;
}): Promise<{ acked: number; rounds: CrashRoundResult[] }> {
  const random = seededRandom(options.seed);
  const acked = new AckedState();
  const rounds: CrashRoundResult[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    try {
      const result = await runCrashRound({ dir: options.dir, acked, random });
      rounds.push(result);
      options.log?.(
        `round ${round}: killed after ${result.runMs.toFixed(0)} ms${result.killedBeforeReady ? ' (before ready)' : ''}, ` +
          `+${result.ackedThisRound} acknowledged, ${result.recoveredEntries} entries recovered, ${result.segments} segments`,
      );
    } catch (err) {
      throw new Error(
        `crash round ${round} (seed ${options.seed}, dir ${options.dir}): ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }
  return { acked: acked.total, rounds };
}

function parseArgs(argv: string[]): { rounds: number; seed: number; dir: string | undefined } {
  let rounds = 20;
  let seed = Date.now() % 1_000_000_007;
  let dir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    const number = Number(value);
    if (arg === '--rounds' && Number.isInteger(number) && number > 0) rounds = number;
    else if (arg === '--seed' && Number.isInteger(number)) seed = number;
    else if (arg === '--dir' && value !== undefined) dir = value;
    else
      throw new Error(
        `usage: crash-harness.js [--rounds N] [--seed S] [--dir D] (bad argument ${arg} ${value ?? ''})`,
      );
    i++;
  }
  return { rounds, seed, dir };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = args.dir ?? mkdtempSync(join(tmpdir(), 'atlas-wal-crash-'));
  console.log(`WAL crash test: ${args.rounds} rounds, seed ${args.seed}, dir ${dir}`);
  const started = performance.now();
  try {
    const { acked } = await runCrashRounds({ ...args, dir, log: (line) => console.log(line) });
    console.log(
      `ok: ${args.rounds} rounds, ${acked} acknowledged entries, none lost (${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    if (args.dir === undefined) rmSync(dir, { recursive: true, force: true });
  } catch (err) {
    console.error(`FAILED: ${(err as Error).message}\n(log kept in ${dir})`);
    process.exitCode = 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
