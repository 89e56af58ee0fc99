import { isAbortError } from '@knet/runtime';
import {
  API_KEY,
  ApiServer,
  clientOf,
  connectorNode,
  globalId,
  NETWORK,
  page,
  sendData,
  sendJson,
  type Reply,
  withApiServer,
} from '../test/api-server';
import { TwingateClient } from './client';

const TOKENS = { accessToken: 'eyJhbGciOiJFUzI1NiJ9.eyJ0IjoxfQ.c2ln', refreshToken: 'rt_0123456789abcdef' };

describe('TwingateClient', () => {
  let server: ApiServer;
  withApiServer((s) => (server = s));

  it("counts calls, attempts, reads, writes, retries and 429s over the seed's provisioning flow", async () => {
    const turns = new Map<string, number>();
    const replies: Record<string, Reply[]> = {
      remoteNetworks: [(_req, res) => sendData(res, { remoteNetworks: page([NETWORK], false) })],
      remoteNetwork: [
        (_req, res) =>
          sendData(res, {
            remoteNetwork: {
              ...NETWORK,
              connectors: page([connectorNode(1), connectorNode(2)], true, 'YXJyYXljb25uZWN0aW9uOjE='),
            },
          }),
        (_req, res) =>
          sendData(res, {
            remoteNetwork: {
              ...NETWORK,
              connectors: page([connectorNode(3, { state: 'DEAD_NO_HEARTBEAT' })], false),
            },
          }),
      ],
      connectorCreate: [
        (_req, res) => sendJson(res, 503, { detail: 'upstream unavailable' }),
        (_req, res) =>
          sendData(res, { connectorCreate: { ok: true, error: null, entity: connectorNode(4) } }),
      ],
      connectorGenerateTokens: [
        (_req, res) => sendJson(res, 429, { detail: 'Request was throttled.' }, { 'Retry-After': '1' }),
        (_req, res) =>
          sendData(res, { connectorGenerateTokens: { ok: true, error: null, connectorTokens: TOKENS } }),
      ],
    };
    server.onPost = (req, res) => {
      if (req.path === '/api/v4/connector/validate_tokens') return sendJson(res, 200, {});
      const name = req.operation ?? '';
      const turn = turns.get(name) ?? 0;
      turns.set(name, turn + 1);
      return replies[name]?.[turn]?.(req, res);
    };
    const { client, waits } = clientOf(server, { pageSize: 2 });

    const network = await client.remoteNetworkByName('k8s-prod');
    expect(network).toEqual(NETWORK);
    const existing = await client.listConnectors(NETWORK.id);
    expect(existing.filter((c) => c.state !== 'ALIVE').map((c) => c.id)).toEqual([globalId('Connector', 3)]);
    const created = await client.createConnector({ remoteNetworkId: NETWORK.id });
    const tokens = await client.generateTokens(created.id);
    expect(await client.validateTokens(tokens)).toBe(true);

    expect(waits).toEqual([500, 1000]);
    expect(client.stats).toEqual({ calls: 6, attempts: 8, reads: 4, writes: 2, retries: 2, rateLimited: 1 });
    // The HEAD probe is sent once and is not counted.
    expect(server.requests.filter((r) => r.method === 'HEAD')).toHaveLength(1);
  });

  it('starts at the configured base URL', () => {
    const client = new TwingateClient({ apiKey: API_KEY, account: 'acme' });
    expect(client.baseUrl).toBe('https://acme.twingate.com');
    expect(client.stats).toEqual({ calls: 0, attempts: 0, reads: 0, writes: 0, retries: 0, rateLimited: 0 });
  });

  it.each([
    [{ apiKey: '', account: 'acme' }, 'twingate: no API key given (TWINGATE_API_KEY)'],
    [{ apiKey: API_KEY, apiUrl: 'http://acme.example.com' }, /plain http, allowed only for a loopback host/],
    [
      { apiKey: API_KEY, account: 'acme', maxConcurrency: 0 },
      'twingate: maxConcurrency must be a positive integer, got 0',
    ],
    [
      { apiKey: API_KEY, account: 'acme', pageSize: 2.5 },
      'twingate: pageSize must be a positive integer, got 2.5',
    ],
    [
      { apiKey: API_KEY, account: 'acme', deadlineMs: -1 },
      'twingate: deadlineMs must be a positive integer, got -1',
    ],
  ])('refuses %j', (options, message) => {
    expect(() => new TwingateClient(options)).toThrow(message);
  });

  it('an abort also frees calls queued behind the concurrency cap', async () => {
    const controller = new AbortController();
    // Never answers; the abort comes once the first call is at the server (the other two wait
    // behind the cap). A fixed delay raced the first POST on a busy machine.
    server.onPost = () => void setTimeout(() => controller.abort(), 20);
    const { client } = clientOf(server, { maxConcurrency: 1, signal: controller.signal });
    const calls = [client.getConnector('a'), client.getConnector('b'), client.listAllConnectors()];
    const results = await Promise.all(
      calls.map((c) =>
        c.then(
          () => 'resolved',
          (e: unknown) => e,
        ),
      ),
    );
    expect(results.map(isAbortError)).toEqual([true, true, true]);
    expect(server.posts()).toHaveLength(1);
  });
});
