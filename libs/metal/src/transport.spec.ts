import { createCertificateAuthority, issueCertificate } from '@knet/crypto';
import { RecordingLogger } from '@knet/runtime';
import {
  answer,
  clientOf,
  device,
  failureOf,
  inTurn,
  leaksOf,
  noAnswer,
  resetConnection,
  ScriptedServer,
  sendJson,
  TestClock,
  thrown,
  TOKEN,
  withScriptedServer,
} from '../test/scripted-server';
import { MetalClient } from './client';
import type { MetalErrorKind } from './errors';

const DEVICE = '9b5b3c1e-0d6a-4a57-9a2f-1c0f6d1e7a11';
const PROJECT = '5f0e3a2b-7c1d-4e8f-9a6b-2d4c8e1f0a3b';
const CREATE = { plan: 'c3.small.x86', operating_system: 'ubuntu_22_04', metro: 'da', hostname: 'cp-0' };

describe('MetalClient transport', () => {
  let server: ScriptedServer;
  withScriptedServer((s) => (server = s));

  afterAll(() => {
    // Every error any test here made: none may carry the token (the check itself is shown to work
    // in 'finds a token wherever it hides').
    expect(thrown.length).toBeGreaterThan(20);
    expect(thrown.flatMap((e) => leaksOf(e))).toEqual([]);
  });

  describe('requests', () => {
    it('sends the token, user agent, Accept, and JSON with its content type', async () => {
      server.on('POST', `/projects/${PROJECT}/devices`, answer(201, device(DEVICE)));
      const { client } = clientOf(server, { userAgent: 'capi-packet-manager/0.1.0' });
      await client.createDevice(PROJECT, CREATE);

      const [req] = server.requests;
      expect(req?.headers['x-auth-token']).toBe(TOKEN);
      expect(req?.headers['user-agent']).toBe('capi-packet-manager/0.1.0');
      expect(req?.headers.accept).toBe('application/json');
      expect(req?.headers['content-type']).toBe('application/json');
      expect(req?.headers['x-consumer-token']).toBeUndefined();
      expect(JSON.parse(req?.body ?? '')).toEqual(CREATE);
    });

    it('sends X-Consumer-Token when given, the default user agent otherwise, and no content type without a body', async () => {
      server.on('GET', `/devices/${DEVICE}`, answer(200, device(DEVICE)));
      const { client } = clientOf(server, { consumerToken: 'CAPP-v1beta1' });
      await client.getDevice(DEVICE);

      const [req] = server.requests;
      expect(req?.headers['x-consumer-token']).toBe('CAPP-v1beta1');
      expect(req?.headers['user-agent']).toBe('knet-metal/0.0.0');
      expect(req?.headers['content-type']).toBeUndefined();
      expect(req?.body).toBe('');
    });

    it('takes an API URL with a trailing slash', async () => {
      server.on('GET', `/devices/${DEVICE}`, answer(200, device(DEVICE)));
      const { client } = clientOf(server, { apiUrl: `${server.apiUrl}/` });
      expect(client.apiUrl).toBe(server.apiUrl);
      await client.getDevice(DEVICE);
      expect(server.log()).toEqual([`GET /devices/${DEVICE}`]);
    });

    it('works over an injected fetch (the global one)', async () => {
      server.on('GET', `/devices/${DEVICE}`, answer(200, device(DEVICE)));
      const { client } = clientOf(server, { fetch: globalThis.fetch });
      expect((await client.getDevice(DEVICE)).id).toBe(DEVICE);
      expect(server.requests[0]?.headers['x-auth-token']).toBe(TOKEN);
    });

    it('reports every attempt to onCall with its operation, status, attempt and kind', async () => {
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        inTurn(answer(503, { errors: ['busy'] }), answer(200, device(DEVICE))),
      );
      const { client, calls } = clientOf(server);
      await client.getDevice(DEVICE);
      expect(calls.map(({ durationMs: _, ...c }) => c)).toEqual([
        {
          operation: 'findDeviceById',
          method: 'GET',
          path: `/devices/${DEVICE}`,
          status: 503,
          attempt: 1,
          kind: 'transient',
        },
        {
          operation: 'findDeviceById',
          method: 'GET',
          path: `/devices/${DEVICE}`,
          status: 200,
          attempt: 2,
          kind: 'ok',
        },
      ]);
      expect(calls.every((c) => c.durationMs >= 0)).toBe(true);
    });

    it('refuses bad options with one line each', () => {
      const base = { token: TOKEN };
      expect(() => new MetalClient({ token: ' ' })).toThrow(/^Metal API client: no API token given/);
      expect(() => new MetalClient({ ...base, apiUrl: 'ftp://x' })).toThrow(/must be http or https/);
      expect(() => new MetalClient({ ...base, timeoutMs: 0 })).toThrow(
        /timeoutMs must be a positive integer, got 0/,
      );
      expect(() => new MetalClient({ ...base, maxAttempts: 1.5 })).toThrow(
        /maxAttempts must be a positive integer/,
      );
      expect(() => new MetalClient({ ...base, caPem: 'x', fetch: globalThis.fetch })).toThrow(/not both/);
    });
  });

  describe('errors', () => {
    const table: [number, MetalErrorKind, RegExp][] = [
      [400, 'terminal', /: 400 unexpected answer: bad$/],
      [401, 'unauthorized', /: 401 unauthorized: the API token is missing, wrong or revoked: bad$/],
      [403, 'forbidden', /: 403 forbidden: .*provisioning failed\): bad$/],
      [404, 'gone', /: 404 not found: bad$/],
      [409, 'terminal', /: 409 unexpected answer: bad$/],
      [422, 'invalid', /: 422 invalid: validation failed or a quota is exhausted: bad$/],
      [429, 'transient', /: 429 rate-limited, retry in 1 s \(attempt 1\): bad$/],
      [500, 'terminal', /: 500 unexpected answer: bad$/],
      [502, 'terminal', /: 502 unexpected answer: bad$/],
      [503, 'transient', /: 503 unavailable, retry in 1 s \(attempt 1\): bad$/],
      [504, 'terminal', /: 504 unexpected answer: bad$/],
    ];
    it.each(table)('HTTP %i is %s', async (status, kind, message) => {
      server.on('GET', `/devices/${DEVICE}`, answer(status, { errors: ['bad'] }));
      const { client } = clientOf(server, { maxAttempts: 1 });
      const e = await failureOf(client.getDevice(DEVICE));
      expect(e).toMatchObject({ kind, status, method: 'GET', path: `/devices/${DEVICE}`, errors: ['bad'] });
      expect(e.message).toMatch(new RegExp(`^Metal API GET /devices/${DEVICE}${message.source}`));
      expect(server.requests).toHaveLength(1);
    });

    it('reads {"errors": [...]} and {"error": "..."} bodies', async () => {
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        inTurn(
          answer(422, { errors: ['plan is not available in da', 'hostname\nis invalid'] }),
          answer(404, { error: 'Not found' }),
        ),
      );
      const { client } = clientOf(server);
      const first = await failureOf(client.getDevice(DEVICE));
      expect(first.errors).toEqual(['plan is not available in da', 'hostname is invalid']);
      expect(first.message).toBe(
        `Metal API GET /devices/${DEVICE}: 422 invalid: validation failed or a quota is exhausted: plan is not available in da; hostname is invalid`,
      );
      const second = await failureOf(client.getDevice(DEVICE));
      expect(second).toMatchObject({ kind: 'gone', errors: ['Not found'] });
    });

    it('bounds the messages kept from a body: 10 of at most 300 characters', async () => {
      const long = Array.from({ length: 50 }, (_, i) => `${i}:${'x'.repeat(1000)}`);
      server.on('GET', `/devices/${DEVICE}`, answer(422, { errors: long }));
      const { client } = clientOf(server);
      const e = await failureOf(client.getDevice(DEVICE));
      expect(e.errors).toHaveLength(10);
      expect(e.errors.every((m) => m.length <= 300)).toBe(true);
      expect(e.message.length).toBeLessThanOrEqual(1000);
      expect(e.message).not.toMatch(/\n/);
    });

    it('says when an error body is not JSON, or too large to read', async () => {
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        inTurn(
          (_req, res) => {
            res.writeHead(500, { 'Content-Type': 'text/html' });
            res.end('<html><body>Internal\nServer Error</body></html>');
          },
          answer(422, { errors: ['y'.repeat(200 * 1024)] }),
        ),
      );
      const { client } = clientOf(server);
      const html = await failureOf(client.getDevice(DEVICE));
      expect(html).toMatchObject({ kind: 'terminal', status: 500, errors: [] });
      expect(html.message).toMatch(/: 500 unexpected answer \(error body is not JSON: text\/html\)$/);
      const big = await failureOf(client.getDevice(DEVICE));
      expect(big).toMatchObject({ kind: 'invalid', status: 422, errors: [] });
      expect(big.message).toMatch(/\(error body larger than 64 KiB, not read\)$/);
    });

    it('refuses a 2xx answer over 16 MiB, and one that is not JSON', async () => {
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        inTurn(
          (_req, res) => {
            res.writeHead(200, { 'Content-Type': 'application/json' });
            const chunk = Buffer.alloc(1024 * 1024, 0x20);
            for (let i = 0; i < 17; i++) res.write(chunk);
            res.end('{}');
          },
          (_req, res) => {
            res.writeHead(200, { 'Content-Type': 'text/plain' });
            res.end('hello');
          },
        ),
      );
      const { client } = clientOf(server);
      const large = await failureOf(client.getDevice(DEVICE));
      expect(large).toMatchObject({ kind: 'terminal', status: 200 });
      expect(large.message).toMatch(/200 answer larger than 16 MiB: refused/);
      const text = await failureOf(client.getDevice(DEVICE));
      expect(text.message).toMatch(
        /200 answer is not JSON \(text\/plain\): is http:\/\/127\.0\.0\.1:\d+\/metal\/v1 the Metal API\?$/,
      );
    });

    it('does not follow a redirect (the token stays with the API)', async () => {
      const elsewhere = await ScriptedServer.start();
      try {
        server.on(
          'GET',
          `/devices/${DEVICE}`,
          answer(302, undefined, { Location: `${elsewhere.apiUrl}/devices/${DEVICE}` }),
        );
        const { client } = clientOf(server);
        const e = await failureOf(client.getDevice(DEVICE));
        expect(e).toMatchObject({ kind: 'terminal', status: 302 });
        expect(elsewhere.requests).toHaveLength(0);
      } finally {
        await elsewhere.close();
      }
    });

    it('removes the token and consumer token from what the server echoes', async () => {
      server.on(
        'GET',
        `/projects/${PROJECT}`,
        answer(401, { errors: [`token ${TOKEN} is not valid`, 'consumer CONSUMER-S3CRET'] }),
      );
      const { client } = clientOf(server, { consumerToken: 'CONSUMER-S3CRET' });
      const e = await failureOf(client.getProject(PROJECT));
      expect(e.kind).toBe('unauthorized');
      expect(e.errors).toEqual(['token [REDACTED] is not valid', 'consumer [REDACTED]']);
      expect(leaksOf(e)).toEqual([]);
      expect(leaksOf(e, 'CONSUMER-S3CRET')).toEqual([]);
    });

    it('finds a token wherever it hides (the check the suite runs on every error)', () => {
      const inCause = new Error('outer', { cause: { detail: `x ${TOKEN}` } });
      expect(leaksOf(new Error(`bad ${TOKEN}`))).toEqual(['error.message', 'error.stack']);
      expect(leaksOf(inCause)).toEqual(['error.cause.detail']);
      expect(leaksOf(Object.assign(new Error('x'), { errors: [TOKEN] }))).toEqual(['error.errors.0']);
    });
  });

  describe('rate limits and retries', () => {
    it('a storm of 5 429s then a 200 costs 6 calls, waiting Retry-After each time', async () => {
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        inTurn(
          ...Array.from({ length: 5 }, () => answer(429, { errors: ['slow down'] }, { 'Retry-After': '2' })),
          answer(200, device(DEVICE)),
        ),
      );
      const logger = new RecordingLogger();
      const { client, clock } = clientOf(server, { maxAttempts: 10, logger });
      expect((await client.getDevice(DEVICE)).id).toBe(DEVICE);
      expect(server.requests).toHaveLength(6);
      expect(clock.waits).toEqual([2000, 2000, 2000, 2000, 2000]);
      expect(logger.messages('warn')).toContain(
        'Metal API rate limit (HTTP 429): holding every request for 2 s',
      );
      expect(logger.messages('debug')).toHaveLength(5);
      expect(logger.text()).not.toContain(TOKEN);
    });

    it('waits for X-RateLimit-Reset given as seconds from now, or as a Unix time', async () => {
      const clock = new TestClock();
      const epoch = String(Math.round(clock.t / 1000) + 12);
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        inTurn(
          answer(429, {}, { 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '7' }),
          answer(429, {}, { 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': epoch }),
          answer(200, device(DEVICE)),
        ),
      );
      const { client } = clientOf(server, { clock, maxWaitMs: 60_000 });
      await client.getDevice(DEVICE);
      expect(clock.waits).toEqual([7000, 5000]);
      expect(server.requests).toHaveLength(3);
    });

    it('gives up after maxAttempts with a transient error that says when to come back', async () => {
      server.on('GET', `/devices/${DEVICE}`, answer(429, { errors: ['limit'] }, { 'Retry-After': '3' }));
      const { client, clock } = clientOf(server);
      const e = await failureOf(client.getDevice(DEVICE));
      expect(e).toMatchObject({ kind: 'transient', status: 429, retryAfterMs: 3000, errors: ['limit'] });
      expect(e.message).toMatch(/: 429 rate-limited, retry in 3 s \(attempt 4\): limit$/);
      expect(server.requests).toHaveLength(4);
      expect(clock.waits).toEqual([3000, 3000, 3000]);
    });

    it('does not sleep longer than maxWaitMs: a long Retry-After fails at once, and gates the next call without sending it', async () => {
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        inTurn(answer(429, {}, { 'Retry-After': '120' }), answer(200, device(DEVICE))),
      );
      const { client, clock } = clientOf(server);
      const first = await failureOf(client.getDevice(DEVICE));
      expect(first).toMatchObject({ kind: 'transient', status: 429, retryAfterMs: 120_000 });
      expect(clock.waits).toEqual([]);

      clock.t += 20_000;
      const second = await failureOf(client.getDevice(DEVICE));
      expect(second).toMatchObject({ kind: 'transient', retryAfterMs: 100_000 });
      expect(second.message).toMatch(
        /rate-limited: requests are held for 100 s, more than this call may still wait \(30 s in all\)/,
      );
      expect(server.requests).toHaveLength(1);

      clock.t += 100_000;
      expect((await client.getDevice(DEVICE)).id).toBe(DEVICE);
      expect(server.requests).toHaveLength(2);
    });

    it('a 429 gates the whole client: 5 calls made during the window wait instead of each collecting a 429', async () => {
      const clock = new TestClock(false);
      let limited = true;
      server.on('GET', `/devices/${DEVICE}`, (req, res) =>
        limited ? sendJson(res, 429, {}, { 'Retry-After': '30' }) : sendJson(res, 200, device(DEVICE)),
      );
      const { client } = clientOf(server, { clock });
      const first = client.getDevice(DEVICE);
      await until(() => clock.sleeping === 1);
      const others = Array.from({ length: 5 }, () => client.getDevice(DEVICE));
      await until(() => clock.sleeping === 6);
      expect(server.requests).toHaveLength(1);

      limited = false;
      clock.advance(30_000);
      const devices = await Promise.all([first, ...others]);
      expect(devices.map((d) => d.id)).toEqual(Array(6).fill(DEVICE));
      expect(server.requests).toHaveLength(7);
    });

    it('after the window one call probes: a limit that has not reset costs one more 429, not one per waiting call', async () => {
      const clock = new TestClock(false);
      let limitedAnswers = 2;
      let statuses: number[] = [];
      server.on('GET', `/devices/${DEVICE}`, (_req, res) => {
        const limited = limitedAnswers-- > 0;
        statuses.push(limited ? 429 : 200);
        if (limited) sendJson(res, 429, {}, { 'Retry-After': '10' });
        else sendJson(res, 200, device(DEVICE));
      });
      const { client } = clientOf(server, { clock });
      const first = client.getDevice(DEVICE);
      await until(() => clock.sleeping === 1);
      const others = Array.from({ length: 5 }, () => client.getDevice(DEVICE));
      await until(() => clock.sleeping === 6);

      clock.advance(10_000);
      await until(() => statuses.length === 2 && clock.sleeping === 6);
      expect(statuses).toEqual([429, 429]);
      statuses = [];
      clock.advance(10_000);
      await Promise.all([first, ...others]);
      expect(statuses).toEqual(Array(6).fill(200));
    });

    it('X-RateLimit-Remaining: 0 on a success holds the next call until the reset', async () => {
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        inTurn(
          answer(200, device(DEVICE), { 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '5' }),
          answer(200, device(DEVICE)),
        ),
      );
      const { client, clock } = clientOf(server);
      await client.getDevice(DEVICE);
      expect(clock.waits).toEqual([]);
      await client.getDevice(DEVICE);
      expect(clock.waits).toEqual([5000]);
      expect(server.requests).toHaveLength(2);
    });

    it('backs off exponentially on a 503 without Retry-After, and a 503 does not gate other calls', async () => {
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        inTurn(answer(503, {}), answer(503, {}), answer(200, device(DEVICE))),
      );
      server.on('GET', `/projects/${PROJECT}`, answer(200, { id: PROJECT }));
      const { client, clock } = clientOf(server, { random: () => 0 });
      await client.getDevice(DEVICE);
      expect(clock.waits).toEqual([1000, 2000]);
      await client.getProject(PROJECT);
      expect(clock.waits).toEqual([1000, 2000]);
    });

    it('retries a POST answered 429 or 503 (the API did not act on it)', async () => {
      server.on(
        'POST',
        `/projects/${PROJECT}/devices`,
        inTurn(
          answer(429, {}, { 'Retry-After': '1' }),
          answer(503, {}, { 'Retry-After': '1' }),
          answer(201, device(DEVICE)),
        ),
      );
      const { client } = clientOf(server);
      expect((await client.createDevice(PROJECT, CREATE)).id).toBe(DEVICE);
      expect(server.requests).toHaveLength(3);
    });
  });

  describe('network failures', () => {
    it('does not send a POST again after the connection was reset: unreachable, look it up first', async () => {
      server.on('POST', `/projects/${PROJECT}/devices`, inTurn(resetConnection, answer(201, device(DEVICE))));
      const { client, calls } = clientOf(server);
      const e = await failureOf(client.createDevice(PROJECT, CREATE));
      expect(e).toMatchObject({ kind: 'unreachable', method: 'POST', path: `/projects/${PROJECT}/devices` });
      expect(e.status).toBeUndefined();
      expect(e.retryAfterMs).toBeGreaterThan(0);
      expect(e.message).toMatch(/may have reached the API, so it is not sent again: look the object up/);
      expect(server.requests).toHaveLength(1);
      expect(calls.map((c) => c.kind)).toEqual(['unreachable']);
    });

    it('retries a GET after a reset', async () => {
      server.on('GET', `/devices/${DEVICE}`, inTurn(resetConnection, answer(200, device(DEVICE))));
      const { client, clock } = clientOf(server);
      expect((await client.getDevice(DEVICE)).id).toBe(DEVICE);
      expect(server.requests).toHaveLength(2);
      expect(clock.waits).toEqual([1000]);
    });

    it('retries even a POST when the connection was refused (it never reached the API), then gives up', async () => {
      const closed = await ScriptedServer.start();
      await closed.close();
      const { client, calls } = clientOf(closed, { maxAttempts: 3 });
      const e = await failureOf(client.createDevice(PROJECT, CREATE));
      expect(e.kind).toBe('unreachable');
      expect(e.message).toMatch(/: cannot reach 127\.0\.0\.1:\d+: ECONNREFUSED \(attempt 3\)$/);
      expect(calls.map((c) => `${c.attempt} ${c.kind}`)).toEqual([
        '1 unreachable',
        '2 unreachable',
        '3 unreachable',
      ]);
    });

    it('times out an attempt: a GET is retried, a POST is not', async () => {
      server.on('GET', `/devices/${DEVICE}`, noAnswer);
      server.on('POST', `/projects/${PROJECT}/devices`, noAnswer);
      const { client } = clientOf(server, { timeoutMs: 150, maxAttempts: 2 });
      const get = await failureOf(client.getDevice(DEVICE));
      expect(get).toMatchObject({ kind: 'unreachable' });
      expect(get.message).toMatch(/: no answer within 150 ms \(attempt 2\)$/);
      expect(server.requests.filter((r) => r.method === 'GET')).toHaveLength(2);

      const post = await failureOf(client.createDevice(PROJECT, CREATE));
      expect(post.message).toMatch(/: no answer within 150 ms; the request may have reached the API/);
      expect(server.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    });

    it('times out a body that stops half-way', async () => {
      server.on('GET', `/devices/${DEVICE}`, (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '1000' });
        res.write('{"id":');
      });
      const { client } = clientOf(server, { timeoutMs: 150, maxAttempts: 1 });
      const e = await failureOf(client.getDevice(DEVICE));
      expect(e.kind).toBe('unreachable');
      expect(e.message).toMatch(/no answer within 150 ms/);
    });
  });

  describe('https', () => {
    let tlsServer: ScriptedServer | undefined;
    let caPem = '';

    beforeAll(async () => {
      const ca = await createCertificateAuthority('metal-spec-ca');
      caPem = ca.certPem;
      tlsServer = await ScriptedServer.start(
        await issueCertificate(ca, { commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'], usage: 'server' }),
      );
      tlsServer.on('GET', `/devices/${DEVICE}`, answer(200, device(DEVICE)));
    });
    afterAll(async () => {
      await tlsServer?.close();
    });

    it('trusts caPem besides the system roots', async () => {
      const { client } = clientOf(tlsServer!, { caPem });
      expect((await client.getDevice(DEVICE)).id).toBe(DEVICE);
      client.close();
    });

    it('without the CA: unreachable at once, naming caPem (a retry would not help)', async () => {
      const { client, calls } = clientOf(tlsServer!);
      const e = await failureOf(client.getDevice(DEVICE));
      expect(e.kind).toBe('unreachable');
      expect(e.message).toMatch(/set caPem to the CA of https:\/\/127\.0\.0\.1:\d+\/metal\/v1\)$/);
      expect(calls).toHaveLength(1);
    });
  });
});

/** Resolves once `cond` holds, checking after each turn of the event loop (at most 5 s). */
async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((r) => setImmediate(r));
  }
}
