/** `atlas put <key> [value]`: writes a value (from the argument, or standard input for `-` or none). */
import { Command, InvalidArgumentError } from 'commander';
import {
  type CliIo,
  type ClientCommandOptions,
  EXIT,
  clientCommand,
  parsePositiveInt,
  processIo,
  runWithClient,
} from './client-command.js';

export function registerPutCommand(program: Command, io: CliIo = processIo): Command {
  const command = clientCommand(new Command('put'), io)
    .description('write a value; reads standard input when the value is - or omitted')
    .argument('<key>', 'the key (UTF-8)')
    .argument('[value]', 'the value (UTF-8); - or omitted: standard input, byte for byte')
    .option(
      '--if-match <revision>',
      'write only if the key is at this mod revision',
      parsePositiveInt('--if-match'),
    )
    .option('--if-absent', 'write only if the key does not exist (create)')
    .action(
      (
        key: string,
        value: string | undefined,
        options: ClientCommandOptions & { ifMatch?: number; ifAbsent?: boolean },
      ) =>
        runWithClient(io, options, async (client) => {
          if (options.ifMatch !== undefined && options.ifAbsent) {
            throw new InvalidArgumentError('--if-match and --if-absent exclude each other');
          }
          const bytes = value === undefined || value === '-' ? await io.stdin() : Buffer.from(value, 'utf8');
          const putOptions = {
            ...(options.ifMatch !== undefined ? { ifMatch: options.ifMatch } : {}),
            ...(options.ifAbsent ? { ifAbsent: true } : {}),
          };
          const { revision } = await client.put(key, bytes, putOptions);
          io.stdout(options.json ? `${JSON.stringify({ revision })}\n` : `OK revision ${revision}\n`);
          return EXIT.ok;
        }),
    );
  program.addCommand(command);
  return command;
}
