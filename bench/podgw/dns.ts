// DNS part of `npm run bench -- podgw`: queries/s on cached names, our DnsServer vs dnsmasq.
//
// One upstream dnsmasq is authoritative for N names (A records, TTL 3600). In front of it, one at
// a time: (a) our DnsServer in its own Node process (bundled dns-server-entry.ts, warn-level
// logs), (b) dnsmasq as a caching forwarder. Each is warmed (every name asked twice), then driven
// by dnsperf with the same settings, once flat out (queries/s, CPU per query) and once at a fixed
// rate both sustain (latency); rounds alternate which goes first; medians are reported. A third
// server, the Node floor (dns-floor-entry.ts: one fixed answer, no DNS work at all, through the
// same UDP path), is driven flat out in the same rounds: the most any Node DNS server can reach
// here, so `dns_qps_node_floor` shows how much of the gap to dnsmasq is Node's and how much ours.
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CpuMeter,
  ManagedProcess,
  bundleOnce,
  busy,
  describeExit,
  freePort,
  median,
  run,
  until,
  workspaceRoot,
} from '@knet/testing';
import type { BenchContext } from './context';

const DNSMASQ = '/usr/sbin/dnsmasq';
const NAMES = 1000;
const ROUNDS = 3;
/** dnsperf: one thread (one of the 2 cores; the server gets the other), 4 sockets, 100 in flight. */
const DNSPERF_LOAD = ['-T', '1', '-c', '4', '-q', '100'];
const UPSTREAM = '127.0.0.61';
const OURS = '127.0.0.62';
const DNSMASQ_FWD = '127.0.0.63';
const FLOOR = '127.0.0.64';
/** Rate of the latency runs: well below what either server sustains. */
const FIXED_QPS = 20_000;

/** The servers driven: ours, dnsmasq, and the Node floor (no fixed-rate runs). */
type Server = 'ours' | 'dnsmasq' | 'node-floor';

interface PerfResult {
  qps: number;
  latencyMs: number;
  lost: number;
  /** Server CPU time (user + kernel) per completed query. */
  cpuUs: number;
  cores: string;
}

export async function benchDns(ctx: BenchContext): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'knet-bench-dns-'));
  ctx.cleanup.defer('dns bench dir', () =>
    ctx.keep ? ctx.log(`dns: kept ${dir}`) : rmSync(dir, { recursive: true, force: true }),
  );

  const records: string[] = [];
  const queries: string[] = [];
  for (let i = 0; i < NAMES; i++) {
    records.push(`host-record=h${i}.bench.test,10.${Math.floor(i / 250)}.${i % 250}.1,3600`);
    queries.push(`h${i}.bench.test A`);
  }
  const recordsFile = join(dir, 'records.conf');
  const queryFile = join(dir, 'queries.txt');
  writeFileSync(recordsFile, `${records.join('\n')}\n`);
  writeFileSync(queryFile, `${queries.join('\n')}\n`);

  const [upPort, ourPort, fwdPort, floorPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const dnsmasqBase = ['--no-daemon', '--no-resolv', '--no-hosts', '--bind-interfaces', '--log-facility=-'];

  const upstream = ManagedProcess.start(
    'dnsmasq-upstream',
    DNSMASQ,
    [...dnsmasqBase, `--listen-address=${UPSTREAM}`, `--port=${upPort}`, `--conf-file=${recordsFile}`],
    join(dir, 'upstream.log'),
  );
  ctx.cleanup.defer('dnsmasq upstream', () => upstream.stop());
  await waitForDns(UPSTREAM, upPort, upstream);

  ctx.log('dns: bundling the server entry and the Node floor');
  const entry = (f: string) => bundleOnce(join(workspaceRoot(), 'bench/podgw', f));
  const [bundle, floorBundle] = await Promise.all([
    entry('dns-server-entry.ts'),
    entry('dns-floor-entry.ts'),
  ]);
  const ours = ManagedProcess.start(
    'dns-ours',
    process.execPath,
    [
      bundle,
      JSON.stringify({
        address: OURS,
        port: ourPort,
        upstreams: [`${UPSTREAM}#${upPort}`],
        cacheEntries: 10_000,
      }),
    ],
    join(dir, 'ours.log'),
  );
  ctx.cleanup.defer('our DNS server', () => ours.stop());
  const forwarder = ManagedProcess.start(
    'dnsmasq-forwarder',
    DNSMASQ,
    [
      ...dnsmasqBase,
      `--listen-address=${DNSMASQ_FWD}`,
      `--port=${fwdPort}`,
      `--server=${UPSTREAM}#${upPort}`,
      '--cache-size=10000',
    ],
    join(dir, 'forwarder.log'),
  );
  ctx.cleanup.defer('dnsmasq forwarder', () => forwarder.stop());
  const floor = ManagedProcess.start(
    'dns-node-floor',
    process.execPath,
    [floorBundle, JSON.stringify({ address: FLOOR, port: floorPort })],
    join(dir, 'floor.log'),
  );
  ctx.cleanup.defer('Node floor server', () => floor.stop());
  await waitForDns(OURS, ourPort, ours);
  await waitForDns(DNSMASQ_FWD, fwdPort, forwarder);
  await waitForDns(FLOOR, floorPort, floor);

  const targets: { name: Server; addr: string; port: number; proc: ManagedProcess }[] = [
    { name: 'ours', addr: OURS, port: ourPort, proc: ours },
    { name: 'dnsmasq', addr: DNSMASQ_FWD, port: fwdPort, proc: forwarder },
    { name: 'node-floor', addr: FLOOR, port: floorPort, proc: floor },
  ];
  for (const t of targets) {
    // Warm the cache (every name twice) and the JIT.
    await dnsperf(t.addr, t.port, queryFile, ['-n', '2'], t.proc.pid);
  }

  // Per round and server: a saturating run (queries/s, and the latency under that load) and a run
  // at a fixed rate both handle easily (service latency, CPU per query).
  const full: Record<Server, PerfResult[]> = { ours: [], dnsmasq: [], 'node-floor': [] };
  const fixed: Record<Server, PerfResult[]> = { ours: [], dnsmasq: [], 'node-floor': [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      await busy(`dns ${t.name}`);
      const r = await dnsperf(t.addr, t.port, queryFile, ['-l', String(ctx.seconds)], t.proc.pid);
      full[t.name].push(r);
      if (t.name === 'node-floor') {
        ctx.log(
          `dns round ${round + 1} ${t.name}: ${r.qps.toFixed(0)} q/s, ${r.cpuUs.toFixed(2)} µs CPU/query, ${r.cores}`,
        );
        continue;
      }
      const f = await dnsperf(
        t.addr,
        t.port,
        queryFile,
        ['-l', String(ctx.seconds), '-Q', String(FIXED_QPS)],
        t.proc.pid,
      );
      ctx.log(
        `dns round ${round + 1} ${t.name}: ${r.qps.toFixed(0)} q/s, ${r.latencyMs.toFixed(3)} ms avg, ` +
          `${r.cpuUs.toFixed(2)} µs CPU/query, ${r.lost} lost, ${r.cores}; at ${FIXED_QPS} q/s: ` +
          `${f.latencyMs.toFixed(3)} ms avg, ${f.cpuUs.toFixed(2)} µs CPU/query, ${f.lost} lost`,
      );
      fixed[t.name].push(f);
    }
  }

  const med = (rs: Record<Server, PerfResult[]>, name: Server, k: keyof PerfResult) =>
    median(rs[name].map((r) => r[k] as number));
  const pair = (rs: Record<Server, PerfResult[]>, k: keyof PerfResult) => {
    const value = med(rs, 'ours', k);
    const peer = med(rs, 'dnsmasq', k);
    return { value, peer: 'dnsmasq', peer_value: peer, ratio: value / peer };
  };
  ctx.emit({
    metric: 'dns_qps',
    unit: 'queries/s',
    ...pair(full, 'qps'),
    rounds: ROUNDS,
    names: NAMES,
    dnsperf: DNSPERF_LOAD.join(' '),
  });
  ctx.emit({ metric: 'dns_latency_avg', unit: 'ms', ...pair(full, 'latencyMs'), load: 'saturating' });
  ctx.emit({
    metric: 'dns_latency_avg_fixed',
    unit: 'ms',
    ...pair(fixed, 'latencyMs'),
    load: `${FIXED_QPS} q/s`,
  });
  ctx.emit({ metric: 'dns_cpu_per_query', unit: 'µs', ...pair(full, 'cpuUs'), load: 'saturating' });
  const floorQps = med(full, 'node-floor', 'qps');
  const dnsmasqQps = med(full, 'dnsmasq', 'qps');
  ctx.emit({
    metric: 'dns_qps_node_floor',
    unit: 'queries/s',
    value: floorQps,
    peer: 'dnsmasq',
    peer_value: dnsmasqQps,
    ratio: floorQps / dnsmasqQps,
    // how close our server gets to what Node itself allows here
    ours_of_floor: med(full, 'ours', 'qps') / floorQps,
    cpu_us_per_query: med(full, 'node-floor', 'cpuUs'),
  });
}

/** Runs dnsperf against one server; measures that server's CPU over the run. */
async function dnsperf(
  addr: string,
  port: number,
  queryFile: string,
  extra: string[],
  pid: number,
): Promise<PerfResult> {
  const meter = new CpuMeter({ server: pid }).start();
  const r = await run(
    'dnsperf',
    ['-s', addr, '-p', String(port), '-d', queryFile, ...DNSPERF_LOAD, ...extra],
    {
      timeoutMs: 600_000,
    },
  );
  const cpu = meter.seconds()['server'] ?? NaN;
  const cores = meter.stop();
  const num = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? NaN);
  const qps = num(/Queries per second:\s+([\d.]+)/);
  if (r.exitCode !== 0 || !Number.isFinite(qps)) {
    throw new Error(`dnsperf against ${addr}#${port} failed (${describeExit(r)}): ${r.stderr || r.stdout}`);
  }
  return {
    qps,
    latencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    lost: num(/Queries lost:\s+(\d+)/),
    cpuUs: (cpu / num(/Queries completed:\s+(\d+)/)) * 1e6,
    cores,
  };
}

/** Waits until `addr#port` answers an A query for h0.bench.test (10 s at most). */
async function waitForDns(addr: string, port: number, proc: ManagedProcess): Promise<void> {
  await until(
    () =>
      `${proc.name} to answer on ${addr}#${port} (${proc.running ? 'running' : 'exited'}: ${proc.tail()})`,
    () => proc.running && answersH0(addr, port),
    10_000,
  );
}

/** One A query for h0.bench.test (RD): whether a NOERROR answer came back within 300 ms. */
function answersH0(addr: string, port: number): Promise<boolean> {
  const query = Buffer.from('1234010000010000000000000268300562656e636804746573740000010001', 'hex');
  return new Promise<boolean>((resolve) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(false);
    }, 300);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m.length > 12 && m.readUInt16BE(0) === 0x1234 && (m.readUInt8(3) & 0xf) === 0);
    });
    s.on('error', () => undefined);
    s.send(query, port, addr);
  });
}
