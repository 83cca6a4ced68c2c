/**
 * AtlasDB client: `import { connect } from 'atlasdb/client'`.
 *
 *   const db = connect({ endpoints: ['http://127.0.0.1:8081', 'http://127.0.0.1:8082'] });
 *   await db.put('greeting', 'hello');
 *   const kv = await db.get('greeting'); // kv.value is a Buffer
 *   await db.close();
 */
export { AtlasClient, type ClientLimits, type ConnectOptions, connect } from './atlas-client.js';
export {
  AtlasError,
  InvalidRequestError,
  LimitExceededError,
  OutcomeUnknownError,
  PreconditionFailedError,
  TimeoutError,
  UnavailableError,
} from './errors.js';
export type * from './types.js';
