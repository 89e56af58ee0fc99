// Runs @knet/dns's DnsServer alone in a process, for dns.ts (bundled with bundleOnce):
//   node dns-server-entry.cjs '{"address":"127.0.0.31","port":5300,"upstreams":["127.0.0.30#5301"]}'
// Prints "ready" once listening; SIGTERM stops it. Production-like: warn-level JSON logs only.
import { createLogger } from '@knet/runtime';
import { DnsServer } from '@knet/dns';

interface EntryConfig {
  address: string;
  port: number;
  upstreams: string[];
  cacheEntries?: number;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as EntryConfig;
  const logger = createLogger({ name: 'dns-bench', level: 'warn' });
  const server = new DnsServer({
    listen: [{ address: cfg.address, port: cfg.port }],
    upstreams: cfg.upstreams,
    cache: { maxEntries: cfg.cacheEntries ?? 10_000 },
    logger,
  });
  await server.start();
  process.stdout.write('ready\n');
  const stop = () => {
    void server.stop().then(() => {
      process.stdout.write(`${JSON.stringify({ stats: server.stats })}\n`);
      process.exit(0);
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`dns-server-entry: ${String(err)}\n`);
  process.exit(1);
});
