/**
 * Parsers for single setting values. A value arrives as a string (environment variable, flag) or
 * as a YAML scalar, list or map; each parser accepts the forms that make sense for its setting and
 * otherwise throws SettingValueError with a message that quotes what it got.
 */
import { AddressError, type HostPort, parseHostPort } from '../transport/address.js';
import { ID_RULE, isValidId } from '../transport/identifiers.js';

export class SettingValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingValueError';
  }
}

/** Renders a raw value for an error message: strings quoted, other values as JSON. */
export function show(raw: unknown): string {
  if (typeof raw === 'string') return JSON.stringify(raw.length > 80 ? `${raw.slice(0, 77)}...` : raw);
  if (raw === undefined) return 'nothing';
  try {
    const text = JSON.stringify(raw);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return String(raw);
  }
}

export function parsePositiveInteger(raw: unknown, max: number): number {
  return parseInteger(raw, 1, max);
}

/** Like parsePositiveInteger, and 0 is allowed (settings where 0 switches something off). */
export function parseNonNegativeInteger(raw: unknown, max: number): number {
  return parseInteger(raw, 0, max);
}

function parseInteger(raw: unknown, min: 0 | 1, max: number): number {
  let value: number | undefined;
  if (typeof raw === 'number') value = raw;
  else if (typeof raw === 'string' && /^\s*[0-9]+\s*$/.test(raw)) value = Number(raw.trim());
  if (value === undefined || !Number.isSafeInteger(value) || value < min) {
    throw new SettingValueError(`expected a ${min === 1 ? 'positive' : 'non-negative'} integer, got ${show(raw)}`);
  }
  if (value > max) throw new SettingValueError(`must be at most ${max}, got ${value}`);
  return value;
}

const SIZE_UNITS: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** A byte count: an integer, or an integer with a binary unit (B, KiB, MiB, GiB; any case). */
export function parseSize(raw: unknown, min: number, max: number): number {
  let value: number | undefined;
  if (typeof raw === 'number' && Number.isSafeInteger(raw)) value = raw;
  else if (typeof raw === 'string') {
    const match = /^\s*([0-9]+)\s*([A-Za-z]*)\s*$/.exec(raw);
    const unit = SIZE_UNITS[(match?.[2] || 'b').toLowerCase()];
    if (match && unit !== undefined) value = Number(match[1]) * unit;
  }
  if (value === undefined || !Number.isSafeInteger(value) || value < 1) {
    throw new SettingValueError(`expected a size in bytes such as 4096, 4KiB or 1MiB, got ${show(raw)}`);
  }
  if (value < min || value > max) {
    throw new SettingValueError(
      `must be between ${formatSize(min)} and ${formatSize(max)}, got ${formatSize(value)}`,
    );
  }
  return value;
}

export function formatSize(bytes: number): string {
  for (const [unit, factor] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes} bytes`;
}

export function parseChoice<T extends string>(raw: unknown, choices: readonly T[]): T {
  if (typeof raw === 'string' && (choices as readonly string[]).includes(raw.trim())) return raw.trim() as T;
  throw new SettingValueError(`expected one of ${choices.join(', ')}, got ${show(raw)}`);
}

export function parseId(raw: unknown): string {
  const text = typeof raw === 'string' ? raw.trim() : raw;
  if (!isValidId(text)) throw new SettingValueError(`expected an id of ${ID_RULE}, got ${show(raw)}`);
  return text;
}

export function parseText(raw: unknown, maxLength: number): string {
  if (typeof raw !== 'string' || raw.trim().length === 0) {
    throw new SettingValueError(`expected a non-empty string, got ${show(raw)}`);
  }
  if (raw.length > maxLength) throw new SettingValueError(`must be at most ${maxLength} characters long`);
  return raw.trim();
}

function addressOf(raw: unknown, allowPortZero: boolean): HostPort {
  if (typeof raw !== 'string') throw new SettingValueError(`expected host:port, got ${show(raw)}`);
  const text = raw
    .trim()
    .replace(/^https?:\/\//, '')
    .replace(/\/$/, '');
  try {
    return parseHostPort(text, { allowPortZero });
  } catch (error) {
    if (error instanceof AddressError) throw new SettingValueError(error.message);
    throw error;
  }
}

/** A listen address: host:port (an http:// prefix is tolerated); port 0 picks a free port. */
export function parseListenAddress(raw: unknown): HostPort {
  return addressOf(raw, true);
}

/** An address other nodes dial: host:port with a real port. */
export function parsePeerAddress(raw: unknown): string {
  if (typeof raw !== 'string') throw new SettingValueError(`expected host:port, got ${show(raw)}`);
  const address = addressOf(raw, false);
  if (address.host === '0.0.0.0' || address.host === '::') {
    throw new SettingValueError(`${show(raw)} is not dialable: name a concrete host, not ${address.host}`);
  }
  return raw.trim();
}

/** An http(s) base URL such as http://10.0.0.5:8081. */
export function parseHttpUrl(raw: unknown): string {
  if (typeof raw !== 'string') throw new SettingValueError(`expected an http:// URL, got ${show(raw)}`);
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new SettingValueError(`expected an http:// URL such as http://127.0.0.1:8081, got ${show(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SettingValueError(`expected an http:// or https:// URL, got ${show(raw)}`);
  }
  if (url.pathname !== '/' || url.search || url.hash || url.username) {
    throw new SettingValueError(`expected a base URL without path, query or credentials, got ${show(raw)}`);
  }
  return `${url.protocol}//${url.host}`;
}

/** A list: a YAML sequence, or a comma-separated string. */
export function parseList(raw: unknown): unknown[] {
  if (Array.isArray(raw)) return raw;
  if (typeof raw === 'string') {
    return raw
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0);
  }
  throw new SettingValueError(`expected a comma-separated list, got ${show(raw)}`);
}

export interface InitialMember {
  id: string;
  peerAddress: string;
}

/**
 * The initial voters: `a=host:port,b=host:port` (string), a YAML list of such strings, or a YAML
 * map from id to address. Ids and addresses must be unique.
 */
export function parseInitialCluster(raw: unknown, maxMembers: number): InitialMember[] {
  let pairs: [unknown, unknown][];
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    pairs = Object.entries(raw);
  } else {
    pairs = parseList(raw).map((item) => {
      if (typeof item !== 'string' || !item.includes('=')) {
        throw new SettingValueError(`expected id=host:port entries, got ${show(item)}`);
      }
      const eq = item.indexOf('=');
      return [item.slice(0, eq).trim(), item.slice(eq + 1).trim()];
    });
  }
  if (pairs.length === 0) throw new SettingValueError('expected at least one id=host:port entry');
  if (pairs.length > maxMembers)
    throw new SettingValueError(`at most ${maxMembers} members, got ${pairs.length}`);
  const members: InitialMember[] = [];
  for (const [rawId, rawAddress] of pairs) {
    let id: string;
    let peerAddress: string;
    try {
      id = parseId(rawId);
      peerAddress = parsePeerAddress(rawAddress);
    } catch (error) {
      throw new SettingValueError(`entry ${show(`${rawId}=${rawAddress}`)}: ${(error as Error).message}`);
    }
    if (members.some((m) => m.id === id)) throw new SettingValueError(`member id ${show(id)} appears twice`);
    if (members.some((m) => m.peerAddress === peerAddress)) {
      throw new SettingValueError(`peer address ${show(peerAddress)} appears twice`);
    }
    members.push({ id, peerAddress });
  }
  return members;
}

export type WalSyncMode = { mode: 'always' } | { mode: 'interval'; intervalMs: number };

/** `always` (fsync before acknowledging) or `interval:<ms>` (fsync at most every ms). */
export function parseWalSync(raw: unknown): WalSyncMode {
  if (typeof raw === 'string') {
    const text = raw.trim();
    if (text === 'always') return { mode: 'always' };
    const match = /^interval:([0-9]+)$/.exec(text);
    if (match) {
      const intervalMs = Number(match[1]);
      if (intervalMs >= 1 && intervalMs <= 10_000) return { mode: 'interval', intervalMs };
      throw new SettingValueError(`interval must be 1 to 10000 ms, got ${show(raw)}`);
    }
  }
  throw new SettingValueError(`expected "always" or "interval:<ms>", got ${show(raw)}`);
}
