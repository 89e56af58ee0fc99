import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { ReopeningPool, freePort, gcAndMeasure, sleep, until } from '@knet/testing';
import { TUNNEL_PATH, afterUpgrade, clientFrame, clientFrameHeader, upgradeRequest } from '@knet/tunnel';
import { towerBed, type RunningProxy } from './harness';

/**
 * Strangers on the agent port who never hang up on their own: idle before the ident, half an
 * ident, unfinished frames, oversized frames, truncated SSH, slow-loris HTTP. The proxy must close
 * each within its handshake deadline, keep its memory bounded while they keep coming, count them,
 * and still let a real agent in.
 */
const bed = towerBed({ testTimeout: 180_000, proxy: false });
const DEADLINE_MS = 3000;
let proxy: RunningProxy;
/** The proxy's inspector: memory is read after a full GC, what it holds and not its garbage. */
let inspectPort: number;

beforeAll(async () => {
  inspectPort = await freePort();
  proxy = await bed.startProxy([`--handshake-timeout=${DEADLINE_MS / 1000}s`], {
    nodeFlags: [`--inspect=127.0.0.1:${inspectPort}`],
  });
});

/** The proxy's RSS (MiB) after a full GC. */
const heldMiB = async () => (await gcAndMeasure(inspectPort)).rss;

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${proxy.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(name) && line.includes(labels)) sum += Number(line.split(' ').pop());
  return sum;
}

type Kind = 'idle' | 'slow-loris' | 'upgraded' | 'half-ident' | 'unfinished' | 'truncated' | 'oversized';
const KINDS: Kind[] = [
  'idle',
  'slow-loris',
  'upgraded',
  'half-ident',
  'unfinished',
  'truncated',
  'oversized',
];

/** What each kind sends; none of them ever closes its side. */
function behave(s: Socket, kind: Kind): void {
  const upgraded = (then: () => void) => afterUpgrade(s, then);
  switch (kind) {
    case 'idle':
      return;
    case 'slow-loris': {
      s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write('a')), 200);
      return;
    }
    case 'upgraded':
      return upgraded(() => undefined);
    case 'half-ident':
      return upgraded(() => s.write(clientFrame(Buffer.from('SSH-2.0-hal'))));
    case 'unfinished':
      return upgraded(() => s.write(Buffer.concat([clientFrameHeader(8192), randomBytes(8191)])));
    case 'truncated': {
      // The ident, then an SSH packet that announces 1000 bytes and stops after 100.
      const pkt = Buffer.alloc(100);
      pkt.writeUInt32BE(1000, 0);
      return upgraded(() =>
        s.write(Buffer.concat([clientFrame(Buffer.from('SSH-2.0-trunc\r\n')), clientFrame(pkt)])),
      );
    }
    case 'oversized':
      // 4 MiB announced, 2 MiB sent (before the fix the proxy buffered it all, and kept it).
      return upgraded(() =>
        s.write(Buffer.concat([clientFrameHeader(4 * 1024 * 1024), Buffer.alloc(2 * 1024 * 1024)])),
      );
  }
}

describe('hostile clients on the agent port', () => {
  it('are closed within the deadline, counted, hold bounded memory, and do not keep a real agent out', async () => {
    const c = await bed.readyCluster('hostile', proxy);
    // Warm up, then the idle figure.
    for (let k = 0; k < 20; k++) await fetch(`${proxy.url}/metrics`);
    await sleep(500);
    const rss0 = await heldMiB();

    // 300 kept open from 50 loopback addresses; each one the proxy closes is opened again.
    const pool = new ReopeningPool({
      port: proxy.port,
      size: 300,
      kinds: KINDS,
      sourceOf: (i) => `127.0.0.${2 + (i % 50)}`,
      behave,
    });
    try {
      const agent = bed.startAgent({
        cluster: 'hostile',
        token: c.spec!.connection!.token!,
        id: 'good',
        proxy,
      });
      await bed.untilAgentAvailable('hostile', agent);
      // Several generations of them (each lives one deadline).
      await sleep(3 * DEADLINE_MS);
      const rss1 = await heldMiB();
      expect(pool.open).toBeGreaterThan(250);
      expect(pool.closed.length).toBeGreaterThan(300);
      // Bounded: what the proxy holds with them open, after a full GC (the garbage of their churn,
      // ~100 a second, made the raw RSS vary by 25 MiB from run to run); far from the chart's 512Mi
      // limit. (Before the deadline and the 8 KiB limit, the same clients added 114 MiB in this
      // test, and it stayed.)
      expect(rss1 - rss0).toBeLessThan(80);
      expect(rss1).toBeLessThan(200);

      // Every one of them was closed by the proxy (the clients never close), within the deadline
      // (slow-loris: the HTTP head limit, checked every quarter of it). The bound allows for the
      // lag of this loaded 2-core machine (seen: deadline + 2.1 s); without a deadline, never.
      for (const kind of KINDS) {
        const times = pool.closed.filter((x) => x.kind === kind).map((x) => x.afterMs);
        expect({ kind, seen: times.length > 0 }).toEqual({ kind, seen: true });
        expect({ kind, slowest: Math.max(...times) < DEADLINE_MS * 3 }).toEqual({
          kind,
          slowest: true,
        });
      }
      // Oversized frames are refused at their header, not at the deadline.
      const oversized = pool.closed.filter((x) => x.kind === 'oversized').map((x) => x.afterMs);
      expect(Math.min(...oversized)).toBeLessThan(DEADLINE_MS);

      expect(
        await metric('tower_proxy_handshake_failures_total', 'reason="handshake-timeout"'),
      ).toBeGreaterThan(200);
      expect(await metric('tower_proxy_handshake_failures_total', 'reason="bad-frame"')).toBeGreaterThan(10);
      expect(await metric('tower_proxy_agent_sessions', 'cluster="hostile"')).toBe(1);
      await agent.stop();
    } finally {
      pool.stop();
    }
    await until(
      () => 'no connection left in its handshake',
      async () => (await metric('tower_proxy_preauth_connections')) <= 1, // this scrape's own
      10_000,
    );
  });

  it('an upgrade followed by pipelined requests: nothing pipelined is served, the connection is closed', async () => {
    for (const path of [TUNNEL_PATH, '/elsewhere']) {
      const answer = await new Promise<{ data: string; afterMs: number }>((resolve) => {
        const t0 = performance.now();
        let data = '';
        const s = netConnect({ host: '127.0.0.1', port: proxy.port }, () =>
          s.write(upgradeRequest(path) + 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3)),
        );
        s.on('data', (d: Buffer) => (data += d.toString('latin1')));
        s.on('error', () => undefined);
        s.on('close', () => resolve({ data, afterMs: performance.now() - t0 }));
      });
      expect(answer.data).not.toContain('tower_proxy_');
      expect(answer.data).toMatch(path === TUNNEL_PATH ? /^HTTP\/1.1 101 / : /^HTTP\/1.1 404 /);
      expect(answer.afterMs).toBeLessThan(DEADLINE_MS * 3);
    }
  });

  it('with --metrics-port, /metrics (whose labels name Clusters) is not on the agent port', async () => {
    const metricsPort = await freePort();
    const other = await bed.startProxy([`--metrics-port=${metricsPort}`]);
    expect((await fetch(`${other.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${other.url}/readyz`)).status).toBe(200);
    const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toContain('tower_proxy_preauth_connections');
    await other.proc.stop();
  });
});
