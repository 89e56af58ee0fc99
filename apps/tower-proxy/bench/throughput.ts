import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
// eslint-disable-next-line @nx/enforce-module-boundaries
import { ManagedProcess, freePort, run, workspaceRoot } from '@knet/testing';
import { log, until } from './util';

const HEADER = 16;

interface Expectation {
  got: number;
  last: number;
  total?: number;
  done: () => void;
}

/**
 * Counts bytes per connection. A sender first sends a 16-byte run id, so probe connections (a
 * tunnel's readiness check) and anything else that arrives are not counted.
 */
export class Sink {
  private server!: Server;
  port = 0;
  private readonly runs = new Map<string, Expectation>();
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
    let run: Expectation | undefined;
    s.on('data', (b: Buffer) => {
      if (!run) {
        head = Buffer.concat([head, b]);
        if (head.length < HEADER) return;
        run = this.runs.get(head.subarray(0, HEADER).toString('latin1'));
        if (!run) {
          s.destroy();
          return;
        }
        b = head.subarray(HEADER);
      }
      run.got += b.length;
      run.last = performance.now();
      if (run.total !== undefined && run.got >= run.total) run.done();
    });
  }

  expect(id: string): Expectation & { finished: Promise<void> } {
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const e = { got: 0, last: 0, done, finished };
    this.runs.set(id, e);
    return e;
  }

  forget(id: string): void {
    this.runs.delete(id);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

let seq = 0;

/**
 * Sends up to `maxBytes` (or for `maxMs`) through `host:port` to the sink and returns Gbit/s: the
 * bytes the sink counted over the time from the sender's connect to the sink's last byte.
 */
export async function bulkStream(
  sink: Sink,
  host: string,
  port: number,
  maxBytes: number,
  maxMs: number,
): Promise<{ gbps: number; bytes: number; seconds: number }> {
  const id = `run-${process.pid}-${++seq}`.padEnd(HEADER, '.').slice(0, HEADER);
  const exp = sink.expect(id);
  const sock = connect({ host, port });
  sock.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const t0 = performance.now();
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    sock.write(Buffer.from(id, 'latin1'));
    let sent = 0;
    const deadline = t0 + maxMs;
    while (sent < maxBytes && performance.now() < deadline) {
      if (sock.destroyed) throw new Error('the connection was closed while sending');
      sent += chunk.length;
      if (!sock.write(chunk)) {
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
    // No half-close: the connection is dropped once the sink has counted everything (a tunnel
    // that loses the tail of a stream after a FIN would otherwise make this hang).
    exp.total = sent;
    if (exp.got >= sent) exp.done();
    let stalled: NodeJS.Timeout | undefined;
    await Promise.race([
      exp.finished,
      new Promise<void>((_, reject) => {
        // Fails only when the sink sees no progress for 10 s.
        let lastGot = -1;
        stalled = setInterval(() => {
          if (exp.got === lastGot)
            reject(new Error(`the sink stalled at ${exp.got} of ${sent} bytes (port ${port})`));
          lastGot = exp.got;
        }, 10_000);
      }),
    ]).finally(() => clearInterval(stalled));
    const seconds = (exp.last - t0) / 1000;
    return { gbps: (exp.got * 8) / seconds / 1e9, bytes: exp.got, seconds };
  } finally {
    sock.destroy();
    sink.forget(id);
  }
}

/** Resolves once a TCP connect to 127.0.0.1:port succeeds (the tunnel's local side listens). */
export async function waitListening(port: number, what: () => string, ms = 30_000): Promise<void> {
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port });
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    ms,
    what,
    100,
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
 * OpenSSH `ssh -N -L` through an sshd of our own on a free loopback port: temp host key, temp
 * authorized key, no PAM, no ~/.ssh. `cipher` undefined = OpenSSH's default negotiation.
 */
export async function startOpenSsh(dir: string, sinkPort: number, cipher?: string): Promise<Peer> {
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
    await waitListening(sshdPort, () => `sshd did not listen; log:\n${sshd.tail(20)}`);
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
        `127.0.0.1:${port}:127.0.0.1:${sinkPort}`,
        `${userInfo().username}@127.0.0.1`,
      ],
      join(dir, `ssh-${port}.log`),
    );
    procs.push(ssh);
    await waitListening(port, () => `ssh -L did not listen; log:\n${ssh.tail(20)}`);
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
    await waitListening(serverPort, () => `chisel server did not listen; log:\n${server.tail(20)}`);
    const port = await freePort();
    const client = ManagedProcess.start(
      'chisel-client',
      exe,
      ['client', `http://127.0.0.1:${serverPort}`, `R:127.0.0.1:${port}:127.0.0.1:${sinkPort}`],
      join(dir, `chisel-client-${port}.log`),
    );
    procs.push(client);
    await waitListening(port, () => `chisel reverse port did not listen; log:\n${client.tail(20)}`);
    return { name: 'chisel', port, procs };
  } catch (e) {
    await stopAll(procs);
    throw e;
  }
}

export async function stopPeer(p: Peer | undefined): Promise<void> {
  if (p) await stopAll(p.procs);
}
