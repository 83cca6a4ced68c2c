/**
 * What the client commands (`atlas get|put|del|scan|txn|cluster ...`) share: the --endpoints,
 * --json and --timeout options, the I/O they write to, readable byte formatting, and the exit codes
 * scripts rely on (docs/api.md):
 *
 *   0 ok · 1 not found / condition failed · 2 usage or invalid request · 3 unavailable / timeout ·
 *   4 outcome unknown · 5 other error
 */
import { isUtf8 } from 'node:buffer';
import { type Command, InvalidArgumentError } from 'commander';
import { type AtlasClient, connect } from '../client/atlas-client.js';
import {
  AtlasError,
  InvalidRequestError,
  OutcomeUnknownError,
  PreconditionFailedError,
  UnavailableError,
} from '../client/errors.js';

export const EXIT = {
  ok: 0,
  notFoundOrConditionFailed: 1,
  usage: 2,
  unavailable: 3,
  outcomeUnknown: 4,
  error: 5,
} as const;

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:8081';
/** The whole command's time limit by default, retries included. */
const DEFAULT_TIMEOUT_MS = 10_000;

/** Where commands write and read; tests pass their own. */
export interface CliIo {
  stdout(data: string | Buffer): void;
  stderr(text: string): void;
  /** Reads all of standard input. */
  stdin(): Promise<Buffer>;
  /** Whether stdout is a terminal (values then get a trailing newline). */
  stdoutIsTty: boolean;
  env: Record<string, string | undefined>;
  setExitCode(code: number): void;
  /** For commander's usage errors and --help: ends the command; never returns. */
  exit(code: number): never;
}

/** Standard input is read up to this many bytes (a value, or a transaction file). */
const MAX_STDIN_BYTES = 64 * 1024 * 1024;

export const processIo: CliIo = {
  stdout: (data) => process.stdout.write(data),
  stderr: (text) => process.stderr.write(text),
  stdin: async () => {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of process.stdin) {
      total += (chunk as Buffer).length;
      if (total > MAX_STDIN_BYTES)
        throw new InvalidArgumentError(`standard input exceeds ${MAX_STDIN_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  },
  stdoutIsTty: process.stdout.isTTY === true,
  env: process.env,
  setExitCode: (code) => {
    process.exitCode = code;
  },
  exit: (code) => process.exit(code),
};

export interface ClientCommandOptions {
  endpoints?: string;
  json?: boolean;
  timeout?: number;
}

export function parsePositiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = /^[0-9]{1,15}$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < 1)
      throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };
}

/**
 * Adds --endpoints, --json and --timeout, routes commander's output to `io`, and makes usage errors
 * exit with 2 (commander's own default is 1, which scripts read as "not found").
 */
export function clientCommand(command: Command, io: CliIo): Command {
  return command
    .option(
      '--endpoints <urls>',
      `comma-separated client URLs (default $ATLAS_ENDPOINTS or ${DEFAULT_ENDPOINT})`,
    )
    .option('--json', 'print JSON for scripts')
    .option(
      '--timeout <ms>',
      `give up after this many ms, retries included (default ${DEFAULT_TIMEOUT_MS})`,
      parsePositiveInt('--timeout'),
    )
    .configureOutput({ writeOut: (text) => io.stdout(text), writeErr: (text) => io.stderr(text) })
    .exitOverride((error) => {
      const helpOrVersion =
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.help' ||
        error.code === 'commander.version';
      io.exit(helpOrVersion ? EXIT.ok : EXIT.usage);
    });
}

export function endpointsFrom(options: ClientCommandOptions, io: CliIo): string[] {
  const text = options.endpoints ?? io.env['ATLAS_ENDPOINTS'] ?? DEFAULT_ENDPOINT;
  return text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
}

/** The exit code for an error (see the table at the top). */
export function exitCodeFor(error: unknown): number {
  if (error instanceof OutcomeUnknownError) return EXIT.outcomeUnknown;
  if (error instanceof UnavailableError) return EXIT.unavailable;
  if (error instanceof PreconditionFailedError) return EXIT.notFoundOrConditionFailed;
  if (error instanceof InvalidRequestError || error instanceof InvalidArgumentError) return EXIT.usage;
  if (error instanceof AtlasError) {
    if (error.code === 'key_not_found' || error.code === 'member_not_found')
      return EXIT.notFoundOrConditionFailed;
    if (error.code === 'not_leader' || error.code === 'no_quorum' || error.code === 'overloaded')
      return EXIT.unavailable;
    return EXIT.error;
  }
  return EXIT.error;
}

/**
 * Runs a command body with a connected client: prints an error readably (or as JSON with --json),
 * sets the exit code, and always closes the client.
 */
export async function runWithClient(
  io: CliIo,
  options: ClientCommandOptions,
  body: (client: AtlasClient) => Promise<number>,
): Promise<void> {
  let client: AtlasClient | undefined;
  try {
    client = connect({
      endpoints: endpointsFrom(options, io),
      deadlineMs: options.timeout ?? DEFAULT_TIMEOUT_MS,
    });
    io.setExitCode(await body(client));
  } catch (error) {
    const code = exitCodeFor(error);
    const message = error instanceof Error ? error.message : String(error);
    if (options.json) {
      const errorCode =
        error instanceof AtlasError ? error.code : error instanceof InvalidArgumentError ? 'usage' : 'error';
      io.stderr(`${JSON.stringify({ error: { code: errorCode, message } })}\n`);
    } else {
      io.stderr(`error: ${message}\n`);
    }
    io.setExitCode(code);
  } finally {
    await client?.close();
  }
}

/** Bytes for people: the text when it is printable UTF-8, else 0x-prefixed hex. */
export function readable(bytes: Buffer): string {
  if (isUtf8(bytes)) {
    const text = bytes.toString('utf8');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this looks for
    if (!/[\u0000-\u0008\u000b-\u001f\u007f]/.test(text)) return text;
  }
  return `0x${bytes.toString('hex')}`;
}

/** Bytes for JSON output: UTF-8 text when possible; `base64: true` tells the reader otherwise. */
export function jsonBytes(fields: Record<string, Buffer>): Record<string, string | boolean> {
  const all = Object.values(fields).every((b) => isUtf8(b));
  const out: Record<string, string | boolean> = {};
  for (const [name, bytes] of Object.entries(fields))
    out[name] = all ? bytes.toString('utf8') : bytes.toString('base64');
  if (!all) out['base64'] = true;
  return out;
}
