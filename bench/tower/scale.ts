import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from '@knet/cluster-crd';
import { errorMessage } from '@knet/runtime';
import { ManagedProcess, freePort, type ControlPlane } from '@knet/testing';
import {
  clusterObject,
  conditionOf,
  createClusters,
  listClusters,
  startProxy,
  type Bundles,
  type ProxyOptions,
  type RunningProxy,
} from './bed';
import { measureFloor } from './floor';
import { gcAndMeasure, type HeapAfterGc } from './inspect';
import { runRestart } from './restart';
import type { SimConfig, SimStatus } from './sim-agents';
import { CpuMeter, emit, log, memoryMiB, sleep, type Cleanup } from './util';

export interface ScaleOptions {
  clusters: number;
  agentsPerCluster: number;
  simProcesses: number;
  /** Dials in flight per simulator process. */
  dialConcurrency: number;
  /** Give up waiting for the proxy's reconcile of all clusters after this long (then fall back). */
  reconcileTimeoutMs: number;
  connectTimeoutMs: number;
  /** Extra node flags for the proxy, e.g. --max-old-space-size=128. */
  proxyNodeFlags: string[];
  /** Then kill the proxy and start a new one (runRestart). */
  restart: boolean;
  /** Requests in flight while probing the listeners after the restart. */
  probeConcurrency: number;
  /** Profile the restarted proxy's CPU. */
  cpuProf: boolean;
}

/** Clusters reconciled: token, ports, kubeconfig and Initialized=True. */
function reconciled(c: Cluster): boolean {
  const k = c.spec?.connection;
  return Boolean(
    k?.token && k.kubeconfig && k.kubernetesAPIServerPort && conditionOf(c, 'Initialized') === 'True',
  );
}

async function proxyCounter(proxy: RunningProxy, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${proxy.url}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes(labels)) n += Number(line.split(' ').pop());
  }
  return n;
}

/**
 * N Clusters on the host, then the proxy started (so it reconciles all of them at start-up, as after
 * a restart), then simulated agents in separate processes dialling in. Measures the reconcile time,
 * the time to connect every agent, the time until every Cluster shows AgentAvailable=True, and the
 * proxy's RSS before and after.
 */
export async function runScale(
  host: ControlPlane,
  bundles: Bundles,
  dir: string,
  o: ScaleOptions,
  cleanup: Cleanup,
): Promise<void> {
  // The restart's floor first, while the machine runs only the idle control plane.
  const floor = o.restart
    ? await measureFloor({
        clusters: o.clusters,
        bundle: bundles.floor,
        dialConcurrency: o.dialConcurrency,
        probeConcurrency: o.probeConcurrency,
        cleanup,
      })
    : undefined;
  const prefix = `scale-${randomBytes(2).toString('hex')}`;
  const names = Array.from({ length: o.clusters }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);
  log(`scale: creating ${o.clusters} Clusters`);
  let t = performance.now();
  await createClusters(
    host,
    names.map((n) => clusterObject(n)),
  );
  log(`scale: created in ${((performance.now() - t) / 1000).toFixed(1)} s; starting the proxy`);

  // Listeners on 127.0.0.2: a loopback address of their own, so a thousand ports collide with nothing
  // (neither the e2e tests' ports on 127.0.0.1 nor ephemeral ports of outgoing connections).
  const min = 20_000;
  const inspectPort = await freePort();
  const proxyPort = await freePort();
  const proxyOptions: ProxyOptions = {
    bundle: bundles.proxy,
    listenAddress: '127.0.0.2',
    portRange: { min, max: min + o.clusters + 100 },
    logDir: dir,
    inspectPort,
    nodeFlags: o.proxyNodeFlags,
  };
  const proxy = await startProxy(host, proxyPort, proxyOptions);
  let stopProxy = cleanup.defer('scale proxy', () => proxy.proc.stop());
  const proxyPid = proxy.proc.pid;
  t = performance.now();
  const cpu = new CpuMeter({
    proxy: proxyPid,
    'host apiserver': host.process('kube-apiserver')?.pid,
  }).start();

  let ready: Cluster[] = [];
  let last = -1;
  const reconcileDeadline = Date.now() + o.reconcileTimeoutMs;
  while (Date.now() < reconcileDeadline) {
    const mine = (await listClusters(host)).filter((c) => c.metadata.name.startsWith(prefix));
    ready = mine.filter(reconciled);
    if (ready.length !== last) {
      log(
        `scale: ${ready.length}/${o.clusters} clusters reconciled after ${((performance.now() - t) / 1000).toFixed(1)} s`,
      );
      last = ready.length;
    }
    if (ready.length === o.clusters) break;
    await sleep(2000);
  }
  const reconcileMs = performance.now() - t;
  const errors = await proxyCounter(proxy, 'tower_proxy_reconciles_total', 'result="error"').catch(() => NaN);
  log(`scale: reconcile ${cpu.stop()}; reconcile errors: ${errors}`);
  const complete = ready.length === o.clusters;
  emit({
    metric: `reconcile_${o.clusters}_clusters_ms`,
    value: reconcileMs,
    unit: 'ms',
    clusters_done: ready.length,
    reconcile_errors: errors,
    ...(complete ? {} : { timed_out: true }),
  });
  if (ready.length === 0) throw new Error(`the proxy reconciled no cluster; log:\n${proxy.proc.tail(30)}`);

  // Agents: N clusters × M agents, or (if the reconcile did not finish) fewer clusters × more agents.
  let clusters = ready.slice(0, o.clusters);
  let perCluster = o.agentsPerCluster;
  const wanted = o.clusters * o.agentsPerCluster;
  if (!complete) {
    clusters = ready.slice(0, Math.min(ready.length, 100));
    perCluster = Math.ceil(wanted / clusters.length);
    log(
      `scale: the reconcile did not finish in ${o.reconcileTimeoutMs / 1000} s; ` +
        `using ${clusters.length} clusters × ${perCluster} agents instead`,
    );
  }
  const agents = clusters.flatMap((c) =>
    Array.from({ length: perCluster }, (_, i) => ({
      cluster: c.metadata.name,
      token: c.spec?.connection?.token ?? '',
      agent: `${c.metadata.name}-a${i}`,
    })),
  );
  const total = agents.length;

  await sleep(2000);
  const idle = memoryMiB(proxyPid);
  const idleGc = await gcAndMeasure(inspectPort).catch(gcFailed);
  emit({
    metric: `rss_${ready.length}_clusters_no_agents`,
    value: idle.rss,
    unit: 'MiB',
    ...gcFields(idleGc),
  });

  const sims: { proc: ManagedProcess; status: string }[] = [];
  const stopSims = cleanup.defer('simulated agents', async () => {
    for (const s of sims) await s.proc.stop();
  });
  const per = Math.ceil(total / o.simProcesses);
  const connectPids: Record<string, number | undefined> = {
    proxy: proxyPid,
    'host apiserver': host.process('kube-apiserver')?.pid,
  };
  for (let i = 0; i < o.simProcesses; i++) {
    const part = agents.slice(i * per, (i + 1) * per);
    if (part.length === 0) continue;
    const status = join(dir, `sim-${i}.status.json`);
    const cfg: SimConfig = {
      url: `${proxy.url.replace(/^http/, 'ws')}/v1/tunnel`,
      fingerprint: proxy.fingerprint,
      agents: part,
      concurrency: o.dialConcurrency,
      keepaliveMs: 30_000,
      statusFile: status,
    };
    const file = join(dir, `sim-${i}.json`);
    writeFileSync(file, JSON.stringify(cfg));
    sims.push({
      proc: ManagedProcess.start(
        `sim-agents-${i}`,
        process.execPath,
        [bundles.sim, file],
        join(dir, `sim-${i}.log`),
      ),
      status,
    });
  }
  sims.forEach((x, i) => (connectPids[`simulator ${i}`] = x.proc.pid));
  const connectCpu = new CpuMeter(connectPids).start();
  log(
    `scale: ${sims.length} simulator process(es) dialling ${total} agents (${o.dialConcurrency} in flight each)`,
  );

  const read = (): SimStatus[] =>
    sims
      .map((s) =>
        existsSync(s.status) ? (JSON.parse(readFileSync(s.status, 'utf8')) as SimStatus) : undefined,
      )
      .filter((x): x is SimStatus => x !== undefined);
  const connectDeadline = Date.now() + o.connectTimeoutMs;
  let statuses: SimStatus[] = [];
  for (let n = -1; Date.now() < connectDeadline;) {
    statuses = read();
    const connected = statuses.reduce((a, s) => a + s.connected, 0);
    if (connected !== n) log(`scale: ${connected}/${total} agents connected`);
    n = connected;
    for (const s of sims) {
      if (!s.proc.running) throw new Error(`${s.proc.name} exited; log:\n${s.proc.tail(20)}`);
    }
    if (statuses.length === sims.length && statuses.every((s) => s.finishedAt !== undefined)) break;
    await sleep(500);
  }
  const done = statuses.length === sims.length && statuses.every((s) => s.finishedAt !== undefined);
  const connected = statuses.reduce((a, s) => a + s.connected, 0);
  const failures = statuses.reduce((a, s) => a + s.failures, 0);
  const startedAt = Math.min(...statuses.map((s) => s.startedAt));
  const finishedAt = Math.max(...statuses.map((s) => s.finishedAt ?? Date.now()));
  log(`scale: connect ${connectCpu.stop()}`);
  const firstError = statuses.find((s) => s.firstError)?.firstError;
  if (firstError) log(`scale: ${failures} failed dials; first: ${firstError}`);
  emit({
    metric: `connect_${total}_agents_ms`,
    value: finishedAt - startedAt,
    unit: 'ms',
    agents: total,
    connected,
    failures,
    clusters: clusters.length,
    dial_concurrency: o.dialConcurrency * sims.length,
    per_agent_p50_ms: Math.max(...statuses.map((s) => s.p50 ?? NaN)),
    per_agent_p99_ms: Math.max(...statuses.map((s) => s.p99 ?? NaN)),
    ...(done ? {} : { timed_out: true }),
  });

  // Every Cluster marked AgentAvailable=True by the proxy (one reconcile per cluster's first agent).
  const names2 = new Set(clusters.map((c) => c.metadata.name));
  const availDeadline = Date.now() + o.connectTimeoutMs;
  let available = 0;
  while (Date.now() < availDeadline) {
    available = (await listClusters(host)).filter(
      (c) => names2.has(c.metadata.name) && conditionOf(c, 'AgentAvailable') === 'True',
    ).length;
    if (available === names2.size) break;
    await sleep(1000);
  }
  emit({
    metric: `agent_available_${clusters.length}_clusters_ms`,
    value: Date.now() - startedAt,
    unit: 'ms',
    clusters_available: available,
    ...(available === names2.size ? {} : { timed_out: true }),
  });

  await sleep(3000);
  const mem = memoryMiB(proxyPid);
  const gc = await gcAndMeasure(inspectPort).catch(gcFailed);
  const lost = read().reduce((a, s) => a + s.lost, 0);
  emit({
    metric: `rss_${total}_agents`,
    value: mem.rss,
    unit: 'MiB',
    peak_MiB: mem.peak,
    ...gcFields(gc),
    // Retained memory per agent: the difference of the after-GC figures with and without agents.
    ...(gc && idleGc ? { per_agent_KiB: ((gc.rss - idleGc.rss) * 1024) / Math.max(1, connected) } : {}),
    goal_MiB: 256,
    agents_connected: connected,
    agents_lost: lost,
    simulator_rss_MiB: read().reduce((a, s) => a + s.rssMiB, 0),
  });

  if (o.restart && complete && available === names2.size) {
    const killed = stopProxy;
    stopProxy = await runRestart({
      host,
      proxy,
      port: proxyPort,
      proxyOptions,
      clusters: [...names2],
      agents: total,
      readSims: read,
      timeoutMs: o.connectTimeoutMs,
      probeConcurrency: o.probeConcurrency,
      cpuProf: o.cpuProf,
      bundle: bundles.proxy,
      dir,
      cleanup,
      ...(floor ? { floor } : {}),
    });
    await killed(); // runRestart killed it: this only drops it from the cleanup list
  } else if (o.restart) log('scale: the restart part needs every cluster reconciled and available; skipped');
  await stopSims();
  await stopProxy();
}

function gcFailed(e: unknown): undefined {
  log(`scale: could not force a GC in the proxy: ${errorMessage(e)}`);
  return undefined;
}

/** After a forced full GC: RSS, and the V8 heap the proxy really retains. */
function gcFields(m: HeapAfterGc | undefined): Record<string, number> {
  if (!m) return {};
  return {
    rss_after_gc_MiB: m.rss,
    heap_used_after_gc_MiB: m.heapUsed,
    heap_total_after_gc_MiB: m.heapTotal,
    external_after_gc_MiB: m.external,
  };
}
