import { Agent as HttpAgent } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { Client } from 'ssh2';
import WebSocket, { createWebSocketStream } from 'ws';
import {
  RecordingLogger,
  createMetricsRegistry,
  createObservabilityServer,
  type ObservabilityServer,
  type Registry,
} from '@knet/runtime';
import {
  AgentConnection,
  PREAUTH_MAX_MESSAGE,
  afterUpgrade,
  clientFrameHeader,
  upgradeRequest,
  SUBPROTOCOL,
  TUNNEL_PATH,
  encodeHello,
  generateHostKey,
  type Hello,
  type TargetName,
} from '@knet/tunnel';
import { sleep, until } from '@knet/testing';
import { createProxyMetrics } from './metrics';
import { SessionRegistry } from './sessions';
import {
  TunnelServer,
  UNAUTHORIZED_MESSAGE,
  agentPortHttpLimits,
  sourceOf,
  type Authorization,
} from './tunnel-server';

const TOKEN = 'a'.repeat(64);
const hostKey = generateHostKey();

interface Bed {
  port: number;
  tunnel: TunnelServer;
  registry: Registry;
  sessions: SessionRegistry;
  hellos: Hello[];
  logger: RecordingLogger;
}

let server: ObservabilityServer | undefined;
let tunnel: TunnelServer | undefined;
const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  tunnel?.close();
  await server?.close();
  server = undefined;
  tunnel = undefined;
});

/** The tunnel server wired into runtime's HTTP server as main.ts does. */
async function start(
  limits: { handshakeTimeoutMs?: number; maxHandshakes?: number; maxHandshakesPerSource?: number } = {},
): Promise<Bed> {
  const logger = new RecordingLogger();
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const sessions = new SessionRegistry();
  const hellos: Hello[] = [];
  const authorize = (h: Hello): Authorization => {
    hellos.push(h);
    if (h.cluster !== 'alpha' && h.cluster !== 'direct')
      return { ok: false, reason: 'unknown-cluster', message: `no Cluster named ${h.cluster}` };
    if (h.cluster === 'direct')
      return { ok: false, reason: 'not-a-proxy-cluster', message: 'Cluster direct is not a proxy cluster' };
    if (h.token !== TOKEN) return { ok: false, reason: 'bad-token', message: 'the token does not match' };
    return { ok: true, binding: 'uid/digest' };
  };
  const t = new TunnelServer({
    hostKey,
    registry: sessions,
    authorize,
    isServing: () => true,
    logger,
    metrics: createProxyMetrics(registry),
    version: 'test',
    keepaliveMs: 30_000,
    ...limits,
  });
  tunnel = t;
  server = createObservabilityServer({
    port: 0,
    host: '127.0.0.1',
    registry,
    logger,
    onUpgrade: (req, socket, head) => t.handleUpgrade(req, socket, head),
    onConnection: (socket) => t.handleConnection(socket),
    limits: agentPortHttpLimits(limits.handshakeTimeoutMs ?? 10_000),
  });
  const port = await server.listen();
  return { port, tunnel: t, registry, sessions, hellos, logger };
}

async function metric(registry: Registry, name: string, labels = ''): Promise<number> {
  const text = await registry.metrics();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && line.includes(labels) && !line.startsWith('#'))
      sum += Number(line.split(' ').pop());
  }
  return sum;
}

/** A raw TCP client; `closed` resolves with the ms from connect to the proxy closing it, and what came back. */
function rawClient(
  port: number,
  localAddress = '127.0.0.1',
): { socket: net.Socket; closed: Promise<{ afterMs: number; data: string }>; connected: Promise<void> } {
  const t0 = performance.now();
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  cleanups.push(() => socket.destroy());
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
  socket.on('error', () => undefined);
  const connected = new Promise<void>((r) => socket.once('connect', () => r()));
  const closed = new Promise<{ afterMs: number; data: string }>((r) =>
    socket.once('close', () => r({ afterMs: performance.now() - t0, data })),
  );
  return { socket, closed, connected };
}

/** Upgrades a raw socket to the tunnel and waits for the 101. */
async function upgraded(port: number, localAddress?: string) {
  const c = rawClient(port, localAddress);
  await c.connected;
  await new Promise<void>((resolve, reject) =>
    afterUpgrade(c.socket, (head) =>
      head.startsWith('HTTP/1.1 101') ? resolve() : reject(new Error(`not upgraded: ${head}`)),
    ),
  );
  return c;
}

function agent(
  port: number,
  o: {
    cluster?: string;
    token?: string;
    localAddress?: string;
    targets?: Partial<Record<TargetName, (ch: Duplex) => void>>;
  } = {},
) {
  const c = new AgentConnection({
    url: `ws://127.0.0.1:${port}${TUNNEL_PATH}`,
    cluster: o.cluster ?? 'alpha',
    token: o.token ?? TOKEN,
    agent: 'pod-1',
    agentVersion: 'test',
    fingerprint: hostKey.fingerprint,
    keepaliveMs: 30_000,
    targets: o.targets ?? { kubernetes: (ch: Duplex) => ch.pipe(ch) }, // an echo
    ...(o.localAddress ? { httpAgent: new HttpAgent({ localAddress: o.localAddress } as never) } : {}),
  });
  cleanups.push(() => c.close());
  return c;
}

/** An SSH client over the tunnel that sends `commands` as execs on one session (and opens a second session). */
function sshClient(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${TUNNEL_PATH}`, SUBPROTOCOL);
    cleanups.push(() => ws.terminate());
    ws.on('error', reject);
    ws.on('open', () => {
      const c = new Client();
      cleanups.push(() => c.end());
      c.on('error', reject);
      c.on('ready', () => resolve(c));
      c.connect({
        sock: createWebSocketStream(ws) as never,
        username: 'alpha',
        authHandler: [{ type: 'none', username: 'alpha' }] as never,
        hostVerifier: () => true,
      });
    });
  });
}

function exec(c: Client, command: string): Promise<{ out: string; code?: number; error?: string }> {
  return new Promise((resolve) =>
    c.exec(command, (err, ch) => {
      if (err) return resolve({ out: '', error: err.message });
      let out = '';
      let code: number | undefined;
      ch.on('data', (d: Buffer) => (out += d.toString()));
      ch.on('exit', (x: number) => (code = x));
      ch.on('close', () => resolve({ out, ...(code === undefined ? {} : { code }) }));
      ch.stderr.resume();
    }),
  );
}

const hello = (h: Partial<Hello> = {}) =>
  encodeHello({ version: 1, cluster: 'alpha', token: TOKEN, agent: 'fuzz', ...h });

describe('TunnelServer: the handshake deadline counts from the TCP accept', () => {
  it('closes a connection that sends nothing, one that upgrades and sends no SSH ident, and one that stops after the ident', async () => {
    const b = await start({ handshakeTimeoutMs: 400 });
    const silent = rawClient(b.port);
    const noIdent = await upgraded(b.port);
    const afterIdent = await upgraded(b.port);
    afterIdent.socket.write(Buffer.concat([clientFrameHeader(21), Buffer.from('SSH-2.0-stranger_1\r\n')]));
    const results = await Promise.all([silent.closed, noIdent.closed, afterIdent.closed]);
    for (const r of results) {
      expect(r.afterMs).toBeGreaterThanOrEqual(350);
      expect(r.afterMs).toBeLessThan(5000);
    }
    expect(
      await metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="handshake-timeout"'),
    ).toBe(3);
    await until('no handshakes left', async () => b.tunnel.handshakes === 0);
    expect(await metric(b.registry, 'tower_proxy_preauth_connections')).toBe(0);
  });

  it('lets a real agent in, lifts the message limit after its hello, and stops its deadline', async () => {
    const b = await start({ handshakeTimeoutMs: 1000 });
    const a = agent(b.port);
    await a.established;
    expect(await metric(b.registry, 'tower_proxy_preauth_connections')).toBe(0);
    const session = b.sessions.pick('alpha', 'kubernetes');
    expect(session).toBeDefined();
    // 1 MiB each way through a channel: SSH packets of 32 KiB, far above PREAUTH_MAX_MESSAGE.
    const ch = await session!.openChannel('kubernetes', { address: '127.0.0.1', port: 1 });
    const payload = Buffer.alloc(1024 * 1024, 5);
    let got = 0;
    const echoed = new Promise<void>((resolve) =>
      ch.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= payload.length) resolve();
      }),
    );
    ch.write(payload);
    await echoed;
    expect(got).toBe(payload.length);
    expect(PREAUTH_MAX_MESSAGE).toBeLessThan(32 * 1024);
    // Well past the deadline, the agent is still there.
    await sleep(1300);
    expect(b.sessions.count('alpha')).toBe(1);
    expect(await metric(b.registry, 'tower_proxy_handshake_failures_total')).toBe(0);
  });
});

describe('TunnelServer: bounded messages before the hello', () => {
  it('closes at once a connection that announces a frame over the pre-hello limit (4 MiB, unfinished)', async () => {
    const b = await start({ handshakeTimeoutMs: 5000 });
    const c = await upgraded(b.port);
    c.socket.write(Buffer.concat([clientFrameHeader(4 * 1024 * 1024), Buffer.alloc(64 * 1024)]));
    const r = await c.closed;
    expect(r.afterMs).toBeLessThan(4000); // not the deadline: the header alone is refused
    expect(await metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="bad-frame"')).toBe(1);
  });

  it('closes a connection holding an unfinished frame under the limit at the deadline', async () => {
    const b = await start({ handshakeTimeoutMs: 400 });
    const c = await upgraded(b.port);
    c.socket.write(
      Buffer.concat([clientFrameHeader(PREAUTH_MAX_MESSAGE), Buffer.alloc(PREAUTH_MAX_MESSAGE - 1)]),
    );
    const r = await c.closed;
    expect(r.afterMs).toBeGreaterThanOrEqual(350);
    expect(
      await metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="handshake-timeout"'),
    ).toBe(1);
  });

  it('does not answer WebSocket pings before the hello (a peer that never reads cannot queue pongs)', async () => {
    const b = await start({ handshakeTimeoutMs: 500 });
    const c = await upgraded(b.port);
    let before = '';
    c.socket.on('data', (d: Buffer) => (before += d.toString('latin1')));
    c.socket.write(Buffer.concat([Buffer.from([0x89, 0x84, 0, 0, 0, 0]), Buffer.from('ping')]));
    const r = await c.closed;
    expect(before).not.toContain('ping'); // no pong (0x8a … "ping")
    expect(r.afterMs).toBeGreaterThanOrEqual(450);
  });
});

describe('TunnelServer: caps on connections without an accepted hello', () => {
  it('sheds the oldest of a source, then the oldest of all, and still lets an agent from a full source in', async () => {
    const b = await start({ maxHandshakes: 4, maxHandshakesPerSource: 2, handshakeTimeoutMs: 10_000 });
    const first = rawClient(b.port, '127.0.0.1');
    await first.connected;
    const second = rawClient(b.port, '127.0.0.1');
    await second.connected;
    const third = rawClient(b.port, '127.0.0.1'); // sheds `first`
    await third.connected;
    expect((await first.closed).afterMs).toBeLessThan(2000);
    const others = ['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((a) => rawClient(b.port, a));
    for (const o of others) await o.connected;
    await second.closed; // the total is full: the oldest of all goes
    await until('four handshakes held', async () => b.tunnel.handshakes === 4);
    expect(await metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="shed-source"')).toBe(1);
    expect(await metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="shed-total"')).toBe(1);
    // The total is full: an agent still connects (shedding `third`, the oldest).
    const a = agent(b.port, { localAddress: '127.0.0.2' });
    await a.established;
    await third.closed;
    expect(b.sessions.count('alpha')).toBe(1);
    expect(await metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="shed-total"')).toBe(2);
    await until('the agent out of the handshake count', async () => b.tunnel.handshakes === 3);
  });

  it('sheds the connection quiet longest, not the first accepted: an agent mid-handshake outlives silent strangers', async () => {
    const b = await start({ maxHandshakes: 10, maxHandshakesPerSource: 2, handshakeTimeoutMs: 10_000 });
    const talker = await upgraded(b.port); // accepted first…
    const silent = rawClient(b.port);
    await silent.connected;
    await until('both tracked', async () => b.tunnel.handshakes === 2);
    talker.socket.write(Buffer.concat([clientFrameHeader(9), Buffer.from('SSH-2.0-x')])); // …but talks last
    await sleep(100);
    const third = rawClient(b.port);
    await third.connected;
    await silent.closed;
    expect(talker.socket.destroyed).toBe(false);
    expect(await metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="shed-source"')).toBe(1);
  });

  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    [undefined, 'unknown'],
  ])('counts %p as source %p', (address, source) => {
    expect(sourceOf(address)).toBe(source);
  });
});

describe('TunnelServer: hellos', () => {
  it('answers an unknown cluster, a non-proxy cluster and a wrong token alike; the detail stays in the log and metrics', async () => {
    const b = await start();
    const replies: string[] = [];
    for (const h of [{ cluster: 'nope' }, { cluster: 'direct' }, { token: 'b'.repeat(64) }]) {
      const c = await sshClient(b.port);
      const r = await exec(c, hello(h));
      expect(r.code).toBe(1);
      replies.push(r.out);
    }
    const expected = `${JSON.stringify({ ok: false, reason: 'unauthorized', message: UNAUTHORIZED_MESSAGE })}\n`;
    expect(replies).toEqual([expected, expected, expected]);
    for (const reason of ['unknown-cluster', 'not-a-proxy-cluster', 'bad-token']) {
      expect(await metric(b.registry, 'tower_proxy_handshake_failures_total', `reason="${reason}"`)).toBe(1);
    }
    expect(b.logger.messages('warn')).toEqual([
      'agent refused: no Cluster named nope',
      'agent refused: Cluster direct is not a proxy cluster',
      'agent refused: the token does not match',
    ]);
  });

  it('takes one hello per connection: a second exec and a second session channel are refused', async () => {
    const b = await start();
    const c = await sshClient(b.port);
    const [one, two] = await Promise.all([exec(c, hello({ token: 'b'.repeat(64) })), exec(c, hello())]);
    expect(one.code).toBe(1);
    // The second exec (on a second session channel) never reaches authorize.
    expect(two.error ?? two.code).toBeDefined();
    expect(two.out).toBe('');
    expect(b.hellos).toHaveLength(1);

    const d = await sshClient(b.port);
    expect(JSON.parse((await exec(d, hello())).out)).toMatchObject({ ok: true });
    expect(b.hellos).toHaveLength(2);
  });

  it('refuses a token shorter than 16 characters as a bad hello, before authorize', async () => {
    const b = await start();
    const c = await sshClient(b.port);
    const r = await exec(c, hello({ token: 'short-token' }));
    expect(JSON.parse(r.out)).toEqual({
      ok: false,
      reason: 'bad-hello',
      message: 'hello token: Too small: expected string to have >=16 characters',
    });
    expect(b.hellos).toHaveLength(0);
  });
});

describe('TunnelServer: the upgrade request', () => {
  it('does not serve requests pipelined behind an upgrade, and closes the connection', async () => {
    const b = await start({ handshakeTimeoutMs: 2000 });
    for (const path of [TUNNEL_PATH, '/elsewhere']) {
      const c = rawClient(b.port);
      await c.connected;
      c.socket.write(upgradeRequest(path) + 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3));
      const r = await c.closed;
      expect(r.data).not.toContain('tower_proxy');
      expect(r.data).not.toContain('200 OK');
      expect(r.afterMs).toBeLessThan(3000);
    }
    expect(await metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="bad-path"')).toBe(1);
    expect(await metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="bad-frame"')).toBe(1);
    await until('no handshakes left', async () => b.tunnel.handshakes === 0);
  });
});

describe('TunnelServer: the series of a cluster no longer served', () => {
  const PER_CLUSTER = [
    'tower_proxy_agent_sessions',
    'tower_proxy_channels',
    'tower_proxy_channels_total',
    'tower_proxy_channel_failures_total',
  ];
  /** The lines of the four per-cluster metrics that name `cluster`. */
  async function seriesOf(registry: Registry, cluster: string): Promise<string[]> {
    return (await registry.metrics())
      .split('\n')
      .filter((l) => PER_CLUSTER.some((m) => l.startsWith(`${m}{`)) && l.includes(`cluster="${cluster}"`));
  }

  it('drops them once closeCluster has closed the last session, lets no late channel close re-create them, and starts fresh for the next agent of that name', async () => {
    const b = await start();
    const targets: Partial<Record<TargetName, (ch: Duplex) => void>> = {
      kubernetes: (ch: Duplex) => ch.pipe(ch), // an echo
    };
    const a = agent(b.port, { targets });
    await a.established;
    const session = b.sessions.pick('alpha', 'kubernetes')!;
    const origin = { address: '127.0.0.1', port: 1 };
    // One channel opened and closed, one left open, one the agent refuses.
    const done = await session.openChannel('kubernetes', origin);
    done.end();
    done.resume();
    await until('the first channel closed', async () => session.openChannels === 0);
    const open = await session.openChannel('kubernetes', origin);
    open.resume();
    delete targets.kubernetes; // the agent stops serving it: it refuses the next channel
    await expect(session.openChannel('kubernetes', origin)).rejects.toThrow(/refused a channel/);
    const labels = 'cluster="alpha",target="kubernetes"';
    expect(await metric(b.registry, 'tower_proxy_agent_sessions', 'cluster="alpha"')).toBe(1);
    expect(await metric(b.registry, 'tower_proxy_channels{', labels)).toBe(1);
    expect(await metric(b.registry, 'tower_proxy_channels_total', labels)).toBe(2);
    expect(await metric(b.registry, 'tower_proxy_channel_failures_total', labels)).toBe(1);
    expect(await seriesOf(b.registry, 'alpha')).toHaveLength(4); // the check sees them

    const order: string[] = [];
    open.once('close', () => order.push('channel'));
    b.sessions.once('change', () => order.push('session'));
    b.sessions.closeCluster('alpha', 'the Cluster was deleted');
    await a.closed;
    await until('the open channel closed', async () => open.destroyed || session.openChannels === 0);
    await sleep(200); // closes that trail the session's (channels, the socket)
    expect(order).toEqual(['session', 'channel']); // the channel's close comes after its session's
    expect(await seriesOf(b.registry, 'alpha')).toEqual([]);

    // The Cluster re-created, its agent connects again: fresh series, 1 session (not 0 or -1).
    const again = agent(b.port);
    await again.established;
    expect(await seriesOf(b.registry, 'alpha')).toEqual(['tower_proxy_agent_sessions{cluster="alpha"} 1']);
    const ch = await b.sessions.pick('alpha', 'kubernetes')!.openChannel('kubernetes', origin);
    ch.resume();
    expect(await metric(b.registry, 'tower_proxy_channels{', labels)).toBe(1);
    expect(await metric(b.registry, 'tower_proxy_channels_total', labels)).toBe(1);
  });

  it('drops them at once for a cluster without sessions (its agent left before the Cluster went)', async () => {
    const b = await start();
    const a = agent(b.port);
    await a.established;
    a.close();
    await until('the session closed', async () => b.sessions.count('alpha') === 0);
    expect(await seriesOf(b.registry, 'alpha')).toEqual(['tower_proxy_agent_sessions{cluster="alpha"} 0']);
    b.sessions.closeCluster('alpha', 'the Cluster was deleted');
    expect(await seriesOf(b.registry, 'alpha')).toEqual([]);
  });
});

describe('TunnelServer: a peer that does not read before its hello', () => {
  it('is closed as a slow reader once the proxy has queued 64 KiB towards it (the refusals of channel opens it never reads)', async () => {
    const b = await start({ handshakeTimeoutMs: 15_000 });
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}${TUNNEL_PATH}`, SUBPROTOCOL);
    cleanups.push(() => ws.terminate());
    ws.on('error', () => undefined);
    const t0 = performance.now();
    const closed = new Promise<number>((r) => ws.once('close', () => r(performance.now() - t0)));
    // SSH as far as the proxy lets a stranger without a hello: key exchange, `none` auth.
    const c = new Client();
    cleanups.push(() => c.end());
    c.on('error', () => undefined);
    const sock = createWebSocketStream(ws); // at once: the proxy's ident follows the upgrade
    await new Promise<void>((resolve) => {
      c.once('ready', resolve);
      ws.once('open', () =>
        c.connect({
          sock: sock as never,
          username: 'stranger',
          authHandler: [{ type: 'none', username: 'stranger' }] as never,
          hostVerifier: () => true,
        }),
      );
    });
    // Stop reading (the stream's buffer fills, then the WebSocket stops reading its socket), then
    // ask for channels the proxy refuses: each refusal is a packet queued towards a peer that
    // reads nothing, once the kernel's buffers (MiBs on loopback) are full.
    sock.pause();
    const slowReaders = () =>
      metric(b.registry, 'tower_proxy_handshake_failures_total', 'reason="slow-reader"');
    let opens = 0;
    while (performance.now() - t0 < 12_000 && (await slowReaders()) === 0) {
      for (let i = 0; i < 2000; i++) c.forwardOut('127.0.0.1', 1, '127.0.0.1', 443, () => undefined);
      opens += 2000;
      await new Promise((r) => setImmediate(r));
    }
    expect(opens).toBeGreaterThan(0);
    expect(await slowReaders()).toBe(1);
    sock.resume(); // reads what was queued, then the close
    expect(await closed).toBeLessThan(15_000); // not the handshake deadline
    expect(await metric(b.registry, 'tower_proxy_handshake_failures_total')).toBe(1);
    await until('no handshakes left', async () => b.tunnel.handshakes === 0);
    expect(await metric(b.registry, 'tower_proxy_preauth_connections')).toBe(0);
  }, 30_000);
});
