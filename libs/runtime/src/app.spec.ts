import { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  Counter,
  createProgram,
  daemonOptions,
  parseOptions,
  ShutdownManager,
  sleep,
  startApp,
  type AppOptions,
  type StartAppOptions,
} from './index';

/** A started app on a private shutdown manager, with fake signals, exit and log destination. */
function start(opts: AppOptions, seams: StartAppOptions = {}) {
  const lines: Record<string, unknown>[] = [];
  const signals = new EventEmitter();
  const exits: number[] = [];
  const shutdown = new ShutdownManager();
  const app = startApp('demo', opts, {
    shutdown,
    process: signals,
    exit: (code) => void exits.push(code),
    logDestination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
    ...seams,
  });
  const messages = () => lines.map((l) => l['msg']);
  return { app, lines, messages, signals, exits, shutdown };
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

const program = (zero: 'off' | 'any', defaultPort: number) =>
  createProgram({
    name: 'demo',
    options: daemonOptions({ envPrefix: 'DEMO', defaultPort, zero, defaultHost: '127.0.0.1' }),
  });

describe('startApp', () => {
  it('logs JSON lines named after the app at --log-level', () => {
    const { app, lines } = start({ logLevel: 'warn' });
    app.logger.info('hidden');
    app.logger.warn({ peer: 'p' }, 'shown');
    expect(lines).toEqual([
      expect.objectContaining({ name: 'demo', level: 'warn', peer: 'p', msg: 'shown' }),
    ]);
    expect(app.name).toBe('demo');
  });

  it('serves /healthz, /readyz with its checks and /metrics of its registry on the metrics options', async () => {
    const opts = parseOptions(program('any', 0), ['node', 'demo'], {});
    const { app, shutdown } = start(opts);
    new Counter({ name: 'demo_ticks_total', help: 'ticks', registers: [app.registry] }).inc(3);
    let synced = false;
    const server = await app.serve({
      readiness: { synced: () => synced },
      liveness: { loop: () => true },
      routes: { '/version': (_req, res) => res.end('1.2.3\n') },
    });
    const port = server?.port ?? 0;
    expect(port).toBeGreaterThan(0);
    expect(await get(port, '/readyz?verbose')).toEqual({
      status: 500,
      body: '[+]ping ok\n[+]shutdown ok\n[-]synced failed: reason withheld\nreadyz check failed\n',
    });
    synced = true;
    expect(await get(port, '/readyz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await get(port, '/healthz?verbose')).body).toContain('[+]loop ok');
    expect((await get(port, '/metrics')).body).toMatch(/^demo_ticks_total 3$/m);
    expect((await get(port, '/version')).body).toBe('1.2.3\n');
    expect(await shutdown.shutdown('test')).toBe(true);
    expect(await listening(port)).toBe(false);
  });

  it('on SIGTERM: aborts the signal, /readyz fails its shutdown check, handlers run, the server closes last', async () => {
    const { app, signals, shutdown, messages, exits } = start({
      logLevel: 'info',
      metricsHost: '127.0.0.1',
      metricsPort: 0,
    });
    const server = await app.serve({ listen: { host: '127.0.0.1', port: 0 } });
    const port = server?.port ?? 0;
    let readyzDuringShutdown: { status: number; body: string } | undefined;
    app.onShutdown(async () => {
      readyzDuringShutdown = await get(port, '/readyz?verbose');
    }, 'app');
    const until = app.untilShutdown();
    signals.emit('SIGTERM', 'SIGTERM');
    expect(app.signal.aborted).toBe(true);
    await until;
    expect(await shutdown.shutdown('again')).toBe(true);
    expect(readyzDuringShutdown?.status).toBe(500);
    expect(readyzDuringShutdown?.body).toContain('[-]shutdown failed');
    expect(messages()).toEqual([
      'observability server listening',
      'received SIGTERM, shutting down',
      'running shutdown handlers',
      'readiness check failing',
      'observability server closed',
      'shutdown complete',
    ]);
    expect(exits).toEqual([0]);
  });

  it('with metricsListen: /metrics only on the second server, health and routes only on the first; both close on shutdown', async () => {
    const { app, shutdown } = start({ logLevel: 'info' });
    new Counter({ name: 'demo_hits_total', help: 'Hits.', registers: [app.registry] }).inc();
    const server = await app.serve({
      listen: { host: '127.0.0.1', port: 0 },
      metricsListen: { host: '127.0.0.1', port: 0 },
      routes: { '/version': (_req, res) => res.end('v1\n') },
    });
    const main = server?.port ?? 0;
    const metrics = server?.metrics?.port ?? 0;
    expect(metrics).toBeGreaterThan(0);
    expect(metrics).not.toBe(main);
    expect(await get(main, '/metrics')).toEqual({ status: 404, body: 'not found\n' });
    expect(await get(main, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(main, '/version')).toEqual({ status: 200, body: 'v1\n' });
    const scraped = await get(metrics, '/metrics');
    expect(scraped.status).toBe(200);
    expect(scraped.body).toContain('demo_hits_total 1');
    expect((await get(metrics, '/healthz')).status).toBe(404);
    expect((await get(metrics, '/readyz')).status).toBe(404);
    expect(await shutdown.shutdown('test')).toBe(true);
    expect(await listening(metrics)).toBe(false);
    expect(await listening(main)).toBe(false);
  });

  it("serves nothing when the metrics port is off (zero: 'off', port 0)", async () => {
    const opts = parseOptions(program('off', 0), ['node', 'demo'], {});
    expect(opts.metricsPort).toBeUndefined();
    const { app, shutdown } = start(opts);
    await expect(app.serve({ readiness: { routed: () => true } })).resolves.toBeUndefined();
    expect(await shutdown.shutdown('test')).toBe(true);
  });

  it('refuses to serve without an address, or twice', async () => {
    const { app, shutdown } = start({ logLevel: 'silent' });
    await expect(app.serve()).rejects.toThrow(
      'demo: serve() needs a listen address: spread metricsOptions() into the options or pass { listen }',
    );
    await expect(app.serve({ listen: { host: '127.0.0.1', port: 0 } })).resolves.toBeDefined();
    await expect(app.serve({ listen: { host: '127.0.0.1', port: 0 } })).rejects.toThrow(
      'demo: serve() was called twice; one endpoint per app',
    );
    expect(await shutdown.shutdown('test')).toBe(true);
  });

  it('a listen failure names the address', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const { app } = start({ logLevel: 'silent', metricsHost: '127.0.0.1', metricsPort: taken });
      await expect(app.serve()).rejects.toThrow(`observability server cannot listen on 127.0.0.1:${taken}`);
    } finally {
      blocker.close();
    }
  });

  it('exits 1 when shutdown outlasts --shutdown-timeout', async () => {
    const { app, signals, exits } = start({ logLevel: 'silent', shutdownTimeout: 50 });
    app.onShutdown(() => new Promise<void>(() => undefined), 'hangs');
    signals.emit('SIGTERM', 'SIGTERM');
    await sleep(200);
    expect(exits).toEqual([1]);
  });
});
