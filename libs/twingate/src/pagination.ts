import { z } from 'zod';
import type { GraphqlRunner } from './transport';

/** Relay page info; the last page may omit `endCursor`. */
export interface PageInfo {
  hasNextPage: boolean;
  endCursor?: string | null;
}

/** A Relay connection as the Twingate API returns it: `{pageInfo{…} edges{node{…}}}`. */
export interface Connection<T> {
  pageInfo: PageInfo;
  edges: { node: T }[];
}

/** The selection of a connection around `node`'s fields, for the query constants. */
export function connectionFields(nodeFields: string): string {
  return `pageInfo { hasNextPage endCursor } edges { node { ${nodeFields} } }`;
}

/** The zod schema of a connection of `node`. */
export function connectionSchema<T>(node: z.ZodType<T>): z.ZodType<Connection<T>> {
  return z.object({
    pageInfo: z.object({ hasNextPage: z.boolean(), endCursor: z.string().nullish() }),
    edges: z.array(z.object({ node })),
  });
}

/** Fetches one page: `after` is undefined for the first, then the previous page's `endCursor`. */
export type FetchPage<T> = (after: string | undefined) => Promise<Connection<T>>;

/**
 * Every node of a paginated query, page after page, until `hasNextPage` is false. A page that says
 * there is more but gives no cursor, or a cursor seen before, is a `protocol` error: the loop never
 * runs forever on a broken server.
 */
export async function* paginate<T>(
  api: Pick<GraphqlRunner, 'host' | 'error'>,
  operation: string,
  fetchPage: FetchPage<T>,
): AsyncGenerator<T, void, undefined> {
  const seen = new Set<string>();
  let after: string | undefined;
  for (;;) {
    const page = await fetchPage(after);
    for (const edge of page.edges) yield edge.node;
    if (!page.pageInfo.hasNextPage) return;
    const next = page.pageInfo.endCursor;
    if (!next) {
      throw api.error(
        'protocol',
        operation,
        `${operation}: a page from ${api.host} says hasNextPage but gives no endCursor (after ${seen.size + 1} pages)`,
      );
    }
    if (seen.has(next)) {
      throw api.error(
        'protocol',
        operation,
        `${operation}: the page cursor from ${api.host} did not advance (endCursor ${JSON.stringify(next)} again after ${
          seen.size + 1
        } pages)`,
      );
    }
    seen.add(next);
    after = next;
  }
}

/** `paginate` collected into an array. */
export async function fetchAllPages<T>(
  api: Pick<GraphqlRunner, 'host' | 'error'>,
  operation: string,
  fetchPage: FetchPage<T>,
): Promise<T[]> {
  const all: T[] = [];
  for await (const node of paginate(api, operation, fetchPage)) all.push(node);
  return all;
}
