/**
 * `npm run bench -- webhook [options]`: gateway-webhook (the pod-gateway sidecar-injection webhook)
 * under load on this machine, in one run. One JSON object per line on stdout; progress on stderr.
 *
 *   direct     50 clients POSTing AdmissionReviews of a realistic Pod straight to the webhook's
 *              HTTPS port (kept-alive): p50/p99 at the client, the webhook's own histogram, its CPU
 *              per review; the same with 1 client; the same load on two Node floor servers
 *   apiserver  Pod creations with ?dryRun=All through the real kube-apiserver at 50 clients, in a
 *              namespace the webhook reviews, in one no webhook reviews (the baseline) and in one a
 *              null webhook reviews (parse, allow, no patch), in rotating rounds of the same run
 *   rss        the webhook's RSS after the load and its peak (VmHWM)
 *
 * The webhook runs as its bundle, registered with the test bed's kube-apiserver by URL on loopback
 * TLS with its own CA (WebhookBed). The reference implementation (gateway-admision-controller, Go)
 * is not measured: the Go module proxy here does not serve it (see README.md).
 *
 * Options: --only=direct,apiserver  --reviews=N --warmup=N (direct)  --creates=N --create-warmup=N
 *          --rounds=N (apiserver)  --concurrency=N  --keep (keep logs)
 */
import { readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCertificateAuthority, issueCertificate } from '@knet/crypto';
import { kubeconfigTls } from '@knet/k8s';
import {
  Cleanup,
  ControlPlane,
  CpuMeter,
  ManagedProcess,
  WebhookBed,
  busy,
  bundleOnce,
  descendants,
  freePort,
  log,
  memoryMiB,
  resultEmitter,
  runBench,
  until,
  workspaceRoot,
} from '@knet/testing';
import { closedLoop, summarize, type Load, type LoadResult, type Target } from './load';
import { OPT_OUT_EVERY, admissionReview, isRouted, podObject } from './pod';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'direct,apiserver' },
    reviews: { type: 'string', default: '20000' },
    warmup: { type: 'string', default: '3000' },
    creates: { type: 'string', default: '4000' },
    'create-warmup': { type: 'string', default: '500' },
    rounds: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '50' },
    keep: { type: 'boolean', default: false },
  },
  allowPositionals: false,
});

const int = (name: keyof typeof args): number => {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v <= 0) {
    log(`--${name} must be a positive integer, got ${String(args[name])}`);
    process.exit(2);
  }
  return v;
};
const parts = new Set(String(args.only).split(',').filter(Boolean));
for (const p of parts) {
  if (!['direct', 'apiserver'].includes(p)) {
    log(`unknown part "${p}" in --only; use direct, apiserver`);
    process.exit(2);
  }
}

const emit = resultEmitter('webhook');
const cleanup = new Cleanup();
const dir = mkdtempSync(join(tmpdir(), 'knet-bench-webhook-'));
const TIME_LIMIT_MS = 20 * 60_000;
const GOAL_MS = 5;
const GATEWAY_NS = 'vpn';
const ROUTED_NS = 'bench-routed';
const PLAIN_NS = 'bench-plain';
const NULL_NS = 'bench-null-webhook';
const NULL_LABEL = 'bench-null-webhook';
const WEBHOOK_PATH = '/wh/mutating/setgateway';
const HISTOGRAM = 'knet_podgw_webhook_review_duration_seconds';
const concurrency = int('concurrency');

async function main(): Promise<void> {
  log(`logs in ${dir}`);
  log('starting the control plane (etcd, kube-apiserver, controller-manager); bundling the floor server');
  const [cpResult, floorResult] = await Promise.allSettled([
    ControlPlane.start({ controllerManager: true }),
    bundleOnce(join(workspaceRoot(), 'bench/webhook/floor-server.ts')),
  ]);
  if (cpResult.status === 'fulfilled') cleanup.defer('control plane', () => cpResult.value.stop());
  if (cpResult.status === 'rejected') throw cpResult.reason;
  if (floorResult.status === 'rejected') throw floorResult.reason;
  const cp = cpResult.value;
  for (const ns of [GATEWAY_NS, ROUTED_NS, PLAIN_NS, NULL_NS])
    await cp.kubectlOk(['create', 'namespace', ns]);
  await cp.kubectlOk(['label', 'namespace', ROUTED_NS, 'routed-gateway=true']);
  await cp.kubectlOk(['label', 'namespace', NULL_NS, `${NULL_LABEL}=true`]);

  log('starting gateway-webhook (WebhookBed: its own CA in a Secret, caBundle patched in)');
  const started: { bed?: WebhookBed } = {};
  cleanup.defer('gateway-webhook', () => started.bed?.remove());
  // As the chart runs it for gateway A of apps/gateway-webhook/test/apiserver.test.ts: route by
  // default, opt out by label or annotation, DNS through the gateway with dnsPolicy None.
  const webhook = await WebhookBed.start(cp, {
    name: 'pod-gateway',
    namespace: GATEWAY_NS,
    namespaceLabel: { key: 'routed-gateway', value: 'true' },
    args: [
      '--gateway=pod-gateway.vpn.svc.cluster.local',
      '--DNS=172.16.0.1',
      '--DNSPolicy=None',
      '--setGatewayDefault',
      '--setGatewayLabel=setGateway',
      '--setGatewayAnnotation=setGateway',
      '--initImage=ghcr.io/angelnu/pod-gateway:v1.13.0',
      '--sidecarImage=ghcr.io/angelnu/pod-gateway:v1.13.0',
    ],
  });
  started.bed = webhook;
  const pid = webhookPid(webhook);
  const ca = Buffer.from(
    await cp.kubectlOk([
      'get',
      'mutatingwebhookconfiguration',
      webhook.mwcName,
      '-o',
      'jsonpath={.webhooks[0].clientConfig.caBundle}',
    ]),
    'base64',
  ).toString();
  const target: Target = { name: 'gateway-webhook', port: webhook.port, ca };
  const idle = memoryMiB(pid);
  log(
    `gateway-webhook pid ${pid}, port ${webhook.port}, RSS ${idle.rss.toFixed(1)} MiB; log ${webhook.logFile}`,
  );

  if (parts.has('direct')) await direct(target, webhook, pid, floorResult.value);
  const afterDirect = memoryMiB(pid);
  if (parts.has('apiserver')) await viaApiServer(cp, pid, floorResult.value);

  const mem = memoryMiB(pid);
  emit({
    metric: 'webhook_rss',
    value: mem.rss,
    unit: 'MiB',
    peak_MiB: mem.peak,
    idle_MiB: idle.rss,
    ...(parts.has('direct') ? { after_direct_load_MiB: afterDirect.rss } : {}),
  });
}

/** The webhook process: the bed's child whose command line names its port. */
function webhookPid(bed: WebhookBed): number {
  const flag = `--webhook-listen-address=127.0.0.1:${bed.port}`;
  for (const pid of descendants(process.pid)) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(flag)) return pid;
    } catch {
      // exited meanwhile
    }
  }
  throw new Error(`no child process runs gateway-webhook with ${flag}`);
}

/** An AdmissionReview load on the webhook path; every answer's uid, verdict and patch checked. */
function reviewLoad(clients: number): Load {
  const uids = new Map<number, string>();
  return {
    concurrency: clients,
    request: (i) => {
      const body = admissionReview(ROUTED_NS, i);
      // The uid is the first one in the body (request.uid): no second parse.
      const at = body.indexOf('"uid":"') + 7;
      uids.set(i, body.toString('latin1', at, at + 36));
      return { path: WEBHOOK_PATH, body };
    },
    check: (i, status, text) => {
      const uid = uids.get(i);
      uids.delete(i);
      if (status !== 200) return `HTTP ${status}: ${text.slice(0, 200)}`;
      if (!text.includes(`"uid":"${uid}"`)) return `the answer has not the request's uid ${uid}`;
      if (!text.includes('"allowed":true')) return `not allowed: ${text.slice(0, 300)}`;
      if (text.includes('"patch":') !== isRouted(i))
        return `expected ${isRouted(i) ? 'a patch' : 'no patch'}: ${text.slice(0, 300)}`;
      return undefined;
    },
  };
}

async function direct(target: Target, bed: WebhookBed, pid: number, floorBundle: string): Promise<void> {
  const reviews = int('reviews');
  const warmup = int('warmup');
  const sample = admissionReview(ROUTED_NS, 1);
  const answer = await postOnce(target, sample);
  const answerSkipped = await postOnce(target, admissionReview(ROUTED_NS, 0));
  log(
    `AdmissionReview ${sample.length} bytes; answer ${answer.length} bytes routed, ${answerSkipped.length} ` +
      `skipped (1 pod in ${OPT_OUT_EVERY} opts out)`,
  );
  const answerFile = join(dir, 'answer.json');
  writeFileSync(answerFile, answer);

  await busy('direct');
  log(`direct: ${warmup} warm-up + ${reviews} reviews at ${concurrency} clients`);
  const before = histogram(await bed.metrics());
  const cpu = new CpuMeter({ webhook: pid, bench: process.pid }).start();
  const r = await closedLoop(target, reviewLoad(concurrency), reviews, warmup);
  const used = cpu.seconds();
  const cores = cpu.stop();
  const own = histogramDelta(before, histogram(await bed.metrics()));
  logResult('gateway-webhook', r);
  log(`  ${cores}; in process (histogram, ${own.count} reviews): mean ${own.meanMs.toFixed(3)} ms`);
  const webhookCpuUs = ((used['webhook'] ?? NaN) * 1e6) / (reviews + warmup);
  for (const q of ['p50', 'p99'] as const) {
    emit({
      metric: `webhook_admission_${q}_ms`,
      value: r[q],
      unit: 'ms',
      reviews,
      concurrency,
      goal_ms: GOAL_MS,
      ...(q === 'p99' ? { p90_ms: r.p90, max_ms: r.max } : {}),
      in_process_le_ms: own.quantileLe(q === 'p50' ? 0.5 : 0.99) * 1000,
      in_process_mean_ms: own.meanMs,
      routed_share: (OPT_OUT_EVERY - 1) / OPT_OUT_EVERY,
      request_bytes: sample.length,
    });
  }
  emit({
    metric: 'webhook_reviews_per_second',
    value: r.rate,
    unit: 'per second',
    concurrency,
    webhook_cpu_us_per_review: webhookCpuUs,
  });

  // One client: each review's own time, no queue behind the other clients.
  const sequential = await closedLoop(target, reviewLoad(1), Math.ceil(reviews / 4), 500);
  logResult('gateway-webhook, 1 client', sequential);
  emit({
    metric: 'webhook_admission_1_client_p99_ms',
    value: sequential.p99,
    unit: 'ms',
    p50_ms: sequential.p50,
    reviews: sequential.requests,
    concurrency: 1,
  });

  // The floor: a Node HTTPS server doing (almost) nothing, same TLS, same bodies, same load.
  const tls = await floorCertificate();
  for (const mode of ['fixed', 'parse'] as const) {
    const { port, proc, stop } = await startFloor(floorBundle, mode, answerFile);
    const floorLoad: Load = {
      concurrency,
      request: (i) => ({ path: WEBHOOK_PATH, body: admissionReview(ROUTED_NS, i) }),
      check: (_i, status) => (status === 200 ? undefined : `HTTP ${status}`),
    };
    const meter = new CpuMeter({ floor: proc.pid, bench: process.pid }).start();
    const f = await closedLoop({ name: `floor-${mode}`, port, ca: tls.ca }, floorLoad, reviews, warmup);
    const floorCpuUs = ((meter.seconds()['floor'] ?? NaN) * 1e6) / (reviews + warmup);
    logResult(`node floor (${mode})`, f);
    log(`  ${meter.stop()}`);
    emit({
      metric: 'webhook_admission_p99_node_floor_ms',
      value: f.p99,
      unit: 'ms',
      floor: mode === 'fixed' ? 'https-fixed-answer' : 'https-json-parse',
      p50_ms: f.p50,
      per_second: f.rate,
      cpu_us_per_review: floorCpuUs,
      webhook_p99_ms: r.p99,
      webhook_cpu_us_per_review: webhookCpuUs,
      reviews,
      concurrency,
    });
    await stop();
  }
}

/**
 * Pod creations through kube-apiserver in three namespaces of the same API server, in rotating
 * rounds: one gateway-webhook reviews (ours), one no webhook reviews (the baseline), one a null
 * webhook reviews (the parse-mode floor server answering "allowed" without a patch: what calling
 * any webhook costs, without a mutation).
 */
async function viaApiServer(cp: ControlPlane, pid: number, floorBundle: string): Promise<void> {
  const creates = int('creates');
  const warmup = int('create-warmup');
  const rounds = int('rounds');
  const namespaces = [ROUTED_NS, PLAIN_NS, NULL_NS];
  await until(
    'the default ServiceAccount in the bench namespaces',
    async () => {
      for (const ns of namespaces) {
        if ((await cp.kubectl(['get', 'serviceaccount', 'default', '-n', ns])).exitCode !== 0) return false;
      }
      return true;
    },
    30_000,
  );
  const nullAnswer = join(dir, 'null-answer.json');
  writeFileSync(
    nullAnswer,
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: '', allowed: true },
    }),
  );
  const nullWebhook = await startFloor(floorBundle, 'parse', nullAnswer);
  const mwc = 'bench-null-webhook';
  cleanup.defer('the null webhook registration', () =>
    cp.kubectl(['delete', 'mutatingwebhookconfiguration', mwc, '--ignore-not-found']),
  );
  await cp.kubectlOk(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: mwc },
      webhooks: [
        {
          name: 'null.bench.knet.dev',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          timeoutSeconds: 5,
          clientConfig: {
            url: `https://127.0.0.1:${nullWebhook.port}${WEBHOOK_PATH}`,
            caBundle: Buffer.from((await floorCertificate()).ca).toString('base64'),
          },
          rules: [
            {
              operations: ['CREATE'],
              apiGroups: [''],
              apiVersions: ['v1'],
              resources: ['pods'],
              scope: 'Namespaced',
            },
          ],
          namespaceSelector: { matchLabels: { [NULL_LABEL]: 'true' } },
        },
      ],
    }),
  });
  const admin = kubeconfigTls(cp.adminKubeconfig());
  const api: Target = {
    name: 'kube-apiserver',
    port: Number(new URL(cp.server).port),
    ca: admin.ca,
    cert: admin.cert,
    key: admin.key,
  };
  const createLoad = (ns: string): Load => ({
    concurrency,
    request: (i) => {
      const name = `media-web-6d9f7c8b5d-${i.toString(36).padStart(5, '0')}`;
      return {
        path: `/api/v1/namespaces/${ns}/pods?dryRun=All`,
        body: Buffer.from(JSON.stringify(podObject(name, ns, i))),
      };
    },
    check: (i, status, text) => {
      if (status !== 201) return `HTTP ${status}: ${text.slice(0, 300)}`;
      const injected = text.includes('"name":"gateway-init"');
      const expected = ns === ROUTED_NS && isRouted(i);
      if (injected !== expected)
        return `pod ${i} in ${ns}: ${expected ? 'not routed' : 'routed'} (gateway-init ${injected ? 'present' : 'absent'})`;
      return undefined;
    },
  });
  await busy('apiserver');
  const perRound = Math.ceil(creates / rounds);
  log(
    `through kube-apiserver: POST pods?dryRun=All, ${concurrency} clients; ${warmup} warm-up each, then ` +
      `${rounds} rounds of ${perRound} in ${ROUTED_NS} (gateway-webhook), ${PLAIN_NS} (no webhook) and ` +
      `${NULL_NS} (a null webhook), the order rotating`,
  );
  const pids = {
    'kube-apiserver': cp.process('kube-apiserver')?.pid,
    etcd: cp.process('etcd')?.pid,
    webhook: pid,
    'null-webhook': nullWebhook.proc.pid,
    bench: process.pid,
  };
  const runs = new Map<string, number[][]>(namespaces.map((ns) => [ns, []]));
  const seconds = new Map<string, number>(namespaces.map((ns) => [ns, 0]));
  const cpuUs = new Map<string, Map<string, number[]>>(namespaces.map((ns) => [ns, new Map()]));
  for (const ns of namespaces) await closedLoop(api, createLoad(ns), warmup, 0);
  // The null webhook must have been called by now (the API server picks up a new registration
  // within a second or so): its process has used CPU for the warm-up's reviews.
  const nullCpu = new CpuMeter({ n: nullWebhook.proc.pid }).start();
  for (let round = 0; round < rounds; round++) {
    const order = namespaces.map((_, k) => namespaces[(round + k) % namespaces.length] ?? ROUTED_NS);
    for (const ns of order) {
      const meter = new CpuMeter(pids).start();
      const r = await closedLoop(api, createLoad(ns), perRound, Math.min(100, warmup));
      const byWho = cpuUs.get(ns) ?? new Map<string, number[]>();
      for (const [who, s] of Object.entries(meter.seconds()))
        byWho.set(who, [...(byWho.get(who) ?? []), (s * 1e6) / perRound]);
      logResult(`round ${round + 1} ${ns}`, r);
      log(`  ${meter.stop()}`);
      runs.get(ns)?.push(r.latencies);
      seconds.set(ns, (seconds.get(ns) ?? 0) + r.seconds);
    }
  }
  if (!((nullCpu.seconds()['n'] ?? 0) > 0)) throw new Error('the API server did not call the null webhook');
  await nullWebhook.stop();
  const result = (ns: string) => summarize(runs.get(ns) ?? [], seconds.get(ns) ?? NaN);
  const cpuPerCreate = (ns: string) =>
    Object.fromEntries(
      [...(cpuUs.get(ns) ?? new Map<string, number[]>())].map(([who, xs]) => [
        who,
        xs.reduce((a, b) => a + b, 0) / xs.length,
      ]),
    );
  const ours = result(ROUTED_NS);
  const ourCpu = cpuPerCreate(ROUTED_NS);
  for (const ns of namespaces)
    log(`  CPU µs per create in ${ns}: ${JSON.stringify(roundAll(cpuPerCreate(ns)))}`);
  const peers = [
    { peer: 'apiserver-without-webhook', ns: PLAIN_NS },
    { peer: 'apiserver-with-null-webhook', ns: NULL_NS },
  ];
  for (const q of ['p50', 'p99'] as const) {
    for (const { peer, ns } of peers) {
      const base = result(ns);
      const baseCpu = cpuPerCreate(ns);
      emit({
        metric: `webhook_admission_${q}_via_apiserver_ms`,
        value: ours[q],
        unit: 'ms',
        peer,
        peer_value: base[q],
        // a time, as in the other benches: peer / ours (below 1: what the webhook costs)
        ratio: base[q] / ours[q],
        added_ms: ours[q] - base[q],
        creates: ours.requests,
        concurrency,
        ...(q === 'p99'
          ? {
              creates_per_second: ours.rate,
              peer_creates_per_second: base.rate,
              apiserver_cpu_us_per_create: ourCpu['kube-apiserver'],
              peer_apiserver_cpu_us_per_create: baseCpu['kube-apiserver'],
              webhook_cpu_us_per_create: ourCpu['webhook'],
              ...(ns === NULL_NS ? { peer_webhook_cpu_us_per_create: baseCpu['null-webhook'] } : {}),
            }
          : {}),
      });
    }
  }
}

function roundAll(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v)]));
}

function logResult(what: string, r: LoadResult): void {
  log(
    `  ${what}: ${r.requests} in ${r.seconds.toFixed(2)} s (${r.rate.toFixed(0)}/s), ` +
      `p50 ${r.p50.toFixed(2)} p90 ${r.p90.toFixed(2)} p99 ${r.p99.toFixed(2)} max ${r.max.toFixed(2)} ms`,
  );
}

/** One review, its answer checked (the warm-up and the floor's answer file). */
function postOnce(target: Target, body: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: target.port,
        path: WEBHOOK_PATH,
        method: 'POST',
        ca: target.ca,
        headers: { 'Content-Type': 'application/json', 'Content-Length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode === 200) resolve(text);
          else reject(new Error(`${target.name}: HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A floor server (floor-server.ts) on a free port, answering `answerFile`; ready when returned. */
async function startFloor(
  bundle: string,
  mode: 'fixed' | 'parse',
  answerFile: string,
): Promise<{ port: number; proc: ManagedProcess; stop: () => Promise<void> }> {
  const tls = await floorCertificate();
  const port = await freePort();
  const name = `floor-${mode}-${port}`;
  const proc = ManagedProcess.start(
    name,
    process.execPath,
    [bundle, JSON.stringify({ port, cert: tls.cert, key: tls.key, answer: answerFile, mode })],
    join(dir, `${name}.log`),
  );
  const stop = cleanup.defer(name, () => proc.stop());
  await until(
    () => `${name}; log:\n${proc.tail()}`,
    () => {
      if (!proc.running) throw new Error(`${name} exited:\n${proc.tail()}`);
      return readFileSync(proc.logFile, 'utf8').includes('ready');
    },
    10_000,
  );
  return { port, proc, stop };
}

let floorTls: Promise<{ ca: string; cert: string; key: string }> | undefined;

/** The floor servers' certificate for 127.0.0.1, from a CA of their own, as files (made once). */
function floorCertificate(): Promise<{ ca: string; cert: string; key: string }> {
  floorTls ??= makeFloorCertificate();
  return floorTls;
}

async function makeFloorCertificate(): Promise<{ ca: string; cert: string; key: string }> {
  const authority = await createCertificateAuthority('knet-bench-webhook-floor');
  const leaf = await issueCertificate(authority, {
    commonName: 'floor',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const cert = join(dir, 'floor.crt');
  const key = join(dir, 'floor.key');
  writeFileSync(cert, leaf.certPem);
  writeFileSync(key, leaf.keyPem, { mode: 0o600 });
  return { ca: authority.certPem, cert, key };
}

interface Histogram {
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

/** The review-duration histogram from Prometheus text. */
function histogram(text: string): Histogram {
  const buckets = new Map<number, number>();
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(HISTOGRAM)) continue;
    const [key, value] = line.split(' ');
    const v = Number(value);
    const le = /le="([^"]+)"/.exec(key ?? '')?.[1];
    if (le !== undefined) buckets.set(le === '+Inf' ? Infinity : Number(le), v);
    else if (key === `${HISTOGRAM}_sum`) sum = v;
    else if (key === `${HISTOGRAM}_count`) count = v;
  }
  if (buckets.size === 0) throw new Error(`the webhook's /metrics has no ${HISTOGRAM}`);
  return { buckets, sum, count };
}

/** What happened between two readings: count, mean, and the bucket bound a quantile falls under. */
function histogramDelta(a: Histogram, b: Histogram) {
  const count = b.count - a.count;
  const bounds = [...b.buckets.keys()].sort((x, y) => x - y);
  return {
    count,
    meanMs: ((b.sum - a.sum) / count) * 1000,
    quantileLe(q: number): number {
      for (const le of bounds) {
        if ((b.buckets.get(le) ?? 0) - (a.buckets.get(le) ?? 0) >= q * count) return le;
      }
      return Infinity;
    },
  };
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
