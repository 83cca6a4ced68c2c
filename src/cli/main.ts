#!/usr/bin/env node
/**
 * The `atlas` command (package.json bin). This file only assembles the commands: each lives in
 * src/cli/<name>-command.ts and exports a function that registers it on the program.
 *
 * Exit codes are each command's own (see its file); shared by all: 0 for --help and --version,
 * 2 for a usage error (unknown command or option, missing argument, invalid option value).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerBenchCommand } from './bench-command.js';
import { registerCheckHistoryCommand } from './check-history-command.js';
import { registerClusterCommand } from './cluster-command.js';
import { registerDelCommand } from './del-command.js';
import { registerDevCommand } from './dev-command.js';
import { registerGetCommand } from './get-command.js';
import { registerPutCommand } from './put-command.js';
import { registerScanCommand } from './scan-command.js';
import { registerStartCommand } from './start-command.js';
import { registerTxnCommand } from './txn-command.js';

const USAGE_EXIT = 2;

function packageVersion(): string {
  // dist/src/cli/main.js -> the package root.
  const manifest = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

const program = new Command('atlas')
  .description('AtlasDB: a fault-tolerant, strongly consistent, distributed key-value store')
  .version(packageVersion())
  .exitOverride((error) => {
    // commander exits with 1 on usage errors by default; here 1 carries a command's own meaning.
    const helpOrVersion = error.code === 'commander.helpDisplayed' || error.code === 'commander.version';
    process.exit(helpOrVersion ? 0 : USAGE_EXIT);
  });

registerStartCommand(program);
registerDevCommand(program);
registerGetCommand(program);
registerPutCommand(program);
registerDelCommand(program);
registerScanCommand(program);
registerTxnCommand(program);
registerClusterCommand(program);
registerCheckHistoryCommand(program);
registerBenchCommand(program);

await program.parseAsync(process.argv);
