import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleScript, type LabProcess, type NetHost, type NetLab } from '@knet/testing';

export const GATEWAY_UNDERLAY = '192.0.2.1';
export const GATEWAY_OVERLAY = '172.16.0.1';

let bundle: Promise<string> | undefined;
/** test/fixtures/dhcp-node.ts bundled once per test file. */
export function nodeBundle(): Promise<string> {
  bundle ??= bundleScript(join(__dirname, 'fixtures', 'dhcp-node.ts'));
  return bundle;
}

export interface Overlay {
  gw: NetHost;
  clients: NetHost[];
}

/** `vxlan0` (VNI 42, port 4789, over eth0, learning on) in a host. */
async function addVxlan(h: NetHost): Promise<void> {
  await h.ip(
    'link',
    'add',
    'vxlan0',
    'type',
    'vxlan',
    'id',
    '42',
    'dstport',
    '4789',
    'dev',
    'eth0',
    'learning',
  );
}

/**
 * pod-gateway's overlay: a "node" switch (192.0.2.0/24) with a gateway (eth0 .1, vxlan0 172.16.0.1/24
 * and no FDB entries) and `clientCount` clients (eth0 .10+i, vxlan0 without address whose only FDB
 * entry is `00:00:00:00:00:00 dst 192.0.2.1`). The clients' broadcast route is left to the
 * fixture (installBroadcastRoute).
 */
export async function buildOverlay(lab: NetLab, clientCount: number): Promise<Overlay> {
  const sw = await lab.addSwitch('node');
  const gw = await lab.addHost('gw');
  await sw.connect(gw, { ifname: 'eth0', address: `${GATEWAY_UNDERLAY}/24` });
  await addVxlan(gw);
  await gw.ip('addr', 'add', `${GATEWAY_OVERLAY}/24`, 'dev', 'vxlan0');
  await gw.ip('link', 'set', 'vxlan0', 'up');
  const clients: NetHost[] = [];
  for (let i = 0; i < clientCount; i++) clients.push(await addClient(lab, sw, i));
  return { gw, clients };
}

export async function addClient(
  lab: NetLab,
  sw: { connect: (h: NetHost, o: { ifname: string; address: string }) => Promise<unknown> },
  i: number,
): Promise<NetHost> {
  const c = await lab.addHost(`c${i}`);
  await sw.connect(c, { ifname: 'eth0', address: `192.0.2.${10 + i}/24` });
  await addVxlan(c);
  await c.exec('bridge', ['fdb', 'append', '00:00:00:00:00:00', 'dev', 'vxlan0', 'dst', GATEWAY_UNDERLAY]);
  await c.ip('link', 'set', 'vxlan0', 'up');
  return c;
}

export interface JsonLine {
  event?: string;
  log?: string;
  msg?: string;
  [k: string]: unknown;
}

export function jsonLines(text: string): JsonLine[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as JsonLine);
}

/** Runs the fixture's `client` role inside `host` and returns its JSON lines (throws on failure). */
export async function runClient(host: NetHost, args: Record<string, unknown>): Promise<JsonLine[]> {
  const r = await host.exec(
    'node',
    [await nodeBundle(), 'client', JSON.stringify({ iface: 'vxlan0', ...args })],
    {
      check: false,
      timeoutMs: 120_000,
    },
  );
  const lines = jsonLines(r.stdout);
  if (r.exitCode !== 0) {
    const err = lines.find((l) => l.event === 'error');
    throw new Error(
      `client in ${host.label} failed (exit ${r.exitCode}): ${err?.message ?? r.stderr.trim()}`,
    );
  }
  return lines;
}

export function leaseOf(lines: JsonLine[], event = 'lease'): Record<string, unknown> & { address: string } {
  const l = lines.find((x) => x.event === event);
  if (!l) throw new Error(`no "${event}" line in ${JSON.stringify(lines)}`);
  return l.lease as Record<string, unknown> & { address: string };
}

/** Starts the fixture's `server` role in the gateway and waits until it is ready. */
export async function startServer(gw: NetHost, args: Record<string, unknown>): Promise<LabProcess> {
  const p = gw.spawn('node', [
    await nodeBundle(),
    'server',
    JSON.stringify({ serverAddress: GATEWAY_OVERLAY, network: '172.16.0.0/24', dev: 'vxlan0', ...args }),
  ]);
  await p.waitForOutput(/"event":"ready"/, 30_000);
  return p;
}

/** Asks a server process for its stats (SIGUSR2) and returns the newest stats line. */
export async function serverStats(p: LabProcess): Promise<JsonLine> {
  const before = jsonLines(p.output()).filter((l) => l.event === 'stats').length;
  process.kill(p.pid, 'SIGUSR2');
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const stats = jsonLines(p.output()).filter((l) => l.event === 'stats');
    if (stats.length > before) return stats[stats.length - 1] as JsonLine;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`server gave no stats; output: ${p.output().slice(-2000)}`);
}

/** VmRSS of a process in MiB. */
export function rssMiB(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(s)?.[1] ?? NaN) / 1024;
}
