/**
 * Peer and listen addresses: `host:port`, with IPv6 hosts in brackets (`[::1]:7081`).
 * Addresses come from configuration and from membership requests, so parsing reports what is wrong.
 */
import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/** Longest DNS name (RFC 1035 §2.3.4). */
const MAX_HOSTNAME_LENGTH = 253;
const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export class AddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddressError';
  }
}

/**
 * Parses `host:port`. `allowPortZero` admits port 0 (listen on an ephemeral port); peers are never
 * dialed on port 0.
 */
export function parseHostPort(text: string, options: { allowPortZero?: boolean } = {}): HostPort {
  if (typeof text !== 'string' || text.length === 0) throw new AddressError('expected host:port, got ""');
  if (text.length > MAX_HOSTNAME_LENGTH + 8) {
    throw new AddressError(`expected host:port, got a string of ${text.length} characters`);
  }
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') {
      throw new AddressError(`expected [ipv6]:port, got ${JSON.stringify(text)}`);
    }
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (isIP(host) !== 6)
      throw new AddressError(`"${host}" in ${JSON.stringify(text)} is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) throw new AddressError(`expected host:port, got ${JSON.stringify(text)}`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) {
      throw new AddressError(`IPv6 addresses need brackets ([::1]:7081), got ${JSON.stringify(text)}`);
    }
    if (isIP(host) === 0 && !HOSTNAME_PATTERN.test(host)) {
      throw new AddressError(`"${host}" in ${JSON.stringify(text)} is not a valid host name or IP address`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) {
    throw new AddressError(`port in ${JSON.stringify(text)} must be a number from 1 to 65535`);
  }
  const port = Number(portText);
  const min = options.allowPortZero ? 0 : 1;
  if (port < min || port > 65535) {
    throw new AddressError(`port in ${JSON.stringify(text)} must be a number from ${min} to 65535`);
  }
  return { host, port };
}

export function formatHostPort(address: HostPort): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
