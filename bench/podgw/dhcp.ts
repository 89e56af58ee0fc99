// DHCP part of `npm run bench -- podgw`: time to a lease, our DhcpServer vs dnsmasq.
//
// Topology (network namespaces, nothing in the root namespace): a "node" switch 192.0.2.0/24 with
// a gateway (eth0 .1, vxlan0 172.16.0.1/24, VNI 42, port 4789, learning, no FDB entries: as
// pod-gateway) and 50 client "pods" (eth0 .10+, vxlan0 without address whose only FDB entry is
// `00:00:00:00:00:00 dst 192.0.2.1`, plus the 255.255.255.255/32 route). One client per namespace,
// one Node process per namespace running our DhcpClient (BROADCAST flag set, so dnsmasq broadcasts
// its replies too); the processes start first and wait for SIGUSR1, so the time measured is from
// the signal to the last ACK, not Node's start-up.
//
//   dhcp_lease_1_client    one client (namespace 0) from DISCOVER to ACK
//   dhcp_lease_50_clients  50 clients at once: from the signal until the last one has its lease
//
// Every server is started fresh, serves one warm-up lease to a 51st client (a gateway serves for
// days: the first lease after a process start, with Node's code not yet compiled, is not what
// clients see; dnsmasq gains nothing from it), then the measured clients.
//
// Servers, one at a time on the same range (172.16.0.20-254, 12 h), fresh state every round:
//   ours     the bundled libs/dhcp/test/fixtures/dhcp-node.ts `server` role (DhcpServer with the
//            FdbVtepFlooder watching the FDB through `bridge monitor fdb` and one `bridge -batch`,
//            replies sent straight to the client's VTEP as VXLAN datagrams (`vxlan`), info-level
//            logs, empty lease file); it adds the flood entries itself (after each reply), and the
//            address-in-use check (the gateway's neighbour table) runs before every offer; the
//            gateway's flood list is emptied after.
//   dnsmasq  pod-gateway's flags (interface=vxlan0, bind-interfaces, log-dhcp, log-facility=-, its
//            default ping check) plus --port=0 (no DNS). Its broadcasts need the all-zeros entries,
//            which it cannot add, so every client VTEP is in the gateway's flood list while it runs.
//            dnsmasq pings an address before offering it and waits ~3 s for an answer, one at a
//            time; our server does no such check, so dnsmasq is also measured with --no-ping
//            (peer "dnsmasq --no-ping"), the like-for-like comparison.
// Rounds rotate which server goes first; the medians are reported. ratio = peer / ours, so a
// ratio above 1 means we are faster.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NetLab,
  buildVxlanOverlay,
  bundleOnce,
  busy,
  median,
  overlayClientUnderlay,
  workspaceRoot,
  type LabProcess,
  type NetHost,
} from '@knet/testing';
import type { BenchContext } from './context';

const DNSMASQ = '/usr/sbin/dnsmasq';
const CLIENTS = 50;
const ROUNDS = 5;
const ZERO_MAC = '00:00:00:00:00:00';

type ServerName = 'ours' | 'dnsmasq' | 'dnsmasq-no-ping';
const SERVERS: ServerName[] = ['ours', 'dnsmasq', 'dnsmasq-no-ping'];

interface Done {
  event: 'done';
  startedAt: number;
  results: ({ address: string; at: number } | { error: string })[];
}

function lines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}

export async function benchDhcp(ctx: BenchContext): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'knet-bench-dhcp-'));
  ctx.cleanup.defer('dhcp bench dir', () =>
    ctx.keep ? ctx.log(`dhcp: kept ${dir}`) : rmSync(dir, { recursive: true, force: true }),
  );

  ctx.log('dhcp: bundling the DHCP fixture');
  const bundle = await bundleOnce(join(workspaceRoot(), 'libs/dhcp/test/fixtures/dhcp-node.ts'));

  ctx.log(`dhcp: building the overlay (gateway + ${CLIENTS} client namespaces)`);
  const lab = await NetLab.create();
  ctx.cleanup.defer('dhcp network namespaces', () => lab.dispose());
  // One more client than measured: it takes the warm-up lease of every fresh server.
  const { gw, clients: all } = await buildVxlanOverlay(lab, CLIENTS + 1);
  const clients = all.slice(0, CLIENTS);
  const warmer = all[CLIENTS] as NetHost;
  const vteps = all.map((_c, i) => overlayClientUnderlay(i));

  const floodEntries = async (): Promise<string[]> =>
    (
      JSON.parse((await gw.exec('bridge', ['-j', 'fdb', 'show', 'dev', 'vxlan0'])).stdout) as {
        mac: string;
        dst?: string;
      }[]
    )
      .filter((e) => e.mac === ZERO_MAC && e.dst)
      .map((e) => e.dst as string);
  const clearFlood = async () => {
    for (const dst of await floodEntries()) {
      await gw.exec('bridge', ['fdb', 'del', ZERO_MAC, 'dev', 'vxlan0', 'dst', dst]);
    }
  };

  /** Starts a server in the gateway; returns its stop function. */
  const startServer = async (name: ServerName, round: number): Promise<() => Promise<void>> => {
    let p: LabProcess;
    if (name === 'ours') {
      await clearFlood();
      p = gw.spawn(process.execPath, [
        bundle,
        'server',
        JSON.stringify({
          serverAddress: '172.16.0.1',
          network: '172.16.0.0/24',
          dev: 'vxlan0',
          vxlan: { vni: 42, port: 4789 },
          leaseFile: join(dir, `ours-${round}.json`),
        }),
      ]);
      await p.waitForOutput(/"event":"ready"/, 30_000);
    } else {
      for (const v of vteps) await gw.exec('bridge', ['fdb', 'append', ZERO_MAC, 'dev', 'vxlan0', 'dst', v]);
      p = gw.spawn(DNSMASQ, [
        ...(name === 'dnsmasq-no-ping' ? ['--no-ping'] : []),
        '--no-daemon',
        '--conf-file=/dev/null',
        '--pid-file=',
        '--user=root',
        '--port=0',
        '--interface=vxlan0',
        '--bind-interfaces',
        '--dhcp-range=172.16.0.20,172.16.0.254,12h',
        `--dhcp-leasefile=${join(dir, `dnsmasq-${round}.leases`)}`,
        '--log-dhcp',
        '--log-facility=-',
      ]);
      await p.waitForOutput(/DHCP, IP range 172\.16\.0\.20/, 30_000);
    }
    return ctx.cleanup.defer(`dhcp server ${name}`, () => p.kill('SIGTERM', 5_000));
  };

  /** Starts the client processes, waits until all are ready, signals them, returns ms to the last ACK. */
  const leaseTime = async (hosts: NetHost[], label: string): Promise<number> => {
    const procs = hosts.map((h) =>
      h.spawn(process.execPath, [
        bundle,
        'clients',
        JSON.stringify({ clients: [{ iface: 'vxlan0' }], timeoutMs: 60_000 }),
      ]),
    );
    const stop = ctx.cleanup.defer(`dhcp clients ${label}`, () =>
      Promise.all(procs.map((p) => p.kill('SIGKILL'))),
    );
    await Promise.all(procs.map((p) => p.waitForOutput(/"event":"ready"/, 120_000)));
    const t0 = Date.now();
    for (const p of procs) process.kill(p.pid, 'SIGUSR1');
    await Promise.all(procs.map((p) => p.exited));
    await stop();
    let last = 0;
    for (const p of procs) {
      const done = lines(p.output()).find((l) => l.event === 'done') as Done | undefined;
      const r = done?.results[0];
      if (!r || 'error' in r) {
        throw new Error(
          `dhcp ${label}: a client got no lease: ${r && 'error' in r ? r.error : p.output().slice(-500)}`,
        );
      }
      last = Math.max(last, r.at - t0);
    }
    return last;
  };

  const samples = Object.fromEntries(
    SERVERS.map((n) => [n, { one: [] as number[], many: [] as number[] }]),
  ) as Record<ServerName, { one: number[]; many: number[] }>;
  await busy('dhcp');
  for (let round = 0; round < ROUNDS; round++) {
    const order = SERVERS.map((_, i) => SERVERS[(i + round) % SERVERS.length] as ServerName);
    for (const name of order) {
      let stop = await startServer(name, round);
      await leaseTime([warmer], `${name} warm-up`);
      const one = await leaseTime([clients[0] as NetHost], `${name} 1 client`);
      await stop();
      // Fresh server state for the 50-client run too (client 0 would otherwise get its old lease back).
      stop = await startServer(name, round + 100);
      await leaseTime([warmer], `${name} warm-up`);
      const many = await leaseTime(clients, `${name} ${CLIENTS} clients`);
      await stop();
      await clearFlood();
      samples[name].one.push(one);
      samples[name].many.push(many);
      ctx.log(
        `dhcp: round ${round + 1}/${ROUNDS} ${name}: 1 client ${one} ms, ${CLIENTS} clients ${many} ms`,
      );
    }
  }

  const peers: { name: ServerName; peer: string; config: string }[] = [
    { name: 'dnsmasq', peer: 'dnsmasq', config: "pod-gateway's flags (log-dhcp, default ping check)" },
    { name: 'dnsmasq-no-ping', peer: 'dnsmasq --no-ping', config: "pod-gateway's flags plus --no-ping" },
  ];
  for (const [metric, key, extra] of [
    ['dhcp_lease_1_client', 'one', {}],
    ['dhcp_lease_50_clients', 'many', { clients: CLIENTS, layout: '50 namespaces, one client process each' }],
  ] as const) {
    const ours = median(samples.ours[key]);
    for (const p of peers) {
      const theirs = median(samples[p.name][key]);
      ctx.emit({
        metric,
        value: ours,
        unit: 'ms',
        peer: p.peer,
        peer_value: theirs,
        ratio: theirs / ours,
        direction: 'lower is better; ratio = peer/ours, > 1 means ours is faster',
        rounds: ROUNDS,
        warm_up_leases: 1,
        peer_config: `${p.config}; flood list pre-provisioned`,
        ...extra,
      });
    }
  }
}
