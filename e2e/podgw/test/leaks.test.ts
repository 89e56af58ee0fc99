/**
 * The kill switch's promise, in network namespaces (issue 11): no client packet leaves the gateway
 * any other way than the VPN. Each test counts the packets the router (the pod network's way out)
 * sees going to the VPN side's addresses, and first shows that the counter catches a deliberate
 * leak.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodgwLab, type PodgwClient as Client, type PodgwGateway as Gateway } from '@knet/testing';

const { CLUSTER_DNS, INTERNET, VPN_SERVER } = PodgwLab;
const GATEWAY_IP = '192.0.2.10';

jest.setTimeout(180_000);

let w: PodgwLab;
let a: Client;
/** The gateway pod that now has GATEWAY_IP. */
let current: Gateway;
/** An iptables-restore that refuses every payload with a filter table (the kill switch). */
const broken = mkdtempSync(join(tmpdir(), 'knet-ipt-broken-'));

beforeAll(async () => {
  writeFileSync(
    join(broken, 'iptables-restore'),
    `#!/bin/sh
payload=$(cat)
case "$payload" in
  *'*filter'*) echo "iptables-restore: line 2 failed (injected by the test)" >&2; exit 1 ;;
esac
printf '%s\\n' "$payload" | exec /usr/sbin/iptables-restore "$@"
`,
  );
  chmodSync(join(broken, 'iptables-restore'), 0o755);
  w = await PodgwLab.create();
  current = await w.addGateway(GATEWAY_IP, '203.0.113.2');
  a = await w.addClient('client-a-0');
  const resolv = w.resolvConf(current);
  expect((await w.gatewayInit(current, resolv)).exitCode).toBe(0);
  writeFileSync(resolv, `nameserver ${VPN_SERVER}\n`);
  await w.startGatewaySidecar(current, resolv);
  expect((await w.clientInit(a)).exitCode).toBe(0);
  expect(await w.whoami(a.host, INTERNET)).toBe('203.0.113.2');
  // The router counts what reaches it for the VPN side's addresses (only tun0 may carry those), the
  // cluster DNS queries for names outside the split domains (*.outside.example).
  await w.installLeakCounters();
});
afterAll(async () => {
  rmSync(broken, { recursive: true, force: true });
  await w?.dispose();
});

/** Packets the router saw going to the VPN side's addresses since the last reset. */
const leakedToRouter = async (): Promise<number> => (await w.leakCounts()).router;

/** Queries for names outside the split domains that reached the cluster DNS since the last reset. */
const leakedToClusterDns = async (): Promise<number> => (await w.leakCounts()).clusterDns;

/** Restarts the gateway's sidecar with `nameservers` in its resolv.conf; returns that file. */
async function restartSidecar(
  nameservers: string,
  env: NodeJS.ProcessEnv = {},
  extra = ['--resync-interval=500ms'],
): Promise<string> {
  if (current.sidecar?.running) {
    process.kill(current.sidecar.pid, 'SIGTERM');
    await current.sidecar.exited;
  }
  const resolv = w.resolvConf(current);
  writeFileSync(resolv, `nameserver ${nameservers}\n`);
  await w.startGatewaySidecar(current, resolv, extra, env);
  await w.resetLeakCounters();
  return resolv;
}

let names = 0;
/** A client asks the gateway for a name outside the split domains never asked before (no cache). */
const askOutside = () => w.resolve(a.host, '172.16.0.1', `n${++names}.outside.example`);

/** Asks until the answer matches (the sidecar follows resolv.conf and routes within a resync). */
async function askUntil(expected: RegExp, timeoutMs = 10_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const answer = await askOutside();
    if (expected.test(answer) || Date.now() > end) return answer;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The gateway pod is re-created with the same pod IP, its VPN not up yet (tun0 down: its routes
 * gone, so eth0's default route would carry everything). The client keeps its overlay to
 * GATEWAY_IP and sends on.
 */
async function recreateGateway(vpnIp: string): Promise<{ gw: Gateway; resolv: string }> {
  if (current.sidecar?.running) {
    process.kill(current.sidecar.pid, 'SIGTERM');
    await current.sidecar.exited;
  }
  await current.host.ip('link', 'set', 'eth0', 'down');
  current = await w.addGateway(GATEWAY_IP, vpnIp);
  await current.host.ip('link', 'set', 'tun0', 'down');
  // The client's neighbour entries still name the old pod's MACs (a finding of its own).
  await a.host.ip('neigh', 'flush', 'dev', 'eth0');
  await a.host.ip('neigh', 'flush', 'dev', 'vxlan0');
  await w.resetLeakCounters();
  return { gw: current, resolv: w.resolvConf(current) };
}

describe('DHCP client ids', () => {
  it('pods of one name in two namespaces get an address each (the client id carries POD_NAMESPACE)', async () => {
    const [x, y] = [await w.addClient('twin-0'), await w.addClient('twin-0')];
    expect((await w.clientInit(x, ['--pod-namespace=team-a'])).exitCode).toBe(0);
    expect((await w.clientInit(y, ['--pod-namespace=team-b'])).exitCode).toBe(0);
    const [ax, ay] = [await w.overlayAddress(x), await w.overlayAddress(y)];
    expect(ax).toMatch(/^172\.16\.0\.\d+$/);
    expect(ay).toMatch(/^172\.16\.0\.\d+$/);
    expect(ax).not.toBe(ay);
    expect(await w.whoami(x.host, INTERNET)).toBe('203.0.113.2');
    expect(await w.whoami(y.host, INTERNET)).toBe('203.0.113.2');
  });
});

describe('DNS with the kill switch on', () => {
  it('the counter sees a leak: without the DNS gate, names outside the split domains reach the cluster DNS', async () => {
    // The sidecar alone without the kill switch (its rules too: the DROP policy the kill switch
    // left on OUTPUT is opened by hand); the next test's sidecar puts everything back.
    await restartSidecar(CLUSTER_DNS, { VPN_BLOCK_OTHER_TRAFFIC: 'false' });
    await current.host.exec('iptables', ['-P', 'OUTPUT', 'ACCEPT']);
    await askOutside();
    expect(await leakedToClusterDns()).toBeGreaterThan(0);
  });

  it('before the VPN client rewrites resolv.conf (or if it never does): SERVFAIL, nothing reaches the cluster DNS', async () => {
    await restartSidecar(CLUSTER_DNS);
    expect(await askOutside()).toBe('error ESERVFAIL');
    expect(await askOutside()).toBe('error ESERVFAIL');
    // Cluster names still resolve (DNS_LOCAL_CIDRS: split to the cluster DNS).
    expect(await w.resolve(a.host, '172.16.0.1', 'web.default.svc.cluster.local')).toBe('["198.51.100.20"]');
    expect(await leakedToClusterDns()).toBe(0);
    expect(await leakedToRouter()).toBe(0);
  });

  it('the VPN goes down and its down script restores resolv.conf: SERVFAIL, nothing leaves but by tun0', async () => {
    const resolv = await restartSidecar(VPN_SERVER);
    expect(await askOutside()).toBe(`["${INTERNET}"]`);
    await current.host.ip('link', 'set', 'tun0', 'down');
    expect(await askUntil(/^error ESERVFAIL$/)).toBe('error ESERVFAIL');
    expect(await askOutside()).toBe('error ESERVFAIL');
    writeFileSync(resolv, `nameserver ${CLUSTER_DNS}\n`); // the down script puts the original back
    await new Promise((r) => setTimeout(r, 1500));
    expect(await askOutside()).toBe('error ESERVFAIL');
    expect(await leakedToClusterDns()).toBe(0);
    expect(await leakedToRouter()).toBe(0);
    // The VPN comes back and rewrites resolv.conf: answered through it again.
    await current.host.ip('link', 'set', 'tun0', 'up');
    await current.host.ip('route', 'add', '0.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
    await current.host.ip('route', 'add', '128.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
    writeFileSync(resolv, `nameserver ${VPN_SERVER}\n`);
    expect(await askUntil(/^\[/)).toBe(`["${INTERNET}"]`);
    expect(await leakedToClusterDns()).toBe(0);
  });

  it('--dns-upstream names the VPN DNS whatever resolv.conf says', async () => {
    if (current.sidecar?.running) {
      process.kill(current.sidecar.pid, 'SIGTERM');
      await current.sidecar.exited;
    }
    const resolv = w.resolvConf(current); // the cluster DNS only
    await w.startGatewaySidecar(current, resolv, [`--dns-upstream=${VPN_SERVER}`]);
    await w.resetLeakCounters();
    expect(await askOutside()).toBe(`["${INTERNET}"]`);
    expect(await leakedToClusterDns()).toBe(0);
  });
});

describe('a VPN container flushes the rules while the gateway runs', () => {
  const gw = (cmd: string, ...args: string[]) => current.host.exec(cmd, args);
  afterAll(async () => {
    await current.host.ip('link', 'set', 'tun0', 'up');
    await current.host.ip('route', 'replace', '0.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
    await current.host.ip('route', 'replace', '128.0.0.0/1', 'via', VPN_SERVER, 'dev', 'tun0');
  });

  it('the counter sees a leak: FORWARD flushed and opened, and nothing restoring it', async () => {
    await restartSidecar(VPN_SERVER, {}, ['--resync-interval=1h']);
    await current.host.ip('link', 'set', 'tun0', 'down'); // the VPN is down: eth0's default route is left
    await gw('iptables', '-F', 'FORWARD');
    await gw('iptables', '-P', 'FORWARD', 'ACCEPT');
    await w.whoami(a.host, INTERNET, 7, 1500);
    expect(await leakedToRouter()).toBeGreaterThan(0);
  });

  it('a flush leaves the gateway closed, and gateway-sidecar restores the rules within a resync', async () => {
    await restartSidecar(VPN_SERVER); // its first check restores the rules and the DROP policies
    expect((await gw('iptables', '-S', 'FORWARD')).stdout).toMatch(
      /^-P FORWARD DROP\n-A FORWARD -j KNET-PGW-FWD/,
    );
    await gw('iptables', '-F'); // every chain of the filter table, ours too (wg-quick's PostDown, a down script)
    await gw('ip6tables', '-F');
    for (let i = 0; i < 3; i++) expect(await w.whoami(a.host, INTERNET, 7, 700)).toMatch(/^(timeout|error )/);
    expect(await leakedToRouter()).toBe(0);
    let forward = '';
    for (let i = 0; i < 50 && !forward.includes('KNET-PGW-FWD'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      forward = (await gw('iptables', '-S', 'FORWARD')).stdout;
    }
    expect(forward).toContain('-A FORWARD -j KNET-PGW-FWD');
    expect((await gw('ip6tables', '-S', 'OUTPUT')).stdout).toContain('-A OUTPUT -j KNET-PGW-OUT');
    expect(current.sidecar?.output()).toMatch(/iptables rules had changed/);
  });
});

describe('gateway-init fails closed', () => {
  it('the counter sees a leak: a re-created gateway without its kill switch forwards the client out of eth0', async () => {
    const { gw, resolv } = await recreateGateway('203.0.113.3');
    expect((await w.gatewayInit(gw, resolv, { VPN_BLOCK_OTHER_TRAFFIC: 'false' })).exitCode).toBe(0);
    await w.whoami(a.host, INTERNET, 7, 1500);
    expect(await leakedToRouter()).toBeGreaterThan(0);
  });

  it('a kill switch that cannot be committed: gateway-init fails, and nothing is forwarded', async () => {
    const { gw, resolv } = await recreateGateway('203.0.113.4');
    const r = await w.gatewayInit(gw, resolv, { PATH: `${broken}:${process.env['PATH'] ?? ''}` });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('injected by the test');
    expect(await w.whoami(a.host, INTERNET, 7, 1500)).toMatch(/^(timeout|error )/);
    expect(await leakedToRouter()).toBe(0);
    // Nothing that forwards was set up: no overlay to receive the client's packets on.
    expect((await gw.host.ip('-o', 'link', 'show')).includes('vxlan0')).toBe(false);
    // Once it can be committed, the gateway comes up whole: still nothing leaks with the VPN down.
    expect((await w.gatewayInit(gw, resolv)).exitCode).toBe(0);
    expect(await w.whoami(a.host, INTERNET, 7, 1500)).toMatch(/^(timeout|error )/);
    expect(await leakedToRouter()).toBe(0);
  });
});
