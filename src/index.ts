/**
 * AtlasDB as a library: `import { startNode } from 'atlasdb'` runs a node inside a Node application
 * (docs/operations.md, "Embedding a node"). The TypeScript client is `atlasdb/client`.
 */
export {
  type AtlasNode,
  type NodeSettingsInput,
  type ServerRuntimeOptions,
  type StartNodeOptions,
  startNode,
  startServer,
} from './server/atlas-server.js';
export { ConfigError, type ConfigIssue, loadNodeConfig } from './config/load-node-config.js';
export type { NodeConfig } from './config/node-config.js';
export { SettingsError } from './server/settings-mapping.js';
export { DataDirError } from './server/data-dir.js';
export { DataDirLockedError } from './server/data-dir-lock.js';
export { JoinError } from './server/join-cluster.js';
export { NodeError, type NodeErrorCode } from './node/errors.js';
export type {
  ClientSession,
  KvService,
  MemberInfo,
  MemberRole,
  NodeStatus,
  ReadConsistency,
} from './node/kv-service.js';
export type {
  Compare,
  CompareOp,
  KeyValue,
  RangeOptions,
  RequestOp,
  ResponseOp,
  Txn,
  TxnResult,
} from './kv/state-store.js';
export { WalCorruptionError } from './wal/errors.js';
