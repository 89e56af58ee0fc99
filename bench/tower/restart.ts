import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { Cluster } from '@knet/cluster-crd';
import { kubeconfigTls } from '@knet/k8s';
import type { ControlPlane } from '@knet/testing';
import {
  conditionOf,
  listClustersAt,
  startProxy,
  watchClusters,
  type ProxyOptions,
  type RunningProxy,
} from './bed';
import type { Floor } from './floor';
import { summarizeProfile, type CpuProfile } from './profile';
import type { SimStatus } from './sim-agents';
import { simBody } from './sim-reply';
import { cpuSeconds, emit, log, median, sleep, type Cleanup } from './util';

/** One cluster's two listeners and the kubeconfig that opens the TLS one. */
interface Target {
  name: string;
  kubesphere: number;
  kubernetes: number;
  tls: { ca: string; cert: string; key: string };
}

export interface RestartOptions {
  host: ControlPlane;
  /** The running proxy, killed with SIGKILL. */
  proxy: RunningProxy;
  /** Its agent port: the new proxy takes the same, so the agents' URL stays right. */
  port: number;
  proxyOptions: ProxyOptions;
  /** The Clusters whose agents are connected (all AgentAvailable=True). */
  clusters: readonly string[];
  /** Agents in all (every one must have reconnected). */
  agents: number;
  readSims: () => SimStatus[];
  timeoutMs: number;
  /** Probes (TCP or TLS requests) in flight. */
  probeConcurrency: number;
  /** The restart floor measured in this run (floor.ts): the restart line gives its ratio to it. */
  floor?: Floor;
  /** Write a CPU profile of the new proxy (--cpu-prof) and summarise it on stderr. */
  cpuProf: boolean;
  bundle: string;
  dir: string;
  cleanup: Cleanup;
}

/**
 * Failover at scale: SIGKILL the proxy with N Clusters and their agents connected, start a new one
 * on the same port, host key and CA (from their Secrets; the Clusters keep their tokens, ports and
 * kubeconfigs), and measure from its start until every cluster's two listeners serve a request
 * through its tunnel (`restart_<n>_clusters_ms`), and until every Cluster is AgentAvailable=True
 * again, as the new proxy wrote or confirmed it (`restart_agent_available_<n>_clusters_ms`).
 * Returns the stop of the new proxy.
 */
export async function runRestart(o: RestartOptions): Promise<() => Promise<void>> {
  const names = new Set(o.clusters);
  const listed = await listClustersAt(o.host);
  const targets = listed.items.filter((c) => names.has(c.metadata.name)).map(target);
  if (targets.length !== names.size)
    throw new Error(`restart: ${names.size - targets.length} Clusters lack ports or kubeconfig`);

  // The probe itself, through the running proxy: every listener answers through its agent.
  const t = performance.now();
  const pre = await probeAll(targets, o.probeConcurrency, Date.now() + 60_000, () => undefined);
  const probeBeforeKillMs = Math.round(performance.now() - t);
  log(
    `restart: before the kill, ${pre.size}/${targets.length} clusters served both requests in ${(probeBeforeKillMs / 1000).toFixed(1)} s`,
  );
  if (pre.size !== targets.length) throw new Error('restart: the probe fails against the running proxy');

  // Every AgentAvailable change from here on, with its arrival time.
  const available = new Map<string, boolean>();
  for (const c of listed.items)
    if (names.has(c.metadata.name))
      available.set(c.metadata.name, conditionOf(c, 'AgentAvailable') === 'True');
  let falseEvents = 0;
  let lastFlipToTrue = 0;
  let lastEventAt = 0;
  let t0 = Infinity;
  const watch = watchClusters(o.host, listed.resourceVersion, (type, c, at) => {
    const name = c.metadata.name;
    if (!names.has(name) || type === 'DELETED') return;
    const was = available.get(name);
    const is = conditionOf(c, 'AgentAvailable') === 'True';
    available.set(name, is);
    if (at < t0 || was === is) return;
    lastEventAt = at;
    if (!is) falseEvents++;
    else lastFlipToTrue = at;
  });
  const stopWatch = o.cleanup.defer('Cluster watch', () => watch.stop());
  const notTrue = () => [...available.values()].filter((v) => !v).length;
  if (notTrue() > 0)
    throw new Error(`restart: ${notTrue()} Clusters are not AgentAvailable=True before the kill`);

  const simsBefore = o.readSims();
  const lostBefore = simsBefore.reduce((a, s) => a + s.lost, 0);
  const reconnectedBefore = simsBefore.reduce((a, s) => a + s.reconnected, 0);
  await o.proxy.proc.kill();
  log(`restart: proxy killed (SIGKILL); starting a new one on port ${o.port}`);
  const profDir = join(o.dir, 'restart-cpu-prof');
  t0 = Date.now();
  const starting = startProxy(o.host, o.port, {
    ...o.proxyOptions,
    nodeFlags: [
      ...(o.proxyOptions.nodeFlags ?? []),
      ...(o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []),
    ],
  });
  let readyAt = NaN;
  const proxy2 = await Promise.race([
    starting.then((p) => {
      readyAt = Date.now();
      return p;
    }),
    watch.failed,
  ]);
  const stopProxy2 = o.cleanup.defer('restarted proxy', () => proxy2.proc.stop());
  log(
    `restart: new proxy ready after ${((readyAt - t0) / 1000).toFixed(1)} s; probing ${targets.length} clusters`,
  );

  // Every cluster's kubesphere listener, then its kubernetes listener (TLS, the kubeconfig's
  // client certificate), each answered by the cluster's simulated agent.
  const deadline = t0 + o.timeoutMs;
  let progressAt = Date.now();
  const served = await Promise.race([
    probeAll(targets, o.probeConcurrency, deadline, (n) => {
      if (Date.now() - progressAt < 2000) return;
      progressAt = Date.now();
      log(`restart: ${n}/${targets.length} clusters served after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }),
    watch.failed,
  ]);
  const servedAll = served.size === targets.length;
  const servedAt = servedAll ? Math.max(...served.values()) : Date.now();
  const proxyCpu = cpuSeconds(proxy2.proc.pid);
  const sims = o.readSims();
  const lost = sims.reduce((a, s) => a + s.lost, 0) - lostBefore;
  const reconnected = sims.reduce((a, s) => a + s.reconnected, 0) - reconnectedBefore;
  const lastReconnect = Math.max(...sims.map((s) => s.lastReconnectAt ?? 0));
  const doneTimes = [...served.values()].map((x) => x - t0);
  log(
    `restart: ${served.size}/${targets.length} clusters served ${((servedAt - t0) / 1000).toFixed(1)} s after the start; ` +
      `agents lost ${lost}, reconnected ${reconnected} (last ${((lastReconnect - t0) / 1000).toFixed(1)} s); proxy CPU ${proxyCpu.toFixed(1)} s`,
  );
  emit({
    metric: `restart_${targets.length}_clusters_ms`,
    value: servedAt - t0,
    unit: 'ms',
    goal_ms: 10_000,
    clusters_served: served.size,
    proxy_ready_ms: readyAt - t0,
    first_cluster_ms: doneTimes.length ? Math.min(...doneTimes) : NaN,
    median_cluster_ms: median(doneTimes),
    agents_lost: lost,
    agents_reconnected: reconnected,
    last_agent_reconnected_ms: lastReconnect - t0,
    proxy_cpu_s: proxyCpu,
    // The warm probe: the same requests through the running proxy before the kill.
    probe_before_kill_ms: probeBeforeKillMs,
    ...(o.floor
      ? {
          floor_ms: Math.round(o.floor.ms),
          ratio_to_floor: Number(((servedAt - t0) / o.floor.ms).toFixed(2)),
        }
      : {}),
    ...(servedAll ? {} : { timed_out: true }),
  });

  // AgentAvailable: every Cluster True, once the new proxy has been over all of them (every
  // listener served: the pass that starts a listener writes the conditions right after) and no
  // condition changed for 3 s. Clusters whose agent came back before their pass keep the True
  // they had; the others went False (no agent at their pass) and back to True.
  while (Date.now() < deadline && !(servedAll && notTrue() === 0 && Date.now() - lastEventAt >= 3000)) {
    await Promise.race([sleep(200), watch.failed]);
  }
  const settled = servedAll && notTrue() === 0;
  emit({
    metric: `restart_agent_available_${targets.length}_clusters_ms`,
    value: Math.max(servedAt, lastFlipToTrue) - t0,
    unit: 'ms',
    goal_ms: 5_000,
    clusters_available: targets.length - notTrue(),
    // Conditions the new proxy turned False (a pass before the cluster's agent was back) and True again.
    false_then_true: falseEvents,
    ...(settled ? {} : { timed_out: true }),
  });
  await stopWatch();

  if (o.cpuProf) {
    await stopProxy2();
    const files = existsSync(profDir) ? readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
    for (const f of files) {
      const p = JSON.parse(readFileSync(join(profDir, f), 'utf8')) as CpuProfile;
      for (const l of summarizeProfile('restarted proxy (start to stop)', p, o.bundle, 25)) log(l);
    }
    if (files.length === 0) log('restart: the proxy wrote no CPU profile');
  }
  return stopProxy2;
}

function target(c: Cluster): Target {
  const k = c.spec?.connection;
  if (!k?.kubesphereAPIServerPort || !k.kubernetesAPIServerPort || !k.kubeconfig)
    throw new Error(`Cluster ${c.metadata.name} has no ports or kubeconfig`);
  const tls = kubeconfigTls(Buffer.from(k.kubeconfig, 'base64').toString('utf8'));
  if (!tls.cert || !tls.key)
    throw new Error(`Cluster ${c.metadata.name}: the kubeconfig has no client certificate`);
  return {
    name: c.metadata.name,
    kubesphere: k.kubesphereAPIServerPort,
    kubernetes: k.kubernetesAPIServerPort,
    tls: { ca: tls.ca, cert: tls.cert, key: tls.key },
  };
}

/**
 * Probes every target until both its listeners answered 200 from its agent, or `deadline`: rounds
 * over the clusters not served yet, `concurrency` at a time, 200 ms apart. Returns Date.now() of
 * each cluster's success.
 */
async function probeAll(
  targets: Target[],
  concurrency: number,
  deadline: number,
  progress: (served: number) => void,
): Promise<Map<string, number>> {
  const done = new Map<string, number>();
  const ksDone = new Set<string>();
  let pending = targets;
  while (pending.length > 0 && Date.now() < deadline) {
    let next = 0;
    const worker = async () => {
      for (let t = pending[next++]; t; t = pending[next++]) {
        if (!ksDone.has(t.name)) {
          if (!(await request(t, 'kubesphere'))) continue;
          ksDone.add(t.name);
        }
        if (await request(t, 'kubernetes')) done.set(t.name, Date.now());
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    pending = pending.filter((t) => !done.has(t.name));
    progress(done.size);
    if (pending.length > 0) await sleep(200);
  }
  return done;
}

/** One GET on a listener; true when the cluster's agent answered it (200 and its body). */
function request(t: Target, listener: 'kubesphere' | 'kubernetes'): Promise<boolean> {
  return new Promise((resolve) => {
    const host = '127.0.0.2';
    const s: Socket =
      listener === 'kubesphere'
        ? netConnect({ host, port: t.kubesphere })
        : tlsConnect({ host, port: t.kubernetes, ...t.tls });
    let got = '';
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), 5000);
    s.once(listener === 'kubesphere' ? 'connect' : 'secureConnect', () =>
      s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('end', () => finish(got.startsWith('HTTP/1.1 200 ') && got.endsWith(simBody(t.name))));
    s.on('error', () => finish(false));
  });
}
