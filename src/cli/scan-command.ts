/** `atlas scan [prefix]`: lists keys in order, one `key<TAB>value` line each. */
import { Command, Option } from 'commander';
import {
  type CliIo,
  type ClientCommandOptions,
  EXIT,
  clientCommand,
  jsonBytes,
  parsePositiveInt,
  processIo,
  readable,
  runWithClient,
} from './client-command.js';

interface ScanCommandOptions extends ClientCommandOptions {
  start?: string;
  end?: string;
  limit?: number;
  reverse?: boolean;
  keysOnly?: boolean;
  consistency: 'linearizable' | 'serializable';
}

export function registerScanCommand(program: Command, io: CliIo = processIo): Command {
  const command = clientCommand(new Command('scan'), io)
    .description('list keys in order (non-UTF-8 bytes print as 0x-hex)')
    .argument('[prefix]', 'only keys starting with this prefix')
    .option('--start <key>', 'first key (inclusive)')
    .option('--end <key>', 'last key (exclusive)')
    .option('--limit <n>', 'at most this many keys', parsePositiveInt('--limit'))
    .option('--reverse', 'in descending order')
    .option('--keys-only', 'print keys only')
    .addOption(
      new Option('--consistency <level>', 'linearizable, or serializable (local replica, may be stale)')
        .choices(['linearizable', 'serializable'])
        .default('linearizable'),
    )
    .action((prefix: string | undefined, options: ScanCommandOptions) =>
      runWithClient(io, options, async (client) => {
        const { kvs, more } = await client.scan({
          ...(prefix !== undefined ? { prefix } : {}),
          ...(options.start !== undefined ? { start: options.start } : {}),
          ...(options.end !== undefined ? { end: options.end } : {}),
          ...(options.limit !== undefined ? { limit: options.limit } : {}),
          reverse: options.reverse === true,
          keysOnly: options.keysOnly === true,
          consistency: options.consistency,
        });
        if (options.json) {
          const items = kvs.map((kv) => ({
            ...jsonBytes(options.keysOnly ? { key: kv.key } : { key: kv.key, value: kv.value }),
            createRevision: kv.createRevision,
            modRevision: kv.modRevision,
            version: kv.version,
          }));
          io.stdout(`${JSON.stringify({ kvs: items, more })}\n`);
        } else {
          for (const kv of kvs)
            io.stdout(
              options.keysOnly ? `${readable(kv.key)}\n` : `${readable(kv.key)}\t${readable(kv.value)}\n`,
            );
          if (more)
            io.stderr(
              `(more keys after ${readable(kvs[kvs.length - 1]!.key)}; raise --limit or continue with --start)\n`,
            );
        }
        return EXIT.ok;
      }),
    );
  program.addCommand(command);
  return command;
}
