/**
 * pod-gateway end to end, in network namespaces (see @knet/testing's podgw-lab.ts for the topology): the four apps
 * as real processes, real kernel VXLAN, iptables and routing, dnsmasq as the cluster DNS and the
 * VPN's DNS. The tests run in order on one world.
 */
import { writeFileSync } from 'node:fs';
import { PodgwLab, type PodgwClient as Client, type PodgwGateway as Gateway } from '@knet/testing';

const { CLUSTER_DNS, INTERNET, VPN_SERVER } = PodgwLab;

jest.setTimeout(180_000);

let w: PodgwLab;
let gw: Gateway;
let a: Client;
let b: Client;
let web: Client;
let resolv: string;

beforeAll(async () => {
  w = await PodgwLab.create();
  gw = await w.addGateway('192.0.2.10', '203.0.113.2');
  [a, b, web] = [
    await w.addClient('client-a-0'),
    await w.addClient('client-b-0'),
    await w.addClient('web-6d4cf56db6-x2x9z'),
  ];
  resolv = w.resolvConf(gw);
});
afterAll(() => w?.dispose());

/** Packets the router saw going to the VPN side's addresses (they must only ever go over tun0). */
const leakedToRouter = async (): Promise<number> => (await w.leakCounts()).router;

describe('pod-gateway in network namespaces', () => {
  it('gateway-init sets the gateway up, and a second run changes nothing', async () => {
    const first = await w.gatewayInit(gw, resolv);
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toContain('gateway network ready');
    const second = await w.gatewayInit(gw, resolv);
    expect(second.exitCode).toBe(0);
    expect(second.stdout).toContain('nothing changed');
    expect(second.stdout).not.toContain('"changed"');
    // The VPN client rewrites resolv.conf after gateway-init saved the original.
    writeFileSync(resolv, `nameserver ${VPN_SERVER}\n`);
    await w.startGatewaySidecar(gw, resolv);
  });

  it('both clients get leases and reach the internet host, which sees the VPN address', async () => {
    for (const c of [a, b]) {
      const r = await w.clientInit(c);
      expect({ exit: r.exitCode, err: r.stderr.trim() }).toEqual({ exit: 0, err: '' });
      expect(r.stdout).toContain('routed through the gateway');
    }
    const [addrA, addrB] = [await w.overlayAddress(a), await w.overlayAddress(b)];
    expect(addrA).toMatch(/^172\.16\.0\.(2\d|[3-9]\d|1\d\d|2[0-4]\d|25[0-4])$/);
    expect(addrB).toMatch(/^172\.16\.0\./);
    expect(addrA).not.toBe(addrB);
    expect(await w.whoami(a.host, INTERNET)).toBe('203.0.113.2');
    expect(await w.whoami(b.host, INTERNET)).toBe('203.0.113.2');
    // The default route is the overlay's, and no IPv6 default route is left.
    expect(await a.host.ip('route', 'show', 'default')).toMatch(/default via 172\.16\.0\.1 dev vxlan0/);
    expect((await a.host.ip('-6', 'route', 'show', 'default')).trim()).toBe('');
  });

  it('NOT_ROUTED_TO_GATEWAY_CIDRS bypass the gateway', async () => {
    // The cluster-side server sees the client's own pod IP, not the gateway's.
    expect(await w.whoami(a.host, CLUSTER_DNS)).toBe(a.podIp);
  });

  it('DNS through the gateway: cluster names (split), outside names (VPN DNS), client names', async () => {
    expect(await w.resolve(a.host, '172.16.0.1', 'web.default.svc.cluster.local')).toBe('["198.51.100.20"]');
    expect(await w.resolve(a.host, '172.16.0.1', 'outside.example')).toBe(`["${INTERNET}"]`);
    expect(await w.resolve(a.host, '172.16.0.1', 'client-b-0')).toBe(`["${await w.overlayAddress(b)}"]`);
  });

  it('a static-IP client from nat.conf receives a forwarded (remapped) port with the real source', async () => {
    const r = await w.clientInit(web);
    expect({ exit: r.exitCode, err: r.stderr.trim() }).toEqual({ exit: 0, err: '' });
    expect(await w.overlayAddress(web)).toBe('172.16.0.10');
    await w.serveWhoami(web.host, '172.16.0.10', 80);
    // From the VPN side to the gateway's VPN address, port 8080 → web:80. No masquerade inbound.
    expect(await w.whoami(w.vpn, '203.0.113.2', 8080)).toBe(VPN_SERVER);
    // The static client's name resolves too (from nat.conf).
    expect(await w.resolve(a.host, '172.16.0.1', 'web')).toBe('["172.16.0.10"]');
  });

  it('no IPv6 leaves a client', async () => {
    await w.router.exec('ip6tables', ['-t', 'raw', '-A', 'PREROUTING', '-s', '2001:db8::21', '-p', 'udp']);
    await w.router.exec('ip6tables', ['-t', 'raw', '-A', 'PREROUTING', '-s', '2001:db8::21', '-p', 'tcp']);
    const send = `
      const d = require('dgram').createSocket('udp6');
      let n = 0;
      for (const to of ['2001:db8::1', '2001:db8:ffff::1']) d.send('leak?', 9, to, (e) => { if (!e) n++; });
      setTimeout(() => { console.log('sent ' + n); d.close(); }, 500);`;
    const r = await a.host.exec('node', ['-e', send], { check: false });
    expect(r.stdout.trim()).toBe('sent 0');
    expect(await w.whoami(a.host, '2001:db8::1', 7, 1000)).toMatch(/^(timeout|error )/);
    const counters = (await w.router.exec('ip6tables', ['-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n']))
      .stdout;
    const counts = counters
      .split('\n')
      .filter((l) => l.includes('2001:db8::21'))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
    expect(counts).toEqual([0, 0]);
  });

  it('kill switch: with the VPN interface down no client packet leaves the gateway by eth0', async () => {
    await w.installLeakCounters();
    await gw.host.ip('link', 'set', 'tun0', 'down');
    // The VPN routes are gone with tun0: without the kill switch, the default route (eth0) would win.
    expect(await w.whoami(a.host, INTERNET, 7, 1500)).toMatch(/^(timeout|error )/);
    expect(await w.whoami(b.host, INTERNET, 7, 1500)).toMatch(/^(timeout|error )/);
    expect(await leakedToRouter()).toBe(0);

    // The same without the kill switch leaks (so the counter does see leaks), then back on. The
    // sidecar, which would put the kill switch back within a resync, is stopped meanwhile, and the
    // DROP policy the kill switch left on FORWARD is opened by hand.
    process.kill(gw.sidecar!.pid, 'SIGTERM');
    await gw.sidecar!.exited;
    expect((await w.gatewayInit(gw, resolv, { VPN_BLOCK_OTHER_TRAFFIC: 'false' })).exitCode).toBe(0);
    await gw.host.exec('iptables', ['-P', 'FORWARD', 'ACCEPT']);
    await w.whoami(a.host, INTERNET, 7, 1500);
    expect(await leakedToRouter()).toBeGreaterThan(0);
    expect((await w.gatewayInit(gw, resolv)).exitCode).toBe(0);
    await gw.host.ip('link', 'set', 'tun0', 'up');
    await gw.host.ip('route', 'replace', '0.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
    await gw.host.ip('route', 'replace', '128.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
    await w.startGatewaySidecar(gw, resolv);
    expect(await w.whoami(a.host, INTERNET)).toBe('203.0.113.2');
  });

  it('10,000 malformed DHCP and DNS packets: both servers still answer correctly', async () => {
    const junk = `
      const d = require('dgram').createSocket({ type: 'udp4', reuseAddr: true });
      const crypto = require('crypto');
      d.bind(0, () => {
        d.setBroadcast(true);
        let i = 0;
        const next = () => {
          for (let k = 0; k < 100 && i < 10000; k++, i++) {
            const len = [0, 1, 11, 12, 17, 240, 300, 548][i % 8] + (i % 13);
            const b = crypto.randomBytes(len);
            if (i % 3 === 0 && len >= 240) { b[0] = 1; b[1] = 1; b[2] = 6; b.writeUInt32BE(0x63825363, 236); }
            if (i % 5 === 0 && len >= 12) { b.writeUInt16BE(1, 4); b[2] = 0x01; }
            const [host, port] = i % 2 ? ['172.16.0.1', 53] : [i % 4 ? '172.16.0.1' : '255.255.255.255', 67];
            d.send(b, port, host);
          }
          if (i < 10000) setImmediate(next); else setTimeout(() => { console.log('sent ' + i); d.close(); }, 200);
        };
        next();
      });`;
    const r = await b.host.exec('node', ['-e', junk], { check: false, timeoutMs: 60_000 });
    expect(r.stdout.trim()).toBe('sent 10000');
    expect(gw.sidecar?.running).toBe(true);
    expect(await w.resolve(b.host, '172.16.0.1', 'outside.example')).toBe(`["${INTERNET}"]`);
    // client-init again: DHCP still leases (the same address), and it changes nothing else.
    const before = await w.overlayAddress(b);
    const again = await w.clientInit(b);
    expect(again.exitCode).toBe(0);
    expect(await w.overlayAddress(b)).toBe(before);
  });

  it('gateway restarted with a new IP: the client sidecars rebuild the tunnel and keep their addresses', async () => {
    await w.startClientSidecar(a);
    await w.startClientSidecar(b);
    const [addrA, addrB] = [await w.overlayAddress(a), await w.overlayAddress(b)];

    // The old gateway pod goes away (SIGTERM: DHCP and DNS stop cleanly), a new one comes up elsewhere.
    const old = gw.sidecar!;
    process.kill(old.pid, 'SIGTERM');
    expect(await old.exited).toEqual({ exitCode: 0, signal: null });
    expect(old.output()).toContain('DHCP and DNS stopped');
    await gw.host.ip('link', 'set', 'eth0', 'down');
    const gw2 = await w.addGateway('192.0.2.11', '203.0.113.3');
    const resolv2 = w.resolvConf(gw2);
    expect((await w.gatewayInit(gw2, resolv2)).exitCode).toBe(0);
    writeFileSync(resolv2, `nameserver ${VPN_SERVER}\n`);
    // Short leases: the client sidecars renew them (at T1 = 5 s) while we watch.
    await w.startGatewaySidecar(gw2, resolv2, ['--lease-time=10s']);
    w.setClusterRecord('192.0.2.11');

    for (const c of [a, b]) await c.sidecar!.waitForOutput(/gateway moved/, 60_000);
    expect(await w.whoami(a.host, INTERNET)).toBe('203.0.113.3');
    expect(await w.whoami(b.host, INTERNET)).toBe('203.0.113.3');
    expect([await w.overlayAddress(a), await w.overlayAddress(b)]).toEqual([addrA, addrB]);
    gw = gw2;
  });

  it('client sidecars renew their leases at T1 and stay routed', async () => {
    for (const c of [a, b])
      await c.sidecar!.waitForOutput(/"mode":"renew".*lease extended|lease extended/, 30_000);
    expect(a.sidecar!.output()).toMatch(/"leaseSeconds":10,"mode":"renew","msg":"lease extended"/);
    expect(await w.whoami(a.host, INTERNET)).toBe('203.0.113.3');
  });
});
