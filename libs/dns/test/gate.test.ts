// The kill switch's DNS gate on loopback: while a default upstream's route does not leave by the
// VPN interface, no query reaches it (counted at the upstream itself) and the client gets SERVFAIL,
// counted as blocked; split domains are not gated. Routes are a map the test changes.
import { freePort } from '@knet/testing';
import { DnsServer, RouteUpstreamGate } from '../src';
import { FakeUpstream, Packet, addresses, query, reply, type Addr } from './helpers';

jest.setTimeout(30_000);

const NET = '127.0.12';
let vpnDns: FakeUpstream;
let clusterDns: FakeUpstream;
let server: DnsServer;
let gate: RouteUpstreamGate;
let addr: Addr;
/** upstream address → the interface its route leaves by (missing: unreachable). */
const routes = new Map<string, string>();
/** routeDev calls wait for this when set (a slow `ip route get`). */
let hold: Promise<void> | undefined;

const answerA = (ip: string) => (q: Packet, _raw: Buffer, send: (p: Packet) => void) =>
  send(reply(q, 0, [{ type: Packet.TYPE.A, ttl: 0, address: ip } as never]));

beforeAll(async () => {
  vpnDns = await FakeUpstream.start(`${NET}.1`, answerA('203.0.113.100'));
  clusterDns = await FakeUpstream.start(`${NET}.2`, answerA('198.51.100.20'));
  gate = new RouteUpstreamGate({
    via: 'tun0',
    intervalMs: 60_000, // the test calls check() itself
    routeDev: async (a) => {
      await hold;
      return routes.get(a);
    },
  });
  addr = { address: `${NET}.10`, port: await freePort() };
  server = new DnsServer({
    listen: [addr],
    upstreams: [`${vpnDns.address}#${vpnDns.port}`],
    split: [{ domain: 'cluster.local', servers: [`${clusterDns.address}#${clusterDns.port}`] }],
    gate,
    cache: { maxTtl: 0 },
  });
  await server.start();
});

afterAll(async () => {
  gate?.stop();
  await server?.stop();
  await Promise.all([vpnDns?.close(), clusterDns?.close()]);
});

/** Asks for a fresh name (no cache); its rcode and how many queries reached each upstream for it. */
async function ask(name: string): Promise<{ rcode: number; vpn: number; cluster: number; a: string[] }> {
  const r = await query(addr, name, 'A', { timeoutMs: 3000 });
  return { rcode: r.rcode, vpn: vpnDns.count(name), cluster: clusterDns.count(name), a: addresses(r) };
}

it('the counter sees a leak: a default upstream routed via eth0 is asked when nothing gates it', async () => {
  const open = new DnsServer({
    listen: [{ address: `${NET}.11`, port: await freePort() }],
    upstreams: [`${vpnDns.address}#${vpnDns.port}`],
  });
  await open.start();
  try {
    const { udp } = open.addresses();
    const r = await query({ address: `${NET}.11`, port: udp[0]!.port }, 'leak.example', 'A');
    expect(r.rcode).toBe(0);
    expect(vpnDns.count('leak.example')).toBe(1);
  } finally {
    await open.stop();
  }
});

it('asks a default upstream only while its route leaves by the VPN interface', async () => {
  routes.set(vpnDns.address, 'tun0');
  await gate.check();
  expect(await ask('up.example')).toEqual({ rcode: 0, vpn: 1, cluster: 0, a: ['203.0.113.100'] });

  routes.set(vpnDns.address, 'eth0'); // the VPN went down: its DNS would be reached over eth0
  await gate.check();
  const blocked = server.stats.blocked;
  expect(await ask('down.example')).toEqual({ rcode: 2, vpn: 0, cluster: 0, a: [] });
  expect(server.stats.blocked - blocked).toBe(1);
  expect(gate.blocked).toBe(1);
  // Split domains still go to the cluster DNS.
  expect(await ask('web.default.svc.cluster.local')).toMatchObject({ rcode: 0, vpn: 0, cluster: 1 });

  routes.delete(vpnDns.address); // unreachable
  await gate.check();
  expect(await ask('gone.example')).toMatchObject({ rcode: 2, vpn: 0 });

  routes.set(vpnDns.address, 'tun0'); // back up
  await gate.check();
  expect(await ask('again.example')).toMatchObject({ rcode: 0, vpn: 1 });
  expect(gate.blocked).toBe(0);
});

it('fails closed: new upstreams are not asked before their route is checked', async () => {
  routes.set(vpnDns.address, 'tun0');
  routes.set(clusterDns.address, 'eth0');
  await gate.check();
  let release!: () => void;
  hold = new Promise((r) => (release = r));
  // resolv.conf now names the cluster DNS (a VPN down script restored it): its route is being looked up.
  server.setUpstreams([`${clusterDns.address}#${clusterDns.port}`]);
  expect(await ask('early.example')).toMatchObject({ rcode: 2, vpn: 0, cluster: 0 });
  hold = undefined;
  release();
  await gate.check();
  expect(await ask('late.example')).toMatchObject({ rcode: 2, vpn: 0, cluster: 0 });
  expect(gate.blocked).toBe(1);
  server.setUpstreams([`${vpnDns.address}#${vpnDns.port}`]);
  await gate.check();
  expect(await ask('vpn-again.example')).toMatchObject({ rcode: 0, vpn: 1, cluster: 0 });
});

it('a failing route lookup blocks the upstream', async () => {
  const failing = new RouteUpstreamGate({
    via: 'tun0',
    routeDev: () => Promise.reject(new Error('ip: command failed')),
  });
  const u = { address: '192.0.2.53', canonical: '192.0.2.53', port: 53, family: 4 as const };
  failing.upstreamsChanged([u]);
  await failing.check();
  expect(failing.allowed([u])).toEqual([]);
  expect(failing.blocked).toBe(1);
});
