/**
 * Node and cluster routes: /health, /cluster/status, /cluster/members (list, add, remove, promote),
 * /cluster/leader (transfer). Membership changes are writes: a deadline makes their outcome unknown.
 */
import type { MemberInfo, MemberRole, NodeStatus } from '../../node/kv-service.js';
import { AddressError, parseHostPort } from '../../transport/address.js';
import { ID_RULE, isValidId } from '../../transport/identifiers.js';
import type { ApiContext } from './api-context.js';
import { invalidRequest } from './api-error.js';
import { parseJsonBody } from './txn-json.js';
import type { WireClusterStatus, WireHealth, WireLeader, WireMember, WireMembers } from './wire.js';
import { percentDecode } from './wire-codec.js';

function toWireMember(member: MemberInfo): WireMember {
  const out: WireMember = {
    id: member.id,
    peerAddress: member.peerAddress,
    clientUrl: member.clientUrl,
    role: member.role,
  };
  if (member.leaving) out.leaving = true;
  return out;
}

function membersBody(members: MemberInfo[]): WireMembers {
  return { members: members.map(toWireMember) };
}

/** The member id of /cluster/members/{id}. */
function pathMemberId(ctx: ApiContext): string {
  const id = percentDecode(ctx.params['id'] ?? '', 'member id').toString('latin1');
  if (!isValidId(id)) throw invalidRequest(`member id ${JSON.stringify(id)} is not valid: ${ID_RULE}`);
  return id;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function checkFields(body: Record<string, unknown>, allowed: string[]): void {
  for (const name of Object.keys(body)) {
    if (!allowed.includes(name))
      throw invalidRequest(`unknown field ${JSON.stringify(name)} (allowed: ${allowed.join(', ')})`);
  }
}

function toWireHealth(status: NodeStatus): WireHealth {
  return {
    id: status.id,
    role: status.role,
    term: status.term,
    leader: status.leader,
    commitIndex: status.commitIndex,
    lastApplied: status.lastApplied,
  };
}

export async function getHealth(ctx: ApiContext): Promise<void> {
  ctx.query([]);
  ctx.json(200, toWireHealth(ctx.service.status()));
}

export async function getClusterStatus(ctx: ApiContext): Promise<void> {
  ctx.query([]);
  const status = ctx.service.status();
  const body: WireClusterStatus = {
    ...toWireHealth(status),
    lastIndex: status.lastIndex,
    snapshotIndex: status.snapshotIndex,
    revision: status.revision,
    members: status.members.map(toWireMember),
  };
  ctx.json(200, body);
}

export async function getMembers(ctx: ApiContext): Promise<void> {
  ctx.query([]);
  ctx.json(200, membersBody(ctx.service.members()));
}

export async function addMember(ctx: ApiContext): Promise<void> {
  ctx.query([]);
  const body = parseJsonBody(await ctx.body());
  if (!isObject(body)) throw invalidRequest('body: expected an object {id, peerAddress, clientUrl, role}');
  checkFields(body, ['id', 'peerAddress', 'clientUrl', 'role']);
  const { id, peerAddress, clientUrl = '', role = 'learner' } = body;
  if (!isValidId(id)) throw invalidRequest(`id: ${JSON.stringify(id)} is not valid: ${ID_RULE}`);
  if (typeof peerAddress !== 'string') throw invalidRequest('peerAddress: expected host:port');
  try {
    parseHostPort(peerAddress);
  } catch (error) {
    if (error instanceof AddressError) throw invalidRequest(`peerAddress: ${error.message}`);
    throw error;
  }
  if (typeof clientUrl !== 'string' || (clientUrl !== '' && !/^https?:\/\/[^/\s]+$/.test(clientUrl))) {
    throw invalidRequest('clientUrl: expected an http://host:port URL or ""');
  }
  if (role !== 'voter' && role !== 'learner') throw invalidRequest('role: expected voter or learner');
  const members = await ctx.write(ctx.service.addMember(id, peerAddress, clientUrl, role as MemberRole));
  ctx.json(201, membersBody(members));
}

export async function removeMember(ctx: ApiContext): Promise<void> {
  ctx.query([]);
  const id = pathMemberId(ctx);
  ctx.json(200, membersBody(await ctx.write(ctx.service.removeMember(id))));
}

export async function promoteMember(ctx: ApiContext): Promise<void> {
  ctx.query([]);
  const id = pathMemberId(ctx);
  ctx.json(200, membersBody(await ctx.write(ctx.service.promoteMember(id))));
}

export async function transferLeader(ctx: ApiContext): Promise<void> {
  ctx.query([]);
  const raw = await ctx.body();
  let to: string | undefined;
  if (raw.length > 0) {
    const body = parseJsonBody(raw);
    if (!isObject(body)) throw invalidRequest('body: expected an object {to?}');
    checkFields(body, ['to']);
    if (body['to'] !== undefined) {
      if (!isValidId(body['to']))
        throw invalidRequest(`to: ${JSON.stringify(body['to'])} is not valid: ${ID_RULE}`);
      to = body['to'];
    }
  }
  const leader = await ctx.write(ctx.service.transferLeadership(to));
  const body: WireLeader = { leader };
  ctx.json(200, body);
}
