// Runs test/fixtures/demo-cli.ts (a daemon wired like every knet main.ts) as a real child
// process with `node --import tsx`, to check exit codes, stderr and signal handling end to end.
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import net from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

const LIB_ROOT = join(__dirname, '..');
const FIXTURE = join(LIB_ROOT, 'test', 'fixtures', 'demo-cli.ts');
jest.setTimeout(30_000);

interface Run {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** JSON log lines from stdout, as they arrive. */
  logs: Record<string, unknown>[];
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or 128+signo when killed by a signal) and the run time. */
  done: Promise<{ code: number; ms: number }>;
  /** Resolves with the first log line whose msg is `msg`. */
  waitForLog: (msg: string) => Promise<Record<string, unknown>>;
}

function start(args: string[], env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], {
    cwd: LIB_ROOT,
    // A clean environment: nothing from the jest process (LOG_LEVEL, NODE_ENV …) leaks in.
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const started = Date.now();
  let out = '';
  let err = '';
  const logs: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    out += line + '\n';
    if (!line.startsWith('{')) return;
    const log = JSON.parse(line) as Record<string, unknown>;
    logs.push(log);
    for (const w of waiters.filter((w) => w.msg === log['msg'])) w.resolve(log);
  });
  const done = new Promise<{ code: number; ms: number }>((resolve) => {
    child.on('close', (code, signal) => {
      const killed = signal ? 128 + (constants.signals[signal] ?? 0) : -1;
      resolve({ code: code ?? killed, ms: Date.now() - started });
    });
  });
  const waitForLog = (msg: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const seen = logs.find((l) => l['msg'] === msg);
      if (seen) return resolve(seen);
      waiters.push({ msg, resolve });
      void done.then(() => reject(new Error(`exited before logging "${msg}"; stderr: ${err}`)));
    });
  return { child, logs, stdout: () => out, stderr: () => err, done, waitForLog };
}

/** The log lines of a shutdown, from the loop stopping on: the handlers run in reverse order. */
const SHUTDOWN_LOGS = [
  'loop stopped',
  'running shutdown handlers',
  'second handler',
  'observability server closed',
  'shutdown complete',
];

/** A port nothing listens on right now (the OS picks it; closed again before use). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

describe('demo CLI (child process)', () => {
  it('--help prints every option with its env var and default on stdout and exits 0', async () => {
    const run = start(['--help']);
    const { code } = await run.done;
    expect(code).toBe(0);
    expect(run.stderr()).toBe('');
    const help = run.stdout().replace(/\s+/g, ' ');
    expect(help).toContain('Usage: demo [options]');
    expect(help).toContain(
      '--keepalive <duration> WireGuard persistent keepalive (env: KEEPALIVE, default: "25s")',
    );
    expect(help).toContain(
      '--metrics-port <port> port of /healthz, /readyz and /metrics; 0 picks a free port (env: METRICS_PORT, default: 0; aliases: --health-port, HEALTH_PORT)',
    );
    expect(help).toContain('--shutdown-timeout <duration>');
    expect(help).not.toContain('--health-port <port>');
    expect(help).toContain(
      '--fail <message> throw this error after starting (tests the error path) (env: DEMO_FAIL)',
    );
    expect(help).toContain('Exit codes: 0 success');
  });

  it('--version prints the version and exits 0', async () => {
    const run = start(['--version']);
    expect((await run.done).code).toBe(0);
    expect(run.stdout()).toBe('1.2.3\n');
  });

  it('a bad flag value exits 2 with one line naming the flag and env var', async () => {
    const run = start(['--keepalive', 'abc']);
    expect((await run.done).code).toBe(2);
    expect(run.stderr()).toBe(
      'demo: error: --keepalive (KEEPALIVE): must be a duration like 10s, got "abc"\n',
    );
    expect(run.stdout()).toBe('');
  });

  it('a bad env var exits 2 the same way', async () => {
    const run = start([], { METRICS_PORT: '70000' });
    expect((await run.done).code).toBe(2);
    expect(run.stderr()).toBe(
      'demo: error: --metrics-port (METRICS_PORT): must be a port number from 0 to 65535, got "70000"\n',
    );
  });

  it("commander's own usage errors exit 2 with one line", async () => {
    const run = start(['--interval']);
    expect((await run.done).code).toBe(2);
    expect(run.stderr()).toBe("demo: error: option '--interval <duration>' argument missing\n");
  });

  it('a good run logs JSON with secrets redacted, runs handlers in reverse order and exits 0', async () => {
    const run = start(['--once', '--peers', '10.0.0.0/8,fd00::/64'], { KEEPALIVE: '15s' });
    const { code } = await run.done;
    expect(run.stderr()).toBe('');
    expect(code).toBe(0);
    const ready = run.logs.find((l) => l['msg'] === 'ready');
    expect(ready).toMatchObject({
      level: 'info',
      name: 'demo',
      peers: ['10.0.0.0/8', 'fd00::/64'],
      keepalive: 15_000,
      token: '[REDACTED]',
    });
    expect(run.stdout()).not.toContain('s3cret');
    const msgs = run.logs.map((l) => l['msg']);
    expect(msgs.slice(msgs.indexOf('loop stopped'))).toEqual(SHUTDOWN_LOGS);
  });

  it('a runtime error exits 1 with only the first line of its message', async () => {
    const run = start(['--fail', 'tunnel setup failed: EPERM\nsecond line']);
    expect((await run.done).code).toBe(1);
    expect(run.stderr()).toBe('demo: tunnel setup failed: EPERM\n');
    // The handlers registered before the error still ran.
    expect(run.logs.map((l) => l['msg'])).toContain('observability server closed');
  });

  it('with LOG_LEVEL=debug a runtime error also prints the stack trace', async () => {
    const run = start(['--fail', 'kaput'], { LOG_LEVEL: 'debug' });
    expect((await run.done).code).toBe(1);
    const lines = run.stderr().split('\n');
    expect(lines[0]).toBe('demo: kaput');
    expect(run.stderr()).toMatch(/\n\s+at .*demo-cli\.ts:\d+/);
  });

  it('an uncaught exception from a timer exits 1 with one line', async () => {
    const run = start(['--crash']);
    expect((await run.done).code).toBe(1);
    expect(run.stderr()).toBe('demo: async boom\n');
  });

  it('SIGTERM during the running loop: loop stops, handlers run, exit 0 within the timeout', async () => {
    const run = start(['--interval', '50ms', '--shutdown-timeout', '5s']);
    const ready = await run.waitForLog('ready');
    const port = ready['port'] as number;
    const readyz = await fetch(`http://127.0.0.1:${port}/readyz?verbose`);
    expect(readyz.status).toBe(200);
    expect(await readyz.text()).toContain('[+]shutdown ok');
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^demo_ticks_total [1-9]/m);

    const signalled = Date.now();
    run.child.kill('SIGTERM');
    const { code } = await run.done;
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(run.stderr()).toBe('');
    const msgs = run.logs.map((l) => l['msg']);
    expect(msgs.slice(msgs.indexOf('received SIGTERM, shutting down'))).toEqual([
      'received SIGTERM, shutting down',
      ...SHUTDOWN_LOGS,
    ]);
    expect(run.logs.find((l) => l['msg'] === 'loop stopped')?.['ticks']).toBeGreaterThanOrEqual(1);
  });

  it('serves on --metrics-port, and on its former names --health-port and HEALTH_PORT', async () => {
    for (const [args, env] of [
      [(p: number) => ['--metrics-port', String(p)], () => ({})],
      [(p: number) => ['--health-port', String(p)], () => ({})],
      [() => [], (p: number) => ({ HEALTH_PORT: String(p) })],
    ] as const) {
      const port = await freePort();
      const run = start(args(port), env(port));
      expect((await run.waitForLog('ready'))['port']).toBe(port);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      run.child.kill('SIGKILL');
      await run.done;
    }
  });

  it('a shutdown that outlasts the timeout exits 1', async () => {
    const run = start(['--hang-on-shutdown', '--shutdown-timeout', '300ms']);
    await run.waitForLog('ready');
    run.child.kill('SIGTERM');
    const { code } = await run.done;
    expect(code).toBe(1);
    expect(run.logs).toContainEqual(
      expect.objectContaining({ level: 'error', msg: 'shutdown did not finish within 300ms, exiting' }),
    );
  });

  it('a second signal forces exit with 128+signo', async () => {
    const run = start(['--hang-on-shutdown']);
    await run.waitForLog('ready');
    run.child.kill('SIGTERM');
    await run.waitForLog('running shutdown handlers');
    run.child.kill('SIGINT');
    const { code, ms } = await run.done;
    expect(code).toBe(130);
    expect(ms).toBeLessThan(25_000);
    expect(run.logs).toContainEqual(
      expect.objectContaining({ level: 'warn', msg: 'received SIGINT during shutdown, exiting immediately' }),
    );
  });
});
