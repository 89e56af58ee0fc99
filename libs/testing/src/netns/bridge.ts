import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetHost } from './lab';

/** Listens on 127.0.0.1:PORT inside the namespace and forwards each connection to a unix socket. */
const NS_SIDE = `
const net = require('net');
const [port, path] = process.argv.slice(1);
net.createServer((c) => {
  const u = net.connect(path);
  c.pipe(u).pipe(c);
  const end = () => { c.destroy(); u.destroy(); };
  c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
}).listen(Number(port), '127.0.0.1', () => console.log('bridging'));`;

export interface LoopbackBridge {
  close(): Promise<void>;
}

/**
 * Makes a TCP service on the root namespace's loopback (e.g. the test bed's kube-apiserver on
 * 127.0.0.1:PORT) reachable at the same 127.0.0.1:PORT inside a lab host, so a daemon under test in
 * the namespace can use an unchanged kubeconfig. Traffic crosses through a unix socket in a temp
 * directory (the file system is shared, network namespaces are not); nothing is routed.
 */
export async function bridgeLoopbackPort(host: NetHost, port: number): Promise<LoopbackBridge> {
  const dir = mkdtempSync(join(tmpdir(), 'knet-bridge-'));
  const path = join(dir, 'sock');
  const open = new Set<{ destroy(): void }>();
  const server: Server = createServer((c) => {
    const t = createConnection({ host: '127.0.0.1', port });
    open.add(c);
    open.add(t);
    c.pipe(t).pipe(c);
    const end = () => {
      c.destroy();
      t.destroy();
      open.delete(c);
      open.delete(t);
    };
    for (const s of [c, t]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  const proc = host.spawn('node', ['-e', NS_SIDE, String(port), path]);
  await proc.waitForOutput(/bridging/, 10_000);
  return {
    close: async () => {
      await proc.kill();
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
