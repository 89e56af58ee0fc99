/**
 * What the fake Metal API saw of one manager: its request log (`FakeMetalApi.calls`, every request
 * answered, 429s and other errors included, as the API's rate limit counts them) summarised per
 * operation, with the device listings' paging.
 */
import type { MetalCall } from '@knet/testing';

export interface CallSummary {
  total: number;
  /** `METHOD /path` with ids as `{id}` → count. */
  byOperation: Record<string, number>;
  /** Status → count. */
  byStatus: Record<string, number>;
  /** Answers 429 (rate limit or injected). */
  tooMany: number;
  /** `GET /projects/{id}/devices`: requests, how many asked for a page > 1, the `per_page` values sent, and whether a `tag` filter was sent. */
  deviceLists: {
    requests: number;
    laterPages: number;
    perPage: string[];
    tagFiltered: number;
  };
  /** `GET /projects/{id}/ips` requests (both providers find the cluster's elastic IP this way). */
  ipLists: number;
}

const ID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** Summarises `calls` (a slice of the fake's log). */
export function summarise(calls: readonly MetalCall[]): CallSummary {
  const byOperation: Record<string, number> = {};
  const byStatus: Record<string, number> = {};
  const perPage = new Set<string>();
  const deviceLists = { requests: 0, laterPages: 0, perPage: [] as string[], tagFiltered: 0 };
  let ipLists = 0;
  for (const c of calls) {
    const op = `${c.method} ${c.path.replace(ID, '{id}')}`;
    byOperation[op] = (byOperation[op] ?? 0) + 1;
    byStatus[String(c.status)] = (byStatus[String(c.status)] ?? 0) + 1;
    if (op === 'GET /projects/{id}/devices') {
      deviceLists.requests++;
      if (Number(one(c.query['page']) ?? '1') > 1) deviceLists.laterPages++;
      perPage.add(one(c.query['per_page']) ?? '(default)');
      if (c.query['tag'] !== undefined) deviceLists.tagFiltered++;
    }
    if (op === 'GET /projects/{id}/ips') ipLists++;
  }
  deviceLists.perPage = [...perPage].sort();
  return {
    total: calls.length,
    byOperation,
    byStatus,
    tooMany: byStatus['429'] ?? 0,
    deviceLists,
    ipLists,
  };
}

/** `GET /devices/{id}: 412, POST …: 100` for the progress log, largest first. */
export function describeOperations(s: CallSummary): string {
  return Object.entries(s.byOperation)
    .sort((a, b) => b[1] - a[1])
    .map(([op, n]) => `${op}: ${n}`)
    .join(', ');
}
