/**
 * `atlas start`: runs one node in the foreground until SIGTERM or SIGINT (docs/operations.md).
 *
 * Settings come from --config FILE (YAML), ATLAS_* variables and flags, one per setting
 * (src/config). Logs are JSON lines on stdout; a start that fails also prints one readable line on
 * stderr. Exit codes: 0 after a clean shutdown, 1 when the node could not start or stopped on an
 * error, 2 for an invalid configuration, 130 when a second signal cut the shutdown short.
 *
 * When started by `atlas dev` (an IPC channel to the parent exists), the node reports its URLs to
 * the parent once it serves, shuts down when the parent asks or goes away, and so never outlives it.
 */
import { missingServerV8Flags } from '../server/server-v8-flags.js';
import type { Command } from 'commander';
import { ConfigError, type ConfigFlags, loadNodeConfig } from '../config/load-node-config.js';
import { addNodeConfigOptions } from '../config/node-config-options.js';
import type { PlantedBug } from '../raft/types.js';
import type { AtlasNode } from '../server/atlas-server.js';

export const START_EXIT = { ok: 0, failed: 1, config: 2, forced: 130 } as const;

/** What a node started by `atlas dev` tells its parent over IPC once it serves. */
export interface DevReadyMessage {
  type: 'atlas-ready';
  id: string;
  clientUrl: string;
  peerAddress: string;
}

/** What `atlas dev` sends a child to stop it (the same graceful shutdown as SIGTERM). */
export interface DevShutdownMessage {
  type: 'atlas-shutdown';
}

/**
 * TEST-ONLY: the fault-test harness (test/faults) sets this to plant Raft bugs in its nodes and show
 * that its checkers catch them; a comma-separated list of PlantedBug names. Not a node setting.
 */
export const PLANTED_BUG_VARIABLE = 'ATLAS_TEST_PLANTED_BUG';
const PLANTABLE_BUGS: readonly PlantedBug[] = [
  'commit-old-term',
  'vote-any-log',
  'stale-read',
  'keep-conflict',
  'ack-before-persist',
];

/** The bugs named in ATLAS_TEST_PLANTED_BUG; throws on a name that is not a PlantedBug. */
export function plantedBugsFromEnv(env: NodeJS.ProcessEnv): Set<PlantedBug> {
  const raw = env[PLANTED_BUG_VARIABLE]?.trim() ?? '';
  const bugs = new Set<PlantedBug>();
  if (raw === '') return bugs;
  for (const name of raw.split(',').map((s) => s.trim())) {
    const bug = PLANTABLE_BUGS.find((b) => b === name);
    if (bug === undefined)
      throw new Error(
        `${PLANTED_BUG_VARIABLE}: unknown bug ${JSON.stringify(name)} (known: ${PLANTABLE_BUGS.join(', ')})`,
      );
    bugs.add(bug);
  }
  return bugs;
}

export function registerStartCommand(program: Command): Command {
  const command = program
    .command('start')
    .description(
      'run one AtlasDB node in the foreground (settings: --config FILE, ATLAS_* variables, flags)',
    );
  addNodeConfigOptions(command);
  command.action(async (flags: ConfigFlags) => {
    process.exitCode = await runStart(flags);
    // lmdb and pooled sockets may keep the loop alive after a clean close; the process is done.
    process.exit();
  });
  return command;
}

/** Runs a node until it is stopped; resolves with the process exit code. */
export async function runStart(flags: ConfigFlags): Promise<number> {
  let loaded: ReturnType<typeof loadNodeConfig>;
  let plantedBugs: Set<PlantedBug>;
  try {
    plantedBugs = plantedBugsFromEnv(process.env);
    // The test variable is not a node setting: keep it out of the settings' unknown-variable warnings.
    const { [PLANTED_BUG_VARIABLE]: _plantedBug, ...env } = process.env;
    loaded = loadNodeConfig({ flags, env });
  } catch (e) {
    if (e instanceof ConfigError || (e instanceof Error && e.message.startsWith(PLANTED_BUG_VARIABLE))) {
      process.stderr.write(`atlas start: ${e.message}\n`);
      return START_EXIT.config;
    }
    throw e;
  }
  let node: AtlasNode;
  try {
    // Loaded here, not at the top: `atlas dev` and the client commands share this module graph and
    // need none of the server (a noticeable part of a CLI start on a busy machine).
    const { startServer } = await import('../server/atlas-server.js');
    node = await startServer(loaded.config, plantedBugs.size > 0 ? { plantedBugs } : {});
  } catch (e) {
    let message = e instanceof Error ? e.message : String(e);
    if (e instanceof Error && e.name === 'WalCorruptionError') {
      message +=
        '\nThe node refuses to start on a log it cannot verify: see docs/operations.md, "When a WAL is reported corrupt".';
    }
    process.stderr.write(`atlas start: node ${loaded.config.id} could not start: ${message}\n`);
    return START_EXIT.failed;
  }
  for (const warning of loaded.warnings) node.logger.warn({}, warning);
  const missingFlags = missingServerV8Flags(process.execArgv, process.env['NODE_OPTIONS']);
  if (missingFlags.length > 0) {
    node.logger.info(
      { missing: missingFlags },
      `node was started without ${missingFlags.join(' ')}: V8 keeps a larger young generation resident (about 24 MiB more); start node with it or set NODE_OPTIONS="${missingFlags.join(' ')}" (docs/operations.md, "Memory")`,
    );
  }
  // A bug that escapes every handler: one JSON line with the stack, then exit (the WAL holds
  // everything acknowledged; stopping is safer than running on in an unknown state).
  const crash = (kind: string) => (e: unknown) => {
    node.logger.fatal(
      { err: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined },
      kind,
    );
    process.exit(START_EXIT.failed);
  };
  process.on('uncaughtException', crash('uncaught exception'));
  process.on('unhandledRejection', crash('unhandled promise rejection'));

  let signals = 0;
  let forced: (code: number) => void = () => {};
  const forcedExit = new Promise<number>((resolve) => {
    forced = resolve;
  });
  let shutdownRequested = false;
  const shutdown = (reason: string) => {
    if (shutdownRequested) return; // close() is under way (a signal and the parent's request may both come)
    shutdownRequested = true;
    node.logger.info({ reason }, 'shutdown requested');
    node.close().catch(() => {
      // Reported in the log by close(); the exit code below says it.
    });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      node.logger.warn({ signal }, 'second signal: exiting without finishing the shutdown');
      forced(START_EXIT.forced);
      return;
    }
    shutdown(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  if (process.send !== undefined) {
    // Started by `atlas dev`: report readiness; stop with the parent.
    process.on('message', (m: unknown) => {
      if ((m as Partial<DevShutdownMessage> | null)?.type === 'atlas-shutdown')
        shutdown('asked by atlas dev');
    });
    process.on('disconnect', () => shutdown('atlas dev went away'));
    const ready: DevReadyMessage = {
      type: 'atlas-ready',
      id: node.id,
      clientUrl: node.clientUrl,
      peerAddress: node.peerAddress,
    };
    process.send(ready);
  }

  const outcome = await Promise.race([
    node.stopped.then(async (fatal) => {
      try {
        await node.close();
      } catch {
        return START_EXIT.failed;
      }
      return fatal === null ? START_EXIT.ok : START_EXIT.failed;
    }),
    forcedExit,
  ]);
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return outcome;
}
