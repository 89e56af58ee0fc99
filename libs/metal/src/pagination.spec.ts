import {
  answer,
  clientOf,
  device,
  failureOf,
  leaksOf,
  ScriptedServer,
  sendJson,
  thrown,
  withScriptedServer,
  type Reply,
} from '../test/scripted-server';

const PROJECT = '5f0e3a2b-7c1d-4e8f-9a6b-2d4c8e1f0a3b';
const DEVICES = `/projects/${PROJECT}/devices`;

/** Page `n` (1-based) of `pages`, each of `size` devices, with a next link made by `next`. */
function pagesOf(pages: number, size: number, next: (n: number) => string | undefined): Reply {
  return (req, res) => {
    const n = Number(req.query.get('page') ?? '1');
    const devices = Array.from({ length: size }, (_, i) => device(`d${(n - 1) * size + i + 1}`));
    const href = n < pages ? next(n + 1) : undefined;
    sendJson(res, 200, {
      devices,
      meta: { current_page: n, last_page: pages, total: pages * size, ...(href ? { next: { href } } : {}) },
    });
  };
}

describe('listing every page', () => {
  let server: ScriptedServer;
  withScriptedServer((s) => (server = s));

  afterAll(() => {
    expect(thrown.flatMap((e) => leaksOf(e))).toEqual([]);
  });

  it('follows meta.next.href from the host root over 3 pages, keeping the filters', async () => {
    server.on(
      'GET',
      DEVICES,
      pagesOf(3, 2, (n) => `/metal/v1${DEVICES}?page=${n}&per_page=2&tag=cluster%3Ac1`),
    );
    const { client } = clientOf(server);
    const devices = await client.listProjectDevices(PROJECT, { tag: 'cluster:c1', per_page: 2 });
    expect(devices.map((d) => d.id)).toEqual(['d1', 'd2', 'd3', 'd4', 'd5', 'd6']);
    expect(server.log()).toEqual([
      `GET ${DEVICES}?tag=cluster%3Ac1&per_page=2`,
      `GET ${DEVICES}?page=2&per_page=2&tag=cluster%3Ac1`,
      `GET ${DEVICES}?page=3&per_page=2&tag=cluster%3Ac1`,
    ]);
  });

  it('follows an absolute href, and one from the API root, and puts back filters a link left out', async () => {
    server.on(
      'GET',
      DEVICES,
      pagesOf(3, 1, (n) => (n === 2 ? `${server.apiUrl}${DEVICES}?page=2` : `${DEVICES}?page=${n}`)),
    );
    const { client, calls } = clientOf(server);
    const devices = await client.listProjectDevices(PROJECT, {
      tag: 'cluster:c1',
      include: ['facility', 'plan'],
    });
    expect(devices.map((d) => d.id)).toEqual(['d1', 'd2', 'd3']);
    expect(
      server.requests.map((r) => [r.query.get('page'), r.query.get('tag'), r.query.get('include')]),
    ).toEqual([
      [null, 'cluster:c1', 'facility,plan'],
      ['2', 'cluster:c1', 'facility,plan'],
      ['3', 'cluster:c1', 'facility,plan'],
    ]);
    expect(calls.map((c) => `${c.operation} ${c.path}`)).toEqual(
      Array(3).fill(`findProjectDevices ${DEVICES}`),
    );
  });

  it('keeps every value of a multi-valued filter (types) on the next pages', async () => {
    const ips = `/projects/${PROJECT}/ips`;
    server.on('GET', ips, (req, res) => {
      const page = Number(req.query.get('page') ?? '1');
      sendJson(res, 200, {
        ip_addresses: [{ id: `ip${page}`, type: 'public_ipv4' }],
        meta: page < 2 ? { next: { href: `/metal/v1${ips}?page=2` } } : {},
      });
    });
    const { client } = clientOf(server);
    const reservations = await client.listIpReservations(PROJECT, { types: ['public_ipv4', 'private_ipv4'] });
    expect(reservations.map((r) => r.id)).toEqual(['ip1', 'ip2']);
    expect(server.requests.map((r) => r.query.getAll('types'))).toEqual([
      ['public_ipv4', 'private_ipv4'],
      ['public_ipv4', 'private_ipv4'],
    ]);
  });

  it('refuses a next that loops back to a page already read', async () => {
    server.on(
      'GET',
      DEVICES,
      pagesOf(5, 1, (n) => `/metal/v1${DEVICES}?page=${n === 3 ? 1 : n}`),
    );
    const { client } = clientOf(server);
    const e = await failureOf(client.listProjectDevices(PROJECT));
    expect(e).toMatchObject({ kind: 'terminal', status: 200, method: 'GET' });
    expect(e.message).toBe(
      `Metal API GET ${DEVICES}: meta.next.href "/metal/v1${DEVICES}?page=1" of page 2 leads to a page already read (a loop)`,
    );
    expect(server.requests).toHaveLength(2);
  });

  const offTheApi: [string, (s: ScriptedServer) => string][] = [
    ['another host', () => `http://203.0.113.7/metal/v1${DEVICES}?page=2`],
    ['another scheme', (s) => `https://127.0.0.1:${s.port}/metal/v1${DEVICES}?page=2`],
    ['another host, scheme-relative', () => `//203.0.113.7/metal/v1${DEVICES}?page=2`],
    ['outside the API path', (s) => `${s.origin}/other/v1${DEVICES}?page=2`],
    ['a relative path climbing out', () => `../../../../other${DEVICES}?page=2`],
  ];
  it.each(offTheApi)('refuses a next that points off the API: %s', async (_what, hrefOf) => {
    const href = hrefOf(server);
    server.on('GET', DEVICES, answer(200, { devices: [device('d1')], meta: { next: { href } } }));
    const { client } = clientOf(server);
    const e = await failureOf(client.listProjectDevices(PROJECT));
    expect(e.kind).toBe('terminal');
    expect(e.message).toBe(
      `Metal API GET ${DEVICES}: meta.next.href ${JSON.stringify(href)} of page 1 points off ${server.apiUrl}: not followed`,
    );
    expect(server.requests).toHaveLength(1);
  });

  it('stops after maxPages with a clear error', async () => {
    server.on(
      'GET',
      DEVICES,
      pagesOf(1000, 1, (n) => `/metal/v1${DEVICES}?page=${n}`),
    );
    const { client } = clientOf(server, { maxPages: 3 });
    const e = await failureOf(client.listProjectDevices(PROJECT));
    expect(e.kind).toBe('terminal');
    expect(e.message).toMatch(
      /: the list goes on after 3 pages \(3 items\): narrow it \(tag, types\) or raise maxPages or per_page$/,
    );
    expect(server.requests).toHaveLength(3);
  });

  it('refuses a page without its items array, and reads a last page without meta', async () => {
    server.on('GET', DEVICES, answer(200, { meta: {} }));
    server.on('GET', `/projects/${PROJECT}/ips`, answer(200, { ip_addresses: [{ id: 'ip1' }] }));
    const { client } = clientOf(server);
    const e = await failureOf(client.listProjectDevices(PROJECT));
    expect(e.message).toBe(`Metal API GET ${DEVICES}: 200 answer has no "devices" array (page 1)`);
    expect((await client.listIpReservations(PROJECT)).map((r) => r.id)).toEqual(['ip1']);
  });

  it('a failing page fails the list with that page’s error', async () => {
    server.on('GET', DEVICES, (req, res) =>
      req.query.get('page') === '2'
        ? sendJson(res, 404, { errors: ['Not found'] })
        : sendJson(res, 200, { devices: [device('d1')], meta: { next: { href: `${DEVICES}?page=2` } } }),
    );
    const { client } = clientOf(server);
    const e = await failureOf(client.listProjectDevices(PROJECT));
    expect(e).toMatchObject({ kind: 'gone', status: 404, path: DEVICES, errors: ['Not found'] });
  });
});
