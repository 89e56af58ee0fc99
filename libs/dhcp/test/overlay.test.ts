import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NetLab,
  OVERLAY_GATEWAY,
  OVERLAY_GATEWAY_UNDERLAY,
  buildVxlanOverlay,
  type NetHost,
  type VxlanOverlay,
} from '@knet/testing';
import { jsonLines, leaseOf, nodeBundle, runClient, serverStats, startServer } from './helpers';

jest.setTimeout(240_000);

let lab: NetLab | undefined;
let dir: string;

beforeAll(async () => {
  await nodeBundle();
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'knet-dhcp-'));
});

afterEach(async () => {
  await lab?.dispose();
  lab = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** The VTEPs of the all-zeros FDB entries of a host's vxlan0. */
async function floodList(h: NetHost): Promise<string[]> {
  const fdb = JSON.parse((await h.exec('bridge', ['-j', 'fdb', 'show', 'dev', 'vxlan0'])).stdout) as {
    mac: string;
    dst?: string;
  }[];
  return fdb.filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst ?? '');
}

async function overlay(clients: number): Promise<VxlanOverlay> {
  lab = await NetLab.create();
  return buildVxlanOverlay(lab, clients);
}

describe('DhcpServer and DhcpClient over VXLAN (pod-gateway topology)', () => {
  it('leases an address through vxlan0 and the client then reaches the gateway', async () => {
    const { gw, clients } = await overlay(1);
    const c = clients[0]!;
    // As in pod-gateway: the gateway's vxlan0 has no all-zeros (flood) entry, only learned ones.
    expect(await floodList(gw)).toEqual([]);
    const server = await startServer(gw, { mtu: 1400 });

    const lines = await runClient(c, { apply: true });
    const lease = leaseOf(lines);
    expect(lease).toMatchObject({
      interface: 'vxlan0',
      address: '172.16.0.20',
      prefixLength: 24,
      router: OVERLAY_GATEWAY,
      dnsServers: [OVERLAY_GATEWAY],
      serverId: OVERLAY_GATEWAY,
      leaseTimeSec: 43200,
      t1: 21600,
      t2: 37800,
      mtu: 1400,
    });
    expect(await c.ping(OVERLAY_GATEWAY, { count: 2, timeoutSeconds: 2 })).toBe(true);

    // The server put the client's VTEP into the gateway's flood list (and only that one).
    expect(await floodList(gw)).toEqual(['192.0.2.10']);
    expect(jsonLines(server.output()).some((l) => l.event === 'hosts')).toBe(true);
    expect(OVERLAY_GATEWAY_UNDERLAY).toBe('192.0.2.1');
  });

  it('without the flood entry the broadcast OFFER never arrives: a one-line timeout names what was heard', async () => {
    const { gw, clients } = await overlay(1);
    await startServer(gw, { dev: undefined }); // no flooder
    const err = await runClient(clients[0]!, { timeoutMs: 4000 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(
      /vxlan0: no DHCP lease within 4000 ms: sent [1-9]\d* DISCOVER; heard 0 OFFER, 0 ACK, 0 NAK; no OFFER: either the server has no free address .* or it is unreachable over vxlan0 .*\)$/,
    );
    expect(await floodList(gw)).toEqual([]);
  });

  it('replies straight to the client VTEP: a lease without any flood entry, and only that client hears it', async () => {
    const { gw, clients } = await overlay(2);
    // Flood entries cannot be added at all: only a reply sent to the VTEP itself can arrive.
    await startServer(gw, { vxlan: { vni: 42, port: 4789 }, watchFdb: false, noFloodEntries: true });
    const [a, b] = clients as [NetHost, NetHost];
    // The other client counts the DHCP replies its vxlan0 receives (255.255.255.255:68).
    await b.exec('iptables', ['-t', 'raw', '-A', 'PREROUTING', '-i', 'vxlan0', '-p', 'udp', '--dport', '68']);
    const lease = leaseOf(await runClient(a, { timeoutMs: 10_000 }));
    expect(lease).toMatchObject({ address: '172.16.0.20', router: OVERLAY_GATEWAY });
    expect(await floodList(gw)).toEqual([]);
    const counted = (await b.exec('iptables', ['-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n'])).stdout;
    expect(
      Number(
        counted
          .split('\n')
          .find((l) => l.includes('udp dpt:68'))
          ?.trim()
          .split(/\s+/)[0],
      ),
    ).toBe(0);
  });

  it('gives two clients different addresses and a reserved hostname its reserved address', async () => {
    const { gw, clients } = await overlay(3);
    const server = await startServer(gw, { reservations: [{ hostname: 'torrent', ip: '172.16.0.5' }] });
    const [a, b, r] = clients as [
      NonNullable<(typeof clients)[0]>,
      NonNullable<(typeof clients)[0]>,
      NonNullable<(typeof clients)[0]>,
    ];
    const [la, lb] = await Promise.all([runClient(a, { hostname: 'web' }), runClient(b, { hostname: 'db' })]);
    const addrs = [leaseOf(la).address, leaseOf(lb).address].sort();
    expect(addrs).toEqual(['172.16.0.20', '172.16.0.21']);
    const lr = await runClient(r, { hostname: 'torrent', apply: true });
    expect(leaseOf(lr).address).toBe('172.16.0.5');
    expect(await r.ping(OVERLAY_GATEWAY, { count: 1, timeoutSeconds: 2 })).toBe(true);

    const hosts = jsonLines(server.output()).filter((l) => l.event === 'hosts');
    expect(hosts[hosts.length - 1]!.hosts).toEqual({
      web: leaseOf(la).address,
      db: leaseOf(lb).address,
      torrent: '172.16.0.5',
    });
  });

  it('does not lease an address a pod still uses through the gateway (lease lost): offers the next one', async () => {
    const { gw, clients } = await overlay(2);
    const server = await startServer(gw, {});
    const [kept, fresh] = clients as [NetHost, NetHost];
    // A pod that kept 172.16.0.20 after the gateway lost its leases, and talks to the gateway.
    await kept.ip('addr', 'add', '172.16.0.20/24', 'dev', 'vxlan0');
    expect(await kept.ping(OVERLAY_GATEWAY, { count: 1, timeoutSeconds: 2 })).toBe(true);
    expect(leaseOf(await runClient(fresh, {})).address).toBe('172.16.0.21');
    expect((await serverStats(server)).stats).toMatchObject({ inUse: 1 });
    expect(jsonLines(server.output()).map((l) => l.msg)).toContain(
      'dhcp: address in use on the overlay by a client we did not lease it to; set aside',
    );
  });

  it('renews (unicast to the server) and rebinds (broadcast) an applied lease', async () => {
    const { gw, clients } = await overlay(1);
    await startServer(gw, {});
    const lines = await runClient(clients[0]!, { apply: true, renew: true, rebind: true });
    expect(leaseOf(lines).address).toBe('172.16.0.20');
    expect(leaseOf(lines, 'renewed')).toMatchObject({ address: '172.16.0.20', serverId: OVERLAY_GATEWAY });
    expect(leaseOf(lines, 'rebound')).toMatchObject({ address: '172.16.0.20', serverId: OVERLAY_GATEWAY });
  });

  it('keeps leases across a server restart through the lease file (same client id → same address)', async () => {
    const { gw, clients } = await overlay(2);
    const leaseFile = join(dir, 'leases.json');
    const first = await startServer(gw, { leaseFile });
    // Another client first, so the interesting one does not simply get the lowest address again.
    expect(leaseOf(await runClient(clients[1]!, { clientId: 'ff00000000000b' })).address).toBe('172.16.0.20');
    const before = leaseOf(await runClient(clients[0]!, { clientId: 'ff00000000000a', hostname: 'app' }));
    expect(before.address).toBe('172.16.0.21');
    await first.kill('SIGTERM', 10_000);
    expect(jsonLines(first.output()).some((l) => l.event === 'stopped')).toBe(true);
    expect(statSync(leaseFile).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(readFileSync(leaseFile, 'utf8'));
    expect(doc).toMatchObject({ version: 1 });
    expect(doc.leases).toHaveLength(2);

    // New server process; the pod got a new vxlan0 MAC but keeps its client id.
    await clients[0]!.ip('link', 'set', 'vxlan0', 'address', '02:00:5e:00:53:0a');
    const second = await startServer(gw, { leaseFile });
    expect(jsonLines(second.output()).some((l) => l.msg === 'dhcp: leases restored')).toBe(true);
    const after = leaseOf(await runClient(clients[0]!, { clientId: 'ff00000000000a', hostname: 'app' }));
    expect(after.address).toBe(before.address);
  });
});
