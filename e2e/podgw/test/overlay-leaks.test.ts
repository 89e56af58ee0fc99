/**
 * The overlay cannot be spoofed or abused by other pods (issue 11), in network namespaces. Each
 * test counts packets with an iptables rule at the end of INPUT (what got past our guard to a
 * socket: the DHCP server, the kernel's VXLAN socket, the sidecar's HTTP port) and first shows
 * that the counter catches the packets while the guard is not there, then that it stays at 0.
 *
 * - A rogue pod sends a client VXLAN frames as the gateway: an ARP request from NET.1 that
 *   rewrites the client's neighbour entry for the gateway (its default route's next hop).
 * - DHCP from the pod network, VXLAN from outside the client networks or from the VPN's side,
 *   and new connections from the VPN's side, to the gateway.
 */
import { encodeDhcp, BOOTREQUEST, BROADCAST_FLAG, DhcpMessageType } from '@knet/dhcp';
import { PodgwLab, type PodgwClient as Client, type PodgwGateway as Gateway } from '@knet/testing';
import type { NetHost } from '@knet/testing';

const { INTERNET } = PodgwLab;
const VNI = 42;
const VXLAN_PORT = 4789;
const ROGUE_MAC = '02:00:5e:10:00:99';

jest.setTimeout(180_000);

/** Sends a hex payload `count` times over UDP from `sport` (0: any) to dst:port, `gapMs` apart. */
const SEND_UDP = `
const dgram = require('dgram');
const [dst, port, hex, count, gapMs, sport] = process.argv.slice(1);
const msg = Buffer.from(hex, 'hex');
const s = dgram.createSocket('udp4');
s.on('error', (e) => { console.log('error ' + e.code); process.exit(2); });
s.bind(Number(sport), () => {
  let n = 0;
  const next = () => s.send(msg, Number(port), dst, (e) => {
    if (e) { console.log('error ' + e.code); process.exit(2); }
    if (++n >= Number(count)) { s.close(); console.log('sent ' + n); } else setTimeout(next, Number(gapMs));
  });
  next();
});`;

async function sendUdp(
  host: NetHost,
  dst: string,
  port: number,
  payload: Buffer,
  options: { count?: number; gapMs?: number; sport?: number } = {},
): Promise<void> {
  const r = await host.exec('node', [
    '-e',
    SEND_UDP,
    dst,
    String(port),
    payload.toString('hex'),
    String(options.count ?? 3),
    String(options.gapMs ?? 50),
    String(options.sport ?? 0),
  ]);
  expect(r.stdout.trim()).toBe(`sent ${options.count ?? 3}`);
}

const mac = (m: string) => Buffer.from(m.split(':').map((x) => parseInt(x, 16)));
const ipv4 = (ip: string) => Buffer.from(ip.split('.').map(Number));

/** A VXLAN packet (RFC 7348: flags with I set, VNI) around an Ethernet frame. */
function vxlan(frame: Buffer, vni = VNI): Buffer {
  const header = Buffer.alloc(8);
  header[0] = 0x08;
  header.writeUIntBE(vni, 4, 3);
  return Buffer.concat([header, frame]);
}

/** A broadcast ARP request "who has `targetIp`? tell `senderIp` at `senderMac`". */
function arpRequest(senderMac: string, senderIp: string, targetIp: string): Buffer {
  const arp = Buffer.concat([
    Buffer.from([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]),
    mac(senderMac),
    ipv4(senderIp),
    Buffer.alloc(6),
    ipv4(targetIp),
  ]);
  return Buffer.concat([mac('ff:ff:ff:ff:ff:ff'), mac(senderMac), Buffer.from([0x08, 0x06]), arp]);
}

const DISCOVER = encodeDhcp({
  op: BOOTREQUEST,
  xid: 0x4b4e4554,
  chaddr: ROGUE_MAC,
  flags: BROADCAST_FLAG,
  messageType: DhcpMessageType.DISCOVER,
  options: { hostname: 'rogue' },
});

/**
 * Counting rules, each marked by a comment: `INPUT` ones are appended (they count what got past
 * our guard, whose jump is at the top), `raw PREROUTING` ones count what arrived at all.
 */
async function addCounter(host: NetHost, table: 'filter' | 'raw', name: string, match: string[]) {
  const chain = table === 'raw' ? 'PREROUTING' : 'INPUT';
  await host.exec('iptables', ['-t', table, '-A', chain, ...match, '-m', 'comment', '--comment', name]);
}

async function counted(host: NetHost, table: 'filter' | 'raw', name: string): Promise<number> {
  const chain = table === 'raw' ? 'PREROUTING' : 'INPUT';
  const out = (await host.exec('iptables', ['-t', table, '-L', chain, '-v', '-x', '-n'])).stdout;
  const line = out.split('\n').find((l) => l.includes(`/* ${name} */`));
  if (!line) throw new Error(`no counter ${name} in ${table}/${chain}:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}

async function zeroCounters(host: NetHost): Promise<void> {
  await host.exec('iptables', ['-t', 'raw', '-Z', 'PREROUTING']);
  await host.exec('iptables', ['-Z', 'INPUT']);
}

/** The link-layer address `host` has for `ip` on `dev`, if any. */
async function neighbour(host: NetHost, ip: string, dev: string): Promise<string | undefined> {
  const out = JSON.parse(await host.ip('-j', 'neigh', 'show', ip, 'dev', dev)) as { lladdr?: string }[];
  return out[0]?.lladdr;
}

/** What vxlan0 learned (MAC → VTEP), as `mac dst ip`, all-zeros flood entries left out. */
async function learned(host: NetHost): Promise<string[]> {
  const out = (await host.exec('bridge', ['-j', 'fdb', 'show', 'dev', 'vxlan0'])).stdout;
  return (JSON.parse(out || '[]') as { mac: string; dst?: string }[])
    .filter((e) => e.dst && e.mac !== '00:00:00:00:00:00')
    .map((e) => `${e.mac} dst ${e.dst}`);
}

let w: PodgwLab;
let gw: Gateway;
let a: Client;
let rogue: Client;

beforeAll(async () => {
  w = await PodgwLab.create();
  gw = await w.addGateway('192.0.2.10', '203.0.113.2');
  a = await w.addClient('client-a-0');
  rogue = await w.addClient('rogue-0');
  const resolv = w.resolvConf(gw);
  expect((await w.gatewayInit(gw, resolv)).exitCode).toBe(0);
  await w.startGatewaySidecar(gw, resolv);
  expect((await w.clientInit(a)).exitCode).toBe(0);
  expect(await w.whoami(a.host, INTERNET)).toBe('203.0.113.2');
});
afterAll(async () => {
  await w?.dispose();
});

describe('a spoofed VXLAN sender: a rogue pod poses as the gateway to a client', () => {
  let overlayIp: string;
  /** The rogue's "NET.1 is at ROGUE_MAC", a few times (the kernel ignores updates within 1 s). */
  const spoof = () =>
    sendUdp(rogue.host, a.podIp, VXLAN_PORT, vxlan(arpRequest(ROGUE_MAC, '172.16.0.1', overlayIp)), {
      count: 6,
      gapMs: 300,
    });

  beforeAll(async () => {
    overlayIp = (await w.overlayAddress(a)) ?? '';
    expect(overlayIp).toMatch(/^172\.16\.0\.\d+$/);
    const fromRogue = ['-s', rogue.podIp, '-p', 'udp', '--dport', `${VXLAN_PORT}`];
    await addCounter(a.host, 'raw', 'from-rogue', fromRogue);
    await addCounter(a.host, 'filter', 'from-rogue', fromRogue);
  });

  it('the counter sees it: without the guard, the client takes the frames and the rogue becomes its gateway', async () => {
    await a.host.exec('iptables', ['-D', 'INPUT', '-j', 'KNET-PGW-IN']);
    await zeroCounters(a.host);
    await spoof();
    expect(await counted(a.host, 'filter', 'from-rogue')).toBeGreaterThan(0);
    expect(await neighbour(a.host, '172.16.0.1', 'vxlan0')).toBe(ROGUE_MAC);
  });

  it('with the guard (client-init puts it back): nothing from the rogue gets in, the gateway stays the gateway', async () => {
    const init = await w.clientInit(a);
    expect(init.exitCode).toBe(0);
    // Re-connecting forgot the poisoned neighbour entry; the real gateway answers again.
    expect(init.stdout).toContain('neighbour 172.16.0.1 on vxlan0 forgotten');
    const gatewayMac = JSON.parse(await gw.host.ip('-j', 'link', 'show', 'vxlan0'))[0].address as string;
    expect(await neighbour(a.host, '172.16.0.1', 'vxlan0')).toBe(gatewayMac);
    await zeroCounters(a.host);
    await spoof();
    expect(await counted(a.host, 'raw', 'from-rogue')).toBe(6); // they did arrive…
    expect(await counted(a.host, 'filter', 'from-rogue')).toBe(0); // …and went no further
    expect(await neighbour(a.host, '172.16.0.1', 'vxlan0')).toBe(gatewayMac);
    expect(await w.whoami(a.host, INTERNET)).toBe('203.0.113.2');
  });
});

describe("the gateway's INPUT: DHCP, the overlay and the VPN's side", () => {
  /** A second gateway pod, without a sidecar (nothing re-applies its rules behind the test's back). */
  let g2: Gateway;
  const G2 = '192.0.2.11';
  const G2_VPN = '203.0.113.5';

  /** Every unwanted sender, once: DHCP from a pod, VXLAN from outside the client networks and from the VPN side, TCP from the VPN side. */
  async function abuse(): Promise<void> {
    await sendUdp(rogue.host, G2, 67, DISCOVER, { sport: 68 });
    await sendUdp(rogue.host, G2, VXLAN_PORT, vxlan(arpRequest(ROGUE_MAC, '172.16.0.20', '172.16.0.1')));
    await sendUdp(w.vpn, G2_VPN, VXLAN_PORT, vxlan(arpRequest(ROGUE_MAC, '172.16.0.20', '172.16.0.1')));
    expect(await w.whoami(w.vpn, G2_VPN, 8080, 1000)).toMatch(/^(timeout|error )/);
  }
  const COUNTERS = ['dhcp-eth0', 'vxlan-rogue', 'vxlan-vpn', 'tcp-vpn'];
  const countedAll = async () =>
    Object.fromEntries(
      await Promise.all(COUNTERS.map(async (n) => [n, await counted(g2.host, 'filter', n)])),
    );
  /** The counters that saw nothing. */
  const uncounted = async () =>
    Object.entries(await countedAll())
      .filter(([, n]) => n === 0)
      .map(([name]) => name);

  beforeAll(async () => {
    g2 = await w.addGateway(G2, G2_VPN);
    await addCounter(g2.host, 'filter', 'dhcp-eth0', ['-i', 'eth0', '-p', 'udp', '--dport', '67']);
    await addCounter(g2.host, 'filter', 'vxlan-rogue', [
      '-s',
      rogue.podIp,
      '-p',
      'udp',
      '--dport',
      `${VXLAN_PORT}`,
    ]);
    await addCounter(g2.host, 'filter', 'vxlan-vpn', ['-i', 'tun0', '-p', 'udp', '--dport', `${VXLAN_PORT}`]);
    await addCounter(g2.host, 'filter', 'tcp-vpn', ['-i', 'tun0', '-p', 'tcp', '--dport', '8080']);
    await addCounter(g2.host, 'raw', 'arrived', ['-d', G2]);
  });

  it('the counters see it: before gateway-init, each of them gets in', async () => {
    await abuse();
    expect(await uncounted()).toEqual([]);
  });

  it('after gateway-init: none of them (VXLAN only from VXLAN_CLIENT_CIDRS, DHCP only on vxlan0, from the VPN only replies)', async () => {
    const r = await w.gatewayInit(g2, w.resolvConf(g2), { VXLAN_CLIENT_CIDRS: `${a.podIp}/32` });
    expect(r.exitCode).toBe(0);
    await zeroCounters(g2.host);
    await abuse();
    expect(await countedAll()).toEqual(Object.fromEntries(COUNTERS.map((n) => [n, 0])));
    expect(await counted(g2.host, 'raw', 'arrived')).toBeGreaterThan(0); // they did arrive
    // The overlay learned nothing from them: no MAC of the overlay was moved to the rogue's VTEP.
    expect(await learned(g2.host)).toEqual([]);
    // A client in VXLAN_CLIENT_CIDRS still gets in (accepted by the guard, so learned by vxlan0).
    await sendUdp(a.host, G2, VXLAN_PORT, vxlan(arpRequest(ROGUE_MAC, '172.16.0.20', '172.16.0.1')));
    expect(await learned(g2.host)).toEqual([`${ROGUE_MAC} dst ${a.podIp}`]);
  });

  it("VPN_LOCAL_CIDRS holds the pod's own subnet (as here): its connected route stays on-link", async () => {
    const route = JSON.parse(await g2.host.ip('-j', 'route', 'show', '192.0.2.0/24')) as {
      protocol?: string;
      gateway?: string;
    }[];
    expect(route).toEqual([expect.objectContaining({ protocol: 'kernel' })]);
    expect(route[0]?.gateway).toBeUndefined();
    // …and the gateway still reaches the cluster DNS (VPN_LOCAL_CIDRS) through the pod network.
    expect((await g2.host.ip('-j', 'route', 'show', '198.51.100.0/28')).includes('192.0.2.1')).toBe(true);
  });
});
