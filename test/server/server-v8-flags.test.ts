import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SERVER_V8_FLAGS, missingServerV8Flags } from '../../src/server/server-v8-flags.js';

describe('server V8 flags', () => {
  it('caps the young generation', () => {
    assert.deepEqual(SERVER_V8_FLAGS, ['--max-semi-space-size=16']);
  });

  it('finds a flag missing unless node arguments or NODE_OPTIONS give it, in either spelling, with any value', () => {
    assert.deepEqual(missingServerV8Flags([], undefined), ['--max-semi-space-size=16']);
    assert.deepEqual(missingServerV8Flags(['--cpu-prof'], '--max-old-space-size=512'), [
      '--max-semi-space-size=16',
    ]);
    assert.deepEqual(missingServerV8Flags(['--max-semi-space-size=16'], undefined), []);
    assert.deepEqual(missingServerV8Flags([], '  --inspect   --max_semi_space_size=8 '), []);
    assert.deepEqual(missingServerV8Flags(['--max-semi-space-size-other=1'], ''), [
      '--max-semi-space-size=16',
    ]);
  });
});
