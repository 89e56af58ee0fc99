import { Agent, request } from 'node:https';
import { percentile } from './util';

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
function get(c: Client, path: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
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
      (res) => {
        res.on('data', () => undefined);
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(performance.now() - t0)
            : reject(new Error(`${c.ep.name} GET ${path}: HTTP ${res.statusCode}`)),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${c.ep.name} GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
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
export async function sequentialLatency(
  endpoints: Endpoint[],
  path: string,
  n: number,
  warmup: number,
): Promise<LatencyResult[]> {
  const clients = endpoints.map((ep) => client(ep, 1));
  try {
    const samples = endpoints.map(() => [] as number[]);
    for (let i = 0; i < warmup + n; i++) {
      for (const [j, c] of clients.entries()) {
        const ms = await get(c, path);
        if (i >= warmup) samples[j]?.push(ms);
      }
    }
    return samples.map(summarize);
  } finally {
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
              firstError ??= e as Error;
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
