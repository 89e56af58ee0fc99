import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  OVERLAY_GATEWAY,
  bundleOnce,
  describeExit,
  until,
  type LabProcess,
  type NetHost,
} from '@knet/testing';

/** test/fixtures/dhcp-node.ts, bundled once per test process. */
export const nodeBundle = (): Promise<string> => bundleOnce(join(__dirname, 'fixtures', 'dhcp-node.ts'));

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
      `client in ${host.label} failed (${describeExit(r)}): ${err?.message ?? r.stderr.trim()}`,
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
    JSON.stringify({ serverAddress: OVERLAY_GATEWAY, network: '172.16.0.0/24', dev: 'vxlan0', ...args }),
  ]);
  await p.waitForOutput(/"event":"ready"/, 30_000);
  return p;
}

/** Asks a server process for its stats (SIGUSR2) and returns the newest stats line. */
export async function serverStats(p: LabProcess): Promise<JsonLine> {
  const before = jsonLines(p.output()).filter((l) => l.event === 'stats').length;
  process.kill(p.pid, 'SIGUSR2');
  return until(
    () => `the server's stats; output: ${p.output().slice(-2000)}`,
    () => {
      const stats = jsonLines(p.output()).filter((l) => l.event === 'stats');
      return stats.length > before ? stats[stats.length - 1] : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  );
}

/** VmRSS of a process in MiB. */
export function rssMiB(pid: number): number {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(s)?.[1] ?? NaN) / 1024;
}
