/**
 * The watchdog on a fake client pod (@knet/podgw's createFakeClientPod: host-net fakes, a `ping`
 * that answers as the test says, an in-memory DHCP network with a real DhcpServer).
 */
import type { DhcpServer, FakeDhcpNetwork } from '@knet/dhcp';
import {
  createFakeClientPod,
  discoverFacts,
  planClient,
  startFakeGatewayDhcp,
  type FakeClientPodOptions,
} from '@knet/podgw';
import { RecordingLogger } from '@knet/runtime';
import { until } from '@knet/testing';
import { Watchdog, type WatchdogOptions } from './watchdog';

/** A client pod with a running watchdog; `stop()` ends it and waits for `run` to return. */
async function watched(pod: FakeClientPodOptions = {}, options: Partial<WatchdogOptions> = {}) {
  const logger = new RecordingLogger();
  const fake = await createFakeClientPod({ logger, ...pod });
  const facts = await discoverFacts(fake.ctx);
  const routed: boolean[] = [];
  const recovered: string[] = [];
  const watchdog = new Watchdog(fake.ctx, planClient(fake.ctx.settings, fake.ctx.nat, facts), facts, {
    intervalMs: 5,
    retryMs: 5,
    onRouted: (r) => routed.push(r),
    onRecovered: (_ms, conn) => recovered.push(conn.gatewayIp),
    ...options,
  });
  const abort = new AbortController();
  const running = watchdog.run(abort.signal);
  const stop = async () => {
    abort.abort();
    await running;
  };
  return { ...fake, logger, watchdog, routed, recovered, stop };
}

const STATIC = { hostname: 'web-0', natConf: 'web 10' };
/** The gateway's overlay address, which the watchdog pings. */
const GATEWAY = '172.16.0.1';

/** Everything jest can fake but the clock. */
const REAL_TIMERS = [
  'hrtime',
  'nextTick',
  'performance',
  'queueMicrotask',
  'setImmediate',
  'clearImmediate',
  'setInterval',
  'clearInterval',
  'setTimeout',
  'clearTimeout',
] as const;

describe('Watchdog', () => {
  it('connects at start and keeps checking the gateway; stops when the signal aborts', async () => {
    const w = await watched(STATIC);
    await until('five checks', () => w.net.ping.sent.length >= 5);
    await w.stop();
    expect(w.routed).toEqual([true]);
    expect(w.recovered).toEqual(['192.0.2.10']);
    expect(w.watchdog.connection?.address).toBe('172.16.0.10/24');
    expect(w.logger.messages('info')).toContain('routed through the gateway');
    const pings = w.net.ping.sent.length;
    await new Promise((r) => setTimeout(r, 30));
    expect(w.net.ping.sent.length).toBe(pings);
  });

  it('the gateway lost for CONNECTION_RETRY_COUNT checks: it reconnects to where the gateway moved', async () => {
    const w = await watched({ ...STATIC, env: { CONNECTION_RETRY_COUNT: '2' } });
    await until('routed', () => w.routed.length === 1);
    w.net.ping.silence(GATEWAY);
    await until('the gateway declared lost', () => w.routed.includes(false));
    // The gateway pod comes back elsewhere (its DNS name now gives the new pod IP).
    w.ctx.settings.gatewayName = '192.0.2.11';
    w.net.ping.answer(GATEWAY);
    await until('reconnected', () => w.recovered.length === 2);
    await w.stop();
    expect(w.routed).toEqual([true, false, true]);
    expect(w.recovered).toEqual(['192.0.2.10', '192.0.2.11']);
    expect(w.logger.messages('warn').filter((m) => m === 'gateway did not answer')).toHaveLength(2);
    expect(w.logger.lines).toContainEqual(
      expect.objectContaining({
        level: 'info',
        msg: 'gateway moved: routed through its new pod',
        fields: expect.objectContaining({
          why: 'gateway lost',
          gatewayIp: '192.0.2.11',
          previousGatewayIp: '192.0.2.10',
        }),
      }),
    );
    expect((await w.net.fdb.list({ dev: 'vxlan0' })).map((e) => e.dst)).toEqual(['192.0.2.11']);
  });

  it('reconnection errors are logged and retried every retryMs until the gateway answers', async () => {
    const w = await watched({ ...STATIC, gatewayAnswers: false });
    await until('three failed attempts', () => w.logger.messages('warn').length >= 3);
    expect(w.routed).toEqual([]);
    w.net.ping.answer(GATEWAY);
    await until('routed', () => w.routed.length === 1);
    await w.stop();
    const attempts = w.logger.lines.filter((l) => l.msg === 'cannot reach the gateway yet; retrying');
    expect(attempts.slice(0, 2).map((l) => l.fields)).toEqual([
      {
        why: 'start',
        attempt: 1,
        err:
          'gateway 172.16.0.1 (pod 192.0.2.10) does not answer over vxlan0: ' +
          "is UDP 4789 allowed between pods, this pod's IP in the gateway's VXLAN_CLIENT_CIDRS, and VXLAN_ID 42 the same on the gateway?",
      },
      expect.objectContaining({ why: 'start', attempt: 2 }),
    ]);
    expect(w.logger.lines).toContainEqual(
      expect.objectContaining({
        msg: 'routed through the gateway',
        fields: expect.objectContaining({ why: 'start' }),
      }),
    );
  });
});

describe('Watchdog with a DHCP lease', () => {
  let network: FakeDhcpNetwork;
  let server: DhcpServer;

  beforeEach(async () => {
    ({ network, server } = await startFakeGatewayDhcp({ leaseTimeSec: 60 }));
  });
  afterEach(async () => {
    jest.useRealTimers();
    await server?.stop();
  });

  it('renews the lease at T1 (unicast to the server), and releases it on the way out', async () => {
    // Only the clock is fake (client, server and watchdog all read Date.now): T1 comes at once.
    jest.useFakeTimers({ doNotFake: [...REAL_TIMERS] });
    const w = await watched({ dhcp: network });
    await until('routed', () => w.recovered.length === 1);
    const lease = w.watchdog.connection?.lease;
    expect(lease).toMatchObject({ address: '172.16.0.20', leaseTimeSec: 60, t1: 30 });
    expect(w.logger.messages('info')).not.toContain('lease extended');
    // The pod now owns its address: the server's unicast replies reach it.
    w.dhcpHost.addresses.add('172.16.0.20');
    jest.setSystemTime(Date.now() + 31_000);
    await until('a renewal', () => w.logger.messages('info').includes('lease extended'));
    await w.stop();
    expect(w.logger.lines).toContainEqual(
      expect.objectContaining({
        msg: 'lease extended',
        fields: { address: '172.16.0.20', leaseSeconds: 60, mode: 'renew' },
      }),
    );
    expect(w.watchdog.connection?.lease?.obtainedAt).toBeGreaterThan(lease?.obtainedAt ?? Infinity);

    expect(server.pool.activeLeases(Date.now()).map((l) => l.ip)).toEqual(['172.16.0.20']);
    await w.watchdog.release();
    await until('the lease released', () => server.pool.activeLeases(Date.now()).length === 0);
    expect(w.logger.messages('info')).toContain('released the DHCP lease');
  });

  it('a static address has no lease to release', async () => {
    const w = await watched(STATIC);
    await until('routed', () => w.recovered.length === 1);
    await w.stop();
    await w.watchdog.release();
    expect(w.logger.messages()).not.toContain('released the DHCP lease');
  });
});
