/**
 * Route table matching for the HTTP API. Paths are matched on their raw (still percent-encoded)
 * segments, so an encoded slash inside a key never splits it; handlers decode their parameters.
 *
 * A route with GET also answers HEAD (the same handler; the body is left out by the connection).
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
  params: Readonly<Record<string, string>>;
}

const API_V1 = '/api/v1';
const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

/** One pattern segment: literal text, `{name}` (one non-empty segment) or `{name+}` (the rest). */
type Segment =
  | { kind: 'literal'; text: string }
  | { kind: 'param'; name: string }
  | { kind: 'rest'; name: string };

interface CompiledRoute<H> {
  route: Route<H>;
  segments: Segment[];
  hasParams: boolean;
  /** `Allow` of a 405, computed once. */
  allow: string;
}

function compileSegment(part: string): Segment {
  if (part.startsWith('{') && part.endsWith('+}')) return { kind: 'rest', name: part.slice(1, -2) };
  if (part.startsWith('{') && part.endsWith('}')) return { kind: 'param', name: part.slice(1, -1) };
  return { kind: 'literal', text: part };
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
    this.routes = routes.map((route) => {
      const segments = route.pattern.split('/').slice(1).map(compileSegment);
      for (let i = 0; i < segments.length - 1; i++) {
        if (segments[i]!.kind === 'rest') throw new Error(`Router: {name+} must be last in ${route.pattern}`);
      }
      return {
        route,
        segments,
        hasParams: segments.some((s) => s.kind !== 'literal'),
        allow: [...Object.keys(route.methods), ...(route.methods.GET ? ['HEAD'] : [])].join(', '),
      };
    });
    const isParam = (r: CompiledRoute<H>): boolean => r.segments[0]?.kind !== 'literal';
    for (const r of this.routes) if (isParam(r)) this.anyFirstSegment.push(r);
    for (const r of this.routes) {
      const first = r.segments[0];
      if (first?.kind !== 'literal' || this.byFirstSegment.has(first.text)) continue;
      // Table order is kept: this segment's routes and the parameter routes, as listed.
      this.byFirstSegment.set(
        first.text,
        this.routes.filter((x) => {
          const s = x.segments[0];
          return s?.kind !== 'literal' || s.text === first.text;
        }),
      );
    }
  }

  /**
   * Finds the handler for a method and raw path (without the query). Throws 404 not_found for an
   * unknown path and 405 method_not_allowed (with Allow) for a known path and another method.
   */
  match(method: string, rawPath: string): RouteMatch<H> {
    let path = rawPath;
    if (path.startsWith(API_V1) && (path.length === API_V1.length || path.charCodeAt(API_V1.length) === 47)) {
      path = path.slice(API_V1.length) || '/';
      if (path === '/cluster/nodes' || path.startsWith('/cluster/nodes/')) {
        path = `/cluster/members${path.slice('/cluster/nodes'.length)}`;
      }
    }
    const firstEnd = path.indexOf('/', 1);
    const first = path.slice(1, firstEnd < 0 ? path.length : firstEnd);
    const candidates = this.byFirstSegment.get(first) ?? this.anyFirstSegment;
    for (let c = 0; c < candidates.length; c++) {
      const compiled = candidates[c]!;
      const params = matchPath(compiled, path);
      if (params === undefined) continue;
      // HEAD is GET without the content (RFC 9110 §9.3.2): the connection leaves the body out.
      const handler =
        compiled.route.methods[method as HttpMethod] ??
        (method === 'HEAD' ? compiled.route.methods.GET : undefined);
      if (!handler) {
        throw new ApiError(
          405,
          'method_not_allowed',
          `${method} is not allowed on ${compiled.route.pattern}; allowed: ${compiled.allow}`,
          {},
          { allow: compiled.allow },
        );
      }
      return { pattern: compiled.route.pattern, handler, params };
    }
    throw new ApiError(404, 'not_found', `no route for ${JSON.stringify(rawPath.slice(0, 200))}`);
  }
}

/**
 * Matches a path (starting with `/`) against a route's segments by scanning it in place; the path
 * is split at every `/`, as `path.split('/').slice(1)` would, without building the pieces.
 */
function matchPath<H>(
  compiled: CompiledRoute<H>,
  path: string,
): Readonly<Record<string, string>> | undefined {
  const pattern = compiled.segments;
  const params: Record<string, string> | undefined = compiled.hasParams ? {} : undefined;
  let at = 1; // start of the current segment; past path.length once the segments are used up
  for (let i = 0; i < pattern.length; i++) {
    const part = pattern[i]!;
    if (at > path.length) return undefined; // no segment left
    if (part.kind === 'rest') {
      params![part.name] = path.slice(at);
      return params;
    }
    let end = path.indexOf('/', at);
    if (end < 0) end = path.length;
    if (part.kind === 'param') {
      if (end === at) return undefined;
      params![part.name] = path.slice(at, end);
    } else if (end - at !== part.text.length || !path.startsWith(part.text, at)) {
      return undefined;
    }
    at = end + 1;
  }
  if (at !== path.length + 1) return undefined; // segments left over
  return params ?? NO_PARAMS;
}
