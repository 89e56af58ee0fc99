import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage, sleep } from '@knet/runtime';
import {
  acquireBuildLock,
  ensureGoTool,
  findGoTool,
  formatElapsed,
  goBuild,
  GoBuildProgress,
  goToolDir,
  type GoToolRecipe,
} from './go-tools';

jest.setTimeout(30_000);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'knet-binaries-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('GoBuildProgress', () => {
  it('counts downloads and compiled packages across chunk boundaries, ignoring error lines', () => {
    const p = new GoBuildProgress();
    p.feed('go: downloading k8s.io/api v0.34.4\ngo: down');
    p.feed('loading k8s.io/apimachinery v0.34.4\ninternal/abi\nk8s.io/api/co');
    p.feed('re/v1\n# k8s.io/broken\nbroken/x.go:3:1: syntax error\n');
    expect([p.downloaded, p.compiled, p.last]).toEqual([2, 2, 'k8s.io/api/core/v1']);
    expect(p.describe()).toBe('2 modules downloaded, 2 packages compiled (last: k8s.io/api/core/v1)');
  });

  it('formats elapsed time', () => {
    expect(formatElapsed(0, 42_900)).toBe('42s');
    expect(formatElapsed(0, 65_000)).toBe('1m05s');
  });
});

/** A `go` on PATH that prints like `go build -v`, then runs `tail` (a shell snippet). */
function fakeGo(tail: string): NodeJS.ProcessEnv {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(
    join(bin, 'go'),
    [
      '#!/bin/sh',
      'echo "$@" > "$(dirname "$0")/args"',
      'echo "go: downloading example.com/a v1.0.0" >&2',
      'echo "go: downloading example.com/b v1.0.0" >&2',
      'echo "example.com/a" >&2',
      'sleep 0.5',
      'echo "example.com/b/pkg" >&2',
      tail,
    ].join('\n') + '\n',
  );
  chmodSync(join(bin, 'go'), 0o755);
  return { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}` };
}

describe('goBuild', () => {
  it('logs which binary it builds, elapsed time and counts while go runs, with no time limit', async () => {
    const env = fakeGo('sleep 0.4; exit 0');
    const lines: string[] = [];
    await goBuild(dir, ['-o', 'x', 'example.com/cmd/x'], env, {
      label: 'x (1/2)',
      log: (l) => lines.push(l),
      everyMs: 250,
    });
    expect(readFileSync(join(dir, 'bin', 'args'), 'utf8').trim()).toBe('build -v -o x example.com/cmd/x');
    expect(lines[0]).toBe('building x (1/2)');
    expect(lines).toContainEqual(
      expect.stringMatching(/^building x \(1\/2\): 0s, 2 modules downloaded, [12] packages? compiled/),
    );
    expect(lines.at(-1)).toMatch(/^built x \(1\/2\) in [01]s$/);
  });

  it('fails with go’s own error lines and how go ended, not its download lines', async () => {
    const env = fakeGo('echo "# example.com/b/pkg" >&2; echo "pkg/b.go:3:1: syntax error" >&2; exit 1');
    const err = await goBuild(dir, ['example.com/cmd/x'], env, {
      label: 'x',
      log: () => undefined,
      everyMs: 60_000,
    }).catch((e: unknown) => e);
    expect(errorMessage(err)).toBe(
      `go build in ${dir} failed (exit 1) after 0s:\n# example.com/b/pkg\npkg/b.go:3:1: syntax error`,
    );
  });

  it('says so when go printed no error at all', async () => {
    const env = fakeGo('kill -KILL $$');
    const err = await goBuild(dir, ['x'], env, { label: 'x', log: () => undefined, everyMs: 60_000 }).catch(
      (e: unknown) => e,
    );
    expect(errorMessage(err)).toMatch(/failed \(killed by SIGKILL\) after 0s:\n\(go printed no error\)$/);
  });
});

describe('acquireBuildLock', () => {
  it('takes over a lock whose process is gone, and says so', async () => {
    const lock = join(dir, '.lock');
    const gone = spawn('true');
    await new Promise((r) => gone.once('exit', r));
    mkdirSync(lock);
    writeFileSync(join(lock, 'owner'), `${gone.pid} ${hostname()}\n`);
    const lines: string[] = [];
    const release = await acquireBuildLock(lock, (l) => lines.push(l));
    expect(lines).toEqual([
      `removing a stale lock of an earlier build (its process ${gone.pid} is gone): ${lock}`,
    ]);
    expect(readFileSync(join(lock, 'owner'), 'utf8')).toBe(`${process.pid} ${hostname()}\n`);
    release();
    expect(existsSync(lock)).toBe(false);
  });

  it('waits while the holder is alive, then takes the lock', async () => {
    const lock = join(dir, '.lock');
    const first = await acquireBuildLock(lock);
    const lines: string[] = [];
    let second: (() => void) | undefined;
    const waiting = acquireBuildLock(lock, (l) => lines.push(l)).then((r) => (second = r));
    await sleep(500);
    expect(second).toBeUndefined();
    expect(lines).toEqual([`waiting for another build of the test bed to finish (lock: ${lock})`]);
    first();
    await waiting;
    expect(second).toBeDefined();
    second?.();
  });
});

/** A tiny Go module in the temp dir: `hello` prints `main.greeting` (set by -ldflags -X). */
function helloModule(greeting: string): GoToolRecipe<'hello'> {
  const moduleDir = join(dir, 'mod');
  mkdirSync(moduleDir, { recursive: true });
  writeFileSync(join(moduleDir, 'go.mod'), 'module example.com/hello\n\ngo 1.24\n');
  writeFileSync(
    join(moduleDir, 'main.go'),
    'package main\n\nimport "fmt"\n\nvar greeting = "unset"\n\nfunc main() { fmt.Println(greeting) }\n',
  );
  return {
    name: 'hello-tool',
    moduleDir,
    binaries: { hello: '.' },
    ldflags: `-s -w -X main.greeting=${greeting}`,
  };
}

describe('ensureGoTool', () => {
  // Real `go build` of a module with no dependencies: a few seconds with a warm GOCACHE.
  jest.setTimeout(180_000);

  it('builds into <base>/<name>-<hash> with the recipe’s ldflags, then serves the cache without building', async () => {
    const recipe = helloModule('from-ldflags');
    const base = join(dir, 'cache');
    expect(findGoTool(recipe, { baseDir: base })).toBeUndefined();
    const lines: string[] = [];
    const tool = await ensureGoTool(recipe, (l) => lines.push(l), { baseDir: base });
    expect(tool.dir).toMatch(new RegExp(`^${base}/hello-tool-[0-9a-f]{16}$`));
    expect(tool.bin.hello).toBe(join(tool.dir, 'hello'));
    expect(execFileSync(tool.bin.hello, { encoding: 'utf8' })).toBe('from-ldflags\n');
    expect(lines[0]).toBe(`building hello from ${recipe.moduleDir}`);
    expect(lines).toContain('building hello (1/1)');
    expect(lines.at(-1)).toMatch(/^built hello in \d+s$/);

    const again: string[] = [];
    expect(await ensureGoTool(recipe, (l) => again.push(l), { baseDir: base })).toEqual(tool);
    expect(again).toEqual([]);
    expect(findGoTool(recipe, { baseDir: base })).toEqual(tool);
  });

  it('keys the folder by go.mod, the module’s .go files and the recipe', () => {
    const recipe = helloModule('a');
    const base = join(dir, 'cache');
    const first = goToolDir(recipe, { baseDir: base });
    expect(goToolDir({ ...recipe, ldflags: '-s' }, { baseDir: base })).not.toBe(first);
    writeFileSync(join(recipe.moduleDir, 'extra.go'), 'package main\n');
    const withSource = goToolDir(recipe, { baseDir: base });
    expect(withSource).not.toBe(first);
    writeFileSync(join(recipe.moduleDir, 'README.md'), 'not a source\n');
    expect(goToolDir(recipe, { baseDir: base })).toBe(withSource);
    expect(() => goToolDir({ ...recipe, moduleDir: dir })).toThrow(
      `no go.mod in ${dir}: a Go tool's moduleDir must be a Go module`,
    );
  });

  it('builds once for concurrent callers', async () => {
    const recipe = helloModule('once');
    const base = join(dir, 'cache');
    const lines: string[] = [];
    const [a, b] = await Promise.all([
      ensureGoTool(recipe, (l) => lines.push(`a: ${l}`), { baseDir: base }),
      ensureGoTool(recipe, (l) => lines.push(`b: ${l}`), { baseDir: base }),
    ]);
    expect(a).toEqual(b);
    expect(lines.filter((l) => l.endsWith('building hello (1/1)'))).toHaveLength(1);
    expect(lines).toContainEqual(expect.stringMatching(/^b: waiting for another build/));
  });

  it('fails with go’s error, leaves nothing marked complete and releases the lock', async () => {
    const recipe = helloModule('x');
    const base = join(dir, 'cache');
    writeFileSync(join(recipe.moduleDir, 'main.go'), 'package main\n\nfunc main() { undefinedCall() }\n');
    const err = await ensureGoTool(recipe, () => undefined, { baseDir: base }).catch((e: unknown) => e);
    expect(errorMessage(err)).toMatch(/^go build in .*\/mod failed \(exit 1\) after \d+s:\n/);
    expect(errorMessage(err)).toContain('undefined: undefinedCall');
    const toolDir = goToolDir(recipe, { baseDir: base });
    expect(existsSync(join(toolDir, '.complete'))).toBe(false);
    expect(existsSync(join(toolDir, '.lock'))).toBe(false);
  });
});
