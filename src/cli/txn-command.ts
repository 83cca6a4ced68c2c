/**
 * `atlas txn [--file FILE]`: runs a transaction given in the JSON shape of POST /txn (docs/api.md),
 * from a file or standard input. Exit 0 when the compares held (success branch), 1 otherwise.
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { ApiError } from '../api/http/api-error.js';
import { parseJsonBody, parseTxnBody } from '../api/http/txn-json.js';
import type { ReadConsistency, TxnRequest } from '../client/types.js';
import {
  type CliIo,
  type ClientCommandOptions,
  EXIT,
  clientCommand,
  jsonBytes,
  processIo,
  readable,
  runWithClient,
} from './client-command.js';

/** The JSON file is checked with the server's own parser, so the CLI accepts exactly what the API does. */
function parseTxnFile(
  text: Buffer,
  limits: { maxKeySize: number; maxValueSize: number; maxTxnOps: number },
): { txn: TxnRequest; consistency: ReadConsistency } {
  try {
    const { txn, consistency } = parseTxnBody(parseJsonBody(text), limits);
    return { txn, consistency };
  } catch (error) {
    if (error instanceof ApiError) throw new InvalidArgumentError(`transaction: ${error.message}`);
    throw error;
  }
}

export function registerTxnCommand(program: Command, io: CliIo = processIo): Command {
  const command = clientCommand(new Command('txn'), io)
    .description('run a transaction from JSON ({compare, success, failure}; see docs/api.md)')
    .option('--file <path>', 'read the transaction from this file instead of standard input')
    .action((options: ClientCommandOptions & { file?: string }) =>
      runWithClient(io, options, async (client) => {
        let text: Buffer;
        try {
          text = options.file ? await readFile(options.file) : await io.stdin();
        } catch (error) {
          throw new InvalidArgumentError(
            `cannot read ${options.file}: ${(error as NodeJS.ErrnoException).code ?? error}`,
          );
        }
        const { txn, consistency } = parseTxnFile(text, client.limits);
        const result = await client.txn(txn, { consistency });
        if (options.json) {
          const responses = result.responses.map((r) => {
            if (r.type !== 'get') return r;
            if (!r.kv) return { type: 'get', kv: null };
            const { createRevision, modRevision, version } = r.kv;
            return {
              type: 'get',
              kv: {
                ...jsonBytes({ key: r.kv.key, value: r.kv.value }),
                createRevision,
                modRevision,
                version,
              },
            };
          });
          io.stdout(
            `${JSON.stringify({ succeeded: result.succeeded, revision: result.revision, responses })}\n`,
          );
        } else {
          io.stdout(`${result.succeeded ? 'SUCCEEDED' : 'FAILED'} revision ${result.revision}\n`);
          for (const r of result.responses) {
            if (r.type === 'put') io.stdout(`put revision ${r.revision}\n`);
            else if (r.type === 'delete') io.stdout(`delete deleted=${r.deleted} revision ${r.revision}\n`);
            else
              io.stdout(r.kv ? `get ${readable(r.kv.key)}\t${readable(r.kv.value)}\n` : 'get (not found)\n');
          }
        }
        return result.succeeded ? EXIT.ok : EXIT.notFoundOrConditionFailed;
      }),
    );
  program.addCommand(command);
  return command;
}
