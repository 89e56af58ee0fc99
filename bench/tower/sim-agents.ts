/**
 * Simulated agents: many tower-agent connections (WebSocket + SSH + hello + targets, the agent's own
 * AgentConnection from @knet/tunnel) in one process, for the proxy's scale bench. Bundled and run by bench/scale.ts:
 *
 *   node sim-agents.cjs <config.json>
 *
 * The config lists the agents; the process connects them with bounded concurrency, writes a status
 * file (atomically, every second and when all are connected), keeps them connected, redials an
 * agent whose connection is lost (as tower-agent does, with a short backoff: the bench's restart
 * part kills the proxy under them), and closes them all on SIGTERM. Each agent serves `kubernetes`
 * and `kubesphere` with a tiny HTTP responder (200 `ok <cluster>`), so the bench can check that a
 * cluster's listeners serve a request through its tunnel.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { createLogger, errorMessage, sleep } from '@knet/runtime';
import { AgentConnection } from '@knet/tunnel';
import { simBody } from './sim-reply';

export interface SimConfig {
  url: string;
  fingerprint: string;
  agents: { cluster: string; token: string; agent: string }[];
  concurrency: number;
  keepaliveMs: number;
  statusFile: string;
  /** Redial delay after a lost connection or a failed redial, ms (doubled per failure up to 4×, ±50% jitter). */
  reconnectMs?: number;
}

export interface SimStatus {
  /** Date.now() when the first dial started and when the last agent was accepted. */
  startedAt: number;
  finishedAt?: number;
  /** Agents connected now. */
  connected: number;
  failures: number;
  /** Connections lost (each is redialled). */
  lost: number;
  /** Redials that got through, and Date.now() of the last one. */
  reconnected: number;
  lastReconnectAt?: number;
  /** Failed redials. */
  reconnectFailures: number;
  firstError?: string;
  /** Per-agent time from dial to accepted targets, ms. */
  p50?: number;
  p99?: number;
  rssMiB: number;
}

/**
 * A tiny HTTP/1.1 responder on a channel: reads up to the end of the request head, answers 200
 * with `simBody(cluster)` and closes. Enough for the bench's one request per listener.
 */
function responder(cluster: string): (ch: Duplex) => void {
  const body = simBody(cluster);
  const response =
    `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Connection: close\r\n\r\n${body}`;
  return (ch) => {
    let head = '';
    const onData = (b: Buffer) => {
      head += b.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        ch.off('data', onData);
        ch.end(response);
      } else if (head.length > 16384) ch.destroy();
    };
    ch.on('data', onData);
    ch.on('error', () => ch.destroy());
  };
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: sim-agents <config.json>');
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as SimConfig;
  const reconnectMs = cfg.reconnectMs ?? 250;
  const logger = createLogger({ name: 'sim-agents', level: 'warn' });
  const live = new Set<AgentConnection>();
  const latencies: number[] = [];
  const status: SimStatus = {
    startedAt: Date.now(),
    connected: 0,
    failures: 0,
    lost: 0,
    reconnected: 0,
    reconnectFailures: 0,
    rssMiB: 0,
  };
  const write = () => {
    status.connected = live.size;
    status.rssMiB = process.memoryUsage.rss() / 1048576;
    writeFileSync(`${cfg.statusFile}.tmp`, JSON.stringify(status));
    renameSync(`${cfg.statusFile}.tmp`, cfg.statusFile);
  };
  const ticker = setInterval(write, 1000);
  let stopping = false;
  process.once('SIGTERM', () => {
    stopping = true;
    clearInterval(ticker);
    for (const c of live) c.close();
    setTimeout(() => process.exit(0), 500).unref();
  });

  // Dials in flight are bounded (`concurrency`), for the first dials and the redials alike.
  let slots = cfg.concurrency;
  const waiting: (() => void)[] = [];
  const acquire = async () => {
    if (slots > 0) slots--;
    else await new Promise<void>((r) => waiting.push(r));
  };
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else slots++;
  };

  type Agent = SimConfig['agents'][number];
  const dial = async (a: Agent): Promise<AgentConnection> => {
    await acquire();
    try {
      const c = new AgentConnection({
        url: cfg.url,
        cluster: a.cluster,
        token: a.token,
        agent: a.agent,
        agentVersion: 'bench',
        fingerprint: cfg.fingerprint,
        keepaliveMs: cfg.keepaliveMs,
        targets: { kubernetes: responder(a.cluster), kubesphere: responder(a.cluster) },
        logger,
      });
      try {
        await c.established;
      } catch (e) {
        c.close();
        throw e;
      }
      return c;
    } finally {
      release();
    }
  };
  const jittered = (ms: number) => ms * (0.5 + Math.random());

  /** Keeps `c` (and its successors) connected until SIGTERM. */
  const keep = async (a: Agent, c: AgentConnection): Promise<void> => {
    for (;;) {
      live.add(c);
      await c.closed;
      live.delete(c);
      if (stopping) return;
      status.lost++;
      for (let failures = 0; ; failures++) {
        await sleep(jittered(reconnectMs * 2 ** Math.min(failures, 2)));
        if (stopping) return;
        try {
          c = await dial(a);
          status.reconnected++;
          status.lastReconnectAt = Date.now();
          break;
        } catch {
          status.reconnectFailures++;
        }
      }
    }
  };

  let next = 0;
  const first = async () => {
    while (!stopping) {
      const a = cfg.agents[next++];
      if (!a) return;
      for (let attempt = 0; attempt < 3 && !stopping; attempt++) {
        const t = performance.now();
        try {
          const c = await dial(a);
          latencies.push(performance.now() - t);
          void keep(a, c);
          break;
        } catch (e) {
          status.failures++;
          status.firstError ??= `${a.cluster}: ${errorMessage(e)}`;
          await sleep(500);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: cfg.concurrency }, first));
  status.finishedAt = Date.now();
  const s = latencies.sort((x, y) => x - y);
  status.p50 = s[Math.floor(s.length * 0.5)];
  status.p99 = s[Math.min(s.length - 1, Math.ceil(s.length * 0.99) - 1)];
  write();
}

main().catch((e: unknown) => {
  process.stderr.write(`sim-agents: ${e instanceof Error && e.stack ? e.stack : errorMessage(e)}\n`);
  process.exit(1);
});
