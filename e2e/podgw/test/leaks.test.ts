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

const { INTERNET, VPN_SERVER } = PodgwLab;
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
  // The router counts what reaches it for the VPN side's addresses: only tun0 may carry those.
  await w.router.exec('iptables', ['-t', 'raw', '-A', 'PREROUTING', '-d', '203.0.113.0/24']);
});
afterAll(async () => {
  rmSync(broken, { recursive: true, force: true });
  await w?.dispose();
});

/** Packets the router saw going to the VPN side's addresses since the last reset. */
async function leakedToRouter(): Promise<number> {
  const out = (await w.router.exec('iptables', ['-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n'])).stdout;
  const line = out.split('\n').find((l) => l.includes('203.0.113.0/24'));
  return Number(line?.trim().split(/\s+/)[0] ?? NaN);
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
  await w.router.exec('iptables', ['-t', 'raw', '-Z', 'PREROUTING']);
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
