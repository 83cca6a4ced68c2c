/**
 * Structured JSON logs (DESIGN.md §6) with pino. Every line carries the node id; every line the
 * Raft layer writes (src/node) also carries the node's current term and role, read when the line is
 * written, so an operator can line up the logs of several nodes by term.
 */
import { type Logger, pino } from 'pino';
import type { NodeLogger } from '../node/hooks.js';
import type { LogLevel } from '../config/node-config.js';

export type { Logger };

/** A JSON logger for node `nodeId` on stdout, written synchronously so no line is lost at a crash. */
export function createServerLogger(nodeId: string, level: LogLevel): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid, node: nodeId },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 1, sync: true }),
  );
}

export interface RaftPosition {
  term: number;
  role: string;
}

/**
 * The NodeLogger the Raft node writes through: pino's child for component 'raft', with
 * {term, role} of the moment merged into each line (fields the line sets itself win).
 */
export function raftLogger(base: Logger, position: () => RaftPosition | null): NodeLogger {
  const raft = base.child({ component: 'raft' });
  const fields = (obj: Record<string, unknown>): Record<string, unknown> => {
    let p: RaftPosition | null = null;
    try {
      p = position();
    } catch {
      // Before the node is open (or after it halted) there is no position to add.
    }
    return p === null ? obj : { term: p.term, role: p.role, ...obj };
  };
  return {
    debug: (obj, msg) => {
      if (raft.isLevelEnabled('debug')) raft.debug(fields(obj), msg);
    },
    info: (obj, msg) => raft.info(fields(obj), msg),
    warn: (obj, msg) => raft.warn(fields(obj), msg),
    error: (obj, msg) => raft.error(fields(obj), msg),
  };
}
