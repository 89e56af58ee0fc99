import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { PerformanceObserver } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { errorMessage } from '@knet/runtime';
import { describeExit, run, workspaceRoot } from '@knet/testing';
import { httpsGet, log, percentile } from './util';

/** An HTTPS API endpoint with its TLS material and headers. */
export interface Endpoint {
  name: string;
  url: string;
  ca: string;
  cert?: string;
  key?: string;
  authorization?: string;
}

interface Client {
  ep: Endpoint;
  agent: Agent;
  host: string;
  port: string;
}

function client(ep: Endpoint, sockets: number): Client {
  const u = new URL(ep.url);
  return {
    ep,
    agent: new Agent({
      keepAlive: true,
      maxSockets: sockets,
      ca: ep.ca,
      ...(ep.cert ? { cert: ep.cert } : {}),
      ...(ep.key ? { key: ep.key } : {}),
    }),
    host: u.hostname,
    port: u.port,
  };
}

/** One GET; resolves with its duration in ms once the whole body has arrived; rejects unless 200. */
async function get(c: Client, path: string): Promise<number> {
  const t0 = performance.now();
  await httpsGet(
    `${c.ep.name} GET ${path}`,
    {
      host: c.host,
      port: c.port,
      path,
      agent: c.agent,
      headers: {
        accept: 'application/json',
        ...(c.ep.authorization ? { authorization: c.ep.authorization } : {}),
      },
      timeout: 10_000,
    },
    true,
  );
  return performance.now() - t0;
}

export interface LatencyResult {
  p50: number;
  p99: number;
  mean: number;
  samples: number;
}

function summarize(ms: number[]): LatencyResult {
  const s = [...ms].sort((a, b) => a - b);
  return {
    p50: percentile(s, 50),
    p99: percentile(s, 99),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    samples: s.length,
  };
}

/**
 * `n` sequential GETs on each endpoint over one keep-alive connection each, alternating between the
 * endpoints request by request so that drift (CPU frequency, GC, other load) hits both alike.
 */
export interface SequentialResult extends LatencyResult {
  /** Samples during which the bench process itself collected garbage (its own pause, not the path's). */
  clientGcHits: number;
  /** p99 of the samples without such a pause: how much of the tail is the client's. */
  p99WithoutClientGc: number;
}

/**
 * `n` sequential GETs on each endpoint over one keep-alive connection each, alternating between the
 * endpoints request by request so that drift (CPU frequency, GC, other load) hits both alike. The
 * bench process's own GC pauses are recorded: a slower path spends more of the run in flight, so
 * it catches more of them.
 */
export async function sequentialLatency(
  endpoints: Endpoint[],
  path: string,
  n: number,
  warmup: number,
): Promise<SequentialResult[]> {
  const clients = endpoints.map((ep) => client(ep, 1));
  const gcs: { start: number; end: number }[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration });
  });
  obs.observe({ entryTypes: ['gc'] });
  try {
    const samples = endpoints.map(() => [] as { t0: number; ms: number }[]);
    for (let i = 0; i < warmup + n; i++) {
      for (const [j, c] of clients.entries()) {
        const t0 = performance.now();
        const ms = await get(c, path);
        if (i >= warmup) samples[j]?.push({ t0, ms });
      }
    }
    await new Promise((r) => setImmediate(r)); // deliver the last GC entries
    return samples.map((ss) => {
      const hit = (x: { t0: number; ms: number }) => gcs.some((g) => g.start < x.t0 + x.ms && g.end > x.t0);
      const clean = ss.filter((x) => !hit(x)).map((x) => x.ms);
      return {
        ...summarize(ss.map((x) => x.ms)),
        clientGcHits: ss.length - clean.length,
        p99WithoutClientGc: percentile(
          clean.sort((a, b) => a - b),
          99,
        ),
      };
    });
  } finally {
    obs.disconnect();
    for (const c of clients) c.agent.destroy();
  }
}

export interface RateResult extends LatencyResult {
  rps: number;
  errors: number;
  requests: number;
}

/** `concurrency` clients each sending GETs back to back (keep-alive) for `durationMs`, after a warm-up. */
export async function requestRate(
  ep: Endpoint,
  path: string,
  concurrency: number,
  durationMs: number,
  warmupMs: number,
): Promise<RateResult> {
  const c = client(ep, concurrency);
  try {
    const phase = async (ms: number, record: number[] | undefined) => {
      const end = performance.now() + ms;
      let errors = 0;
      let firstError: Error | undefined;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < end) {
            try {
              const t = await get(c, path);
              record?.push(t);
            } catch (e) {
              errors++;
              firstError ??= e instanceof Error ? e : new Error(errorMessage(e));
              if (errors > 1000) throw firstError;
            }
          }
        }),
      );
      return { errors, firstError };
    };
    await phase(warmupMs, undefined);
    const lat: number[] = [];
    const t0 = performance.now();
    const { errors, firstError } = await phase(durationMs, lat);
    const secs = (performance.now() - t0) / 1000;
    if (firstError) process.stderr.write(`  ${ep.name}: ${errors} errors, first: ${firstError.message}\n`);
    return { ...summarize(lat), rps: lat.length / secs, errors, requests: lat.length };
  } finally {
    c.agent.destroy();
  }
}

/**
 * Builds bench/tower/loadgen (a Go request-rate client, stdlib only) into .cache/bench/bin; undefined
 * (and a log line) when go cannot build it.
 */
export async function buildLoadgen(): Promise<string | undefined> {
  const root = workspaceRoot();
  const exe = join(root, '.cache', 'bench', 'bin', 'tower-loadgen');
  mkdirSync(dirname(exe), { recursive: true });
  const r = await run('go', ['build', '-o', exe, '.'], {
    cwd: join(root, 'bench/tower/loadgen'),
    env: { ...process.env, GOTOOLCHAIN: 'local' },
    timeoutMs: 300_000,
  }).catch((e: Error) => ({ exitCode: 1, stderr: e.message, stdout: '' }));
  if (r.exitCode === 0) return exe;
  log(`the Go load generator did not build, skipping it: ${r.stderr.trim().split('\n').pop() ?? ''}`);
  return undefined;
}

export interface GoRateResult extends RateResult {
  /** CPU seconds the load generator used, warm-up included. */
  cpuSeconds: number;
}

/** The rate run of `requestRate`, with the Go load generator as the client. */
export async function goRequestRate(
  exe: string,
  ep: Endpoint,
  path: string,
  concurrency: number,
  durationMs: number,
  warmupMs: number,
  dir: string,
): Promise<GoRateResult> {
  mkdirSync(dir, { recursive: true });
  const file = (name: string, pem: string) => {
    const f = join(dir, `${ep.name}-${name}.pem`);
    writeFileSync(f, pem, { mode: 0o600 });
    return f;
  };
  const args = [
    `-url=${new URL(path, ep.url).href}`,
    `-ca=${file('ca', ep.ca)}`,
    ...(ep.cert && ep.key ? [`-cert=${file('cert', ep.cert)}`, `-key=${file('key', ep.key)}`] : []),
    ...(ep.authorization ? [`-authorization=${ep.authorization}`] : []),
    `-c=${concurrency}`,
    `-d=${durationMs}ms`,
    `-warmup=${warmupMs}ms`,
  ];
  const r = await run(exe, args, { timeoutMs: durationMs + warmupMs + 60_000 });
  if (r.exitCode !== 0)
    throw new Error(`loadgen against ${ep.name} failed (${describeExit(r)}): ${r.stderr}`);
  const o = JSON.parse(r.stdout) as {
    requests: number;
    errors: number;
    rps: number;
    p50_ms: number;
    p99_ms: number;
    cpu_s?: number;
    first_error?: string;
  };
  if (o.first_error) process.stderr.write(`  ${ep.name}: ${o.errors} errors, first: ${o.first_error}\n`);
  return {
    rps: o.rps,
    requests: o.requests,
    errors: o.errors,
    p50: o.p50_ms,
    p99: o.p99_ms,
    mean: NaN,
    samples: o.requests,
    cpuSeconds: o.cpu_s ?? NaN,
  };
}
