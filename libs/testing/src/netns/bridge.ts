import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetHost } from './lab';

/**
 * The namespace side of a bridge, run by `node -e` inside the host. `listen` mode: listens on
 * 127.0.0.1:PORT there and forwards each connection to the unix socket. `connect` mode: listens on
 * the unix socket and forwards each connection to 127.0.0.1:PORT there.
 */
const NS_SIDE = `
const net = require('net');
const [mode, port, path] = process.argv.slice(1);
const pipe = (c, u) => {
  c.pipe(u).pipe(c);
  const end = () => { c.destroy(); u.destroy(); };
  c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
};
const ready = () => console.log('bridging');
if (mode === 'listen') {
  net.createServer((c) => pipe(c, net.connect(path))).listen(Number(port), '127.0.0.1', ready);
} else {
  net.createServer((c) => pipe(c, net.connect(Number(port), '127.0.0.1'))).listen(path, ready);
}`;

export interface LoopbackBridge {
  close(): Promise<void>;
}

/** A bridge from a host's loopback to this process's: the local port, and how to close it. */
export interface NamespacePortRelay extends LoopbackBridge {
  /** The port on 127.0.0.1 in the root namespace that reaches the namespace's port. */
  port: number;
}

function pipeBoth(a: Socket, b: Socket, open: Set<Socket>): void {
  open.add(a);
  open.add(b);
  a.pipe(b).pipe(a);
  const end = () => {
    a.destroy();
    b.destroy();
    open.delete(a);
    open.delete(b);
  };
  for (const s of [a, b]) {
    s.on('error', end);
    s.on('close', end);
  }
}

function listen(server: Server, ...args: [string] | [number, string]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(...(args as [number, string]), () => resolve());
  });
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
  const open = new Set<Socket>();
  const server = createServer((c) => pipeBoth(c, createConnection({ host: '127.0.0.1', port }), open));
  await listen(server, path);
  const proc = host.spawn('node', ['-e', NS_SIDE, 'listen', String(port), path]);
  await proc.waitForOutput(/bridging/, 10_000);
  return closer(server, open, dir, () => proc.kill());
}

/**
 * The other direction: makes 127.0.0.1:`port` inside a lab host (e.g. the API server of a real
 * node, which runs in the node's namespace) reachable from this process at 127.0.0.1:<returned
 * port> in the root namespace. Same unix-socket crossing; nothing is routed or addressed in the root
 * namespace, and only this machine's loopback listens.
 */
export async function exposeNamespacePort(host: NetHost, port: number): Promise<NamespacePortRelay> {
  const dir = mkdtempSync(join(tmpdir(), 'knet-relay-'));
  const path = join(dir, 'sock');
  const proc = host.spawn('node', ['-e', NS_SIDE, 'connect', String(port), path]);
  const open = new Set<Socket>();
  const server = createServer((c) => pipeBoth(c, createConnection(path), open));
  try {
    await proc.waitForOutput(/bridging/, 10_000);
    await listen(server, 0, '127.0.0.1');
  } catch (e) {
    await proc.kill();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const relay = closer(server, open, dir, () => proc.kill());
  return { port: (server.address() as AddressInfo).port, close: relay.close };
}

function closer(server: Server, open: Set<Socket>, dir: string, stop: () => Promise<void>): LoopbackBridge {
  return {
    close: async () => {
      await stop();
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
