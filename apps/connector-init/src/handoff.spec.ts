import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '@knet/runtime';
import { Handoff } from './handoff';
import { createAppMetrics } from './metrics';
import { serveHandoffs } from './serve';
import type { Provisioned } from './provision';

// The handoff for real: the FIFO, the launcher script under the static busybox the image ships
// (and under dash), with an empty PATH, as the vendor container would run it.

const SHELLS = ['/bin/busybox', '/bin/dash'];
let dir: string;
let entry: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'knet-handoff-'));
  entry = join(dir, 'entry.js');
  // The "connector": prints the env it was given.
  await writeFile(
    entry,
    `process.stdout.write(JSON.stringify({ a: process.env.TWINGATE_ACCESS_TOKEN, r: process.env.TWINGATE_REFRESH_TOKEN, args: process.argv.slice(2)}))`,
  );
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** Runs the launcher as the connector container's command, with an empty environment. */
function launch(h: Handoff, ...args: string[]) {
  const child = spawn(join(h.dir, 'sh'), [join(h.dir, 'launch'), process.execPath, entry, ...args], {
    env: { PATH: '/nonexistent' }, // no coreutils: the launcher must use builtins only
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, out, err })),
  );
  return { child, done };
}

const pair = (n: number) => ({ accessToken: `eyJ.access-${n}.sig_${n}`, refreshToken: `refresh-${n}-AbC_-` });

describe.each(SHELLS)('handoff with %s', (shell) => {
  it('installs sh, launch and a 0600 FIFO, and the launcher gets the pair with no PATH and no coreutils', async () => {
    const h = new Handoff(join(dir, 'handoff'));
    await h.install(shell);
    await h.install(shell); // idempotent (a restarted sidecar)
    expect((await stat(h.fifo)).isFIFO()).toBe(true);
    expect((await stat(h.fifo)).mode & 0o777).toBe(0o600);
    const run = launch(h, '--flag', 'x y');
    const writer = await h.waitForReader(AbortSignal.timeout(10_000));
    expect(writer).toBeDefined();
    await writer?.give(pair(1));
    const { code, out, err } = await run.done;
    expect({ code, err }).toEqual({ code: 0, err: expect.stringContaining('waiting for connector-init') });
    expect(JSON.parse(out)).toEqual({
      a: pair(1).accessToken,
      r: pair(1).refreshToken,
      args: ['--flag', 'x y'],
    });
    // Nothing of the pair is left on disk.
    for (const f of await readdir(h.dir)) {
      if (f === 'tokens') continue;
      const content = await readFile(join(h.dir, f), 'latin1');
      expect(content).not.toContain('access-1');
      expect(content).not.toContain('refresh-1');
    }
  });

  it('a handoff closed without a pair makes the launcher exit 1 (to be restarted), not run the connector', async () => {
    const h = new Handoff(join(dir, 'handoff'));
    await h.install(shell);
    const run = launch(h, 'arg');
    const writer = await h.waitForReader(AbortSignal.timeout(10_000));
    await writer?.close();
    const { code, out, err } = await run.done;
    expect({ code, out }).toEqual({ code: 1, out: '' });
    expect(err).toContain('closed the handoff without a token pair');
  });

  it('the launcher without a command is a usage error (exit 2)', async () => {
    const h = new Handoff(join(dir, 'handoff'));
    await h.install(shell);
    const child = spawn(join(h.dir, 'sh'), [join(h.dir, 'launch')], {
      env: {},
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(2);
    expect(err).toContain('launch: usage');
  });
});

it('a launcher waiting when the sidecar restarts is served by the new sidecar (the FIFO is kept)', async () => {
  const dirPath = join(dir, 'handoff');
  await new Handoff(dirPath).install('/bin/busybox');
  const h = new Handoff(dirPath);
  const run = launch(h, 'x');
  await new Promise((r) => setTimeout(r, 200)); // the launcher is blocked on the FIFO
  await new Handoff(dirPath).install('/bin/busybox'); // the restarted sidecar installs again
  const writer = await h.waitForReader(AbortSignal.timeout(10_000));
  await writer?.give(pair(4));
  const { code, out } = await run.done;
  expect(code).toBe(0);
  expect(JSON.parse(out).a).toBe(pair(4).accessToken);
});

it('refuses to hand over a token with characters no token has (a line break would smuggle a second line)', async () => {
  const h = new Handoff(join(dir, 'handoff'));
  await h.install('/bin/busybox');
  const run = launch(h, 'x');
  const writer = await h.waitForReader(AbortSignal.timeout(10_000));
  await expect(writer?.give({ accessToken: 'a\nb', refreshToken: 'r' })).rejects.toThrow(
    /characters a token never has/,
  );
  await writer?.close();
  expect((await run.done).code).toBe(1);
});

it('the launcher refuses to run without the FIFO (no sidecar)', async () => {
  const h = new Handoff(join(dir, 'handoff'));
  await h.install('/bin/busybox');
  await rm(h.fifo);
  const { code, err } = await launch(h, 'x').done;
  expect(code).toBe(1);
  expect(err).toContain('is not a FIFO');
});

it('waitForReader returns undefined once its signal aborts', async () => {
  const h = new Handoff(join(dir, 'handoff'));
  await h.install('/bin/busybox');
  await expect(h.waitForReader(AbortSignal.timeout(300), 50)).resolves.toBeUndefined();
});

describe('serveHandoffs', () => {
  it('gives the first pair to the first start, a fresh pair to every restart, and polls until ALIVE', async () => {
    const h = new Handoff(join(dir, 'handoff'));
    await h.install('/bin/busybox');
    const registry = new Registry();
    const metrics = createAppMetrics(registry);
    const first: Provisioned = { id: 'C1', name: 'edge-0', origin: 'created', tokens: pair(1), conflicts: 0 };
    let generation = 1;
    const states: string[] = ['DEAD_NO_HEARTBEAT', 'ALIVE'];
    const reads: string[] = [];
    const stop = new AbortController();
    const served = serveHandoffs({
      handoff: h,
      api: {
        getConnector: async (id: string) => {
          reads.push(id);
          return { id, state: (states.shift() ?? 'ALIVE') as 'ALIVE' } as never;
        },
      },
      first,
      reprovision: async () => ({ ...first, tokens: pair(++generation) }),
      signal: stop.signal,
      metrics,
      alivePollMs: { first: 20, max: 40 },
    });
    const seen = [];
    for (let start = 0; start < 3; start++) {
      const { out, code } = await launch(h, 'x').done;
      expect(code).toBe(0);
      seen.push(JSON.parse(out).a);
    }
    expect(seen).toEqual([pair(1).accessToken, pair(2).accessToken, pair(3).accessToken]);
    await new Promise((r) => setTimeout(r, 200));
    expect(reads.length).toBeGreaterThanOrEqual(1);
    expect(await registry.getSingleMetricAsString('connector_init_connector_alive')).toMatch(/ 1$/m);
    expect(await registry.getSingleMetricAsString('connector_init_handoffs_total')).toMatch(/ 3$/m);
    stop.abort();
    await served;
  });

  it('a launcher still reading its pair is not a restart: no second pair is generated (which would revoke the first)', async () => {
    const h = new Handoff(join(dir, 'handoff'));
    await h.install('/bin/busybox');
    const metrics = createAppMetrics(new Registry());
    let reprovisions = 0;
    const stop = new AbortController();
    const served = serveHandoffs({
      handoff: h,
      api: { getConnector: async () => undefined },
      first: { id: 'C1', name: 'edge-0', origin: 'created', tokens: pair(1), conflicts: 0 },
      reprovision: async () => {
        reprovisions++;
        return { id: 'C1', name: 'edge-0', origin: 'created', tokens: pair(9), conflicts: 0 };
      },
      signal: stop.signal,
      metrics,
      alivePollMs: { first: 10_000, max: 10_000 },
    });
    // A slow reader: holds the FIFO open for a second before reading its two lines.
    const slow = spawn(
      '/bin/busybox',
      ['sh', '-c', '{ sleep 1; read -r a; read -r r; echo "$a"; } <"$1"', 'sh', h.fifo],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    slow.stdout.on('data', (d: Buffer) => (out += d));
    await new Promise((resolve) => slow.on('close', resolve));
    await new Promise((r) => setTimeout(r, 300));
    expect(out.trim()).toBe(pair(1).accessToken);
    expect(reprovisions).toBe(0);
    stop.abort();
    await served;
  });
});
