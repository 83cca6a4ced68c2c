/**
 * Route table matching for the HTTP API. Paths are matched on their raw (still percent-encoded)
 * segments, so an encoded slash inside a key never splits it; handlers decode their parameters.
 *
 * `/api/v1/...` serves the same routes as the bare paths, and `/api/v1/cluster/nodes...` is an alias
 * of `/cluster/members...`.
 */
import { ApiError } from './api-error.js';

export type HttpMethod = 'GET' | 'PUT' | 'POST' | 'DELETE';

export interface Route<H> {
  /** e.g. `/kv/{key+}`: `{name}` matches one segment, `{name+}` the rest of the path. */
  pattern: string;
  methods: Partial<Record<HttpMethod, H>>;
}

export interface RouteMatch<H> {
  /** The pattern, used as the metrics label. */
  pattern: string;
  handler: H;
  /** Raw (percent-encoded) parameter values. */
  params: Record<string, string>;
}

const API_V1 = '/api/v1';

interface CompiledRoute<H> {
  route: Route<H>;
  segments: string[];
}

export class Router<H> {
  private readonly routes: CompiledRoute<H>[];
  /**
   * Routes by their first segment (in table order), so a request is tried only against the routes
   * that can match it; routes whose first segment is a parameter are tried for every path.
   */
  private readonly byFirstSegment = new Map<string, CompiledRoute<H>[]>();
  private readonly anyFirstSegment: CompiledRoute<H>[] = [];

  constructor(routes: Route<H>[]) {
    this.routes = routes.map((route) => ({ route, segments: route.pattern.split('/').slice(1) }));
    const isParam = (r: CompiledRoute<H>): boolean => (r.segments[0] ?? '').startsWith('{');
    for (const r of this.routes) if (isParam(r)) this.anyFirstSegment.push(r);
    for (const r of this.routes) {
      const first = r.segments[0] ?? '';
      if (isParam(r) || this.byFirstSegment.has(first)) continue;
      // Table order is kept: this segment's routes and the parameter routes, as listed.
      this.byFirstSegment.set(
        first,
        this.routes.filter((x) => isParam(x) || x.segments[0] === first),
      );
    }
  }

  /**
   * Finds the handler for a method and raw path (without the query). Throws 404 not_found for an
   * unknown path and 405 method_not_allowed (with Allow) for a known path and another method.
   */
  match(method: string, rawPath: string): RouteMatch<H> {
    let path = rawPath;
    if (path === API_V1 || path.startsWith(`${API_V1}/`)) {
      path = path.slice(API_V1.length) || '/';
      if (path === '/cluster/nodes' || path.startsWith('/cluster/nodes/')) {
        path = `/cluster/members${path.slice('/cluster/nodes'.length)}`;
      }
    }
    const segments = path.split('/').slice(1);
    const candidates = this.byFirstSegment.get(segments[0] ?? '') ?? this.anyFirstSegment;
    for (const { route, segments: pattern } of candidates) {
      const params = matchSegments(pattern, segments);
      if (!params) continue;
      const handler = route.methods[method as HttpMethod];
      if (!handler) {
        const allow = Object.keys(route.methods).join(', ');
        throw new ApiError(
          405,
          'method_not_allowed',
          `${method} is not allowed on ${route.pattern}; allowed: ${allow}`,
          {},
          { allow },
        );
      }
      return { pattern: route.pattern, handler, params };
    }
    throw new ApiError(404, 'not_found', `no route for ${JSON.stringify(rawPath.slice(0, 200))}`);
  }
}

function matchSegments(pattern: string[], segments: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const part = pattern[i]!;
    if (part.startsWith('{') && part.endsWith('+}')) {
      if (i >= segments.length) return undefined;
      params[part.slice(1, -2)] = segments.slice(i).join('/');
      return params;
    }
    const segment = segments[i];
    if (segment === undefined) return undefined;
    if (part.startsWith('{') && part.endsWith('}')) {
      if (segment === '') return undefined;
      params[part.slice(1, -1)] = segment;
    } else if (part !== segment) {
      return undefined;
    }
  }
  return segments.length === pattern.length ? params : undefined;
}
