import { isAbortError, RecordingLogger } from '@knet/runtime';
import type { ServerResponse } from 'node:http';
import {
  API_KEY,
  ApiServer,
  failure,
  clientOf,
  connectorNode,
  inTurn,
  redirectTo,
  type Reply,
  sendData,
  sendGraphqlError,
  sendJson,
  sendMutationRefused,
  withApiServer,
} from '../test/api-server';
import { TwingateClient } from './client';
import { isMutation } from './transport';

const CONNECTOR_1 = 'Q29ubmVjdG9yOjE=';

function answer(res: ServerResponse): void {
  sendData(res, { connector: connectorNode(1) });
}

const ok: Reply = (_req, res) => answer(res);

function status(code: number, headers: Record<string, string> = {}) {
  return (_req: unknown, res: ServerResponse) => sendJson(res, code, { detail: `status ${code}` }, headers);
}

describe('transport', () => {
  let server: ApiServer;
  const others: ApiServer[] = [];
  withApiServer((s) => (server = s));

  afterEach(async () => {
    await Promise.all(others.splice(0).map((s) => s.close()));
  });

  it('POSTs {query, variables} as JSON with the key and user agent, after one HEAD probe', async () => {
    server.onPost = ok;
    const { client } = clientOf(server, { userAgent: 'knet-connector-init/1.2.3' });
    await client.getConnector(CONNECTOR_1);
    await client.getConnector(CONNECTOR_1);

    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'HEAD /api/graphql/',
      'POST /api/graphql/',
      'POST /api/graphql/',
    ]);
    const [head, post] = server.requests;
    expect(head?.headers['x-api-key']).toBeUndefined();
    expect(post?.headers['x-api-key']).toBe(API_KEY);
    expect(post?.headers['content-type']).toBe('application/json');
    expect(post?.headers['user-agent']).toBe('knet-connector-init/1.2.3');
    expect(JSON.parse(post?.body ?? '')).toEqual({
      query: expect.stringContaining('connector(id: $id)'),
      variables: { id: CONNECTOR_1 },
    });
  });

  it('sends the default user agent knet-twingate/0.0.0', async () => {
    server.onPost = ok;
    const { client } = clientOf(server);
    await client.getConnector(CONNECTOR_1);
    expect(server.posts()[0]?.headers['user-agent']).toBe('knet-twingate/0.0.0');
  });

  describe('429', () => {
    it('waits Retry-After (delta-seconds), then retries', async () => {
      server.onPost = inTurn(status(429, { 'Retry-After': '7' }), ok);
      const { client, waits } = clientOf(server);
      expect(await client.getConnector(CONNECTOR_1)).toMatchObject({ id: CONNECTOR_1 });
      expect(waits).toEqual([7000]);
      expect(client.stats).toEqual({
        calls: 1,
        attempts: 2,
        reads: 1,
        writes: 0,
        retries: 1,
        rateLimited: 1,
      });
    });

    it('adds up to one second at random to Retry-After, so clients told the same second do not all return at once', async () => {
      server.onPost = inTurn(status(429, { 'Retry-After': '7' }), ok);
      const { client, waits } = clientOf(server, { random: () => 0.75 });
      await client.getConnector(CONNECTOR_1);
      expect(waits).toEqual([7750]);
    });

    it('waits until a Retry-After HTTP date', async () => {
      const at = new Date(Date.now() + 5000).toUTCString();
      server.onPost = inTurn(status(429, { 'Retry-After': at }), ok);
      const { client, waits } = clientOf(server);
      await client.getConnector(CONNECTOR_1);
      expect(waits).toHaveLength(1);
      // HTTP dates have whole seconds: the wait is within the second before the date.
      expect(waits[0]).toBeGreaterThan(3000);
      expect(waits[0]).toBeLessThanOrEqual(5000);
    });

    it('waits 60 s when Retry-After is absent', async () => {
      server.onPost = inTurn(status(429), status(429, { 'Retry-After': 'soon' }), ok);
      const { client, waits } = clientOf(server, { deadlineMs: 300_000 });
      await client.getConnector(CONNECTOR_1);
      expect(waits).toEqual([60_000, 60_000]);
      expect(client.stats.rateLimited).toBe(2);
    });

    it('waits at least 500 ms when Retry-After is 0 or in the past', async () => {
      server.onPost = inTurn(
        status(429, { 'Retry-After': '0' }),
        status(429, { 'Retry-After': 'Thu, 01 Jan 2015 00:00:00 GMT' }),
        ok,
      );
      const { client, waits } = clientOf(server);
      await client.getConnector(CONNECTOR_1);
      expect(waits).toEqual([500, 500]);
    });

    it('throws rate-limit at once when the wait would overrun the deadline', async () => {
      server.onPost = status(429, { 'Retry-After': '600' });
      const { client, waits } = clientOf(server, { deadlineMs: 120_000 });
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(err).toMatchObject({
        kind: 'rate-limit',
        operation: 'connector',
        status: 429,
        retryAfterMs: 600_000,
      });
      expect(err.message).toBe(
        `connector: the Twingate API at 127.0.0.1:${server.port} is rate-limiting (HTTP 429) and asks to wait 600 s, ` +
          'more than the 120 s left of the 120 s deadline',
      );
      expect(waits).toEqual([]);
      expect(server.posts()).toHaveLength(1);
    });

    it('counts earlier waits against the deadline', async () => {
      server.onPost = status(429, { 'Retry-After': '50' });
      const { client, waits } = clientOf(server, { deadlineMs: 120_000 });
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(err.kind).toBe('rate-limit');
      expect(waits).toEqual([50_000, 50_000]);
      expect(client.stats).toMatchObject({ attempts: 3, retries: 2, rateLimited: 3 });
    });
  });

  describe('5xx and network errors', () => {
    it('retries 5xx with exponential backoff, then succeeds', async () => {
      server.onPost = inTurn(status(503), status(502), status(500), ok);
      const { client, waits } = clientOf(server);
      expect(await client.getConnector(CONNECTOR_1)).toMatchObject({ name: 'connector-1' });
      expect(waits).toEqual([500, 1000, 2000]);
      expect(client.stats).toMatchObject({ calls: 1, attempts: 4, retries: 3 });
    });

    it('jitters the backoff fully: random() scales the whole wait', async () => {
      server.onPost = inTurn(status(503), status(503), ok);
      const { client, waits } = clientOf(server, { random: () => 0.75 });
      await client.getConnector(CONNECTOR_1);
      expect(waits).toEqual([125, 250]);
    });

    it('gives up with the last http error when the next wait does not fit in the deadline', async () => {
      server.onPost = status(503);
      const { client, waits } = clientOf(server, { deadlineMs: 5000 });
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(waits).toEqual([500, 1000, 2000]);
      expect(err).toMatchObject({ kind: 'http', status: 503, operation: 'connector' });
      expect(err.message).toBe(
        `connector: HTTP 503 Service Unavailable from 127.0.0.1:${server.port} (gave up after 4 attempts within the 5 s deadline)`,
      );
    });

    it('caps the backoff at 30 s', async () => {
      server.onPost = status(502);
      const { client, waits } = clientOf(server, { deadlineMs: 200_000 });
      await failure(client.getConnector(CONNECTOR_1));
      expect(waits).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000]);
    });

    it('retries connection errors, then throws network', async () => {
      const gone = await ApiServer.start();
      await gone.close();
      const { client, waits } = clientOf(gone, { deadlineMs: 2000 });
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(err.kind).toBe('network');
      expect(err.message).toMatch(
        new RegExp(
          `^connector: cannot reach 127.0.0.1:${gone.port}: .*ECONNREFUSED.* \\(gave up after 3 attempts`,
        ),
      );
      expect(waits).toEqual([500, 1000]);
      expect(client.stats.attempts).toBe(3);
    });

    it('an attempt without an answer within attemptTimeoutMs is a network error, retried', async () => {
      let n = 0;
      server.onPost = (_req, res) => {
        if (n++ === 0) return; // never answers
        answer(res);
      };
      const { client, waits } = clientOf(server, { attemptTimeoutMs: 100 });
      expect(await client.getConnector(CONNECTOR_1)).toMatchObject({ id: CONNECTOR_1 });
      expect(waits).toEqual([500]);
      expect(client.stats).toMatchObject({ attempts: 2, retries: 1 });
    });

    it('throws deadline when the deadline runs out during an attempt', async () => {
      server.onPost = () => undefined; // never answers
      const { client } = clientOf(server, { deadlineMs: 300, attemptTimeoutMs: 10_000 });
      const started = Date.now();
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(Date.now() - started).toBeLessThan(5000);
      expect(err.kind).toBe('deadline');
      expect(err.message).toBe(
        `connector: no answer from 127.0.0.1:${server.port} within the 300 ms deadline (1 attempt)`,
      );
    });

    it('throws deadline naming the last failure when time runs out after retries', async () => {
      server.onPost = inTurn(status(503), () => undefined);
      const { client } = clientOf(server, { deadlineMs: 800, attemptTimeoutMs: 10_000 });
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(err.kind).toBe('deadline');
      expect(err.message).toMatch(
        /within the 800 ms deadline \(2 attempts; last: HTTP 503 Service Unavailable from/,
      );
    });
  });

  describe('auth and other 4xx', () => {
    it.each([401, 403])('HTTP %i is an auth error at once', async (code) => {
      server.onPost = status(code);
      const { client, waits } = clientOf(server);
      const err = await failure(client.listAllConnectors());
      expect(err).toMatchObject({ kind: 'auth', status: code, operation: 'connectors' });
      expect(err.message).toBe(
        `connectors: the Twingate API at 127.0.0.1:${server.port} refused the API key (HTTP ${code}): check TWINGATE_API_KEY`,
      );
      expect(waits).toEqual([]);
      expect(server.posts()).toHaveLength(1);
    });

    it('other 4xx are http errors at once; a GraphQL message in the body is kept', async () => {
      server.onPost = inTurn(status(404), (_req, res) =>
        sendJson(res, 400, { errors: [{ message: 'Syntax Error: Unexpected Name "qeury".' }] }),
      );
      const { client, waits } = clientOf(server);
      const notFound = await failure(client.getConnector(CONNECTOR_1));
      expect(notFound).toMatchObject({ kind: 'http', status: 404 });
      expect(notFound.message).toBe(`connector: HTTP 404 Not Found from 127.0.0.1:${server.port}`);
      const bad = await failure(client.getConnector(CONNECTOR_1));
      expect(bad.message).toBe(
        `connector: HTTP 400 Bad Request from 127.0.0.1:${server.port}: Syntax Error: Unexpected Name "qeury".`,
      );
      expect(waits).toEqual([]);
    });
  });

  describe('answers', () => {
    it('refuses an answer over 8 MiB, with or without Content-Length', async () => {
      const big = 'x'.repeat(9 * 1024 * 1024);
      server.onPost = inTurn(
        (_req, res) => sendData(res, { connector: connectorNode(1, { hostname: big }) }),
        (_req, res) => {
          res.writeHead(200, { 'Content-Type': 'application/json' }); // chunked
          res.write('{"data":{"connector":{"hostname":"');
          res.write(big);
          res.end('"}}}');
        },
      );
      const { client } = clientOf(server);
      for (let i = 0; i < 2; i++) {
        const err = await failure(client.getConnector(CONNECTOR_1));
        expect(err.kind).toBe('protocol');
        expect(err.message).toBe(`connector: the answer from 127.0.0.1:${server.port} is larger than 8 MiB`);
      }
    });

    it('takes an answer just under 8 MiB', async () => {
      server.onPost = (_req, res) =>
        sendData(res, { connector: connectorNode(1, { hostname: 'x'.repeat(8_000_000) }) });
      const { client } = clientOf(server);
      expect((await client.getConnector(CONNECTOR_1))?.hostname).toHaveLength(8_000_000);
    });

    it('an answer that is not JSON is a protocol error', async () => {
      server.onPost = (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end('<html>Twingate maintenance</html>');
      };
      const { client } = clientOf(server);
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(err.kind).toBe('protocol');
      expect(err.message).toBe(
        `connector: the answer from 127.0.0.1:${server.port} is not JSON (HTTP 200, text/html)`,
      );
    });

    it('a JSON answer with neither data nor errors is a protocol error', async () => {
      server.onPost = (_req, res) => sendJson(res, 200, { hello: 'world' });
      const { client } = clientOf(server);
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(err.kind).toBe('protocol');
      expect(err.message).toMatch(/has neither data nor errors/);
    });
  });

  describe('shard', () => {
    it('a 308 on the HEAD probe moves every call to the shard origin', async () => {
      const shard = await ApiServer.start();
      others.push(shard);
      server.onHead = redirectTo(`${shard.url}/api/graphql/`);
      shard.onPost = ok;
      const logger = new RecordingLogger();
      const { client } = clientOf(server, { logger });
      await client.getConnector(CONNECTOR_1);
      await client.getConnector(CONNECTOR_1);
      expect(client.baseUrl).toBe(shard.url);
      expect(server.requests.map((r) => r.method)).toEqual(['HEAD']);
      expect(shard.posts()).toHaveLength(2);
      expect(shard.requests.filter((r) => r.method === 'HEAD')).toHaveLength(0);
      expect(logger.messages('info')).toEqual([
        `Twingate API shard: HTTP 308 on the shard probe, using 127.0.0.1:${shard.port}`,
      ]);
    });

    it('a 307 on the probe works too, a relative Location stays on the host', async () => {
      server.onHead = redirectTo('/api/graphql/', 307);
      server.onPost = ok;
      const { client } = clientOf(server);
      await client.getConnector(CONNECTOR_1);
      expect(client.baseUrl).toBe(server.url);
      expect(server.posts()).toHaveLength(1);
    });

    it('keeps the base on any other HEAD answer, a failed HEAD, or a redirect to plain http', async () => {
      const answers: ((res: ServerResponse) => void)[] = [
        (res) => {
          res.writeHead(200);
          res.end();
        },
        (res) => res.destroy(),
        (res) => {
          res.writeHead(308, { Location: 'http://acme.us1.twingate.com/api/graphql/' });
          res.end();
        },
        (res) => {
          res.writeHead(301, { Location: 'https://acme.us1.twingate.com/api/graphql/' });
          res.end();
        },
      ];
      for (const answer of answers) {
        const api = await ApiServer.start();
        others.push(api);
        api.onHead = (_req, res) => answer(res);
        api.onPost = ok;
        const { client } = clientOf(api);
        expect(await client.getConnector(CONNECTOR_1)).toMatchObject({ id: CONNECTOR_1 });
        expect(client.baseUrl).toBe(api.url);
        expect(api.posts()).toHaveLength(1);
      }
    });

    it('a 308 on a POST moves to the shard and sends the request again, once', async () => {
      const shard = await ApiServer.start();
      others.push(shard);
      server.onPost = redirectTo(`${shard.url}/api/graphql/`);
      shard.onPost = ok;
      const { client, waits } = clientOf(server);
      await client.getConnector(CONNECTOR_1);
      await client.getConnector(CONNECTOR_1);
      expect(client.baseUrl).toBe(shard.url);
      expect(server.posts()).toHaveLength(1);
      expect(shard.posts().map((r) => r.body)).toEqual([server.posts()[0]?.body, server.posts()[0]?.body]);
      expect(client.stats).toMatchObject({ calls: 2, attempts: 3, retries: 0 });
      expect(waits).toEqual([]);
    });

    it('a second 308 in the same call is an http error', async () => {
      const shard = await ApiServer.start();
      others.push(shard);
      server.onPost = redirectTo(`${shard.url}/api/graphql/`);
      shard.onPost = redirectTo(`${server.url}/api/graphql/`);
      const { client } = clientOf(server);
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(err).toMatchObject({ kind: 'http', status: 308 });
      expect(err.message).toBe(`connector: HTTP 308 from 127.0.0.1:${shard.port} redirected again`);
    });
  });

  describe('concurrency', () => {
    it.each([3, 1])('keeps at most maxConcurrency=%i requests in flight', async (max) => {
      server.onPost = (_req, res) => {
        setTimeout(() => answer(res), 30);
      };
      const { client } = clientOf(server, { maxConcurrency: max });
      const results = await Promise.all(Array.from({ length: 10 }, () => client.getConnector(CONNECTOR_1)));
      expect(results.every((c) => c?.id === CONNECTOR_1)).toBe(true);
      expect(server.maxInFlight).toBe(max);
      expect(server.posts()).toHaveLength(10);
      expect(server.requests.filter((r) => r.method === 'HEAD')).toHaveLength(1);
    });

    it('defaults to 3', async () => {
      server.onPost = (_req, res) => {
        setTimeout(() => answer(res), 30);
      };
      const { client } = clientOf(server);
      await Promise.all(Array.from({ length: 8 }, () => client.getConnector(CONNECTOR_1)));
      expect(server.maxInFlight).toBe(3);
    });
  });

  describe('abort', () => {
    it('rejects a call in flight with an AbortError as soon as the signal aborts', async () => {
      server.onPost = () => undefined; // never answers
      const controller = new AbortController();
      const { client } = clientOf(server, { signal: controller.signal });
      const call = client.getConnector(CONNECTOR_1);
      setTimeout(() => controller.abort(), 50);
      const started = Date.now();
      const err: unknown = await call.catch((e: unknown) => e);
      expect(isAbortError(err)).toBe(true);
      expect(Date.now() - started).toBeLessThan(2000);
    });

    it('rejects during a Retry-After wait (the real sleep) and when already aborted', async () => {
      const controller = new AbortController();
      const tooMany = status(429, { 'Retry-After': '60' });
      // The abort comes once the call is waiting out the Retry-After (not after a fixed delay,
      // which could fire before the first POST on a busy machine).
      server.onPost = (req, res) => {
        tooMany(req, res);
        setTimeout(() => controller.abort(), 50);
      };
      const api = new TwingateClient({
        apiKey: API_KEY,
        apiUrl: server.url,
        signal: controller.signal,
      });
      const call = api.getConnector(CONNECTOR_1);
      const err: unknown = await call.catch((e: unknown) => e);
      expect(isAbortError(err)).toBe(true);
      const again: unknown = await api.getConnector(CONNECTOR_1).catch((e: unknown) => e);
      expect(isAbortError(again)).toBe(true);
      expect(server.posts()).toHaveLength(1);
    });
  });

  describe('secrets', () => {
    it('never puts the API key in an error message or a log line, even when the server echoes it', async () => {
      const echo = `invalid key ${API_KEY}`;
      server.onPost = inTurn(
        (_req, res) => sendGraphqlError(res, 'connector', echo),
        (_req, res) => sendMutationRefused(res, 'connectorDelete', echo),
        ok, // the connector is still there: the refusal stands
        (_req, res) => sendJson(res, 400, { errors: [{ message: echo }] }),
        status(401),
      );
      const logger = new RecordingLogger();
      const { client } = clientOf(server, { logger });
      const errors = [
        await failure(client.getConnector(CONNECTOR_1)),
        await failure(client.deleteConnector(CONNECTOR_1)),
        await failure(client.getConnector(CONNECTOR_1)),
        await failure(client.getConnector(CONNECTOR_1)),
      ];
      const messages = errors.map((e) => e.message);
      // The server did echo the key: the first three messages had it, and it was replaced.
      expect(messages.slice(0, 3).every((m) => m.includes('invalid key [REDACTED]'))).toBe(true);
      const leaks = [...messages, logger.text(), ...errors.map((e) => JSON.stringify(e))].filter((t) =>
        t.includes(API_KEY),
      );
      expect(leaks).toEqual([]);
      expect(errors.map((e) => e.kind)).toEqual(['graphql', 'mutation', 'http', 'auth']);
    });
  });
});

describe('isMutation', () => {
  it.each([
    ['mutation connectorDelete($id: ID!) { connectorDelete(id: $id) { ok error } }', true],
    ['# comment\n  mutation x { a }', true],
    ['fragment F on Connector { id }\nmutation m { a { ...F } }', true],
    ['query connectors { connectors { edges { node { id } } } }', false],
    ['{ connectors { edges { node { id } } } }', false],
    ['query q { mutationLog { id } }', false],
  ])('%j → %s', (document, expected) => {
    expect(isMutation(document)).toBe(expected);
  });
});
