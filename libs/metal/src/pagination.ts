import { quote } from './errors';
import type { MetalTransport } from './transport';

/** A paginated list operation: `GET path?query`, the items under `property`, `meta.next.href` to go on. */
export interface PagedList {
  /** The spec's operationId (`findProjectDevices`, `findIPReservations`). */
  operation: string;
  path: string;
  query: URLSearchParams;
  /** The array property of each page (`devices`, `ip_addresses`). */
  property: string;
}

/**
 * Every item of a paginated list: the first page, then each `meta.next.href` until a page has no
 * next. An href may be absolute, from the host's root or from the API's root; the filters of the
 * first request (`tag`, `types`, `per_page`…) are added to it where it left them out, so a server
 * that drops them from its links cannot widen the list. A next that points off the API URL, one
 * already fetched (a loop), a page without the items array, or more than `maxPages` pages fail as
 * `terminal`: a broken server never makes the loop run forever or carry the token elsewhere.
 */
export async function listAllPages<T>(t: MetalTransport, list: PagedList): Promise<T[]> {
  const all: T[] = [];
  const seen = new Set<string>();
  let url = t.url(list.path, list.query);
  for (let page = 1; ; page++) {
    seen.add(pageKey(url));
    const { status, json } = await t.request({
      operation: list.operation,
      method: 'GET',
      path: list.path,
      url,
    });
    const path = t.pathUnderApi(new URL(url)) ?? list.path;
    const fail = (detail: string) => t.error({ kind: 'terminal', status, method: 'GET', path, detail });
    const body = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
    const items = body[list.property];
    if (!Array.isArray(items)) throw fail(`${status} answer has no "${list.property}" array (page ${page})`);
    all.push(...(items as T[]));

    const href = nextHref(body.meta);
    if (href === undefined) return all;
    if (page >= t.maxPages) {
      throw fail(
        `the list goes on after ${t.maxPages} pages (${all.length} items): narrow it (tag, types) or raise maxPages or per_page`,
      );
    }
    const next = t.resolveHref(href);
    if (!next)
      throw fail(`meta.next.href ${quote(href)} of page ${page} points off ${t.apiUrl}: not followed`);
    for (const key of new Set(list.query.keys())) {
      if (key === 'page' || next.searchParams.has(key)) continue;
      for (const value of list.query.getAll(key)) next.searchParams.append(key, value);
    }
    url = next.toString();
    if (seen.has(url))
      throw fail(`meta.next.href ${quote(href)} of page ${page} leads to a page already read (a loop)`);
  }
}

/** A page's identity: its URL with the query sorted and `page` 1 when absent (the API's default). */
function pageKey(url: string): string {
  const u = new URL(url);
  if (!u.searchParams.has('page')) u.searchParams.set('page', '1');
  u.searchParams.sort();
  return u.toString();
}

/** `meta.next.href`, when it is a non-empty string. */
function nextHref(meta: unknown): string | undefined {
  if (typeof meta !== 'object' || meta === null) return undefined;
  const next = (meta as { next?: unknown }).next;
  if (typeof next !== 'object' || next === null) return undefined;
  const href = (next as { href?: unknown }).href;
  return typeof href === 'string' && href.trim() !== '' ? href : undefined;
}
