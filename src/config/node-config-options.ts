/**
 * Declares every node setting as a command-line flag on a commander command (`atlas start`), so
 * flags, ATLAS_* variables and YAML keys share one list of names. Values stay strings here;
 * loadNodeConfig parses and validates them, naming the flag in its errors.
 */
import type { Command } from 'commander';
import {
  SETTING_DESCRIPTIONS,
  SETTING_KEYS,
  type SettingKey,
  settingEnvName,
  settingName,
} from './node-config.js';

const PLACEHOLDERS: Partial<Record<SettingKey, string>> = {
  id: 'id',
  dataDir: 'dir',
  listenClient: 'host:port',
  listenPeer: 'host:port',
  advertiseClientUrl: 'url',
  advertisePeer: 'host:port',
  initialCluster: 'id=host:port,...',
  join: 'url,...',
  clusterId: 'id',
  walSegmentSize: 'size',
  walSync: 'mode',
  maxKeySize: 'size',
  maxValueSize: 'size',
  maxRequestSize: 'size',
  logLevel: 'level',
  storeBackend: 'backend',
};

/** Adds `--config <file>` and one `--<setting> <value>` flag per setting. */
export function addNodeConfigOptions(command: Command): Command {
  command.option('--config <file>', 'YAML config file (also ATLAS_CONFIG)');
  for (const key of SETTING_KEYS) {
    const placeholder = PLACEHOLDERS[key] ?? 'n';
    command.option(
      `--${settingName(key)} <${placeholder}>`,
      `${SETTING_DESCRIPTIONS[key]} [${settingEnvName(key)}]`,
    );
  }
  return command;
}
