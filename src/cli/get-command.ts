/** `atlas get <key>`: prints the value (raw bytes), exit 1 when the key does not exist. */
import { Command, Option } from 'commander';
import {
  type CliIo,
  type ClientCommandOptions,
  EXIT,
  clientCommand,
  jsonBytes,
  processIo,
  runWithClient,
} from './client-command.js';

export function registerGetCommand(program: Command, io: CliIo = processIo): Command {
  const command = clientCommand(new Command('get'), io)
    .description('print the value of a key')
    .argument('<key>', 'the key (UTF-8)')
    .addOption(
      new Option('--consistency <level>', 'linearizable, or serializable (local replica, may be stale)')
        .choices(['linearizable', 'serializable'])
        .default('linearizable'),
    )
    .action((key: string, options: ClientCommandOptions & { consistency: 'linearizable' | 'serializable' }) =>
      runWithClient(io, options, async (client) => {
        const kv = await client.get(key, { consistency: options.consistency });
        if (!kv) {
          io.stderr(`key not found: ${key}\n`);
          return EXIT.notFoundOrConditionFailed;
        }
        if (options.json) {
          const { createRevision, modRevision, version } = kv;
          io.stdout(
            `${JSON.stringify({ ...jsonBytes({ key: kv.key, value: kv.value }), createRevision, modRevision, version })}\n`,
          );
        } else {
          io.stdout(kv.value);
          if (io.stdoutIsTty) io.stdout('\n');
        }
        return EXIT.ok;
      }),
    );
  program.addCommand(command);
  return command;
}
