/**
 * `atlas start --join <url>`: an empty node asks a member of an existing cluster to add it as a
 * learner (POST /cluster/members). The member forwards the change to the leader; once it commits,
 * the leader replicates its log (or a snapshot) to the new node and promotes it to voter when it
 * has caught up (DESIGN.md §10 "Learners"). The new node must already listen for peers, because
 * the leader dials it as soon as the change is applied.
 *
 * Retries: a refusal that means "not now" (no leader, busy, outcome unknown, connection refused)
 * is retried on the next URL with backoff until the deadline. A 409 member_exists is success when
 * the existing member has this node's peer address (an earlier attempt went through but its answer
 * was lost); otherwise the id is taken by another node and joining fails. Other errors are final.
 */
import { request } from 'undici';

export interface JoinRequest {
  id: string;
  peerAddress: string;
  clientUrl: string;
}

export interface JoinLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export class JoinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JoinError';
  }
}

interface WireMemberLike {
  id?: unknown;
  peerAddress?: unknown;
}

const ATTEMPT_TIMEOUT_MS = 10_000;
const INITIAL_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 3000;
/** Largest answer read from a member (a member list of a few hundred members). */
const MAX_RESPONSE_BYTES = 1024 * 1024;
/** Codes after which trying again (later, or elsewhere) may succeed. */
const RETRYABLE_CODES = new Set(['not_leader', 'no_quorum', 'overloaded', 'outcome_unknown', 'shutting_down', 'membership_change_in_progress', 'timeout']);

async function call(
  url: string,
  method: 'GET' | 'POST',
  path: string,
  body: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await request(new URL(path, url), {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    headersTimeout: ATTEMPT_TIMEOUT_MS,
    bodyTimeout: ATTEMPT_TIMEOUT_MS,
  });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_RESPONSE_BYTES) {
      res.body.destroy();
      throw new JoinError(`${url}${path} answered with more than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let json: unknown = null;
  try {
    json = text.length > 0 ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.statusCode, json };
}

function errorOf(json: unknown): { code: string; message: string } {
  const e = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return {
    code: typeof e?.code === 'string' ? e.code : 'unknown',
    message: typeof e?.message === 'string' ? e.message : 'no error message',
  };
}

function membersOf(json: unknown): WireMemberLike[] {
  const members = (json as { members?: unknown } | null)?.members;
  return Array.isArray(members) ? (members as WireMemberLike[]) : [];
}

/**
 * Asks the members at `urls` (tried in turn) to add this node as a learner; resolves once the change
 * is committed (or was already). Rejects with JoinError when it is refused for good or `deadlineMs` passes.
 */
export async function joinCluster(
  urls: readonly string[],
  self: JoinRequest,
  options: { deadlineMs: number; logger: JoinLogger; signal?: AbortSignal },
): Promise<void> {
  if (urls.length === 0) throw new JoinError('no --join URL given');
  const deadline = performance.now() + options.deadlineMs;
  let backoff = INITIAL_BACKOFF_MS;
  let lastProblem = 'no attempt made';
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) throw new JoinError('joining was cancelled (the node is shutting down)');
    const url = urls[attempt % urls.length]!;
    try {
      const added = await call(url, 'POST', '/cluster/members', {
        id: self.id,
        peerAddress: self.peerAddress,
        clientUrl: self.clientUrl,
        role: 'learner',
      });
      if (added.status === 201) {
        options.logger.info({ via: url, members: membersOf(added.json).length }, 'joined the cluster as a learner');
        return;
      }
      const { code, message } = errorOf(added.json);
      if (added.status === 409 && code === 'member_exists') {
        const listed = await call(url, 'GET', '/cluster/members', undefined);
        const me = membersOf(listed.json).find((m) => m.id === self.id);
        if (me !== undefined && me.peerAddress === self.peerAddress) {
          options.logger.info({ via: url }, 'already a member of the cluster (an earlier join went through)');
          return;
        }
        throw new JoinError(
          `cannot join via ${url}: member id ${JSON.stringify(self.id)} is already used by the member at ${String(me?.peerAddress ?? 'an unknown address')}; ` +
            'choose another --id, or remove the old member first (DELETE /cluster/members/<id>)',
        );
      }
      if (!RETRYABLE_CODES.has(code) && added.status !== 503 && added.status !== 504) {
        throw new JoinError(`cannot join via ${url}: ${added.status} ${code}: ${message}`);
      }
      lastProblem = `${url} answered ${added.status} ${code}: ${message}`;
    } catch (e) {
      if (e instanceof JoinError) throw e;
      lastProblem = `${url}: ${e instanceof Error ? e.message : String(e)}`;
    }
    const left = deadline - performance.now();
    if (left <= 0) throw new JoinError(`could not join the cluster within ${options.deadlineMs} ms; last problem: ${lastProblem}`);
    options.logger.warn({ problem: lastProblem, retryInMs: backoff }, 'join attempt failed; retrying');
    await new Promise((resolve) => setTimeout(resolve, Math.min(backoff, left)));
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
}
