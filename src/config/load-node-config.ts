/**
 * Loads a node's configuration from its three sources and the defaults, with precedence
 * flags > environment (ATLAS_*) > YAML file (--config / ATLAS_CONFIG) > defaults (DESIGN.md §6).
 *
 * Every value given is validated, including one that a higher source overrides, so a stale bad
 * value is reported rather than lying in wait. Errors name the source and the setting:
 *   ATLAS_ELECTION_TIMEOUT_MS: expected a positive integer, got "abc"
 *   atlas.yaml:4: heartbeat-interval-ms: expected a positive integer, got -5
 *   --initial-cluster: does not contain this node's id "d" (members: a, b, c)
 */
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { LineCounter, isMap, isScalar, parseDocument } from 'yaml';
import {
  type NodeConfig,
  SETTING_KEYS,
  type SettingKey,
  nodeConfigFields,
  nodeConfigSchema,
  settingEnvName,
  settingName,
} from './node-config.js';
import { show } from './setting-parsers.js';

export type SettingSource = 'default' | 'file' | 'env' | 'flag';

export interface SettingOrigin {
  source: SettingSource;
  /** How the source names the setting: `--data-dir`, `ATLAS_DATA_DIR`, `atlas.yaml:3: data-dir`. */
  label: string;
}

export interface ConfigIssue {
  /** The origin of the offending value ('cross' issues: of the setting the check is attached to). */
  source: SettingSource;
  setting: string;
  /** The whole readable line, beginning with the origin's label. */
  message: string;
}

export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(`invalid configuration:\n  ${issues.map((i) => i.message).join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Settings as flags (commander's camelCase option keys), all strings; `config` names the YAML file. */
export type ConfigFlags = Partial<Record<SettingKey | 'config', string | undefined>>;

export interface LoadNodeConfigInput {
  flags?: ConfigFlags;
  /** Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Relative data directories resolve against this (default process.cwd()). */
  cwd?: string;
  /** Reads the config file (tests inject one). */
  readFile?: (path: string) => string;
}

export interface LoadedNodeConfig {
  config: NodeConfig;
  /** Where each setting's value came from. */
  origins: Record<SettingKey, SettingOrigin>;
  /** Non-fatal findings, e.g. an unknown ATLAS_* variable. */
  warnings: string[];
}

/** ATLAS_* variables that belong to other parts of AtlasDB, not to node settings. */
const OTHER_ATLAS_VARIABLES = new Set(['ATLAS_CONFIG', 'ATLAS_ENDPOINTS']);
/** A config file larger than this is not a config file. */
const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

interface RawValue {
  raw: unknown;
  origin: SettingOrigin;
}

type SourceValues = Map<SettingKey, RawValue>;

export function loadNodeConfig(input: LoadNodeConfigInput = {}): LoadedNodeConfig {
  const env = input.env ?? process.env;
  const flags = input.flags ?? {};
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];

  const configPath = nonEmpty(flags.config) ?? nonEmpty(env['ATLAS_CONFIG']);
  const fileValues: SourceValues = configPath
    ? readConfigFile(configPath, input.readFile, issues)
    : new Map();
  const envValues = readEnvironment(env, warnings);
  const flagValues = readFlags(flags);

  // Validate each given value on its own, so that every error is attributed to its source.
  for (const values of [fileValues, envValues, flagValues]) {
    for (const [key, value] of values) {
      const result = nodeConfigFields[key].safeParse(value.raw);
      if (!result.success) {
        for (const issue of result.error.issues) {
          issues.push({
            source: value.origin.source,
            setting: settingName(key),
            message: `${value.origin.label}: ${issue.message}`,
          });
        }
      }
    }
  }

  const merged: Partial<Record<SettingKey, unknown>> = {};
  const origins = {} as Record<SettingKey, SettingOrigin>;
  for (const key of SETTING_KEYS) {
    const winner = flagValues.get(key) ?? envValues.get(key) ?? fileValues.get(key);
    merged[key] = winner?.raw;
    origins[key] = winner?.origin ?? { source: 'default', label: `${settingName(key)} (default)` };
  }

  if (issues.length === 0) {
    const result = nodeConfigSchema.safeParse(merged);
    if (result.success) {
      const config = {
        ...result.data,
        dataDir: resolvePath(input.cwd ?? process.cwd(), result.data.dataDir),
      };
      return { config, origins, warnings };
    }
    for (const issue of result.error.issues) {
      const key = issue.path[0] as SettingKey | undefined;
      if (key === undefined) {
        issues.push({ source: 'default', setting: '', message: issue.message });
        continue;
      }
      issues.push(crossIssue(key, issue, origins, merged));
    }
  }
  throw new ConfigError(issues);
}

function crossIssue(
  key: SettingKey,
  issue: { message: string; code: string; params?: Record<string, unknown> },
  origins: Record<SettingKey, SettingOrigin>,
  merged: Partial<Record<SettingKey, unknown>>,
): ConfigIssue {
  const origin = origins[key];
  const name = settingName(key);
  if (key === 'id' && origin.source === 'default') {
    return {
      source: 'default',
      setting: name,
      message: `id: ${issue.message} (set --id, ATLAS_ID, or id: in the config file)`,
    };
  }
  const related = Array.isArray(issue.params?.['related']) ? (issue.params['related'] as SettingKey[]) : [];
  const context = related.map((other) => {
    const from = origins[other];
    const value = merged[other] === undefined ? 'default' : show(merged[other]);
    return from.source === 'default'
      ? `${settingName(other)}: default`
      : `${settingName(other)} = ${value} from ${from.label}`;
  });
  return {
    source: origin.source,
    setting: name,
    message: `${origin.label}: ${issue.message}${context.length > 0 ? ` (${context.join('; ')})` : ''}`,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== '' ? value : undefined;
}

function readFlags(flags: ConfigFlags): SourceValues {
  const values: SourceValues = new Map();
  for (const key of SETTING_KEYS) {
    const raw = flags[key];
    if (raw !== undefined)
      values.set(key, { raw, origin: { source: 'flag', label: `--${settingName(key)}` } });
  }
  return values;
}

function readEnvironment(env: Record<string, string | undefined>, warnings: string[]): SourceValues {
  const values: SourceValues = new Map();
  const known = new Map(SETTING_KEYS.map((key) => [settingEnvName(key), key]));
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('ATLAS_') || OTHER_ATLAS_VARIABLES.has(name)) continue;
    const key = known.get(name);
    if (!key) {
      const hint = closest(name, [...known.keys()]);
      warnings.push(`${name} is not a known setting and is ignored${hint ? ` (did you mean ${hint}?)` : ''}`);
      continue;
    }
    if (nonEmpty(raw) === undefined) continue; // an empty variable counts as unset
    values.set(key, { raw, origin: { source: 'env', label: name } });
  }
  return values;
}

function readConfigFile(
  path: string,
  readFile: ((path: string) => string) | undefined,
  issues: ConfigIssue[],
): SourceValues {
  const values: SourceValues = new Map();
  const fail = (message: string) =>
    issues.push({ source: 'file', setting: '', message: `${path}: ${message}` });
  let text: string;
  try {
    text = readFile ? readFile(path) : readFileSync(path, 'utf8');
  } catch (error) {
    fail(`cannot read config file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    return values;
  }
  if (text.length > MAX_CONFIG_FILE_BYTES) {
    fail(`config file larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
    return values;
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      const at = lineCounter.linePos(error.pos[0]);
      fail(`line ${at.line}, column ${at.col}: invalid YAML: ${error.message.split('\n')[0]}`);
    }
    return values;
  }
  if (doc.contents === null) return values;
  if (!isMap(doc.contents)) {
    fail('the top level must be a mapping of setting: value');
    return values;
  }
  const byName = new Map(SETTING_KEYS.map((key) => [settingName(key), key]));
  for (const pair of doc.contents.items) {
    const keyNode = pair.key;
    const name = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
    const line = isScalar(keyNode) && keyNode.range ? lineCounter.linePos(keyNode.range[0]).line : 0;
    const key = byName.get(name);
    if (!key) {
      const hint = closest(name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, '-'), [
        ...byName.keys(),
      ]);
      issues.push({
        source: 'file',
        setting: name,
        message: `${path}:${line}: unknown setting ${JSON.stringify(name)}${hint ? ` (did you mean ${hint}?)` : ''}`,
      });
      continue;
    }
    const valueNode = pair.value;
    const raw =
      valueNode === null
        ? null
        : isScalar(valueNode)
          ? valueNode.value
          : (valueNode as { toJSON(): unknown }).toJSON();
    values.set(key, { raw, origin: { source: 'file', label: `${path}:${line}: ${name}` } });
  }
  return values;
}

/**
 * The likely intended name: the candidate closest by edit distance when that is a small typo, else
 * the closest one that contains every word of `name` (ATLAS_HEARTBEAT_MS → ATLAS_HEARTBEAT_INTERVAL_MS).
 */
function closest(name: string, candidates: string[]): string | undefined {
  const words = name.toLowerCase().split(/[-_]/).filter(Boolean);
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  let bestContaining: string | undefined;
  let bestContainingDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
    const candidateWords = candidate.toLowerCase().split(/[-_]/);
    if (words.every((w) => candidateWords.includes(w)) && distance < bestContainingDistance) {
      bestContaining = candidate;
      bestContainingDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : bestContaining;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}
