import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { percentile } from '@knet/testing';

/** An HTTPS endpoint on loopback, its CA, and a client certificate if it wants one. */
export interface Target {
  name: string;
  port: number;
  ca: string;
  cert?: string;
  key?: string;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  /** Completed requests per second. */
  rate: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Every latency (ms), ascending: to pool rounds (`summarize`). */
  latencies: number[];
}

export interface Load {
  /** Request `i`: its path and body. */
  request: (i: number) => { path: string; body: Buffer };
  /** Checks answer `i`; returns what is wrong, or undefined. */
  check: (i: number, status: number, body: string) => string | undefined;
  concurrency: number;
}

/**
 * A closed-loop load: `concurrency` clients, each sending its next request as soon as its answer is
 * in, over kept-alive HTTPS connections (one per client, opened during `warmup`, which is not
 * measured). Latency is taken at the client, from `request()` to the last byte of the answer.
 * Any wrong answer fails the run (the first one is named).
 */
export async function closedLoop(
  target: Target,
  load: Load,
  requests: number,
  warmup: number,
): Promise<LoadResult> {
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: load.concurrency,
    ca: target.ca,
    ...(target.cert && target.key ? { cert: target.cert, key: target.key } : {}),
  });
  try {
    await run(agent, target, load, 0, warmup);
    return await run(agent, target, load, warmup, requests);
  } finally {
    agent.destroy();
  }
}

async function run(
  agent: https.Agent,
  target: Target,
  load: Load,
  first: number,
  count: number,
): Promise<LoadResult> {
  const latencies = new Float64Array(count);
  let next = 0;
  const started = performance.now();
  const client = async () => {
    for (let n = next++; n < count; n = next++) {
      const i = first + n;
      const { path, body } = load.request(i);
      const t0 = performance.now();
      const { status, text } = await post(agent, target.port, path, body);
      latencies[n] = performance.now() - t0;
      const wrong = load.check(i, status, text);
      if (wrong) throw new Error(`${target.name}: request ${i}: ${wrong}`);
    }
  };
  await Promise.all(Array.from({ length: load.concurrency }, client));
  return summarize([Array.from(latencies)], (performance.now() - started) / 1000);
}

/** Percentiles of the latencies of one or more runs together, over their `seconds`. */
export function summarize(runs: readonly (readonly number[])[], seconds: number): LoadResult {
  const sorted = runs.flat().sort((a, b) => a - b);
  return {
    requests: sorted.length,
    seconds,
    rate: sorted.length / seconds,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
    latencies: sorted,
  };
}

function post(
  agent: https.Agent,
  port: number,
  path: string,
  body: Buffer,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        agent,
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Content-Length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}
