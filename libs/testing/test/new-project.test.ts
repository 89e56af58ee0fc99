// tools/scripts/new-project.sh: the app skeleton it generates typechecks, passes its own tests and
// runs; bad names and kinds are refused with one line.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { workspaceRoot } from '../src';
import { inEachProject, scratchWorkspace } from './scratch-workspace';

jest.setTimeout(180_000);

const root = workspaceRoot();
const script = join(root, 'tools/scripts/new-project.sh');
const bin = (n: string) => join(root, 'node_modules/.bin', n);
// A workspace of its own (shared node_modules, libs and tools), so nothing lands in this one; libs/
// itself is a folder there (a generated lib lands in it), its projects link to the real ones.
const ws = scratchWorkspace('new-project', {
  link: ['node_modules', 'tools', ...inEachProject('libs')],
  copy: ['tsconfig.base.json', 'jest.preset.cjs', 'eslint.config.mjs', 'package.json', '.prettierrc.json'],
});

// Without colours (nx sets FORCE_COLOR for the test run): the output is matched as text.
const PLAIN_ENV = { ...process.env, FORCE_COLOR: '0' };
const generate = (...args: string[]) =>
  spawnSync('bash', [script, ...args], {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { ...PLAIN_ENV, KNET_WORKSPACE: ws.dir },
  });
const inWs = (cmd: string, args: string[]) =>
  spawnSync(cmd, args, { cwd: ws.dir, encoding: 'utf8', env: PLAIN_ENV });

describe('new-project.sh app', () => {
  let generated: ReturnType<typeof generate>;
  beforeAll(() => {
    generated = generate('app', 'demo-daemon', 'Keeps demo items & things in place.');
  });

  it('writes the skeleton every app follows', () => {
    expect(generated.stderr).toBe('');
    expect(generated.status).toBe(0);
    for (const f of [
      'main',
      'options',
      'options.spec',
      'plan',
      'plan.spec',
      'reconcile',
      'reconcile.spec',
      'metrics',
    ])
      expect(existsSync(join(ws.dir, 'apps/demo-daemon/src', `${f}.ts`))).toBe(true);
    const readme = readFileSync(join(ws.dir, 'apps/demo-daemon/README.md'), 'utf8');
    expect(readme).toContain('Keeps demo items & things in place.');
    expect(readme).not.toMatch(/__[A-Z]+__/);
    expect(JSON.parse(readFileSync(join(ws.dir, 'apps/demo-daemon/package.json'), 'utf8'))).toMatchObject({
      name: '@knet/demo-daemon',
      nx: { tags: ['type:app'] },
    });
  });

  it('typechecks (with and without its specs), lints clean and is formatted', () => {
    for (const p of ['tsconfig.json', 'tsconfig.app.json']) {
      const r = inWs(bin('tsc'), ['-p', `apps/demo-daemon/${p}`, '--noEmit']);
      expect([p, r.status, r.stdout]).toEqual([p, 0, '']);
    }
    expect(inWs(bin('prettier'), ['--check', '--log-level=warn', 'apps/demo-daemon']).status).toBe(0);
    const lint = inWs(bin('eslint'), ['--max-warnings=0', 'apps/demo-daemon']);
    // (eslint here has no Nx project graph: the module-boundary rule says so and is skipped)
    expect([lint.status, /\d+ problems?/.exec(lint.stdout)?.[0]]).toEqual([0, undefined]);
  });

  it('passes its own tests', () => {
    const r = inWs(bin('jest'), ['-c', 'apps/demo-daemon/jest.config.cjs', '--reporters=default']);
    expect(r.stderr).toMatch(/Tests:\s+\d+ passed, \d+ total/);
    expect(r.status).toBe(0);
  });

  it('bundles and answers --help with its flags and their env vars', () => {
    const out = join(ws.dir, 'demo.cjs');
    const b = inWs(bin('esbuild'), [
      'apps/demo-daemon/src/main.ts',
      '--bundle',
      '--platform=node',
      '--external:cpu-features',
      '--tsconfig=tsconfig.base.json',
      `--outfile=${out}`,
      '--log-level=error',
    ]);
    expect(b.status).toBe(0);
    const help = spawnSync(process.execPath, [out, '--help'], { encoding: 'utf8', env: PLAIN_ENV });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--items <names>');
    expect(help.stdout).toContain('env: DEMO_DAEMON_INTERVAL');
    expect(help.stdout).toContain('env: DEMO_DAEMON_METRICS_PORT');
    const bad = spawnSync(process.execPath, [out, '--items=a,a'], { encoding: 'utf8', env: PLAIN_ENV });
    expect([bad.status, bad.stderr.trim()]).toEqual([
      2,
      'demo-daemon: error: --items (DEMO_DAEMON_ITEMS): each name may appear once',
    ]);
  });
});

describe('new-project.sh bench and e2e', () => {
  it.each([
    ['bench', 'demo-suite', 'bench/demo-suite', '@knet/bench-demo-suite', 'type:bench'],
    ['e2e', 'demo-suite', 'e2e/demo-suite', '@knet/e2e-demo-suite', 'type:e2e'],
  ])('%s %s: named like the existing suites (%s → %s)', (kind, name, dir, pkg, tag) => {
    const r = generate(kind, name);
    expect(r.status).toBe(0);
    expect(JSON.parse(readFileSync(join(ws.dir, dir, 'package.json'), 'utf8'))).toMatchObject({
      name: pkg,
      nx: { tags: [tag] },
    });
  });
});

describe('new-project.sh refuses', () => {
  it.each([
    [
      ['app', 'Bad_Name'],
      "new-project: name 'Bad_Name' must be lowercase words joined by '-' (e.g. wg-agent)",
    ],
    [['plugin', 'x'], /^new-project: kind must be app, lib, testing, e2e or bench, not 'plugin'/],
  ])('%j with one line and exit 2', (args, message) => {
    const r = generate(...args);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(message);
  });

  it('an existing project', () => {
    expect(generate('lib', 'existing').status).toBe(0);
    expect(existsSync(join(root, 'libs', 'existing'))).toBe(false); // it landed in the test's workspace
    const r = generate('lib', 'existing');
    expect([r.status, r.stderr.trim()]).toEqual([1, 'new-project: libs/existing already exists']);
  });
});
