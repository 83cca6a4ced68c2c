import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import {
  ConfigError,
  type LoadNodeConfigInput,
  type LoadedNodeConfig,
  loadNodeConfig,
} from '../../src/config/load-node-config.js';
import { SETTING_KEYS, settingEnvName, settingName } from '../../src/config/node-config.js';
import { addNodeConfigOptions } from '../../src/config/node-config-options.js';

const FILE = 'atlas.yaml';

function load(input: LoadNodeConfigInput & { yaml?: string }): LoadedNodeConfig {
  const { yaml, ...rest } = input;
  return loadNodeConfig({
    env: {},
    cwd: '/srv',
    ...rest,
    ...(yaml !== undefined
      ? { flags: { config: FILE, ...rest.flags }, readFile: (path: string) => (path === FILE ? yaml : '') }
      : {}),
  });
}

/** Loads and returns the error lines; fails if loading succeeds. */
function errors(input: LoadNodeConfigInput & { yaml?: string }): string[] {
  try {
    load(input);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    assert.ok(error.message.startsWith('invalid configuration:\n'));
    return error.issues.map((i) => i.message);
  }
  assert.fail('expected a ConfigError');
}

describe('loadNodeConfig: defaults and precedence', () => {
  it('fills every default from an id alone, as a one-node cluster', () => {
    const { config, origins } = load({ flags: { id: 'n1' } });
    assert.equal(config.id, 'n1');
    assert.equal(config.dataDir, '/srv/atlas-data/n1');
    assert.deepEqual(config.listenClient, { host: '127.0.0.1', port: 8081 });
    assert.deepEqual(config.listenPeer, { host: '127.0.0.1', port: 7081 });
    assert.equal(config.advertiseClientUrl, 'http://127.0.0.1:8081');
    assert.equal(config.advertisePeer, '127.0.0.1:7081');
    assert.deepEqual(config.initialCluster, [{ id: 'n1', peerAddress: '127.0.0.1:7081' }]);
    assert.deepEqual(config.join, []);
    assert.equal(config.clusterId, 'atlas');
    assert.equal(config.heartbeatIntervalMs, 50);
    assert.equal(config.electionTimeoutMs, 500);
    assert.equal(config.snapshotThresholdEntries, 1000);
    assert.equal(config.walSegmentSize, 64 * 1024 * 1024);
    assert.deepEqual(config.walSync, { mode: 'always' });
    assert.equal(config.maxKeySize, 4096);
    assert.equal(config.maxValueSize, 1024 * 1024);
    assert.equal(config.maxRequestSize, 2 * 1024 * 1024);
    assert.equal(config.maxTxnOps, 128);
    assert.equal(config.proposalQueueBound, 1024);
    assert.equal(config.requestTimeoutMs, 5000);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.storeBackend, 'lmdb');
    assert.equal(config.memoryReclaimIntervalMs, 5000);
    assert.equal(config.storeCommitDelayMs, 100);
    assert.deepEqual(origins.id, { source: 'flag', label: '--id' });
    assert.equal(origins.heartbeatIntervalMs.source, 'default');
  });

  it('takes 0 for memory-reclaim-interval-ms (never reclaim)', () => {
    const { config } = load({ env: { ATLAS_MEMORY_RECLAIM_INTERVAL_MS: '0' }, flags: { id: 'n1' } });
    assert.equal(config.memoryReclaimIntervalMs, 0);
  });

  it('takes flags over environment over file over defaults', () => {
    const yaml =
      'id: n1\nheartbeat-interval-ms: 10\nelection-timeout-ms: 100\nsnapshot-threshold-entries: 7\n';
    const { config, origins } = load({
      yaml,
      env: { ATLAS_HEARTBEAT_INTERVAL_MS: '20', ATLAS_ELECTION_TIMEOUT_MS: '200' },
      flags: { heartbeatIntervalMs: '30' },
    });
    assert.equal(config.heartbeatIntervalMs, 30);
    assert.equal(config.electionTimeoutMs, 200);
    assert.equal(config.snapshotThresholdEntries, 7);
    assert.equal(config.proposalQueueBound, 1024);
    assert.deepEqual(origins.heartbeatIntervalMs, { source: 'flag', label: '--heartbeat-interval-ms' });
    assert.deepEqual(origins.electionTimeoutMs, { source: 'env', label: 'ATLAS_ELECTION_TIMEOUT_MS' });
    assert.deepEqual(origins.snapshotThresholdEntries, {
      source: 'file',
      label: 'atlas.yaml:4: snapshot-threshold-entries',
    });
    assert.equal(origins.proposalQueueBound.source, 'default');
  });

  it('finds the config file through ATLAS_CONFIG, and --config wins over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'atlas-config-'));
    try {
      writeFileSync(join(dir, 'a.yaml'), 'id: from-a\n');
      writeFileSync(join(dir, 'b.yaml'), 'id: from-b\n');
      assert.equal(loadNodeConfig({ env: { ATLAS_CONFIG: join(dir, 'a.yaml') } }).config.id, 'from-a');
      assert.equal(
        loadNodeConfig({ env: { ATLAS_CONFIG: join(dir, 'a.yaml') }, flags: { config: join(dir, 'b.yaml') } })
          .config.id,
        'from-b',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses every value form: sizes with units, wal sync, lists, maps', () => {
    const yaml = [
      'id: b',
      'wal-segment-size: 8MiB',
      'max-key-size: 1KiB',
      'max-value-size: 524288',
      'max-request-size: 1 MiB',
      'wal-sync: interval:25',
      'initial-cluster:',
      '  a: 10.0.0.1:7081',
      '  b: 10.0.0.2:7081',
      '  c: "[::1]:7081"',
      'listen-peer: 0.0.0.0:7081',
      'listen-client: 0.0.0.0:8081',
      'advertise-client-url: http://10.0.0.2:8081/',
      'log-level: debug',
      'store-backend: memory',
      'cluster-id: prod-1',
    ].join('\n');
    const { config } = load({ yaml });
    assert.equal(config.walSegmentSize, 8 * 1024 * 1024);
    assert.equal(config.maxKeySize, 1024);
    assert.equal(config.maxValueSize, 524288);
    assert.equal(config.maxRequestSize, 1024 * 1024);
    assert.deepEqual(config.walSync, { mode: 'interval', intervalMs: 25 });
    assert.deepEqual(
      config.initialCluster.map((m) => `${m.id}=${m.peerAddress}`),
      ['a=10.0.0.1:7081', 'b=10.0.0.2:7081', 'c=[::1]:7081'],
    );
    assert.equal(
      config.advertisePeer,
      '10.0.0.2:7081',
      'own initial-cluster entry is the advertised peer address',
    );
    assert.equal(config.advertiseClientUrl, 'http://10.0.0.2:8081');
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.storeBackend, 'memory');
    assert.equal(config.clusterId, 'prod-1');

    const fromEnv = load({
      env: {
        ATLAS_ID: 'a',
        ATLAS_INITIAL_CLUSTER: 'a=127.0.0.1:7001, b=127.0.0.1:7002',
        ATLAS_LISTEN_CLIENT: 'http://127.0.0.1:0',
        ATLAS_LISTEN_PEER: '127.0.0.1:7001',
      },
    }).config;
    assert.equal(fromEnv.initialCluster.length, 2);
    assert.deepEqual(fromEnv.listenClient, { host: '127.0.0.1', port: 0 });

    const joining = load({ flags: { id: 'd', join: 'http://10.0.0.1:8081,http://10.0.0.2:8081' } }).config;
    assert.deepEqual(joining.join, ['http://10.0.0.1:8081', 'http://10.0.0.2:8081']);
    assert.deepEqual(joining.initialCluster, []);
    const listYaml = load({ yaml: 'id: a\ninitial-cluster:\n  - a=127.0.0.1:7001\n  - b=127.0.0.1:7002\n' });
    assert.equal(listYaml.config.initialCluster.length, 2);
  });

  it('treats an empty environment variable as unset and warns about unknown ATLAS_* variables', () => {
    const { config, warnings } = load({
      env: { ATLAS_ID: 'n1', ATLAS_LOG_LEVEL: '', ATLAS_HEARTBEAT_MS: '5', ATLAS_ENDPOINTS: 'http://x:1' },
    });
    assert.equal(config.logLevel, 'info');
    assert.deepEqual(warnings, [
      'ATLAS_HEARTBEAT_MS is not a known setting and is ignored (did you mean ATLAS_HEARTBEAT_INTERVAL_MS?)',
    ]);
  });
});

describe('loadNodeConfig: errors name the source and the setting', () => {
  it('reports a bad value from each source with its own label', () => {
    assert.deepEqual(errors({ env: { ATLAS_ID: 'n1', ATLAS_ELECTION_TIMEOUT_MS: 'abc' } }), [
      'ATLAS_ELECTION_TIMEOUT_MS: expected a positive integer, got "abc"',
    ]);
    assert.deepEqual(errors({ flags: { id: 'n1', heartbeatIntervalMs: '-3' } }), [
      '--heartbeat-interval-ms: expected a positive integer, got "-3"',
    ]);
    assert.deepEqual(errors({ yaml: 'id: n1\n\nheartbeat-interval-ms: 2.5\n' }), [
      'atlas.yaml:3: heartbeat-interval-ms: expected a positive integer, got 2.5',
    ]);
  });

  it('reports a bad value even when a higher source overrides it', () => {
    assert.deepEqual(
      errors({
        env: { ATLAS_ID: 'n1', ATLAS_PROPOSAL_QUEUE_BOUND: 'lots' },
        flags: { proposalQueueBound: '9' },
      }),
      ['ATLAS_PROPOSAL_QUEUE_BOUND: expected a positive integer, got "lots"'],
    );
  });

  it('reports every malformed value class', () => {
    const cases: [Record<string, string>, string][] = [
      [{ id: 'bad id' }, '--id: expected an id of 1 to 64 characters'],
      [{ heartbeatIntervalMs: '70000' }, '--heartbeat-interval-ms: must be at most 60000, got 70000'],
      [
        { walSegmentSize: '64MB' },
        '--wal-segment-size: expected a size in bytes such as 4096, 4KiB or 1MiB, got "64MB"',
      ],
      [{ walSegmentSize: '1KiB' }, '--wal-segment-size: must be between 1MiB and 4GiB, got 1KiB'],
      [{ maxKeySize: '0' }, '--max-key-size: expected a size in bytes'],
      [{ walSync: 'sometimes' }, '--wal-sync: expected "always" or "interval:<ms>", got "sometimes"'],
      [{ walSync: 'interval:0' }, '--wal-sync: interval must be 1 to 10000 ms'],
      [
        { logLevel: 'loud' },
        '--log-level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
      ],
      [{ storeBackend: 'sqlite' }, '--store-backend: expected one of lmdb, memory, got "sqlite"'],
      [{ storeCommitDelayMs: '1001' }, '--store-commit-delay-ms: must be at most 1000, got 1001'],
      [
        { memoryReclaimIntervalMs: '-1' },
        '--memory-reclaim-interval-ms: expected a non-negative integer, got "-1"',
      ],
      [
        { memoryReclaimIntervalMs: '90000000' },
        '--memory-reclaim-interval-ms: must be at most 86400000, got 90000000',
      ],
      [{ listenClient: 'localhost' }, '--listen-client: expected host:port, got "localhost"'],
      [
        { listenPeer: '127.0.0.1:99999' },
        '--listen-peer: port in "127.0.0.1:99999" must be a number from 0 to 65535',
      ],
      [{ listenPeer: '::1:7000' }, '--listen-peer: IPv6 addresses need brackets'],
      [
        { listenPeer: 'bad_host!:7000' },
        '--listen-peer: "bad_host!" in "bad_host!:7000" is not a valid host name',
      ],
      [{ advertisePeer: '0.0.0.0:7000' }, '--advertise-peer: "0.0.0.0:7000" is not dialable'],
      [{ advertiseClientUrl: 'ftp://x:1' }, '--advertise-client-url: expected an http:// or https:// URL'],
      [{ advertiseClientUrl: 'http://x:1/api' }, '--advertise-client-url: expected a base URL without path'],
      [
        { join: 'not a url' },
        '--join: expected an http:// URL such as http://127.0.0.1:8081, got "not a url"',
      ],
      [{ initialCluster: 'n1' }, '--initial-cluster: expected id=host:port entries, got "n1"'],
      [
        { initialCluster: 'n1=127.0.0.1:1,n1=127.0.0.1:2' },
        '--initial-cluster: member id "n1" appears twice',
      ],
      [
        { initialCluster: 'n1=127.0.0.1:1,n2=127.0.0.1:1' },
        '--initial-cluster: peer address "127.0.0.1:1" appears twice',
      ],
      [
        { initialCluster: 'n1=127.0.0.1:0' },
        '--initial-cluster: entry "n1=127.0.0.1:0": port in "127.0.0.1:0" must be a number from 1',
      ],
      [{ clusterId: '-x' }, '--cluster-id: expected an id of'],
    ];
    for (const [flags, expected] of cases) {
      const lines = errors({ flags: { id: 'n1', ...flags } });
      assert.equal(lines.length, 1, `${JSON.stringify(flags)} → ${lines.join(' | ')}`);
      assert.ok(lines[0]!.startsWith(expected), `${JSON.stringify(flags)}: got ${JSON.stringify(lines[0])}`);
    }
  });

  it('reports a missing id with where to set it', () => {
    assert.deepEqual(errors({}), ['id: is required (set --id, ATLAS_ID, or id: in the config file)']);
  });

  it('reports cross-field violations with the origin of each related value', () => {
    assert.deepEqual(
      errors({
        env: { ATLAS_ID: 'n1', ATLAS_HEARTBEAT_INTERVAL_MS: '100' },
        flags: { electionTimeoutMs: '400' },
      }),
      [
        '--election-timeout-ms: must be at least 5 x heartbeat-interval-ms = 500, got 400 (heartbeat-interval-ms = "100" from ATLAS_HEARTBEAT_INTERVAL_MS)',
      ],
    );
    assert.deepEqual(errors({ flags: { id: 'n1', heartbeatIntervalMs: '200' } }), [
      'election-timeout-ms (default): must be at least 5 x heartbeat-interval-ms = 1000, got 500 (heartbeat-interval-ms = "200" from --heartbeat-interval-ms)',
    ]);
    assert.deepEqual(errors({ flags: { id: 'd', initialCluster: 'a=127.0.0.1:1,b=127.0.0.1:2' } }), [
      '--initial-cluster: does not contain this node\'s id "d" (members: a, b) (id = "d" from --id)',
    ]);
    const cases: [Record<string, string>, string][] = [
      [{ requestTimeoutMs: '600' }, '--request-timeout-ms: must be at least 2 x election-timeout-ms = 1000'],
      [
        { maxValueSize: '4MiB' },
        '--max-value-size: 4MiB exceeds max-request-size 2MiB (max-request-size: default)',
      ],
      [{ maxRequestSize: '1KiB' }, 'max-value-size (default): 1MiB exceeds max-request-size 1KiB'],
      [{ walSegmentSize: '2MiB' }, '--wal-segment-size: must be at least 2 x max-request-size = 4MiB'],
      [
        { join: 'http://a:1', initialCluster: 'n1=127.0.0.1:1' },
        '--join: cannot be combined with initial-cluster',
      ],
      [
        { initialCluster: 'n1=127.0.0.1:1', advertisePeer: '127.0.0.1:2' },
        "--advertise-peer: 127.0.0.1:2 differs from this node's initial-cluster entry n1=127.0.0.1:1",
      ],
      [
        { listenClient: '0.0.0.0:8081' },
        'advertise-client-url (default): is required when listen-client binds all interfaces',
      ],
      [
        { listenPeer: '0.0.0.0:7081' },
        'advertise-peer (default): is required when listen-peer binds all interfaces',
      ],
      [{ listenPeer: '127.0.0.1:0' }, 'advertise-peer (default): is required when listen-peer uses port 0'],
      [{ listenPeer: '127.0.0.1:8081' }, '--listen-peer: 127.0.0.1:8081 collides with listen-client'],
    ];
    for (const [flags, expected] of cases) {
      const lines = errors({ flags: { id: 'n1', ...flags } });
      assert.ok(lines.length >= 1);
      assert.ok(
        lines.some((line) => line.startsWith(expected)),
        `${JSON.stringify(flags)}: got ${JSON.stringify(lines)}`,
      );
    }
  });

  it('reports file problems: unknown keys, bad YAML, wrong shape, unreadable file', () => {
    assert.deepEqual(errors({ yaml: 'id: n1\nheartbeatIntervalMs: 3\n' }), [
      'atlas.yaml:2: unknown setting "heartbeatIntervalMs" (did you mean heartbeat-interval-ms?)',
    ]);
    assert.deepEqual(errors({ yaml: 'id: n1\nfrobnicate: 3\n' }), [
      'atlas.yaml:2: unknown setting "frobnicate"',
    ]);
    const bad = errors({ yaml: 'id: [n1\n' });
    assert.equal(bad.length, 1);
    assert.match(bad[0]!, /^atlas\.yaml: line \d+, column \d+: invalid YAML: /);
    assert.deepEqual(errors({ yaml: 'id: a\nid: b\n' }).length, 1);
    assert.deepEqual(errors({ yaml: '- id\n- n1\n' }), [
      'atlas.yaml: the top level must be a mapping of setting: value',
    ]);
    assert.deepEqual(errors({ yaml: 'id: n1\nheartbeat-interval-ms:\n' }), [
      'atlas.yaml:2: heartbeat-interval-ms: expected a positive integer, got null',
    ]);
    const missing = errors({ flags: { id: 'n1', config: '/nonexistent/atlas.yaml' } });
    assert.deepEqual(missing, ['/nonexistent/atlas.yaml: cannot read config file: ENOENT']);
  });

  it('collects every problem at once', () => {
    const lines = errors({
      yaml: 'id: n1\nmax-txn-ops: none\n',
      env: { ATLAS_LOG_LEVEL: 'shout' },
      flags: { storeBackend: 'paper' },
    });
    assert.equal(lines.length, 3);
  });
});

describe('addNodeConfigOptions', () => {
  it('declares one flag per setting whose values reach the loader by name', async () => {
    const command = addNodeConfigOptions(new Command('start').exitOverride());
    command.action(() => {});
    await command.parseAsync(
      ['--id', 'n7', '--heartbeat-interval-ms', '20', '--wal-sync', 'interval:5', '--max-txn-ops', '64'],
      { from: 'user' },
    );
    const { config } = loadNodeConfig({ flags: command.opts(), env: {} });
    assert.equal(config.id, 'n7');
    assert.equal(config.heartbeatIntervalMs, 20);
    assert.deepEqual(config.walSync, { mode: 'interval', intervalMs: 5 });
    assert.equal(config.maxTxnOps, 64);
    const help = command.helpInformation();
    for (const key of SETTING_KEYS) {
      assert.ok(help.includes(`--${settingName(key)}`), `help lists --${settingName(key)}`);
      assert.ok(help.includes(settingEnvName(key)), `help names ${settingEnvName(key)}`);
    }
  });
});
