/**
 * The process the crash harness kills. Usage (forked by crash-harness.ts):
 *   node crash-child.js <dir> <segmentSize> <appenders>
 * Opens the log, then runs `appenders` concurrent appenders, one Raft group each, appending one
 * entry at a time (with hard states and snapshot markers now and then, and releases), and reports
 * every acknowledged write to the parent over IPC. It runs until it is killed.
 */
import { WriteAheadLog, type WalRecord } from '../../src/wal/index.js';
import { type CrashAck, crashPayload } from './crash-harness.js';

const [dir, segmentSizeArg, appendersArg] = process.argv.slice(2);
if (dir === undefined || process.send === undefined) {
  throw new Error('usage: crash-child.js <dir> <segmentSize> <appenders> (forked with an IPC channel)');
}
const segmentSize = Number(segmentSizeArg);
const appenders = Number(appendersArg);

function report(message: CrashAck | { type: 'ready' }): void {
  try {
    process.send?.(message);
  } catch {
    // The parent is going away; nothing to report to.
  }
}

const wal = await WriteAheadLog.open(dir, { segmentSize });
report({ type: 'ready' });

async function appender(group: number): Promise<void> {
  for (;;) {
    const index = wal.lastIndex(group) + 1;
    const records: WalRecord[] = [
      { kind: 'entry', group, term: 1, index, entryType: 0, data: crashPayload(group, index) },
    ];
    let commit: number | undefined;
    let snapshot: number | undefined;
    if (index % 3 === 0) {
      commit = index - 1;
      records.push({ kind: 'hardState', group, term: 1, vote: '', commit });
    }
    if (index % 40 === 0) {
      snapshot = index - 15;
      records.push({ kind: 'snapshot', group, index: snapshot, term: 1 });
    }
    await wal.append(records);
    report({ type: 'ack', group, index, commit, snapshot });
    if (snapshot !== undefined && group === 1) await wal.release();
  }
}

await Promise.all(Array.from({ length: appenders }, (_, g) => appender(g + 1)));
