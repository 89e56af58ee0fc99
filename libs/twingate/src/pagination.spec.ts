import {
  ApiServer,
  clientOf,
  connectorNode,
  globalId,
  NETWORK,
  page,
  sendData,
  type SeenRequest,
  withApiServer,
} from '../test/api-server';
import { TwingateError } from './errors';
import { fetchAllPages, paginate, type Connection } from './pagination';

const host = '127.0.0.1:1';
const api = {
  host,
  error: (kind: TwingateError['kind'], operation: string, message: string) =>
    new TwingateError(kind, operation, message),
};

/** Base64 cursors like the API's (`YXJyYXljb25uZWN0aW9uOjQ5` = `arrayconnection:49`). */
const cursor = (n: number) => Buffer.from(`arrayconnection:${n}`).toString('base64');

describe('paginate', () => {
  it('yields every node of every page, following endCursor, until hasNextPage is false', async () => {
    const pages: Record<string, Connection<number>> = {
      first: { pageInfo: { hasNextPage: true, endCursor: cursor(1) }, edges: [{ node: 1 }, { node: 2 }] },
      [cursor(1)]: { pageInfo: { hasNextPage: true, endCursor: cursor(3) }, edges: [{ node: 3 }] },
      [cursor(3)]: { pageInfo: { hasNextPage: false }, edges: [{ node: 4 }] },
    };
    const asked: (string | undefined)[] = [];
    const nodes = await fetchAllPages(api, 'connectors', async (after) => {
      asked.push(after);
      const p = pages[after ?? 'first'];
      if (!p) throw new Error(`no page after ${String(after)}`);
      return p;
    });
    expect(nodes).toEqual([1, 2, 3, 4]);
    expect(asked).toEqual([undefined, cursor(1), cursor(3)]);
  });

  it('stops at the first page that says there is no next one, even with a cursor', async () => {
    let calls = 0;
    const nodes = await fetchAllPages(api, 'connectors', async () => {
      calls++;
      return { pageInfo: { hasNextPage: false, endCursor: cursor(9) }, edges: [] };
    });
    expect(nodes).toEqual([]);
    expect(calls).toBe(1);
  });

  it('refuses a cursor it has seen before (a cycle, not only the same cursor twice)', async () => {
    const next: Record<string, string> = { first: cursor(1), [cursor(1)]: cursor(2), [cursor(2)]: cursor(1) };
    let calls = 0;
    const err: unknown = await fetchAllPages(api, 'connectors', async (after) => {
      calls++;
      return {
        pageInfo: { hasNextPage: true, endCursor: next[after ?? 'first'] ?? null },
        edges: [{ node: calls }],
      };
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TwingateError);
    expect(err).toMatchObject({
      kind: 'protocol',
      message: `connectors: the page cursor from ${host} did not advance (endCursor "${cursor(1)}" again after 3 pages)`,
    });
    expect(calls).toBe(3);
  });

  it('refuses hasNextPage without an endCursor', async () => {
    const err: unknown = await fetchAllPages(api, 'remoteNetworks', async () => ({
      pageInfo: { hasNextPage: true, endCursor: null },
      edges: [],
    })).catch((e: unknown) => e);
    expect(err).toMatchObject({
      kind: 'protocol',
      message: `remoteNetworks: a page from ${host} says hasNextPage but gives no endCursor (after 1 pages)`,
    });
  });

  it('is lazy: a consumer that stops early fetches no further page', async () => {
    let calls = 0;
    for await (const node of paginate(api, 'connectors', async (after) => {
      calls++;
      return { pageInfo: { hasNextPage: true, endCursor: `${after ?? ''}x` }, edges: [{ node: calls }] };
    })) {
      if (node === 2) break;
    }
    expect(calls).toBe(2);
  });
});

describe('paginated queries against the API', () => {
  let server: ApiServer;
  withApiServer((s) => (server = s));

  /** Answers `connectors` from `nodes`, `first` at a time, the last page without endCursor. */
  function serveConnectors(nodes: Record<string, unknown>[], field: 'connectors' | 'remoteNetwork'): void {
    server.onPost = (req: SeenRequest, res) => {
      const first = Number(req.variables?.['first']);
      const after = req.variables?.['after'];
      const start =
        typeof after === 'string' ? Number(Buffer.from(after, 'base64').toString().split(':')[1]) + 1 : 0;
      const slice = nodes.slice(start, start + first);
      const last = start + slice.length - 1;
      const more = last < nodes.length - 1;
      const connection = page(slice, more, more ? cursor(last) : undefined);
      if (field === 'connectors') sendData(res, { connectors: connection });
      else sendData(res, { remoteNetwork: { ...NETWORK, connectors: connection } });
    };
  }

  const seven = Array.from({ length: 7 }, (_, i) => connectorNode(i + 1));

  it('listAllConnectors reads 3 pages of 3, 3 and 1 (the last without endCursor)', async () => {
    serveConnectors(seven, 'connectors');
    const { client } = clientOf(server, { pageSize: 3 });
    const connectors = await client.listAllConnectors();
    expect(connectors.map((c) => c.id)).toEqual(seven.map((c) => c['id']));
    expect(server.posts().map((r) => [r.operation, r.variables])).toEqual([
      ['connectors', { first: 3 }],
      ['connectors', { first: 3, after: cursor(2) }],
      ['connectors', { first: 3, after: cursor(5) }],
    ]);
    expect(client.stats).toMatchObject({ calls: 3, reads: 3, writes: 0, attempts: 3 });
  });

  it('pages by 50 unless told otherwise', async () => {
    serveConnectors(seven, 'connectors');
    const { client } = clientOf(server);
    expect(await client.listAllConnectors()).toHaveLength(7);
    expect(server.posts().map((r) => r.variables)).toEqual([{ first: 50 }]);
  });

  it('listConnectors pages remoteNetwork(id){connectors} to the last page', async () => {
    serveConnectors(seven, 'remoteNetwork');
    const { client } = clientOf(server, { pageSize: 3 });
    const connectors = await client.listConnectors(NETWORK.id);
    expect(connectors).toHaveLength(7);
    expect(connectors[6]).toMatchObject({ id: globalId('Connector', 7), remoteNetwork: NETWORK });
    expect(server.posts().map((r) => r.variables)).toEqual([
      { id: NETWORK.id, first: 3 },
      { id: NETWORK.id, first: 3, after: cursor(2) },
      { id: NETWORK.id, first: 3, after: cursor(5) },
    ]);
  });

  it('listConnectors of an unknown network is a graphql error', async () => {
    server.onPost = (_req, res) => sendData(res, { remoteNetwork: null });
    const { client } = clientOf(server);
    const err: unknown = await client.listConnectors(globalId('RemoteNetwork', 99)).catch((e: unknown) => e);
    expect(err).toMatchObject({
      kind: 'graphql',
      operation: 'remoteNetwork',
      message: `remoteNetwork: no remote network with id "${globalId('RemoteNetwork', 99)}" (path remoteNetwork, at 127.0.0.1:${server.port})`,
    });
  });

  it('a server whose cursor does not advance is a protocol error after two requests, never a loop', async () => {
    server.onPost = (_req, res) => sendData(res, { connectors: page([connectorNode(1)], true, cursor(0)) });
    const { client } = clientOf(server);
    const err: unknown = await client.listAllConnectors().catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'protocol', operation: 'connectors' });
    expect((err as Error).message).toMatch(/did not advance/);
    expect(server.posts()).toHaveLength(2);
  });

  it('remoteNetworkByName filters by name on every page and returns the exact match', async () => {
    const other = { id: globalId('RemoteNetwork', 3), name: 'k8s-prod-old' };
    server.onPost = (req, res) => {
      if (req.variables?.['after'] === undefined) {
        sendData(res, { remoteNetworks: page([other], true, cursor(0)) });
      } else {
        sendData(res, { remoteNetworks: page([NETWORK], false) });
      }
    };
    const { client } = clientOf(server);
    expect(await client.remoteNetworkByName('k8s-prod')).toEqual(NETWORK);
    const [first] = server.posts();
    expect(first?.query).toContain(
      'remoteNetworks(first: $first, after: $after, filter: { name: { eq: $name } })',
    );
    expect(server.posts().map((r) => r.variables)).toEqual([
      { name: 'k8s-prod', first: 50 },
      { name: 'k8s-prod', first: 50, after: cursor(0) },
    ]);
  });

  it('remoteNetworkByName is undefined when there is none', async () => {
    server.onPost = (_req, res) => sendData(res, { remoteNetworks: page([], false) });
    const { client } = clientOf(server);
    expect(await client.remoteNetworkByName('nope')).toBeUndefined();
  });
});
