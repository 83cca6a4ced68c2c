/** `atlas del <key>`: deletes a key; exit 1 when it does not exist or the condition fails. */
import { Command } from 'commander';
import {
  type CliIo,
  type ClientCommandOptions,
  EXIT,
  clientCommand,
  parsePositiveInt,
  processIo,
  runWithClient,
} from './client-command.js';

export function registerDelCommand(program: Command, io: CliIo = processIo): Command {
  const command = clientCommand(new Command('del'), io)
    .description('delete a key')
    .argument('<key>', 'the key (UTF-8)')
    .option(
      '--if-match <revision>',
      'delete only if the key is at this mod revision',
      parsePositiveInt('--if-match'),
    )
    .action((key: string, options: ClientCommandOptions & { ifMatch?: number }) =>
      runWithClient(io, options, async (client) => {
        const result = await client.delete(
          key,
          options.ifMatch !== undefined ? { ifMatch: options.ifMatch } : {},
        );
        if (result.deleted === 0) {
          if (options.json) io.stdout(`${JSON.stringify({ deleted: 0 })}\n`);
          io.stderr(`key not found: ${key}\n`);
          return EXIT.notFoundOrConditionFailed;
        }
        io.stdout(options.json ? `${JSON.stringify(result)}\n` : `deleted (revision ${result.revision})\n`);
        return EXIT.ok;
      }),
    );
  program.addCommand(command);
  return command;
}
