/**
 * Reconcile-time percentiles from a manager's /metrics: both managers publish a Prometheus
 * histogram of their reconcile passes (capi-packet-manager `capi_packet_reconcile_duration_seconds`,
 * CAPEM controller-runtime's `controller_runtime_reconcile_time_seconds`), so the p95 of each is
 * read the same way, as Prometheus' `histogram_quantile` does: the bucket holding the rank, linear
 * inside it. Buckets differ (controller-runtime's are finer), which bounds the precision: the
 * bucket edges around each figure are returned with it.
 */

export interface Bucket {
  /** Upper bound in seconds (`+Inf` last). */
  le: number;
  /** Cumulative count. */
  count: number;
}

export interface HistogramQuantile {
  /** Seconds. */
  value: number;
  /** Observations. */
  count: number;
  /** The bucket the value lies in (seconds). */
  bucket: [lower: number, upper: number];
}

/** Labels of one sample line: `name{a="x",b="y"} 3` → `{a: 'x', b: 'y'}`. */
function labels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1] as string] = m[2] as string;
  return out;
}

/**
 * The cumulative buckets of histogram `name`, summed over every series whose labels include
 * `match` (e.g. `{ kind: 'PacketMachine' }` sums the ok and error outcomes).
 */
export function histogramBuckets(text: string, name: string, match: Record<string, string>): Bucket[] {
  const byLe = new Map<number, number>();
  const prefix = `${name}_bucket{`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const close = line.lastIndexOf('}');
    const l = labels(line.slice(prefix.length, close));
    if (!Object.entries(match).every(([k, v]) => l[k] === v)) continue;
    const le = l['le'] === '+Inf' ? Infinity : Number(l['le']);
    const count = Number(
      line
        .slice(close + 1)
        .trim()
        .split(/\s+/)[0],
    );
    if (Number.isNaN(le) || Number.isNaN(count)) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + count);
  }
  return [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/** The q-quantile (0..1) of cumulative buckets, as `histogram_quantile`; undefined without observations. */
export function quantile(q: number, buckets: readonly Bucket[]): HistogramQuantile | undefined {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      // In +Inf: the highest finite bound is all that can be said (as Prometheus answers).
      if (b.le === Infinity) return { value: lower, count: total, bucket: [lower, Infinity] };
      const inside = b.count - below;
      const value = inside === 0 ? b.le : lower + ((b.le - lower) * (rank - below)) / inside;
      return { value, count: total, bucket: [lower, b.le] };
    }
    lower = b.le;
    below = b.count;
  }
  return undefined;
}
