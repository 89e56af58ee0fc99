import { Resolver } from 'node:dns/promises';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DhcpClient, FakeDhcpNetwork } from '@knet/dhcp';
import { ZERO_MAC, createFakeHostNet, type FakeHostNet } from '@knet/host-net';
import { loadConfig, type PodgwConfig } from '@knet/podgw';
import { Registry, RecordingLogger, UsageError } from '@knet/runtime';
import { freePort } from '@knet/testing';
import { OverlayServers, requireGatewayAddress } from './servers';

// The overlay on loopback: VXLAN_IP_NETWORK=127.0.31 puts the gateway address, where the DNS server
// listens, at 127.0.31.1. DHCP runs over an in-memory link, vxlan0 and its FDB are host-net fakes.
const NET = '127.0.31';
const GATEWAY = `${NET}.1`;
const CLIENT_MAC = '02:00:00:00:00:21';
const CLIENT_VTEP = '192.0.2.21';

let dir: string;
let net: FakeHostNet;

function config(env: Record<string, string> = {}): PodgwConfig {
  const natConfig = join(dir, 'nat.conf');
  writeFileSync(natConfig, 'printer 5 tcp:631\n');
  return loadConfig({ settings: [], natConfig }, { VXLAN_IP_NETWORK: NET, ...env });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'knet-gateway-sidecar-'));
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 10.96.0.10\nsearch cluster.local\n');
  net = createFakeHostNet();
  await net.ip.addVxlan('vxlan0', { id: 42, dstPort: 4789 });
  await net.ip.addAddress('vxlan0', `${GATEWAY}/24`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('requireGatewayAddress', () => {
  it('passes when vxlan0 has the gateway address', async () => {
    await expect(requireGatewayAddress(net.ip, config())).resolves.toBeUndefined();
  });

  it('says to run gateway-init first when vxlan0 lacks it or is missing', async () => {
    const message =
      'vxlan0 does not have the gateway address 172.16.9.1: run gateway-init first (with the same settings)';
    await expect(requireGatewayAddress(net.ip, config({ VXLAN_IP_NETWORK: '172.16.9' }))).rejects.toThrow(
      message,
    );
    await net.ip.deleteLink('vxlan0');
    await expect(requireGatewayAddress(net.ip, config({ VXLAN_IP_NETWORK: '172.16.9' }))).rejects.toThrow(
      message,
    );
  });
});

describe('OverlayServers', () => {
  it('leases addresses on vxlan0 and answers the clients by name on the gateway address', async () => {
    const link = new FakeDhcpNetwork();
    const logger = new RecordingLogger();
    const dnsPort = await freePort();
    const servers = new OverlayServers({
      config: config(),
      stateDir: join(dir, 'state'),
      resolvConf: join(dir, 'resolv.conf'),
      dnsPort,
      resyncInterval: 1000,
      leaseTime: 3_600_000,
      localDomain: 'pods.test',
      ip: net.ip,
      fdb: net.fdb,
      logger,
      registry: new Registry(),
      dhcpSocketFactory: link.host('gateway', GATEWAY).socketFactory,
    });
    // The gateway's vxlan0 learned the client's MAC from its frames.
    await net.fdb.replace({ mac: CLIENT_MAC, dev: 'vxlan0', dst: CLIENT_VTEP, state: 'dynamic' });
    expect(servers.serving).toBe(false);
    await servers.start();
    try {
      expect(servers.serving).toBe(true);
      const client = new DhcpClient({
        interface: 'vxlan0',
        mac: CLIENT_MAC,
        hostname: 'web',
        socketFactory: link.host('web').socketFactory,
      });
      const lease = await client.acquire({ timeoutMs: 5000 });
      expect([lease.address, lease.router, lease.dnsServers, lease.leaseTimeSec]).toEqual([
        `${NET}.20`,
        GATEWAY,
        [GATEWAY],
        3600,
      ]);
      // The broadcast reply reached the client through an all-zeros entry for its VTEP.
      expect(await net.fdb.list({ dev: 'vxlan0' })).toContainEqual(
        expect.objectContaining({ mac: ZERO_MAC, dst: CLIENT_VTEP }),
      );

      const dns = new Resolver({ timeout: 2000, tries: 1 });
      dns.setServers([`${GATEWAY}:${dnsPort}`]);
      expect(await dns.resolve4('web')).toEqual([`${NET}.20`]);
      expect(await dns.resolve4('web.pods.test')).toEqual([`${NET}.20`]);
      expect(await dns.resolve4('printer')).toEqual([`${NET}.5`]); // nat.conf, no lease needed
      expect(await dns.reverse(`${NET}.20`)).toEqual(['web.pods.test']);
      // Other names go to the pod's resolv.conf nameservers; the original is kept in the state dir.
      expect(servers.dns.upstreams.map((u) => u.address)).toEqual(['10.96.0.10']);
      expect(readFileSync(join(dir, 'state', 'resolv.conf.orig'), 'utf8')).toContain('nameserver 10.96.0.10');
    } finally {
      await servers.stop();
    }
    expect(servers.serving).toBe(false);
    expect(JSON.parse(readFileSync(join(dir, 'state', 'leases.json'), 'utf8'))).toMatchObject({
      leases: [expect.objectContaining({ ip: `${NET}.20`, hostname: 'web' })],
    });
    expect(logger.messages('info')).toEqual(
      expect.arrayContaining(['serving DHCP and DNS on the overlay', 'DHCP and DNS stopped']),
    );
  });

  it('with the kill switch on, forwards other names only to upstreams routed through VPN_INTERFACE', async () => {
    // The pod's eth0 and default route; the VPN's tun0 comes later. --dns-upstream names the VPN's DNS.
    await net.ip.addVeth('eth0', 'peer0');
    await net.ip.addAddress('eth0', '192.0.2.10/24');
    await net.ip.setLink('eth0', { up: true });
    await net.ip.replaceRoute({ dst: 'default', via: '192.0.2.1' });
    const registry = new Registry();
    const servers = new OverlayServers({
      config: config({ VPN_INTERFACE: 'tun0', VPN_BLOCK_OTHER_TRAFFIC: 'true' }),
      stateDir: join(dir, 'state'),
      resolvConf: join(dir, 'resolv.conf'),
      dnsUpstream: ['203.0.113.53'],
      dnsPort: await freePort(),
      resyncInterval: 60_000,
      leaseTime: 3_600_000,
      ip: net.ip,
      fdb: net.fdb,
      logger: new RecordingLogger(),
      registry,
      dhcpSocketFactory: new FakeDhcpNetwork().host('gateway', GATEWAY).socketFactory,
    });
    await servers.start();
    try {
      const upstream = servers.dns.upstreams[0]!;
      expect(servers.dns.upstreams.map((u) => u.address)).toEqual(['203.0.113.53']); // not resolv.conf's
      expect(servers.gate?.allowed([upstream])).toEqual([]); // leaves by eth0
      expect(await registry.metrics()).toContain('knet_podgw_dns_upstreams{state="blocked"} 1');
      // The DHCP server's counters are exported too.
      expect(await registry.metrics()).toMatch(/^knet_dhcp_pool_addresses\{state="free"\} \d+$/m);
      await net.ip.addVeth('tun0', 'peer1');
      await net.ip.addAddress('tun0', '203.0.113.2/24');
      await net.ip.setLink('tun0', { up: true });
      await servers.gate?.check();
      expect(servers.gate?.allowed([upstream])).toEqual([upstream]);
      expect(await registry.metrics()).toContain('knet_podgw_dns_upstreams{state="allowed"} 1');
    } finally {
      await servers.stop();
    }
  });

  /** Servers built (not started) from these settings. */
  const built = (env: Record<string, string>) =>
    new OverlayServers({
      config: config(env),
      stateDir: join(dir, 'state'),
      resolvConf: join(dir, 'resolv.conf'),
      dnsPort: 53,
      resyncInterval: 1000,
      leaseTime: 3_600_000,
      ip: net.ip,
      fdb: net.fdb,
      logger: new RecordingLogger(),
      registry: new Registry(),
    });

  it('refuses GATEWAY_ENABLE_DNSSEC=true, which would promise a validation it does not do', () => {
    expect(() => built({ GATEWAY_ENABLE_DNSSEC: 'true' })).toThrow(UsageError);
    expect(() => built({ GATEWAY_ENABLE_DNSSEC: 'true' })).toThrow(
      /^GATEWAY_ENABLE_DNSSEC=true \(from env GATEWAY_ENABLE_DNSSEC\): this gateway does not validate DNSSEC itself .* or set it to false$/,
    );
    expect(built({ GATEWAY_ENABLE_DNSSEC: 'false' }).dns).toBeDefined();
  });

  it('has no DNS gate without the kill switch', () => {
    expect(built({ VPN_BLOCK_OTHER_TRAFFIC: 'false' }).gate).toBeUndefined();
  });
});
