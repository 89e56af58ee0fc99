import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, freePort, run, workspaceRoot } from '@knet/testing';
import { log, until } from './util';

const HEADER = 16;
const CHUNK = Buffer.alloc(256 * 1024, 0x5a);

interface Upload {
  kind: 'upload';
  got: number;
  last: number;
  total?: number;
  done: () => void;
}

interface Download {
  kind: 'download';
  maxBytes: number;
  maxMs: number;
  /** Set once the server has written everything it will send. */
  sent?: number;
}

type Run = Upload | Download;

/**
 * The far end of the tunnels: counts what a client uploads, or sends what a client downloads.
 * A client first sends a 16-byte run id, so probe connections (a tunnel's readiness check) and
 * anything else that arrives are neither counted nor answered.
 */
export class Sink {
  private server!: Server;
  port = 0;
  private readonly runs = new Map<string, Run>();
  private readonly sockets = new Set<Socket>();

  async start(): Promise<this> {
    this.server = createServer((s) => this.accept(s));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    return this;
  }

  private accept(s: Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
    let head = Buffer.alloc(0);
    let run: Run | undefined;
    s.on('data', (b: Buffer) => {
      if (!run) {
        head = Buffer.concat([head, b]);
        if (head.length < HEADER) return;
        run = this.runs.get(head.subarray(0, HEADER).toString('latin1'));
        if (!run) {
          s.destroy();
          return;
        }
        if (run.kind === 'download') {
          void send(s, run.maxBytes, run.maxMs).then(
            (n) => {
              if (run?.kind === 'download') run.sent = n;
            },
            () => s.destroy(),
          );
          return;
        }
        b = head.subarray(HEADER);
      }
      if (run.kind !== 'upload') return;
      run.got += b.length;
      run.last = performance.now();
      if (run.total !== undefined && run.got >= run.total) run.done();
    });
  }

  register(id: string, run: Run): void {
    this.runs.set(id, run);
  }

  forget(id: string): void {
    this.runs.delete(id);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

/** Writes up to `maxBytes` (for at most `maxMs`) with backpressure; resolves with the bytes written. */
async function send(sock: Socket, maxBytes: number, maxMs: number): Promise<number> {
  let sent = 0;
  const deadline = performance.now() + maxMs;
  while (sent < maxBytes && performance.now() < deadline) {
    if (sock.destroyed) throw new Error('the connection was closed while sending');
    sent += CHUNK.length;
    if (!sock.write(CHUNK)) {
      await new Promise<void>((resolve, reject) => {
        const onClose = () => reject(new Error('the connection was closed while sending'));
        sock.once('close', onClose);
        sock.once('drain', () => {
          sock.off('close', onClose);
          resolve();
        });
      });
    }
  }
  return sent;
}

let seq = 0;

/** Resolves when `done()` is true, checking on every `tick`; fails when `progress()` stalls for 10 s. */
function completion(
  tick: (fn: () => void) => void,
  done: () => boolean,
  progress: () => number,
  what: string,
) {
  return new Promise<void>((resolve, reject) => {
    let last = -1;
    const stalled = setInterval(() => {
      if (progress() === last) {
        clearInterval(stalled);
        reject(new Error(`${what} stalled at ${progress()} bytes`));
      }
      last = progress();
    }, 10_000);
    const check = () => {
      if (!done()) return;
      clearInterval(stalled);
      resolve();
    };
    tick(check);
    check();
  });
}

export type Direction = 'upload' | 'download';

/**
 * One bulk TCP stream through `host:port` (a tunnel to the sink, or the sink itself): the client
 * uploads to the sink, or downloads from it, up to `maxBytes` or for `maxMs`. Returns Gbit/s: the
 * bytes received over the time from the client's first write to the last byte's arrival. There
 * is no half-close: the connection is dropped once the receiver has counted everything.
 */
export async function bulkStream(
  sink: Sink,
  host: string,
  port: number,
  maxBytes: number,
  maxMs: number,
  direction: Direction = 'upload',
): Promise<{ gbps: number; bytes: number; seconds: number }> {
  const id = `run-${process.pid}-${++seq}`.padEnd(HEADER, '.').slice(0, HEADER);
  const sock = connect({ host, port });
  sock.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    if (direction === 'download') {
      const run: Download = { kind: 'download', maxBytes, maxMs };
      sink.register(id, run);
      let got = 0;
      let last = 0;
      let notify = () => undefined as void;
      sock.on('data', (b: Buffer) => {
        got += b.length;
        last = performance.now();
        notify();
      });
      const t0 = performance.now();
      sock.write(Buffer.from(id, 'latin1'));
      await completion(
        (fn) => (notify = fn),
        () => run.sent !== undefined && got >= run.sent,
        () => got,
        `download through port ${port}`,
      );
      const seconds = (last - t0) / 1000;
      return { gbps: (got * 8) / seconds / 1e9, bytes: got, seconds };
    }
    let done = () => undefined as void;
    const up: Upload = { kind: 'upload', got: 0, last: 0, done: () => done() };
    sink.register(id, up);
    const t0 = performance.now();
    sock.write(Buffer.from(id, 'latin1'));
    up.total = await send(sock, maxBytes, maxMs);
    await completion(
      (fn) => (done = fn),
      () => up.total !== undefined && up.got >= up.total,
      () => up.got,
      `upload through port ${port}`,
    );
    const seconds = (up.last - t0) / 1000;
    return { gbps: (up.got * 8) / seconds / 1e9, bytes: up.got, seconds };
  } finally {
    sock.destroy();
    sink.forget(id);
  }
}

/** Resolves once a TCP connect to 127.0.0.1:port succeeds (the tunnel's local side listens). */
export async function waitListening(port: number, what: () => string, ms = 30_000): Promise<void> {
  await until(
    what,
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port });
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    { timeoutMs: ms, intervalMs: 100 },
  );
}

export interface Peer {
  name: string;
  port: number;
  procs: ManagedProcess[];
}

async function stopAll(procs: ManagedProcess[]): Promise<void> {
  for (const p of [...procs].reverse()) await p.stop();
}

/**
 * OpenSSH `ssh -N -L` to 127.0.0.1:`targetPort` through an sshd of our own on a free loopback
 * port: temp host key, temp authorized key, no PAM, no ~/.ssh. `cipher` undefined = OpenSSH's
 * default negotiation.
 */
export async function startOpenSsh(dir: string, targetPort: number, cipher?: string): Promise<Peer> {
  mkdirSync(dir, { recursive: true });
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  for (const k of [hostKey, clientKey]) {
    if (!existsSync(k)) {
      const r = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', k]);
      if (r.exitCode !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
    }
  }
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKey}.pub`));
  // sshd refuses to start without its privilege-separation directory (absent until sshd ran once).
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const sshdPort = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${sshdPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PidFile none',
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'AllowTcpForwarding yes',
      'X11Forwarding no',
      'PrintMotd no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const procs: ManagedProcess[] = [];
  try {
    const sshd = ManagedProcess.start(
      'sshd',
      '/usr/sbin/sshd',
      ['-D', '-e', '-f', config],
      join(dir, `sshd-${sshdPort}.log`),
    );
    procs.push(sshd);
    await waitListening(sshdPort, () => `sshd to listen; its log:\n${sshd.tail(20)}`);
    const port = await freePort();
    const ssh = ManagedProcess.start(
      'ssh',
      'ssh',
      [
        '-N',
        '-F',
        '/dev/null',
        '-i',
        clientKey,
        '-p',
        String(sshdPort),
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'BatchMode=yes',
        '-o',
        'ExitOnForwardFailure=yes',
        '-o',
        'LogLevel=ERROR',
        ...(cipher ? ['-c', cipher] : []),
        '-L',
        `127.0.0.1:${port}:127.0.0.1:${targetPort}`,
        `${userInfo().username}@127.0.0.1`,
      ],
      join(dir, `ssh-${port}.log`),
    );
    procs.push(ssh);
    await waitListening(port, () => `ssh -L to listen; its log:\n${ssh.tail(20)}`);
    return { name: cipher ? `openssh-${cipher.replace(/@.*/, '')}` : 'openssh', port, procs };
  } catch (e) {
    await stopAll(procs);
    throw e;
  }
}

/**
 * chisel, built once into .cache/bench/bin: `go install …@latest`, else a pinned version built in
 * a scratch module (the module proxy may refuse the `@latest` list but serve a version). Undefined
 * when neither works.
 */
export async function ensureChisel(): Promise<string | undefined> {
  const root = workspaceRoot();
  const bin = join(root, '.cache', 'bench', 'bin');
  const exe = join(bin, 'chisel');
  if (existsSync(exe)) return exe;
  mkdirSync(bin, { recursive: true });
  const env = { ...process.env, GOTOOLCHAIN: 'local', GOBIN: bin };
  log('building chisel (go install github.com/jpillora/chisel@latest)');
  const latest = await run('go', ['install', 'github.com/jpillora/chisel@latest'], {
    env,
    timeoutMs: 300_000,
  }).catch((e: Error) => ({ exitCode: 1, stderr: e.message, stdout: '' }));
  if (latest.exitCode === 0 && existsSync(exe)) return exe;
  log(`go install chisel@latest failed: ${latest.stderr.trim().split('\n').pop() ?? ''}`);
  const pinned = 'v1.10.1';
  const src = join(root, '.cache', 'bench', 'chisel-src');
  mkdirSync(src, { recursive: true });
  writeFileSync(
    join(src, 'go.mod'),
    `module knet.bench/chisel\n\ngo 1.24\n\nrequire github.com/jpillora/chisel ${pinned}\n`,
  );
  writeFileSync(
    join(src, 'tools.go'),
    '//go:build tools\n\npackage tools\n\nimport _ "github.com/jpillora/chisel"\n',
  );
  log(`building chisel ${pinned} in a scratch module instead`);
  const r = await run('go', ['build', '-o', exe, 'github.com/jpillora/chisel'], {
    cwd: src,
    env: { ...env, GOFLAGS: '-mod=mod' },
    timeoutMs: 400_000,
  }).catch((e: Error) => ({ exitCode: 1, stderr: e.message, stdout: '' }));
  if (r.exitCode === 0 && existsSync(exe)) return exe;
  log(`chisel is not available, skipping it: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  return undefined;
}

/** chisel in reverse mode, like tower: the server listens, the client dials the target. */
export async function startChisel(exe: string, dir: string, sinkPort: number): Promise<Peer> {
  mkdirSync(dir, { recursive: true });
  const procs: ManagedProcess[] = [];
  try {
    const serverPort = await freePort();
    const server = ManagedProcess.start(
      'chisel-server',
      exe,
      ['server', '--host', '127.0.0.1', '--port', String(serverPort), '--reverse'],
      join(dir, `chisel-server-${serverPort}.log`),
    );
    procs.push(server);
    await waitListening(serverPort, () => `the chisel server to listen; its log:\n${server.tail(20)}`);
    const port = await freePort();
    const client = ManagedProcess.start(
      'chisel-client',
      exe,
      ['client', `http://127.0.0.1:${serverPort}`, `R:127.0.0.1:${port}:127.0.0.1:${sinkPort}`],
      join(dir, `chisel-client-${port}.log`),
    );
    procs.push(client);
    await waitListening(port, () => `chisel's reverse port to listen; its log:\n${client.tail(20)}`);
    return { name: 'chisel', port, procs };
  } catch (e) {
    await stopAll(procs);
    throw e;
  }
}

export async function stopPeer(p: Peer | undefined): Promise<void> {
  if (p) await stopAll(p.procs);
}
