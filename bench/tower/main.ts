/**
 * `npm run bench -- tower [options]`: tower-proxy + tower-agent against OpenSSH (and chisel) on
 * this machine, in one run. One JSON object per line on stdout; progress on stderr.
 *
 *   throughput  one bulk TCP stream through the tunnel's `kubesphere` target vs `ssh -L` (and chisel)
 *   latency     GET /version through the cluster's kubeconfig vs directly, p50/p99, and req/s at 64 clients
 *   scale       N Clusters, N simulated agents on one proxy: reconcile time, connect time, RSS; then
 *               the proxy killed and started again: time until every listener serves (restart)
 *   hostile     proxy RSS and a good agent's connect time while 500 hostile connections are open
 *
 * Options: --only=throughput,latency,scale,hostile  --bytes=MiB  --seconds=S  --rounds=N  --requests=N
 *          --rps-seconds=S  --concurrency=N  --clusters=N  --agents-per-cluster=N  --sim-processes=N
 *          --dial-concurrency=N  --reconcile-timeout=S  --hostile-connections=N  --hostile-sources=N  --proxy-node-flags="--max-old-space-size=128"
 *          (default: the chart's nodeOptions; the image's ENTRYPOINT flags are always there)
 *          --agent-node-flags="--trace-gc"
 *          --cpu-prof (then profile proxy and agent in one more stream and rate run, and the restarted proxy)
 *          --no-restart (scale without its restart)  --probe-concurrency=N  --keep (keep logs)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlPlane, freePort, runBench, workspaceRoot } from '@knet/testing';
import {
  buildBundles,
  clusterObject,
  conditionOf,
  createClusters,
  getJson,
  memberServiceAccount,
  startAgent,
  startHost,
  startProxy,
  waitForCluster,
  type Bundles,
} from './bed';
import type { Cluster } from '@knet/cluster-crd';
import { kubeconfigTls } from '@knet/k8s';
import { gcAndMeasure, profileDuring } from './inspect';
import {
  buildLoadgen,
  goRequestRate,
  requestRate,
  sequentialLatency,
  type Endpoint,
  type RateResult,
} from './latency';
import { summarizeProfile } from './profile';
import { runHostile } from './hostile';
import { runScale } from './scale';
import { Sink, bulkStream, ensureChisel, startChisel, startOpenSsh, stopPeer, type Peer } from './throughput';
import { Cleanup, CpuMeter, busy, emit, log, median, memoryMiB, until } from './util';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'throughput,latency,scale,hostile' },
    bytes: { type: 'string', default: '512' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    requests: { type: 'string', default: '2000' },
    'rps-seconds': { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '64' },
    clusters: { type: 'string', default: '1000' },
    'agents-per-cluster': { type: 'string', default: '1' },
    'sim-processes': { type: 'string', default: '1' },
    'dial-concurrency': { type: 'string', default: '100' },
    'reconcile-timeout': { type: 'string', default: '300' },
    'hostile-connections': { type: 'string', default: '500' },
    'hostile-sources': { type: 'string', default: '50' },
    'hostile-agents': { type: 'string', default: '5' },
    'proxy-node-flags': { type: 'string' },
    'agent-node-flags': { type: 'string', default: '' },
    'cpu-prof': { type: 'boolean', default: false },
    'no-restart': { type: 'boolean', default: false },
    'probe-concurrency': { type: 'string', default: '32' },
    keep: { type: 'boolean', default: false },
  },
  allowPositionals: false,
});

const int = (name: keyof typeof args): number => {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v <= 0)
    throw new Error(`--${name} must be a positive number, got ${String(args[name])}`);
  return v;
};
const parts = new Set(String(args.only).split(','));
for (const p of parts) {
  if (!['throughput', 'latency', 'scale', 'hostile'].includes(p))
    throw new Error(`--only: unknown part "${p}"`);
}

/**
 * --proxy-node-flags="--max-old-space-size=128 …": node flags for the proxy besides the image's. By
 * default the NODE_OPTIONS charts/tower-proxy sets (`nodeOptions` in its values.yaml), so the proxy
 * runs as a default install does.
 */
function proxyNodeFlags(): string[] {
  return splitFlags(args['proxy-node-flags'] ?? chartNodeOptions());
}

function chartNodeOptions(): string {
  const file = join(workspaceRoot(), 'charts/tower-proxy/values.yaml');
  const m = /^nodeOptions:[ \t]*(.*?)[ \t]*$/m.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`${file} has no top-level nodeOptions; give --proxy-node-flags`);
  return (m[1] ?? '').replace(/^(["'])(.*)\1$/, '$2');
}

/** --agent-node-flags="--trace-gc …": node flags for the real agent of the stream and request parts. */
function agentNodeFlags(): string[] {
  return splitFlags(String(args['agent-node-flags']));
}

function splitFlags(flags: string): string[] {
  return flags.split(/\s+/).filter(Boolean);
}

const cleanup = new Cleanup();
const dir = mkdtempSync(join(tmpdir(), 'knet-bench-tower-'));
const TIME_LIMIT_MS = 25 * 60_000;

async function main(): Promise<void> {
  log(`logs in ${dir}`);
  const needMember = parts.has('throughput') || parts.has('latency');
  log(`building bundles; starting the host${needMember ? ' and member' : ''} control plane(s)`);
  const started = await Promise.allSettled([
    buildBundles(dir),
    startHost(),
    needMember ? ControlPlane.start() : Promise.resolve(undefined),
  ] as const);
  const [b, h, m] = started;
  if (h.status === 'fulfilled') cleanup.defer('host control plane', () => h.value.stop());
  const stopMember =
    m.status === 'fulfilled' && m.value
      ? cleanup.defer('member control plane', () => m.value?.stop())
      : undefined;
  for (const r of started) if (r.status === 'rejected') throw r.reason;
  const bundles = (b as PromiseFulfilledResult<Bundles>).value;
  const host = (h as PromiseFulfilledResult<ControlPlane>).value;
  const member = (m as PromiseFulfilledResult<ControlPlane | undefined>).value;

  if (member) {
    await tunnelParts(host, member, bundles);
    await stopMember?.();
  }
  if (parts.has('scale')) {
    await busy('scale');
    await runScale(
      host,
      bundles,
      dir,
      {
        clusters: int('clusters'),
        agentsPerCluster: int('agents-per-cluster'),
        simProcesses: int('sim-processes'),
        dialConcurrency: int('dial-concurrency'),
        reconcileTimeoutMs: int('reconcile-timeout') * 1000,
        connectTimeoutMs: 300_000,
        proxyNodeFlags: proxyNodeFlags(),
        restart: !args['no-restart'],
        probeConcurrency: int('probe-concurrency'),
        cpuProf: Boolean(args['cpu-prof']),
      },
      cleanup,
    );
  }
  if (parts.has('hostile')) {
    await busy('hostile');
    await runHostile(
      host,
      bundles,
      dir,
      {
        connections: int('hostile-connections'),
        sources: int('hostile-sources'),
        agents: int('hostile-agents'),
        proxyNodeFlags: proxyNodeFlags(),
      },
      cleanup,
    );
  }
}

/** Parts 1 and 2: one proxy, one real agent serving the member's kube-apiserver and a byte sink. */
async function tunnelParts(host: ControlPlane, member: ControlPlane, bundles: Bundles): Promise<void> {
  const sa = await memberServiceAccount(member, dir);
  const sink = await new Sink().start();
  cleanup.defer('sink', () => sink.stop());
  // A 10-port range no e2e test uses (they take 10000-19599 and +10000).
  const base = 19_600 + Math.floor(Math.random() * 35) * 10;
  const inspectPort = await freePort();
  const proxy = await startProxy(host, await freePort(), {
    bundle: bundles.proxy,
    listenAddress: '127.0.0.1',
    portRange: { min: base, max: base + 10 },
    logDir: dir,
    inspectPort,
    nodeFlags: proxyNodeFlags(),
  });
  const stopProxy = cleanup.defer('proxy', () => proxy.proc.stop(15_000));
  await createClusters(host, [clusterObject('bench')]);
  const cluster = await waitForCluster(host, 'bench', proxy.proc);
  const conn = cluster.spec?.connection ?? {};
  const agentInspectPort = args['cpu-prof'] ? await freePort() : undefined;
  const agent = startAgent({
    bundle: bundles.agent,
    cluster: 'bench',
    token: conn.token ?? '',
    proxy,
    apiServer: `127.0.0.1:${new URL(member.server).port}`,
    saDir: sa.dir,
    kubesphere: `127.0.0.1:${sink.port}`,
    logDir: dir,
    nodeFlags: agentNodeFlags(),
    ...(agentInspectPort ? { inspectPort: agentInspectPort } : {}),
  });
  const stopAgent = cleanup.defer('agent', () => agent.stop(15_000));
  await until(
    () => `the agent to become available; agent log:\n${agent.tail(20)}\nproxy log:\n${proxy.proc.tail(20)}`,
    async () =>
      conditionOf(
        await getJson<Cluster>(host, '/apis/cluster.kubesphere.io/v1alpha1/clusters/bench'),
        'AgentAvailable',
      ) === 'True',
    60_000,
  );
  const mem = memoryMiB(proxy.proc.pid);
  const gc = await gcAndMeasure(inspectPort).catch(() => undefined);
  emit({
    metric: 'rss_1_agent',
    value: mem.rss,
    unit: 'MiB',
    ...(gc ? { rss_after_gc_MiB: gc.rss, heap_used_after_gc_MiB: gc.heapUsed } : {}),
  });
  emit({ metric: 'agent_rss', value: memoryMiB(agent.pid).rss, unit: 'MiB', goal_MiB: 64 });
  const pids = {
    bench: process.pid,
    proxy: proxy.proc.pid,
    agent: agent.pid,
    'member apiserver': member.process('kube-apiserver')?.pid,
  };
  // With --cpu-prof: one more (unmeasured) run of a phase with the proxy and agent sampled.
  const profiled = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    if (!agentInspectPort) return;
    log(`profiling proxy and agent during ${what}`);
    const { profiles } = await profileDuring({ proxy: inspectPort, agent: agentInspectPort }, fn);
    for (const [who, bundle] of [
      ['proxy', bundles.proxy],
      ['agent', bundles.agent],
    ] as const) {
      const p = profiles[who];
      if (p) for (const l of summarizeProfile(`${who} (${what})`, p, bundle)) log(l);
    }
  };

  if (parts.has('throughput')) {
    const ksPort = conn.kubesphereAPIServerPort;
    if (!ksPort) throw new Error('the Cluster has no kubesphereAPIServerPort');
    await throughput(sink, ksPort, pids);
    for (const direction of ['upload', 'download'] as const) {
      await profiled(`one bulk stream (${direction})`, () =>
        bulkStream(sink, '127.0.0.1', ksPort, int('bytes') * 1024 * 1024, int('seconds') * 1000, direction),
      );
    }
  }
  if (parts.has('latency')) {
    const kc = kubeconfigTls(Buffer.from(conn.kubeconfig ?? '', 'base64').toString('utf8'));
    const tunnel: Endpoint = { name: 'tunnel', url: kc.server, ca: kc.ca, cert: kc.cert, key: kc.key };
    const direct: Endpoint = {
      name: 'direct',
      url: member.server,
      ca: member.caPem,
      authorization: `Bearer ${sa.token}`,
    };
    // The peer: OpenSSH `ssh -L` to the member's API server, the client's TLS passing through it
    // end to end (ours terminates TLS at the proxy and dials anew from the agent, by design).
    const apiPort = Number(new URL(member.server).port);
    const ssh = await startOpenSsh(join(dir, 'ssh'), apiPort);
    const stopSsh = cleanup.defer('ssh -L to the member API server', () => stopPeer(ssh));
    const openssh: Endpoint = { ...direct, name: 'openssh', url: `https://127.0.0.1:${ssh.port}` };
    await latency(direct, tunnel, openssh, {
      ...pids,
      ...Object.fromEntries(ssh.procs.map((p) => [p.name, p.pid])),
    });
    await stopSsh();
    const c = int('concurrency');
    await profiled(`GET /version at ${c} clients`, () => requestRate(tunnel, '/version', c, 3000, 500));
  }
  await stopAgent();
  await stopProxy();
}

async function throughput(
  sink: Sink,
  ksPort: number,
  pids: Record<string, number | undefined>,
): Promise<void> {
  const maxBytes = int('bytes') * 1024 * 1024;
  const maxMs = int('seconds') * 1000;
  const rounds = int('rounds');
  const paths: { name: string; port: number; peer?: Peer }[] = [
    { name: 'direct', port: sink.port },
    { name: 'tower', port: ksPort },
  ];
  const peers: Peer[] = [];
  const stopPeers = cleanup.defer('tunnel peers', async () => {
    for (const p of peers) await stopPeer(p);
  });
  for (const cipher of [undefined, 'aes128-gcm@openssh.com']) {
    const p = await startOpenSsh(join(dir, 'ssh'), sink.port, cipher);
    peers.push(p);
    paths.push({ name: p.name, port: p.port, peer: p });
  }
  const chisel = await ensureChisel();
  if (chisel) {
    const p = await startChisel(chisel, join(dir, 'chisel'), sink.port);
    peers.push(p);
    paths.push({ name: p.name, port: p.port, peer: p });
  }

  for (const direction of ['upload', 'download'] as const) {
    await busy(`throughput (${direction})`);
    const gbps = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    const cpuPerGiB = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    log(
      `throughput, ${direction} (${direction === 'upload' ? 'client → member' : 'member → client'}): ` +
        `warm-up (64 MiB per path), then ${rounds} rounds of ≤ ${int('bytes')} MiB / ≤ ${maxMs / 1000} s`,
    );
    for (const p of paths) await bulkStream(sink, '127.0.0.1', p.port, 64 * 1024 * 1024, maxMs, direction);
    for (let r = 0; r < rounds; r++) {
      for (const p of paths) {
        const peerPids = Object.fromEntries((p.peer?.procs ?? []).map((x) => [x.name, x.pid]));
        const cpu = new CpuMeter(
          p.name === 'tower'
            ? { bench: pids['bench'], proxy: pids['proxy'], agent: pids['agent'] }
            : { bench: pids['bench'], ...peerPids },
          ['sshd'],
        ).start();
        const res = await bulkStream(sink, '127.0.0.1', p.port, maxBytes, maxMs, direction);
        gbps.get(p.name)?.push(res.gbps);
        const used = Object.entries(cpu.seconds()).filter(([n]) => n !== 'bench');
        const perGiB = used.reduce((a, [, v]) => a + v, 0) / (res.bytes / 2 ** 30);
        if (p.name !== 'direct') cpuPerGiB.get(p.name)?.push(perGiB);
        log(
          `  round ${r + 1} ${p.name.padEnd(20)} ${res.gbps.toFixed(2)} Gbit/s ` +
            `(${(res.bytes / 1048576).toFixed(0)} MiB in ${res.seconds.toFixed(2)} s; ${cpu.stop()}` +
            `${p.name === 'direct' ? '' : `; tunnel CPU ${perGiB.toFixed(2)} s/GiB`})`,
        );
      }
    }
    const med = (n: string) => median(gbps.get(n) ?? []);
    const cpuMed = (n: string) => median(cpuPerGiB.get(n) ?? []);
    const tower = med('tower');
    const metric = direction === 'upload' ? 'throughput' : 'throughput_download';
    emit({ metric: `${metric}_direct`, value: med('direct'), unit: 'Gbit/s' });
    for (const p of paths) {
      if (!p.peer) continue;
      const v = med(p.name);
      emit({
        metric,
        value: tower,
        unit: 'Gbit/s',
        peer: p.name,
        peer_value: v,
        ratio: tower / v,
        // CPU seconds both tunnel ends (proxy + agent, or the peer's two processes) spend per GiB.
        cpu_s_per_GiB: cpuMed('tower'),
        peer_cpu_s_per_GiB: cpuMed(p.name),
      });
    }
  }
  await stopPeers();
}

async function latency(
  direct: Endpoint,
  tunnel: Endpoint,
  openssh: Endpoint,
  pids: Record<string, number | undefined>,
): Promise<void> {
  const n = int('requests');
  await busy('latency');
  log(
    `latency: ${n} sequential GET /version each, direct, through the tunnel and through ssh -L, interleaved`,
  );
  const cpu = new CpuMeter(pids, ['sshd']).start();
  // 1,500 unmeasured rounds first: freshly started, the proxy and agent are still being compiled by
  // V8 for a few seconds, and in a 200-round warm-up most slow tunnel samples fell in the first
  // 2.5 s of the measured part. What is measured is a warm tunnel, as a long-running one is.
  const [d, t, o] = await sequentialLatency([direct, tunnel, openssh], '/version', n, 1500);
  if (!d || !t || !o) throw new Error('no latency samples');
  log(
    `  direct p50 ${d.p50.toFixed(3)} p99 ${d.p99.toFixed(3)} ms; tunnel p50 ${t.p50.toFixed(3)} p99 ${t.p99.toFixed(3)} ms; ` +
      `ssh -L p50 ${o.p50.toFixed(3)} p99 ${o.p99.toFixed(3)} ms; ${cpu.stop()}`,
  );
  log(
    `  samples during a GC pause of the bench client: direct ${d.clientGcHits}, tunnel ${t.clientGcHits}, ssh -L ${o.clientGcHits}; ` +
      `p99 without them: direct ${d.p99WithoutClientGc.toFixed(3)}, tunnel ${t.p99WithoutClientGc.toFixed(3)}, ssh -L ${o.p99WithoutClientGc.toFixed(3)} ms`,
  );
  for (const q of ['p50', 'p99'] as const) {
    const ours = t[q] - d[q];
    const peer = o[q] - d[q];
    emit({
      metric: `overhead_${q}`,
      value: ours,
      unit: 'ms',
      peer: 'openssh',
      peer_value: peer,
      // a time: above 1 means we add less than ssh -L does
      ratio: peer / ours,
      tunnel_ms: t[q],
      direct_ms: d[q],
      openssh_ms: o[q],
      samples: n,
      ...(q === 'p99'
        ? {
            // the same without samples the bench process's own GC paused (see latency.ts)
            value_without_client_gc: t.p99WithoutClientGc - d.p99WithoutClientGc,
            client_gc_samples: { direct: d.clientGcHits, tunnel: t.clientGcHits, openssh: o.clientGcHits },
          }
        : {}),
    });
  }

  const c = int('concurrency');
  const secs = int('rps-seconds');
  // The same runs twice: with the Node https client of latency.ts (rps_N), and with the Go load
  // generator (rps_N_go_client), which needs a fraction of the CPU per request and so leaves more
  // of the 2 cores to the tunnel, the API server and the peers.
  await rates(`rps_${c}`, 'Node client', (ep) => requestRate(ep, '/version', c, secs * 1000, 1000));
  const loadgen = await buildLoadgen();
  if (loadgen) {
    await rates(`rps_${c}_go_client`, 'Go client', (ep) =>
      goRequestRate(loadgen, ep, '/version', c, secs * 1000, 1000, join(dir, 'loadgen')),
    );
  }

  async function rates(
    metric: string,
    client: string,
    drive: (ep: Endpoint) => Promise<RateResult & { cpuSeconds?: number }>,
  ): Promise<void> {
    const results = new Map<
      string,
      { rps: number; errors: number; p99: number; perReq: Record<string, number> }
    >();
    for (const ep of [direct, tunnel, openssh]) {
      const meter = new CpuMeter(pids, ['sshd']).start();
      const r = await drive(ep);
      const used: Record<string, number> = {
        ...meter.seconds(),
        ...(r.cpuSeconds !== undefined ? { loadgen: r.cpuSeconds } : {}),
      };
      const perReq = Object.fromEntries(Object.entries(used).map(([n, v]) => [n, (v * 1e6) / r.requests]));
      log(
        `  ${ep.name} (${client}): ${r.rps.toFixed(0)} req/s at ${c} clients (p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} ms, ` +
          `${r.errors} errors; ${meter.stop()}; CPU µs per request: ` +
          `${Object.entries(perReq)
            .map(([n, v]) => `${n} ${v.toFixed(0)}`)
            .join(', ')})`,
      );
      results.set(ep.name, { ...r, perReq });
    }
    const rt = results.get('tunnel');
    if (!rt) throw new Error('no rate results');
    for (const peer of ['direct', 'openssh']) {
      const rp = results.get(peer);
      if (!rp) continue;
      emit({
        metric,
        value: rt.rps,
        unit: 'req/s',
        peer,
        peer_value: rp.rps,
        ratio: rt.rps / rp.rps,
        errors: rt.errors,
        p99_ms: rt.p99,
        proxy_cpu_us_per_req: rt.perReq['proxy'],
        agent_cpu_us_per_req: rt.perReq['agent'],
        ...(peer === 'openssh'
          ? { peer_cpu_us_per_req: (rp.perReq['ssh'] ?? 0) + (rp.perReq['sshd'] ?? 0) }
          : {}),
      });
    }
  }
}

runBench(main, {
  cleanup,
  timeLimitMs: TIME_LIMIT_MS,
  finish: (code) => {
    // Kept when it failed (the logs say why), or on request.
    if (code !== 1 && !args.keep) rmSync(dir, { recursive: true, force: true });
    else log(`logs kept in ${dir}`);
  },
});
