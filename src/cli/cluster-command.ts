/** `atlas cluster status|members|add|remove|promote|transfer`: cluster status and membership. */
import { Command } from 'commander';
import type { Member } from '../client/types.js';
import {
  type CliIo,
  type ClientCommandOptions,
  EXIT,
  clientCommand,
  processIo,
  runWithClient,
} from './client-command.js';

function memberTable(members: Member[]): string {
  const rows = [
    ['ID', 'ROLE', 'PEER ADDRESS', 'CLIENT URL'],
    ...members.map((m) => [
      m.id,
      m.role + (m.leaving ? ' (leaving)' : ''),
      m.peerAddress,
      m.clientUrl || '-',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export function registerClusterCommand(program: Command, io: CliIo = processIo): Command {
  const cluster = new Command('cluster').description('cluster status and membership');
  cluster.configureOutput({ writeOut: (text) => io.stdout(text), writeErr: (text) => io.stderr(text) });
  cluster.exitOverride((error) =>
    io.exit(
      error.code === 'commander.helpDisplayed' || error.code === 'commander.help' ? EXIT.ok : EXIT.usage,
    ),
  );

  const printMembers = (options: ClientCommandOptions, members: Member[]) =>
    io.stdout(options.json ? `${JSON.stringify({ members })}\n` : memberTable(members));

  cluster.addCommand(
    clientCommand(new Command('status'), io)
      .description('the status of the node answering, with the members')
      .action((options: ClientCommandOptions) =>
        runWithClient(io, options, async (client) => {
          const s = await client.status();
          if (options.json) {
            io.stdout(`${JSON.stringify(s)}\n`);
          } else {
            io.stdout(
              `node ${s.id}: ${s.role}, term ${s.term}, leader ${s.leader || '(none)'}\n` +
                `commit index ${s.commitIndex}, applied ${s.lastApplied}, last index ${s.lastIndex}, snapshot ${s.snapshotIndex}, revision ${s.revision}\n`,
            );
            io.stdout(memberTable(s.members));
          }
          return EXIT.ok;
        }),
      ),
  );
  cluster.addCommand(
    clientCommand(new Command('members'), io)
      .description('list the members')
      .action((options: ClientCommandOptions) =>
        runWithClient(io, options, async (client) => {
          printMembers(options, await client.members());
          return EXIT.ok;
        }),
      ),
  );
  cluster.addCommand(
    clientCommand(new Command('add'), io)
      .description('add a member (a learner unless --voter)')
      .argument('<id>', 'the new member id')
      .argument('<peer-address>', 'its peer host:port')
      .option('--client-url <url>', 'its client URL, e.g. http://10.0.0.4:8081')
      .option('--voter', 'add as a voter at once instead of a learner')
      .action(
        (
          id: string,
          peerAddress: string,
          options: ClientCommandOptions & { clientUrl?: string; voter?: boolean },
        ) =>
          runWithClient(io, options, async (client) => {
            const members = await client.addMember({
              id,
              peerAddress,
              ...(options.clientUrl ? { clientUrl: options.clientUrl } : {}),
              role: options.voter ? 'voter' : 'learner',
            });
            printMembers(options, members);
            return EXIT.ok;
          }),
      ),
  );
  cluster.addCommand(
    clientCommand(new Command('remove'), io)
      .description('remove a member')
      .argument('<id>', 'the member id')
      .action((id: string, options: ClientCommandOptions) =>
        runWithClient(io, options, async (client) => {
          printMembers(options, await client.removeMember(id));
          return EXIT.ok;
        }),
      ),
  );
  cluster.addCommand(
    clientCommand(new Command('promote'), io)
      .description('promote a learner to voter')
      .argument('<id>', 'the member id')
      .action((id: string, options: ClientCommandOptions) =>
        runWithClient(io, options, async (client) => {
          printMembers(options, await client.promoteMember(id));
          return EXIT.ok;
        }),
      ),
  );
  cluster.addCommand(
    clientCommand(new Command('transfer'), io)
      .description('transfer leadership (to a given voter, or the most caught-up one)')
      .argument('[to]', 'the member id to transfer to')
      .action((to: string | undefined, options: ClientCommandOptions) =>
        runWithClient(io, options, async (client) => {
          const leader = await client.transferLeadership(to);
          io.stdout(options.json ? `${JSON.stringify({ leader })}\n` : `leader is now ${leader}\n`);
          return EXIT.ok;
        }),
      ),
  );
  program.addCommand(cluster);
  return cluster;
}
