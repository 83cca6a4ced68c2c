/**
 * `atlas check-history FILE [--json]`: checks a client history (JSON Lines, docs/history.md) for
 * linearizability against the key-value register model, and lists lost writes.
 *
 * Exit codes: 0 linearizable · 1 NOT linearizable (the report names the key and the operations)
 * · 2 bad input or usage (unreadable or malformed file, empty history, bad option) · 3 unknown
 * (the search budget ran out before a verdict) · 5 internal error.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { formatHistoryCheckResult } from '../history/check-report.js';
import { HistoryFormatError, readHistoryFile } from '../history/history-event.js';
import { checkHistory, HISTORY_CHECK_DEFAULTS, type HistoryCheckOptions } from '../history/linearizability-checker.js';

export const CHECK_HISTORY_EXIT = {
  linearizable: 0,
  notLinearizable: 1,
  badInput: 2,
  unknown: 3,
  internalError: 5,
} as const;

export interface CheckHistoryCommandOptions {
  json?: boolean;
  /** Seconds. */
  timeLimit?: number;
  maxStepsPerKey?: number;
}

/** Where the command writes; tests may pass their own. */
export interface CheckHistoryOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processOutput: CheckHistoryOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** Longest accepted --time-limit: one day. */
const MAX_TIME_LIMIT_SECONDS = 86_400;

function positiveSeconds(value: string): number {
  const seconds = /^[0-9]+(\.[0-9]+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(seconds > 0) || seconds > MAX_TIME_LIMIT_SECONDS) {
    throw new InvalidArgumentError(`must be a number of seconds, above 0 and at most ${MAX_TIME_LIMIT_SECONDS}`);
  }
  return seconds;
}

function positiveSteps(value: string): number {
  const steps = /^[0-9]{1,15}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(steps) || steps < 1) throw new InvalidArgumentError('must be a positive integer');
  return steps;
}

export function registerCheckHistoryCommand(program: Command, output: CheckHistoryOutput = processOutput): Command {
  return program
    .command('check-history')
    .description('check a client history (JSON Lines, docs/history.md) for linearizability and lost writes')
    .argument('<file>', 'the history file')
    .option('--json', 'print the result as one JSON object')
    .option('--time-limit <seconds>', 'give up after this long and report "unknown" (default: no limit)', positiveSeconds)
    .option(
      '--max-steps-per-key <n>',
      `search steps allowed per key before it is "unknown" (default ${HISTORY_CHECK_DEFAULTS.maxStepsPerKey})`,
      positiveSteps,
    )
    .action(async (file: string, options: CheckHistoryCommandOptions) => {
      try {
        process.exitCode = await runCheckHistory(file, options, output);
      } catch (err) {
        // Not 1, which means "not linearizable".
        output.stderr(`atlas check-history: internal error: ${(err as Error).stack ?? String(err)}\n`);
        process.exitCode = CHECK_HISTORY_EXIT.internalError;
      }
    });
}

function describeReadError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'EACCES') return 'permission denied';
  return (err as Error).message;
}

/** Reads, checks and reports; resolves with the exit code (rejects only on an internal error). */
export async function runCheckHistory(
  file: string,
  options: CheckHistoryCommandOptions,
  output: CheckHistoryOutput = processOutput,
): Promise<number> {
  const badInput = (message: string, issues?: HistoryFormatError['issues']): number => {
    if (options.json) output.stdout(`${JSON.stringify({ error: message, ...(issues ? { issues } : {}) })}\n`);
    output.stderr(`atlas check-history: ${message}\n`);
    return CHECK_HISTORY_EXIT.badInput;
  };
  let events: Awaited<ReturnType<typeof readHistoryFile>>;
  try {
    events = await readHistoryFile(file);
  } catch (err) {
    if (err instanceof HistoryFormatError) return badInput(`${file}: ${err.message}`, err.issues);
    if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string') {
      return badInput(`cannot read ${file}: ${describeReadError(err)}`);
    }
    throw err;
  }
  if (events.length === 0) return badInput(`${file}: the history is empty (no events)`);

  const checkOptions: HistoryCheckOptions = {
    ...(options.timeLimit === undefined ? {} : { timeLimitMs: Math.ceil(options.timeLimit * 1000) }),
    ...(options.maxStepsPerKey === undefined ? {} : { maxStepsPerKey: options.maxStepsPerKey }),
  };
  const result = checkHistory(events, checkOptions);
  output.stdout(options.json ? `${JSON.stringify(result)}\n` : `${formatHistoryCheckResult(result)}\n`);
  switch (result.verdict) {
    case 'linearizable':
      return CHECK_HISTORY_EXIT.linearizable;
    case 'not-linearizable':
      return CHECK_HISTORY_EXIT.notLinearizable;
    case 'unknown':
      return CHECK_HISTORY_EXIT.unknown;
  }
}
