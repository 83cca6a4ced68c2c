import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ApiError } from '../../src/api/http/api-error.js';
import { type Route, Router } from '../../src/api/http/router.js';

const TABLE: Route<string>[] = [
  { pattern: '/health', methods: { GET: 'health' } },
  { pattern: '/kv', methods: { GET: 'range' } },
  { pattern: '/kv/{key+}', methods: { GET: 'get', PUT: 'put', DELETE: 'delete' } },
  { pattern: '/cluster/members', methods: { GET: 'members', POST: 'add' } },
  { pattern: '/cluster/members/{id}', methods: { DELETE: 'remove' } },
  { pattern: '/cluster/members/{id}/promote', methods: { POST: 'promote' } },
  { pattern: '/{any}/x', methods: { GET: 'param-first' } },
];

type Outcome = { pattern: string; handler: string; params: Record<string, string> } | { status: number };

/**
 * The router's contract written the plain way (split the path at every '/', compare segment by
 * segment, in table order): the scanning router must agree with it on every path.
 */
function reference(method: string, rawPath: string): Outcome {
  let path = rawPath;
  if (path === '/api/v1' || path.startsWith('/api/v1/')) {
    path = path.slice('/api/v1'.length) || '/';
    if (path === '/cluster/nodes' || path.startsWith('/cluster/nodes/')) {
      path = `/cluster/members${path.slice('/cluster/nodes'.length)}`;
    }
  }
  const segments = path.split('/').slice(1);
  for (const route of TABLE) {
    const pattern = route.pattern.split('/').slice(1);
    const params: Record<string, string> = {};
    let ok = true;
    let rest = false;
    for (let i = 0; i < pattern.length && ok; i++) {
      const part = pattern[i]!;
      if (part.endsWith('+}')) {
        if (i >= segments.length) ok = false;
        else params[part.slice(1, -2)] = segments.slice(i).join('/');
        rest = true;
        break;
      }
      const segment = segments[i];
      if (segment === undefined) ok = false;
      else if (part.startsWith('{')) {
        if (segment === '') ok = false;
        else params[part.slice(1, -1)] = segment;
      } else if (part !== segment) ok = false;
    }
    if (!ok || (!rest && segments.length !== pattern.length)) continue;
    const handler = route.methods[method as 'GET'];
    if (!handler) return { status: 405 };
    return { pattern: route.pattern, handler, params };
  }
  return { status: 404 };
}

function actual(router: Router<string>, method: string, path: string): Outcome {
  try {
    const m = router.match(method, path);
    return { pattern: m.pattern, handler: m.handler, params: { ...m.params } };
  } catch (e) {
    if (e instanceof ApiError) return { status: e.status };
    throw e;
  }
}

describe('Router', () => {
  const router = new Router(TABLE);

  it('matches literal, one-segment and rest parameters, /api/v1 and the nodes alias', () => {
    assert.deepEqual(actual(router, 'GET', '/kv/a/b%2Fc'), {
      pattern: '/kv/{key+}',
      handler: 'get',
      params: { key: 'a/b%2Fc' },
    });
    assert.deepEqual(actual(router, 'GET', '/kv/'), {
      pattern: '/kv/{key+}',
      handler: 'get',
      params: { key: '' },
    });
    assert.deepEqual(actual(router, 'GET', '/kv'), { pattern: '/kv', handler: 'range', params: {} });
    assert.deepEqual(actual(router, 'POST', '/api/v1/cluster/nodes/n2/promote'), {
      pattern: '/cluster/members/{id}/promote',
      handler: 'promote',
      params: { id: 'n2' },
    });
    assert.deepEqual(actual(router, 'DELETE', '/cluster/members//promote'), { status: 404 });
    assert.deepEqual(actual(router, 'GET', '/health/'), { status: 404 });
    assert.deepEqual(actual(router, 'PATCH', '/kv/a'), { status: 405 });
    assert.deepEqual(actual(router, 'HEAD', '/health'), {
      pattern: '/health',
      handler: 'health',
      params: {},
    });
    assert.deepEqual(actual(router, 'GET', '/zz/x'), {
      pattern: '/{any}/x',
      handler: 'param-first',
      params: { any: 'zz' },
    });
  });

  it('agrees with the split-and-compare reference on random paths', () => {
    const segment = fc.constantFrom(
      '',
      'kv',
      'health',
      'cluster',
      'members',
      'nodes',
      'promote',
      'api',
      'v1',
      'x',
      'n1',
      '%2F',
    );
    const path = fc.array(segment, { minLength: 0, maxLength: 6 }).map((parts) => `/${parts.join('/')}`);
    const method = fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'PATCH');
    fc.assert(
      fc.property(method, path, (m, p) => {
        assert.deepEqual(actual(router, m, p), reference(m, p), `${m} ${p}`);
      }),
      { numRuns: 5000 },
    );
  });

  it('refuses a rest parameter that is not last', () => {
    assert.throws(() => new Router([{ pattern: '/a/{x+}/b', methods: { GET: 'h' } }]), /must be last/);
  });
});
