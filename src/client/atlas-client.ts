/**
 * The TypeScript client: `connect({ endpoints })` → get / put / delete / scan / txn / batch,
 * membership and status calls, over the HTTP API (docs/api.md).
 *
 * Retries are safe by construction:
 * - reads repeat on any endpoint until one answers;
 * - key writes carry an exactly-once session (client id + sequence number, reused on every retry of
 *   the same write), so a retry after a lost answer is answered from the server's session table
 *   instead of being applied twice;
 * - membership changes, which have no session, repeat only when the request certainly did not
 *   reach a server, and otherwise report OutcomeUnknownError.
 * Writes go to the leader once known (from not_leader hints and the cluster status), saving the
 * follower's forwarding hop; any endpoint would also accept them.
 */
import type {
  WireBatchResult,
  WireClusterStatus,
  WireError,
  WireHealth,
  WireKeyValue,
  WireLeader,
  WireMembers,
  WirePutResult,
  WireTxnResult,
} from '../api/http/wire.js';
import { type AttemptOutcome, EndpointSet, type HttpReply, type HttpRequest } from './endpoint-set.js';
import {
  AtlasError,
  InvalidRequestError,
  LimitExceededError,
  OutcomeUnknownError,
  PreconditionFailedError,
  TimeoutError,
  UnavailableError,
} from './errors.js';
import { type SessionLane, SessionLanes } from './session-lanes.js';
import type {
  BatchOp,
  BatchResult,
  Bytes,
  ClusterStatus,
  Compare,
  DeleteOptions,
  Health,
  KeyValue,
  Member,
  NewMember,
  PutOptions,
  ReadConsistency,
  ReadOptions,
  ScanOptions,
  ScanResult,
  TxnOp,
  TxnRequest,
  TxnResult,
} from './types.js';

export interface ClientLimits {
  maxKeySize: number;
  maxValueSize: number;
  maxTxnOps: number;
}

export interface ConnectOptions {
  /** Client URLs of cluster members, e.g. ['http://127.0.0.1:8081']. */
  endpoints: string[];
  /** Default read consistency (linearizable). */
  consistency?: ReadConsistency;
  /** One attempt's time limit in ms (default 7000: the server's 5 s request timeout plus margin). */
  timeoutMs?: number;
  /** The whole operation's time limit, retries included, in ms (default 30000). */
  deadlineMs?: number;
  /** Attempts per operation at most (default 10). */
  maxAttempts?: number;
  /** First retry delay in ms; doubles per retry up to retryMaxMs, with jitter (default 20 / 1000). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Keep-alive connections per endpoint (default 8). */
  connectionsPerEndpoint?: number;
  connectTimeoutMs?: number;
  /** Writes in flight at once, each with its own session lane (default 64). */
  maxConcurrentWrites?: number;
  /** Checked before sending; match the server's settings (defaults 4 KiB, 1 MiB, 128). */
  limits?: Partial<ClientLimits>;
  /** Largest response accepted (default 256 MiB). */
  maxResponseBytes?: number;
}

type Plan =
  /** Idempotent: repeat anywhere. */
  | 'read'
  /** Carries a session: repeat anywhere with the same session. */
  | 'session_write'
  /** No session: repeat only when certainly not sent. */
  | 'unsafe_write';

interface WireErrorBody {
  code: string;
  message: string;
  modRevision?: number;
  leaderUrl?: string;
  limit?: string;
  limitValue?: number;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Percent-encodes every byte outside the URL unreserved set ('/' included), so any key is one path segment. */
export function encodePathBytes(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    out +=
      byte < 0x80 && UNRESERVED.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function toBuffer(bytes: Bytes): Buffer {
  return typeof bytes === 'string'
    ? Buffer.from(bytes, 'utf8')
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function fromWireKeyValue(kv: WireKeyValue): KeyValue {
  return {
    key: Buffer.from(kv.key, 'base64'),
    value: Buffer.from(kv.value ?? '', 'base64'),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
  };
}

function header(reply: HttpReply, name: string): string | undefined {
  const value = reply.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseJson<T>(reply: HttpReply): T {
  try {
    return JSON.parse(reply.body.toString('utf8')) as T;
  } catch {
    throw new AtlasError(
      'bad_response',
      `server answered ${reply.status} with a body that is not JSON`,
      reply.status,
    );
  }
}

function wireError(reply: HttpReply): WireErrorBody {
  try {
    const parsed = JSON.parse(reply.body.toString('utf8')) as WireError;
    if (parsed && typeof parsed.error?.code === 'string') return parsed.error as WireErrorBody;
  } catch {
    // fall through: not an API error body (a proxy, say)
  }
  return {
    code: `http_${reply.status}`,
    message: `HTTP ${reply.status}: ${reply.body.toString('utf8').slice(0, 200)}`,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The typed error for a definitive error answer. */
function errorFromReply(reply: HttpReply, error: WireErrorBody): AtlasError {
  if (error.code === 'precondition_failed')
    return new PreconditionFailedError(error.message, error.modRevision ?? 0);
  if (error.code === 'limit_exceeded') {
    return new LimitExceededError(
      error.message,
      error.limit ?? 'unknown',
      error.limitValue ?? 0,
      reply.status,
    );
  }
  if (reply.status === 400 || reply.status === 405 || reply.status === 406 || error.code === 'not_found') {
    return new InvalidRequestError(error.code, error.message, reply.status);
  }
  return new AtlasError(error.code, error.message, reply.status);
}

export class AtlasClient {
  private readonly endpoints: EndpointSet;
  private readonly lanes: SessionLanes;
  private readonly consistency: ReadConsistency;
  private readonly timeoutMs: number;
  private readonly deadlineMs: number;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  readonly limits: ClientLimits;
  private lastDiscovery = 0;

  constructor(options: ConnectOptions) {
    const positive = (name: string, value: number | undefined, fallback: number) => {
      const v = value ?? fallback;
      if (!Number.isSafeInteger(v) || v < 1) throw new Error(`connect: ${name} must be a positive integer`);
      return v;
    };
    this.endpoints = new EndpointSet(options.endpoints, {
      connectionsPerEndpoint: positive('connectionsPerEndpoint', options.connectionsPerEndpoint, 8),
      connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 2000),
      maxResponseBytes: positive('maxResponseBytes', options.maxResponseBytes, 256 * 1024 * 1024),
      maxLearnedEndpoints: 16,
    });
    this.lanes = new SessionLanes(positive('maxConcurrentWrites', options.maxConcurrentWrites, 64));
    this.consistency = options.consistency ?? 'linearizable';
    this.timeoutMs = positive('timeoutMs', options.timeoutMs, 7000);
    this.deadlineMs = positive('deadlineMs', options.deadlineMs, 30_000);
    this.maxAttempts = positive('maxAttempts', options.maxAttempts, 10);
    this.retryBaseMs = positive('retryBaseMs', options.retryBaseMs, 20);
    this.retryMaxMs = positive('retryMaxMs', options.retryMaxMs, 1000);
    this.limits = {
      maxKeySize: positive('limits.maxKeySize', options.limits?.maxKeySize, 4096),
      maxValueSize: positive('limits.maxValueSize', options.limits?.maxValueSize, 1024 * 1024),
      maxTxnOps: positive('limits.maxTxnOps', options.limits?.maxTxnOps, 128),
    };
  }

  /** The endpoints in use, including leaders learned from the cluster. */
  get endpointList(): readonly string[] {
    return this.endpoints.list;
  }

  /** The leader's endpoint, once known. */
  get leaderEndpoint(): string | undefined {
    return this.endpoints.leader;
  }

  // ---- keys ----

  async get(key: Bytes, options: ReadOptions = {}): Promise<KeyValue | null> {
    const k = this.key(key);
    const consistency = options.consistency ?? this.consistency;
    const query = consistency === 'serializable' ? '?consistency=serializable' : '';
    const reply = await this.execute(
      'read',
      { method: 'GET', path: `/kv/${encodePathBytes(k)}${query}` },
      [404],
    );
    if (reply.status === 404) return null;
    return {
      key: k,
      value: reply.body,
      modRevision: Number(header(reply, 'x-atlas-revision')),
      createRevision: Number(header(reply, 'x-atlas-create-revision')),
      version: Number(header(reply, 'x-atlas-version')),
    };
  }

  async put(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<{ revision: number }> {
    const k = this.key(key);
    const v = this.value(value, 'value');
    const headers: Record<string, string> = {};
    if (options.ifMatch !== undefined && options.ifAbsent)
      throw new InvalidRequestError('invalid_request', 'ifMatch and ifAbsent exclude each other');
    if (options.ifMatch !== undefined) headers['if-match'] = String(options.ifMatch);
    if (options.ifAbsent) headers['if-none-match'] = '*';
    const reply = await this.execute('session_write', {
      method: 'PUT',
      path: `/kv/${encodePathBytes(k)}`,
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: v,
    });
    return { revision: parseJson<WirePutResult>(reply).revision };
  }

  /** Deletes a key; `deleted: 0` when it did not exist. */
  async delete(key: Bytes, options: DeleteOptions = {}): Promise<{ deleted: 0 | 1; revision?: number }> {
    const k = this.key(key);
    const headers: Record<string, string> = {};
    if (options.ifMatch !== undefined) headers['if-match'] = String(options.ifMatch);
    const reply = await this.execute(
      'session_write',
      { method: 'DELETE', path: `/kv/${encodePathBytes(k)}`, headers },
      [404],
    );
    if (reply.status === 404) return { deleted: 0 };
    const body = parseJson<{ deleted: 1; revision: number }>(reply);
    return { deleted: 1, revision: body.revision };
  }

  async scan(options: ScanOptions = {}): Promise<ScanResult> {
    const params: string[] = ['encoding=base64'];
    for (const name of ['prefix', 'start', 'end'] as const) {
      const bytes = options[name];
      if (bytes !== undefined)
        params.push(`${name}=${encodeURIComponent(toBuffer(bytes).toString('base64'))}`);
    }
    if (options.limit !== undefined) params.push(`limit=${options.limit}`);
    if (options.reverse) params.push('reverse=true');
    if (options.keysOnly) params.push('keysOnly=true');
    const consistency = options.consistency ?? this.consistency;
    if (consistency === 'serializable') params.push('consistency=serializable');
    const reply = await this.execute('read', { method: 'GET', path: `/kv?${params.join('&')}` });
    return {
      kvs: parseJson<WireKeyValue[]>(reply).map(fromWireKeyValue),
      more: header(reply, 'x-atlas-more') === 'true',
    };
  }

  /** An etcd-style transaction; read-only ones honour `consistency`. */
  async txn(request: TxnRequest, options: ReadOptions = {}): Promise<TxnResult> {
    const compare = request.compare ?? [];
    const success = request.success ?? [];
    const failure = request.failure ?? [];
    for (const [name, list] of [
      ['compare', compare],
      ['success', success],
      ['failure', failure],
    ] as const) {
      if (list.length > this.limits.maxTxnOps) {
        throw new LimitExceededError(
          `${name} with ${list.length} operations exceeds max-txn-ops (${this.limits.maxTxnOps} operations)`,
          'max-txn-ops',
          this.limits.maxTxnOps,
        );
      }
    }
    const body = {
      encoding: 'base64',
      consistency: options.consistency ?? this.consistency,
      compare: compare.map((c) => this.wireCompare(c)),
      success: success.map((op) => this.wireOp(op)),
      failure: failure.map((op) => this.wireOp(op)),
    };
    const readOnly = [...success, ...failure].every((op) => op.type === 'get');
    const reply = await this.execute(
      readOnly ? 'read' : 'session_write',
      this.jsonRequest('POST', '/txn', body),
    );
    const result = parseJson<WireTxnResult>(reply);
    if (result.encoding !== 'base64')
      throw new AtlasError('bad_response', 'txn answer not in the requested base64 encoding');
    return {
      succeeded: result.succeeded,
      revision: result.revision,
      responses: result.responses.map((r) =>
        r.type === 'get' ? { type: 'get', kv: r.kv ? fromWireKeyValue(r.kv) : null } : r,
      ),
    };
  }

  /** Puts and deletes applied atomically at one revision. */
  async batch(ops: BatchOp[]): Promise<BatchResult> {
    if (ops.length > this.limits.maxTxnOps) {
      throw new LimitExceededError(
        `batch of ${ops.length} operations exceeds max-txn-ops (${this.limits.maxTxnOps} operations)`,
        'max-txn-ops',
        this.limits.maxTxnOps,
      );
    }
    const body = { encoding: 'base64', ops: ops.map((op) => this.wireOp(op)) };
    return parseJson<WireBatchResult>(
      await this.execute('session_write', this.jsonRequest('POST', '/batch', body)),
    );
  }

  // ---- cluster ----

  async health(): Promise<Health> {
    return parseJson<WireHealth>(await this.execute('read', { method: 'GET', path: '/health' }));
  }

  async status(): Promise<ClusterStatus> {
    return parseJson<WireClusterStatus>(
      await this.execute('read', { method: 'GET', path: '/cluster/status' }),
    );
  }

  async members(): Promise<Member[]> {
    return parseJson<WireMembers>(await this.execute('read', { method: 'GET', path: '/cluster/members' }))
      .members;
  }

  async addMember(member: NewMember): Promise<Member[]> {
    const reply = await this.execute('unsafe_write', this.jsonRequest('POST', '/cluster/members', member));
    return parseJson<WireMembers>(reply).members;
  }

  async removeMember(id: string): Promise<Member[]> {
    const reply = await this.execute('unsafe_write', {
      method: 'DELETE',
      path: `/cluster/members/${encodeURIComponent(id)}`,
    });
    return parseJson<WireMembers>(reply).members;
  }

  async promoteMember(id: string): Promise<Member[]> {
    const reply = await this.execute('unsafe_write', {
      method: 'POST',
      path: `/cluster/members/${encodeURIComponent(id)}/promote`,
    });
    return parseJson<WireMembers>(reply).members;
  }

  /** Moves leadership to `to` (or the best other voter); resolves with the new leader's id. */
  async transferLeadership(to?: string): Promise<string> {
    const reply = await this.execute(
      'unsafe_write',
      this.jsonRequest('POST', '/cluster/leader', to ? { to } : {}),
    );
    this.endpoints.setLeader(undefined);
    return parseJson<WireLeader>(reply).leader;
  }

  async close(): Promise<void> {
    await this.endpoints.close();
  }

  // ---- encoding and limits ----

  private key(key: Bytes): Buffer {
    const k = toBuffer(key);
    if (k.length === 0) throw new InvalidRequestError('invalid_request', 'key is empty');
    if (k.length > this.limits.maxKeySize) {
      throw new LimitExceededError(
        `key of ${k.length} bytes exceeds max-key-size (${this.limits.maxKeySize} bytes)`,
        'max-key-size',
        this.limits.maxKeySize,
      );
    }
    return k;
  }

  private value(value: Bytes, what: string): Buffer {
    const v = toBuffer(value);
    if (v.length > this.limits.maxValueSize) {
      throw new LimitExceededError(
        `${what} of ${v.length} bytes exceeds max-value-size (${this.limits.maxValueSize} bytes)`,
        'max-value-size',
        this.limits.maxValueSize,
      );
    }
    return v;
  }

  private wireOp(op: TxnOp): Record<string, string> {
    const key = this.key(op.key).toString('base64');
    if (op.type === 'put')
      return { type: 'put', key, value: this.value(op.value, 'value').toString('base64') };
    return { type: op.type, key };
  }

  private wireCompare(c: Compare): Record<string, unknown> {
    const key = this.key(c.key).toString('base64');
    if (c.target === 'exists') return { key, target: 'exists', exists: c.exists };
    if (c.target === 'value') {
      return {
        key,
        target: 'value',
        op: c.op,
        value: this.value(c.value, 'compare value').toString('base64'),
      };
    }
    return { key, target: c.target, op: c.op, value: c.value };
  }

  private jsonRequest(method: 'POST', path: string, body: unknown): HttpRequest {
    return { method, path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
  }

  // ---- attempts, failover, retries ----

  /** Learns the leader's endpoint from the cluster status; best effort, at most once a second. */
  private async discoverLeader(): Promise<void> {
    const now = Date.now();
    if (now - this.lastDiscovery < 1000) return;
    this.lastDiscovery = now;
    const endpoint = this.endpoints.forRead();
    const outcome = await this.endpoints.attempt(
      endpoint,
      { method: 'GET', path: '/cluster/status' },
      Math.min(this.timeoutMs, 2000),
    );
    if (outcome.kind !== 'reply' || outcome.reply.status !== 200) return;
    try {
      const status = JSON.parse(outcome.reply.body.toString('utf8')) as WireClusterStatus;
      const leader = status.members?.find((m) => m.id === status.leader);
      if (leader?.clientUrl) this.endpoints.setLeader(leader.clientUrl);
      else if (status.leader) await this.findEndpointOf(status.leader);
    } catch {
      // not fatal: writes still work through any endpoint
    }
  }

  /**
   * The founding members of a cluster carry no client URL in the membership (their configuration
   * must be identical on every founder), so the leader's URL is found by asking each known endpoint
   * who it is (`GET /health` names the node). Best effort, in parallel, with a short timeout.
   */
  private async findEndpointOf(leaderId: string): Promise<void> {
    const timeoutMs = Math.min(this.timeoutMs, 1000);
    const answers = await Promise.all(
      this.endpoints.list.map(async (endpoint) => {
        const outcome = await this.endpoints.attempt(endpoint, { method: 'GET', path: '/health' }, timeoutMs);
        if (outcome.kind !== 'reply' || outcome.reply.status !== 200) return undefined;
        try {
          const health = JSON.parse(outcome.reply.body.toString('utf8')) as { id?: unknown };
          return health.id === leaderId ? endpoint : undefined;
        } catch {
          return undefined;
        }
      }),
    );
    const found = answers.find((endpoint) => endpoint !== undefined);
    if (found) this.endpoints.setLeader(found);
  }

  private backoff(retry: number): number {
    const ceiling = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(retry, 20));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  /**
   * Runs a request with retries and failover. Resolves with a 2xx reply or one whose status is in
   * `accept`; throws a typed error otherwise.
   */
  private async execute(plan: Plan, request: HttpRequest, accept: number[] = []): Promise<HttpReply> {
    let lane: SessionLane | undefined;
    if (plan === 'session_write') {
      lane = await this.lanes.acquire();
      lane.seq++;
      request = {
        ...request,
        headers: { ...request.headers, 'x-atlas-client-id': lane.clientId, 'x-atlas-seq': String(lane.seq) },
      };
    }
    try {
      return await this.attempts(plan, request, accept);
    } finally {
      if (lane) this.lanes.release(lane);
    }
  }

  private async attempts(plan: Plan, request: HttpRequest, accept: number[]): Promise<HttpReply> {
    const deadline = Date.now() + this.deadlineMs;
    const failures: string[] = [];
    let ambiguous = false;
    let lastTimedOut = false;
    const isWrite = plan !== 'read';
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      if (attempt > 0) await sleep(Math.max(0, Math.min(this.backoff(attempt - 1), deadline - Date.now())));
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      if (isWrite && !this.endpoints.leader) await this.discoverLeader();
      const endpoint = isWrite ? this.endpoints.forWrite() : this.endpoints.forRead();
      const outcome: AttemptOutcome = await this.endpoints.attempt(
        endpoint,
        request,
        Math.min(this.timeoutMs, remaining),
      );
      if (outcome.kind === 'not_sent') {
        failures.push(outcome.reason);
        this.endpoints.failed(endpoint);
        lastTimedOut = false;
        continue;
      }
      if (outcome.kind === 'lost') {
        failures.push(outcome.reason);
        this.endpoints.failed(endpoint);
        lastTimedOut = outcome.timedOut;
        if (plan === 'unsafe_write') {
          throw new OutcomeUnknownError(
            `the answer was lost (${outcome.reason}); the change may or may not have been made`,
            failures,
          );
        }
        if (isWrite) ambiguous = true;
        continue;
      }
      const { reply } = outcome;
      if ((reply.status >= 200 && reply.status < 300) || accept.includes(reply.status)) return reply;
      const error = wireError(reply);
      failures.push(`${endpoint}: ${reply.status} ${error.code}: ${error.message}`);
      lastTimedOut = error.code === 'timeout';
      switch (error.code) {
        case 'not_leader':
          // Refused before proposing: certainly not applied. Follow the hint, or move on.
          if (error.leaderUrl) this.endpoints.setLeader(error.leaderUrl);
          else this.endpoints.failed(endpoint);
          continue;
        case 'overloaded':
        case 'shutting_down':
          this.endpoints.failed(endpoint);
          continue;
        case 'no_quorum':
        case 'outcome_unknown':
        case 'timeout':
          if (plan === 'unsafe_write')
            throw new OutcomeUnknownError(`${error.code}: ${error.message}`, failures);
          if (isWrite) ambiguous = true;
          this.endpoints.failed(endpoint);
          continue;
        default:
          throw errorFromReply(reply, error);
      }
    }
    const summary = failures.length > 0 ? `: ${failures[failures.length - 1]}` : '';
    if (ambiguous) {
      throw new OutcomeUnknownError(
        `write not confirmed after ${failures.length} attempts; it may or may not have been applied${summary}`,
        failures,
      );
    }
    if (!isWrite && lastTimedOut)
      throw new TimeoutError(`read timed out after ${failures.length} attempts${summary}`, failures);
    throw new UnavailableError(
      `no endpoint could serve the request after ${failures.length} attempts${summary}`,
      failures,
    );
  }
}

/** Connects to a cluster. No request is made until the first call. */
export function connect(options: ConnectOptions): AtlasClient {
  return new AtlasClient(options);
}
