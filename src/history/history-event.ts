/**
 * One event of a client history, and the strict parser for history files.
 *
 * The format is fixed by HISTORY.md (user documentation: docs/history.md): JSON Lines, one event
 * per line, two events per operation — an `invoke` and then exactly one completion (`ok`, `fail`
 * or `info`). History files are untrusted input: every malformed line gets an error that names the
 * line and what is wrong, and the structural rules of a history (see HistoryStructureValidator)
 * are checked while reading.
 */
import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { HistoryStructureValidator } from './history-structure.js';

/** The functions of the key-value register workload, the one model the checker implements. */
export const REGISTER_FUNCTIONS = ['read', 'write', 'cas', 'delete'] as const;
export type RegisterFunction = (typeof REGISTER_FUNCTIONS)[number];

export const HISTORY_EVENT_TYPES = ['invoke', 'ok', 'fail', 'info'] as const;
export type HistoryEventType = (typeof HISTORY_EVENT_TYPES)[number];
export type CompletionType = Exclude<HistoryEventType, 'invoke'>;

/** `[expected, new]`; `expected` null means "only if the key does not exist". */
export type CasArguments = readonly [expected: string | null, next: string];

interface HistoryEventBase {
  /** The logical client; one operation at a time; never issues again after an `info`. */
  readonly process: number;
  readonly type: HistoryEventType;
  readonly key: string;
  /** Nanoseconds since the start of the test, one clock for all clients; non-decreasing. */
  readonly time: number;
  /** Optional short reason, only on `fail` and `info`. A cas that failed its precondition says "mismatch". */
  readonly error?: string;
}

/** `value` is null on invoke; on `ok` the value read, or null when the key did not exist. */
export interface ReadEvent extends HistoryEventBase {
  readonly f: 'read';
  readonly value: string | null;
}

export interface WriteEvent extends HistoryEventBase {
  readonly f: 'write';
  readonly value: string;
}

export interface CasEvent extends HistoryEventBase {
  readonly f: 'cas';
  readonly value: CasArguments;
}

export interface DeleteEvent extends HistoryEventBase {
  readonly f: 'delete';
  readonly value: null;
}

export type HistoryEvent = ReadEvent | WriteEvent | CasEvent | DeleteEvent;

/** What is wrong with one line of a history file (or one event of an in-memory history). */
export interface HistoryIssue {
  /** 1-based line number in the file; for an in-memory array of events, the index + 1. */
  readonly line: number;
  readonly message: string;
}

/** A history that does not follow the format. Carries every issue found, up to a limit. */
export class HistoryFormatError extends Error {
  constructor(
    readonly issues: readonly HistoryIssue[],
    /** True when reading stopped at the issue limit: more problems may follow. */
    readonly truncated: boolean,
  ) {
    const lines = issues.map((issue) => `  line ${issue.line}: ${issue.message}`);
    if (truncated) lines.push(`  (stopped after ${issues.length} problems)`);
    super(`malformed history (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`);
    this.name = 'HistoryFormatError';
  }
}

/** Explicit limits on what a history file may hold (TIGER_STYLE: a limit on everything). */
export const HISTORY_LIMITS = {
  /** Longest accepted line, in bytes of UTF-8. */
  maxLineBytes: 1 << 20,
  /** Most events in one history. */
  maxEvents: 50_000_000,
  /** Problems collected before reading stops. */
  maxIssues: 20,
} as const;

export interface HistoryParseOptions {
  maxLineBytes?: number;
  maxEvents?: number;
  maxIssues?: number;
}

/** A problem with one event; the message says which field and why. */
export class HistoryEventShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HistoryEventShapeError';
  }
}

const EVENT_FIELDS = new Set(['process', 'type', 'f', 'key', 'value', 'time', 'error']);

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return `a value of type ${typeof value}`;
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function oneOf<T extends string>(allowed: readonly T[], value: unknown): value is T {
  return typeof value === 'string' && (allowed as readonly string[]).includes(value);
}

function checkValue(f: RegisterFunction, type: HistoryEventType, value: unknown): void {
  switch (f) {
    case 'read':
      if (type === 'ok') {
        if (value !== null && typeof value !== 'string') {
          throw new HistoryEventShapeError(`"value" of an ok read must be the string read or null, not ${describe(value)}`);
        }
      } else if (value !== null) {
        throw new HistoryEventShapeError(`"value" of a read ${type} must be null, not ${describe(value)}`);
      }
      return;
    case 'write':
      if (typeof value !== 'string') {
        throw new HistoryEventShapeError(`"value" of a write must be the string written, not ${describe(value)}`);
      }
      return;
    case 'cas':
      if (
        !Array.isArray(value) ||
        value.length !== 2 ||
        (value[0] !== null && typeof value[0] !== 'string') ||
        typeof value[1] !== 'string'
      ) {
        throw new HistoryEventShapeError(
          `"value" of a cas must be [expected, new] with expected a string or null and new a string, not ${
            Array.isArray(value) ? JSON.stringify(value).slice(0, 80) : describe(value)
          }`,
        );
      }
      return;
    case 'delete':
      if (value !== null) throw new HistoryEventShapeError(`"value" of a delete must be null, not ${describe(value)}`);
      return;
  }
}

/**
 * Checks that `raw` (a decoded JSON value, or an event built in code) is one well-formed event and
 * returns it as a HistoryEvent. Throws HistoryEventShapeError naming the field that is wrong.
 * Unknown fields are rejected, so a misspelt field name cannot silently drop information.
 */
export function decodeHistoryEvent(raw: unknown): HistoryEvent {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new HistoryEventShapeError(`an event must be a JSON object, not ${describe(raw)}`);
  }
  const record = raw as Record<string, unknown>;
  for (const field of Object.keys(record)) {
    if (!EVENT_FIELDS.has(field)) {
      throw new HistoryEventShapeError(
        `unknown field ${JSON.stringify(field)} (allowed: process, type, f, key, value, time, error)`,
      );
    }
  }
  for (const field of ['process', 'type', 'f', 'key', 'value', 'time']) {
    if (!Object.hasOwn(record, field)) throw new HistoryEventShapeError(`missing field "${field}"`);
  }
  const { process, type, f, key, value, time, error } = record;
  if (!isNonNegativeInteger(process)) {
    throw new HistoryEventShapeError(`"process" must be a non-negative integer, not ${describe(process)}`);
  }
  if (!oneOf(HISTORY_EVENT_TYPES, type)) {
    throw new HistoryEventShapeError(`"type" must be one of invoke, ok, fail, info, not ${describe(type)}`);
  }
  if (!oneOf(REGISTER_FUNCTIONS, f)) {
    throw new HistoryEventShapeError(
      `unsupported "f" ${describe(f)}: the checker models a key-value register (read, write, cas, delete)`,
    );
  }
  if (typeof key !== 'string' || key.length === 0) {
    throw new HistoryEventShapeError(`"key" must be a non-empty string, not ${describe(key)}`);
  }
  if (!isNonNegativeInteger(time)) {
    throw new HistoryEventShapeError(`"time" must be a non-negative integer (nanoseconds), not ${describe(time)}`);
  }
  if (error !== undefined) {
    if (type !== 'fail' && type !== 'info') {
      throw new HistoryEventShapeError(`"error" is only allowed on fail and info events, not on ${type}`);
    }
    if (typeof error !== 'string') {
      throw new HistoryEventShapeError(`"error" must be a string, not ${describe(error)}`);
    }
  }
  checkValue(f, type, value);
  // Plain object literals, no spreads: this runs once per event of histories with millions of them.
  const normalized = f === 'cas' ? [(value as CasArguments)[0], (value as CasArguments)[1]] : value;
  const event =
    error === undefined
      ? { process, type, f, key, value: normalized, time }
      : { process, type, f, key, value: normalized, time, error: error as string };
  return event as HistoryEvent;
}

/**
 * Accumulates the events of a history line by line: decodes each line, checks the structural
 * rules, collects issues. Shared by parseHistory (a string) and readHistoryFile (a stream).
 */
class HistoryLineReader {
  readonly events: HistoryEvent[] = [];
  readonly issues: HistoryIssue[] = [];
  private readonly structure = new HistoryStructureValidator();
  private readonly maxEvents: number;
  private readonly maxIssues: number;
  /** Set when reading must stop (issue limit or event limit reached). */
  stopped = false;

  constructor(options: HistoryParseOptions) {
    this.maxEvents = options.maxEvents ?? HISTORY_LIMITS.maxEvents;
    this.maxIssues = options.maxIssues ?? HISTORY_LIMITS.maxIssues;
    if (!(this.maxIssues >= 1)) throw new RangeError('maxIssues must be at least 1');
  }

  report(line: number, message: string): void {
    this.issues.push({ line, message });
    if (this.issues.length >= this.maxIssues) this.stopped = true;
  }

  acceptLine(text: string, line: number): void {
    const content = text.charCodeAt(text.length - 1) === 13 ? text.slice(0, -1) : text;
    if (this.events.length >= this.maxEvents) {
      this.report(line, `more than ${this.maxEvents} events (the limit for one history)`);
      this.stopped = true;
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(content);
    } catch (err) {
      this.report(
        line,
        content.trim().length === 0
          ? 'empty line (JSON Lines holds exactly one JSON object per line)'
          : `not valid JSON: ${(err as Error).message}`,
      );
      return;
    }
    let event: HistoryEvent;
    try {
      event = decodeHistoryEvent(raw);
    } catch (err) {
      if (err instanceof HistoryEventShapeError) {
        this.report(line, err.message);
        return;
      }
      throw err;
    }
    const problem = this.structure.accept(event, line);
    if (problem !== null) {
      this.report(line, problem);
      return;
    }
    this.events.push(event);
  }

  finish(): HistoryEvent[] {
    if (!this.stopped) {
      for (const issue of this.structure.finish()) {
        if (this.stopped) break;
        this.report(issue.line, issue.message);
      }
    }
    if (this.issues.length > 0) throw new HistoryFormatError(this.issues, this.stopped);
    return this.events;
  }
}

/**
 * Checks an in-memory history (events built in code, e.g. by the simulator) by the same rules as a
 * file: each event's shape, then the structural rules. Returns the events as decoded copies;
 * throws HistoryFormatError where `line` is the event's index + 1.
 */
export function validateHistoryEvents(events: readonly unknown[], options: HistoryParseOptions = {}): HistoryEvent[] {
  const maxIssues = options.maxIssues ?? HISTORY_LIMITS.maxIssues;
  const maxEvents = options.maxEvents ?? HISTORY_LIMITS.maxEvents;
  if (events.length > maxEvents) {
    throw new HistoryFormatError(
      [{ line: maxEvents + 1, message: `more than ${maxEvents} events (the limit for one history)` }],
      true,
    );
  }
  const structure = new HistoryStructureValidator();
  const decoded: HistoryEvent[] = [];
  const issues: HistoryIssue[] = [];
  for (let index = 0; index < events.length && issues.length < maxIssues; index += 1) {
    let event: HistoryEvent;
    try {
      event = decodeHistoryEvent(events[index]);
    } catch (err) {
      if (!(err instanceof HistoryEventShapeError)) throw err;
      issues.push({ line: index + 1, message: err.message });
      continue;
    }
    const problem = structure.accept(event, index + 1);
    if (problem === null) decoded.push(event);
    else issues.push({ line: index + 1, message: problem });
  }
  let truncated = issues.length >= maxIssues;
  if (!truncated) {
    const unfinished = structure.finish();
    truncated = unfinished.length > maxIssues - issues.length;
    issues.push(...unfinished.slice(0, maxIssues - issues.length));
  }
  if (issues.length > 0) throw new HistoryFormatError(issues, truncated);
  return decoded;
}

/**
 * Parses a whole history held in a string. Throws HistoryFormatError listing every problem (up to
 * maxIssues), each with its line number. A final newline is optional; empty lines are errors.
 */
export function parseHistory(text: string, options: HistoryParseOptions = {}): HistoryEvent[] {
  const maxLineBytes = options.maxLineBytes ?? HISTORY_LIMITS.maxLineBytes;
  const reader = new HistoryLineReader(options);
  let start = 0;
  let line = 0;
  while (start < text.length && !reader.stopped) {
    line += 1;
    const newline = text.indexOf('\n', start);
    const end = newline === -1 ? text.length : newline;
    const content = text.slice(start, end);
    if (Buffer.byteLength(content, 'utf8') > maxLineBytes) {
      reader.report(line, `line longer than ${maxLineBytes} bytes (the limit for one event)`);
    } else {
      reader.acceptLine(content, line);
    }
    start = end + 1;
  }
  return reader.finish();
}

/**
 * Reads and parses a history file, streaming it (the file may be larger than a string can hold).
 * Lines must be UTF-8. Throws HistoryFormatError for malformed content; I/O errors (missing file,
 * a directory, no permission) reject with the underlying Node error.
 */
export async function readHistoryFile(path: string, options: HistoryParseOptions = {}): Promise<HistoryEvent[]> {
  const maxLineBytes = options.maxLineBytes ?? HISTORY_LIMITS.maxLineBytes;
  const reader = new HistoryLineReader(options);
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  /** True while skipping the rest of a line that was already reported as too long. */
  let skipping = false;
  let line = 1;

  const acceptBytes = (bytes: Buffer): void => {
    if (!isUtf8(bytes)) reader.report(line, 'not valid UTF-8');
    else reader.acceptLine(bytes.toString('utf8'), line);
  };

  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length && !reader.stopped) {
        const newline = chunk.indexOf(0x0a, offset);
        const end = newline === -1 ? chunk.length : newline;
        if (!skipping) {
          pendingBytes += end - offset;
          if (pendingBytes > maxLineBytes) {
            reader.report(line, `line longer than ${maxLineBytes} bytes (the limit for one event)`);
            skipping = true;
            pending = [];
          } else {
            pending.push(chunk.subarray(offset, end));
          }
        }
        if (newline === -1) break;
        if (!skipping) acceptBytes(pending.length === 1 ? pending[0] : Buffer.concat(pending));
        pending = [];
        pendingBytes = 0;
        skipping = false;
        line += 1;
        offset = newline + 1;
      }
      if (reader.stopped) break;
    }
  } finally {
    stream.destroy();
  }
  if (!reader.stopped && !skipping && pendingBytes > 0) acceptBytes(Buffer.concat(pending));
  return reader.finish();
}
