import net from 'node:net';
import { register as globalRegister } from 'prom-client';
import {
  Counter,
  createLogger,
  createMetricsRegistry,
  createObservabilityServer,
  type HealthCheck,
  type ObservabilityServer,
  Registry,
  sleep,
} from './index';

const HOST = '127.0.0.1';

function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    name: 'test',
    level: 'debug',
    destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  });
  return { logger, lines };
}

async function get(port: number, path: string, method = 'GET') {
  const res = await fetch(`http://${HOST}:${port}${path}`, { method });
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    headers: res.headers,
    body: await res.text(),
  };
}

describe('createMetricsRegistry', () => {
  it('is a separate registry with default process metrics and optional labels and prefix', async () => {
    const registry = createMetricsRegistry({ defaultLabels: { app: 'wg-agent' } });
    expect(registry).not.toBe(globalRegister);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE process_cpu_user_seconds_total counter');
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds\{app="wg-agent"\} /m);
    expect(await globalRegister.metrics()).not.toContain('app="wg-agent"');

    const prefixed = createMetricsRegistry({ prefix: 'knet_' });
    expect(await prefixed.metrics()).toContain('knet_process_resident_memory_bytes');

    const bare = createMetricsRegistry({ defaultMetrics: false });
    expect(await bare.metrics()).toBe('\n');
  });
});

describe('createObservabilityServer', () => {
  let server: ObservabilityServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function start(options: { checkTimeoutMs?: number; shutdownSignal?: AbortSignal } = {}) {
    const { logger, lines } = memoryLogger();
    const registry = createMetricsRegistry();
    server = createObservabilityServer({ port: 0, host: HOST, registry, logger, ...options });
    const port = await server.listen();
    return { server, port, registry, lines };
  }

  it('listens on the port it returns and serves /healthz, /readyz, /metrics; 404 otherwise', async () => {
    const { server: s, port, registry, lines } = await start();
    expect(port).toBeGreaterThan(0);
    expect(s.port).toBe(port);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'observability server listening', port }));

    expect(await get(port, '/healthz')).toMatchObject({
      status: 200,
      body: 'ok\n',
      type: 'text/plain; charset=utf-8',
    });
    expect(await get(port, '/readyz')).toMatchObject({ status: 200, body: 'ok\n' });

    new Counter({ name: 'demo_events_total', help: 'Events.', registers: [registry] }).inc(3);
    const metrics = await get(port, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.type).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
    expect(metrics.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(metrics.body).toContain('demo_events_total 3');
    expect(metrics.body).toContain('process_resident_memory_bytes');

    for (const path of ['/', '/nope', '/healthz/', '/readyz/ping/x', '/metrics/x']) {
      expect(await get(port, path)).toMatchObject({ status: 404, body: 'not found\n' });
    }
  });

  it('answers HEAD without a body and refuses other methods with 405', async () => {
    const { port } = await start();
    expect(await get(port, '/healthz', 'HEAD')).toMatchObject({ status: 200, body: '' });
    const post = await get(port, '/readyz', 'POST');
    expect(post).toMatchObject({ status: 405 });
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('lists checks like kube-apiserver with ?verbose and fails /readyz while a check fails', async () => {
    const { server: s, port } = await start();
    let dbOk = true;
    s.addReadinessCheck('kube-apiserver', () => dbOk);
    s.addReadinessCheck('informers-synced', async () => undefined);

    expect(await get(port, '/readyz?verbose')).toMatchObject({
      status: 200,
      body: '[+]ping ok\n[+]kube-apiserver ok\n[+]informers-synced ok\nreadyz check passed\n',
    });
    dbOk = false;
    const failing = await get(port, '/readyz');
    expect(failing.status).toBe(500);
    expect(failing.body).toBe(
      '[+]ping ok\n[-]kube-apiserver failed: reason withheld\n[+]informers-synced ok\nreadyz check failed\n',
    );
    expect(await get(port, '/readyz?exclude=kube-apiserver&verbose')).toMatchObject({
      status: 200,
      body: '[+]ping ok\n[+]kube-apiserver excluded: ok\n[+]informers-synced ok\nreadyz check passed\n',
    });
    expect(await get(port, '/readyz/kube-apiserver')).toMatchObject({ status: 500 });
    expect(await get(port, '/readyz/informers-synced')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get(port, '/readyz/unknown')).toMatchObject({ status: 404 });
    // Readiness does not affect liveness.
    expect(await get(port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
  });

  it('fails /healthz when a liveness check throws, rejects or times out', async () => {
    const { server: s, port } = await start({ checkTimeoutMs: 50 });
    let mode: 'ok' | 'throw' | 'reject' | 'hang' = 'ok';
    const check: HealthCheck = () => {
      if (mode === 'throw') throw new Error('loop stalled');
      if (mode === 'reject') return Promise.reject(new Error('nope'));
      if (mode === 'hang') return new Promise<void>(() => undefined);
      return true;
    };
    s.addLivenessCheck('reconcile-loop', check);
    expect(await get(port, '/healthz')).toMatchObject({ status: 200 });
    for (const m of ['throw', 'reject', 'hang'] as const) {
      mode = m;
      expect(await get(port, '/healthz')).toMatchObject({
        status: 500,
        body: '[+]ping ok\n[-]reconcile-loop failed: reason withheld\nhealthz check failed\n',
      });
    }
    expect(await get(port, '/healthz/reconcile-loop')).toMatchObject({ status: 500 });
    expect(await get(port, '/readyz')).toMatchObject({ status: 200 });
  });

  it('logs a failing check once when it starts failing and once when it recovers, with the reason', async () => {
    const { server: s, port, lines } = await start();
    let ok = true;
    s.addReadinessCheck('tunnel', () => {
      if (!ok) throw new Error('tunnel down: no handshake for 3m');
    });
    await get(port, '/readyz');
    ok = false;
    await get(port, '/readyz');
    await get(port, '/readyz?verbose');
    ok = true;
    await get(port, '/readyz');
    await get(port, '/readyz');
    const checkLines = lines.filter((l) => l['check'] === 'tunnel');
    expect(checkLines).toEqual([
      expect.objectContaining({
        level: 'warn',
        msg: 'readiness check failing',
        reason: 'tunnel down: no handshake for 3m',
      }),
      expect.objectContaining({ level: 'info', msg: 'readiness check passing again' }),
    ]);
  });

  it('turns unready once the shutdown signal aborts, while staying live', async () => {
    const controller = new AbortController();
    const { port } = await start({ shutdownSignal: controller.signal });
    expect(await get(port, '/readyz?verbose')).toMatchObject({
      status: 200,
      body: expect.stringContaining('[+]shutdown ok'),
    });
    controller.abort();
    expect(await get(port, '/readyz')).toMatchObject({
      status: 500,
      body: expect.stringContaining('[-]shutdown failed'),
    });
    expect(await get(port, '/healthz')).toMatchObject({ status: 200 });
  });

  it('answers 500 when collecting metrics fails', async () => {
    const { port, registry, lines } = await start();
    new Counter({
      name: 'broken_total',
      help: 'Throws on collect.',
      registers: [registry],
      collect() {
        throw new Error('collector broke');
      },
    });
    expect(await get(port, '/metrics')).toMatchObject({ status: 500, body: 'internal server error\n' });
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 'error', msg: 'observability request failed' }),
    );
  });

  it('rejects invalid and duplicate check names', async () => {
    const { server: s } = await start();
    expect(() => s.addReadinessCheck('has space', () => true)).toThrow(/must match/);
    expect(() => s.addReadinessCheck('ping', () => true)).toThrow(/already registered/);
    s.addLivenessCheck('x', () => true);
    expect(() => s.addLivenessCheck('x', () => true)).toThrow(/liveness check "x" is already registered/);
  });

  it('reports a busy port, refuses a second listen and closes idempotently', async () => {
    const { server: s, port } = await start();
    await expect(s.listen()).rejects.toThrow(/already listening/);

    const { logger } = memoryLogger();
    const clash = createObservabilityServer({ port, host: HOST, registry: createMetricsRegistry(), logger });
    await expect(clash.listen()).rejects.toThrow(
      `observability server cannot listen on ${HOST}:${port}: listen EADDRINUSE`,
    );

    // A keep-alive connection does not hold close() up.
    await get(port, '/healthz');
    await s.close();
    expect(s.port).toBeUndefined();
    await s.close();
    await expect(connect(port)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('createObservabilityServer limits (slow, idle and oversized clients)', () => {
  let server: ObservabilityServer | undefined;
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await server?.close();
    server = undefined;
  });

  async function start(
    limits: Parameters<typeof createObservabilityServer>[0]['limits'],
    onConnection?: (s: net.Socket) => void,
  ) {
    const { logger } = memoryLogger();
    server = createObservabilityServer({
      port: 0,
      host: HOST,
      registry: createMetricsRegistry({ defaultMetrics: false }),
      logger,
      limits,
      ...(onConnection ? { onConnection } : {}),
    });
    return server.listen();
  }

  /** Opens a connection, lets `drive` write to it, and resolves with what came back and when it closed. */
  function client(
    port: number,
    drive: (s: net.Socket) => void,
  ): Promise<{ data: string; closedAfterMs: number }> {
    return new Promise((resolve) => {
      const t0 = performance.now();
      let data = '';
      const s = net.connect(port, HOST, () => drive(s));
      sockets.push(s);
      s.on('data', (d: Buffer) => (data += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => resolve({ data, closedAfterMs: performance.now() - t0 }));
    });
  }

  it('closes a connection that never sends its request head, and one that sends it byte by byte', async () => {
    const port = await start({ headersTimeoutMs: 400, requestTimeoutMs: 400 });
    const idle = client(port, () => undefined);
    const head = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200) + '\r\n\r\n';
    const slow = client(port, (s) => {
      let i = 0;
      const tick = setInterval(() => {
        if (s.destroyed || i >= head.length) return clearInterval(tick);
        s.write(head[i++]!);
      }, 20);
    });
    const [a, b] = await Promise.all([idle, slow]);
    // Cut off after the limit (Node checks every limit/4), long before the slow head would be complete.
    for (const r of [a, b]) {
      expect(r.closedAfterMs).toBeGreaterThanOrEqual(350);
      expect(r.closedAfterMs).toBeLessThan(3000);
    }
    expect(b.data).not.toContain('200 OK');
  });

  it('closes connections over maxConnections at accept, and serves again once they go', async () => {
    const port = await start({ maxConnections: 3, headersTimeoutMs: 5000 });
    const held = [0, 1, 2].map(() => {
      const s = net.connect(port, HOST);
      s.on('error', () => undefined);
      sockets.push(s);
      return new Promise<void>((resolve) => s.once('connect', () => resolve()));
    });
    await Promise.all(held);
    await sleep(50);
    const refused = await client(port, (s) => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(refused.data).toBe('');
    for (const s of sockets.splice(0)) s.destroy();
    await sleep(50);
    const served = await client(port, (s) =>
      s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    );
    expect(served.data).toMatch(/^HTTP\/1.1 200 /);
  });

  it('answers an oversized request head with 431 and closes', async () => {
    const port = await start({ maxHeaderSize: 1024 });
    const r = await client(port, (s) =>
      s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(4096)}\r\n\r\n`),
    );
    expect(r.data).toMatch(/^HTTP\/1.1 431 /);
  });

  it('hands every accepted connection to onConnection before parsing it', async () => {
    const seen: net.Socket[] = [];
    const port = await start({}, (s) => {
      seen.push(s);
      expect(s.bytesRead).toBe(0);
    });
    expect((await get(port, '/healthz')).status).toBe(200);
    expect(seen).toHaveLength(1);
  });
});

function connect(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST, () => {
      socket.destroy();
      resolve();
    });
    socket.on('error', reject);
  });
}
