/**
 * Simulated agents: many tower-agent connections (WebSocket + SSH + hello + targets, the agent's own
 * AgentConnection from @knet/tunnel) in one process, for the proxy's scale bench. Bundled and run by bench/scale.ts:
 *
 *   node sim-agents.cjs <config.json>
 *
 * The config lists the agents; the process connects them with bounded concurrency, writes a status
 * file (atomically, every second and when all are connected), keeps them connected, and closes them
 * all on SIGTERM.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { createLogger, errorMessage, sleep } from '@knet/runtime';
import { AgentConnection } from '@knet/tunnel';

export interface SimConfig {
  url: string;
  fingerprint: string;
  agents: { cluster: string; token: string; agent: string }[];
  concurrency: number;
  keepaliveMs: number;
  statusFile: string;
}

export interface SimStatus {
  /** Date.now() when the first dial started and when the last agent was accepted. */
  startedAt: number;
  finishedAt?: number;
  connected: number;
  failures: number;
  lost: number;
  firstError?: string;
  /** Per-agent time from dial to accepted targets, ms. */
  p50?: number;
  p99?: number;
  rssMiB: number;
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: sim-agents <config.json>');
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as SimConfig;
  const logger = createLogger({ name: 'sim-agents', level: 'warn' });
  // The agents serve `kubernetes` (a session counts once it serves a target); the bench opens no channels.
  const targets = { kubernetes: (ch: Duplex) => ch.destroy() };
  const conns: AgentConnection[] = [];
  const latencies: number[] = [];
  const status: SimStatus = { startedAt: Date.now(), connected: 0, failures: 0, lost: 0, rssMiB: 0 };
  const write = () => {
    status.connected = conns.length;
    status.rssMiB = process.memoryUsage.rss() / 1048576;
    writeFileSync(`${cfg.statusFile}.tmp`, JSON.stringify(status));
    renameSync(`${cfg.statusFile}.tmp`, cfg.statusFile);
  };
  const ticker = setInterval(write, 1000);
  let stopping = false;
  process.once('SIGTERM', () => {
    stopping = true;
    clearInterval(ticker);
    for (const c of conns) c.close();
    setTimeout(() => process.exit(0), 500).unref();
  });

  let next = 0;
  const worker = async () => {
    while (!stopping) {
      const a = cfg.agents[next++];
      if (!a) return;
      for (let attempt = 0; attempt < 3 && !stopping; attempt++) {
        const t = performance.now();
        const c = new AgentConnection({
          url: cfg.url,
          cluster: a.cluster,
          token: a.token,
          agent: a.agent,
          agentVersion: 'bench',
          fingerprint: cfg.fingerprint,
          keepaliveMs: cfg.keepaliveMs,
          targets,
          logger,
        });
        try {
          await c.established;
          latencies.push(performance.now() - t);
          conns.push(c);
          void c.closed.then(() => {
            if (!stopping) status.lost++;
          });
          break;
        } catch (e) {
          c.close();
          status.failures++;
          status.firstError ??= `${a.cluster}: ${errorMessage(e)}`;
          await sleep(500);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: cfg.concurrency }, worker));
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
