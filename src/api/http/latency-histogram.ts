/**
 * `atlas_http_request_duration_seconds`: request latency by route, method and status, kept in
 * plain arrays and exported in prom-client's histogram format at scrape time.
 *
 * Why not prom-client's Histogram: its observe() validates the label names, builds a hash string of
 * the labels and finds the bucket through an object keyed by the bound's decimal text, on every
 * call, and a bound child (`labels(...)`) does the same; at thousands of requests per second that
 * was 3-4% of a node's CPU under read load. Here a request's series is found through three Map
 * lookups on strings the router already holds, and an observation is one array increment.
 *
 * The metric registers itself in a prom-client Registry like any other (the registry needs only
 * `name`, `type`, `get()` / `getForPromString()` and `reset()`), and its text is the same as
 * prom-client's Histogram would print (series labels after `le`, then the registry's defaults).
 */
import type { Histogram, Registry } from 'prom-client';

export interface LatencyLabels {
  route: string;
  method: string;
  status: string;
}

/** One exported sample, in the shape prom-client's registry formats. */
interface SampleValue {
  value: number;
  labels: Record<string, string | number>;
  sharedLabels?: LatencyLabels;
  metricName: string;
  /** null on buckets, undefined on _sum and _count, as prom-client's Histogram gives them. */
  exemplar: null | undefined;
}

interface HistogramSnapshot {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: SampleValue[];
}

/**
 * Series at most. Routes are a fixed table and methods other than GET, HEAD, PUT, POST and DELETE
 * share the label `other` (HttpApiServer), so real traffic stays far below; past the cap, new
 * combinations share one overflow series.
 */
export const MAX_LATENCY_SERIES = 4096;
const OVERFLOW_LABELS: LatencyLabels = { route: 'other', method: 'other', status: 'other' };

/** Counts of one label combination; counts[i] holds observations in (bounds[i-1], bounds[i]]. */
export class LatencySeries {
  /** The last slot counts observations above every bound (only in +Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: LatencyLabels,
    private readonly bounds: Float64Array,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    if (!(seconds >= 0) || seconds === Number.POSITIVE_INFINITY) {
      throw new TypeError(`latency must be a finite non-negative number of seconds, got ${seconds}`);
    }
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
    this.count++;
  }
}

export class RequestLatencyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly bounds: Float64Array;
  /** route -> method -> status -> series */
  private readonly byRoute = new Map<string, Map<string, Map<number, LatencySeries>>>();
  private readonly ordered: LatencySeries[] = [];
  private overflow: LatencySeries | null = null;

  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
    registry: Registry,
  ) {
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i];
      if (!Number.isFinite(b) || (i > 0 && b <= buckets[i - 1])) {
        throw new Error(`${name}: buckets must be finite and strictly increasing`);
      }
    }
    this.bounds = Float64Array.from(buckets);
    // The registry formats any object with this metric's shape; prom-client types only its own classes.
    registry.registerMetric(this as unknown as Histogram);
  }

  /** The series of a route, method and status; created at its first use. */
  series(route: string, method: string, status: number): LatencySeries {
    let byMethod = this.byRoute.get(route);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.byRoute.set(route, byMethod);
    }
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) {
      byStatus = new Map();
      byMethod.set(method, byStatus);
    }
    let series = byStatus.get(status);
    if (series === undefined) {
      if (this.ordered.length >= MAX_LATENCY_SERIES) {
        if (this.overflow === null) {
          this.overflow = new LatencySeries(OVERFLOW_LABELS, this.bounds);
          this.ordered.push(this.overflow);
        }
        return this.overflow;
      }
      series = new LatencySeries({ route, method, status: String(status) }, this.bounds);
      byStatus.set(status, series);
      this.ordered.push(series);
    }
    return series;
  }

  observe(route: string, method: string, status: number, seconds: number): void {
    this.series(route, method, status).observe(seconds);
  }

  /** Every series' samples, with the series labels apart (as prom-client's Histogram hands them to the registry). */
  async getForPromString(): Promise<HistogramSnapshot> {
    const values: SampleValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const s of this.ordered) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.counts[i];
        values.push({
          labels: { le: this.bounds[i] },
          sharedLabels: s.labels,
          value: cumulative,
          metricName: bucketName,
          exemplar: null,
        });
      }
      values.push(
        {
          labels: { le: '+Inf' },
          sharedLabels: s.labels,
          value: s.count,
          metricName: bucketName,
          exemplar: null,
        },
        {
          labels: {},
          sharedLabels: s.labels,
          value: s.sum,
          metricName: `${this.name}_sum`,
          exemplar: undefined,
        },
        {
          labels: {},
          sharedLabels: s.labels,
          value: s.count,
          metricName: `${this.name}_count`,
          exemplar: undefined,
        },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Samples with every label in `labels` (prom-client's Histogram.get()). */
  async get(): Promise<HistogramSnapshot> {
    const snapshot = await this.getForPromString();
    snapshot.values = snapshot.values.map(({ sharedLabels, labels, ...rest }) => ({
      ...rest,
      labels: { ...labels, ...sharedLabels },
    }));
    return snapshot;
  }

  reset(): void {
    this.byRoute.clear();
    this.ordered.length = 0;
    this.overflow = null;
  }
}
