import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '@knet/runtime';
import { LabRefusal } from './preflight';
import { EXIT_INTERRUPTED, runLab, type LabDeps, type LabIo, type LabOptions } from './runner';
import type { LabContext, Row, Scene } from './scene';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'knet-lab-spec-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A scene whose up() registers `teardown` steps (recorded in `log`) and returns `rows`. */
function fake(
  name: string,
  log: string[],
  rows: Partial<Row>[] = [],
  opts: { needs?: string[]; fail?: string; up?: (ctx: LabContext) => Promise<void> } = {},
): Scene {
  return {
    name,
    title: `the ${name} scene`,
    needs: opts.needs ?? [],
    bundles: [`${name}-app`],
    async up(ctx) {
      log.push(`up ${name}`);
      ctx.defer(name, () => log.push(`down ${name}`));
      await opts.up?.(ctx);
      if (opts.fail) throw new Error(opts.fail);
      return rows.map((r, i) => ({
        component: `${name}-${i}`,
        proof: `proof ${i}`,
        command: `poke ${name} ${i}`,
        check: () => {
          log.push(`check ${name}-${i}`);
          return Promise.resolve(`result ${i}`);
        },
        ...r,
      }));
    },
  };
}

function harness(
  scenes: Scene[],
  overrides: Partial<LabOptions> = {},
  deps: Partial<LabDeps> = {},
  io: Partial<LabIo> = {},
) {
  const out: string[] = [];
  const controller = new AbortController();
  const opts: LabOptions = {
    check: true,
    only: [],
    keep: false,
    json: false,
    dir: join(root, 'lab'),
    shownDir: '.lab',
    refreshMs: 10,
    ...overrides,
  };
  const full: LabDeps = {
    scenes,
    machine: () => Promise.resolve(),
    binaries: (log) => {
      log('building nothing');
      return Promise.resolve({ kubectl: '/opt/testbed/kubectl', cached: true });
    },
    binariesCached: () => true,
    bundle: () => Promise.resolve('/tmp/x.cjs'),
    signal: controller.signal,
    machineTmpDir: root,
    leftovers: () => Promise.resolve([]),
    ...deps,
  };
  const run = () =>
    runLab(opts, { write: (t) => out.push(t), isTTY: false, columns: () => 100, color: false, ...io }, full);
  return { out, run, controller, opts, text: () => out.join('') };
}

describe('runLab --check', () => {
  it('brings each scene up, proves every row in order, tears down in reverse, exits 0', async () => {
    const log: string[] = [];
    const h = harness([fake('a', log, [{}, {}]), fake('b', log, [{}], { needs: ['a'] })]);
    expect(await h.run()).toBe(0);
    expect(log).toEqual(['up a', 'check a-0', 'check a-1', 'up b', 'check b-0', 'down b', 'down a']);
    const text = h.text();
    expect(text).toContain('lab: scenes a, b · folder .lab · --check\n');
    expect(text).toContain('lab: 2 app bundles ready in');
    expect(text).toContain('  ✓ a · a-1: result 1 (');
    expect(text).toContain('      try:    poke b 0\n');
    expect(text).toContain('lab: all 3 proofs passed in');
    expect(text).toMatch(/lab: torn down in .*; nothing left behind/);
    // The lab folder (kubeconfigs, env, lock) is gone.
    expect(existsSync(h.opts.dir)).toBe(false);
    expect(text).not.toContain('FAILED');
  });

  it('writes the env file that puts the test bed on PATH while the lab runs', async () => {
    const log: string[] = [];
    let seen = '';
    const h = harness([
      fake('a', log, [], {
        up: (ctx) => {
          seen = readFileSync(join(ctx.dir, 'env'), 'utf8');
          expect(readFileSync(join(ctx.dir, 'lab.pid'), 'utf8').trim()).toBe(String(process.pid));
          expect(ctx.kubectl).toBe('/opt/testbed/kubectl');
          return Promise.resolve();
        },
      }),
    ]);
    expect(await h.run()).toBe(0);
    expect(seen).toContain('export PATH="/opt/testbed:$PATH"');
  });

  it('stops at the first failing proof: later rows and scenes do not run; exits 1 after the teardown', async () => {
    const log: string[] = [];
    const h = harness([
      fake('a', log, [
        {},
        { check: () => Promise.reject(new Error('no route to 203.0.113.100\nstack…')) },
        {},
      ]),
      fake('b', log, [{}]),
    ]);
    expect(await h.run()).toBe(1);
    expect(log).toEqual(['up a', 'check a-0', 'down a']);
    expect(h.text()).toContain('  ✗ a · a-1: no route to 203.0.113.100 (');
    expect(h.text()).not.toContain('stack…');
    expect(h.text()).toContain('lab: FAILED after');
    expect(h.text()).toContain('(1 passed, 1 failed, 1 not run)');
  });

  it('a scene that fails to come up: what it and earlier scenes started is torn down; exits 1', async () => {
    const log: string[] = [];
    const h = harness([fake('a', log, [{}]), fake('b', log, [{}], { fail: 'tower-proxy exited (code 1)' })]);
    expect(await h.run()).toBe(1);
    expect(log).toEqual(['up a', 'check a-0', 'up b', 'down b', 'down a']);
    expect(h.text()).toContain('== b: FAILED to come up after');
    expect(h.text()).toContain('tower-proxy exited (code 1)');
  });

  it('something left after the teardown fails the run, named', async () => {
    const h = harness(
      [fake('a', [], [{}])],
      {},
      { leftovers: () => Promise.resolve(['network namespace knt-x-1']) },
    );
    expect(await h.run()).toBe(1);
    expect(h.text()).toContain('left behind: network namespace knt-x-1');
  });

  it("a scene's own leftover check runs after the teardown: what it names fails the run, named", async () => {
    const log: string[] = [];
    let left = ['mount /tmp/knet-node-x/rootfs'];
    const scene = (extra: string[]) =>
      fake('node', log, [{}], {
        up: (ctx) => {
          ctx.defer('the bed', () => {
            log.push('bed stopped');
            left = extra;
          });
          ctx.checkLeftovers('the NodeBed', () => {
            log.push('bed leftovers');
            return left;
          });
          return Promise.resolve();
        },
      });
    const dirty = harness([scene(['cgroup /knet-node-x'])]);
    expect(await dirty.run()).toBe(1);
    expect(log).toEqual(['up node', 'check node-0', 'bed stopped', 'down node', 'bed leftovers']);
    expect(dirty.text()).toContain('left behind: node: the NodeBed: cgroup /knet-node-x');

    const clean = harness([scene([])]);
    expect(await clean.run()).toBe(0);
    expect(clean.text()).toContain('nothing left behind');
  });

  it('a leftover check that throws is named as one that could not check', async () => {
    const h = harness([
      fake('node', [], [], {
        up: (ctx) => {
          ctx.checkLeftovers('the NodeBed', () => Promise.reject(new Error('no /proc')));
          return Promise.resolve();
        },
      }),
    ]);
    expect(await h.run()).toBe(1);
    expect(h.text()).toContain('left behind: node: the NodeBed: cannot check: no /proc');
  });

  it('ctx.node() before the node scene set it: one clear line', async () => {
    const h = harness([
      fake('tower', [], [], {
        up: (ctx) => {
          ctx.node();
          return Promise.resolve();
        },
      }),
    ]);
    expect(await h.run()).toBe(1);
    expect(h.text()).toContain('scene tower needs the node scene, which is not up');
  });

  it('a failed teardown step fails the run and is named', async () => {
    const h = harness([
      fake('a', [], [], {
        up: (ctx) => {
          ctx.defer('the webhook', () => Promise.reject(new Error('still running')));
          return Promise.resolve();
        },
      }),
    ]);
    expect(await h.run()).toBe(1);
    expect(h.text()).toContain('failed: a: the webhook: still running');
  });

  it('--json: one JSON object per line, start → binaries → bundles → scene → proof → summary → teardown', async () => {
    const h = harness([fake('a', [], [{}])], { json: true });
    expect(await h.run()).toBe(0);
    const events = h
      .text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string });
    expect(events.map((e) => e.event).filter((e) => e !== 'progress')).toEqual([
      'start',
      'binaries',
      'bundles',
      'scene',
      'proof',
      'summary',
      'teardown',
    ]);
    expect(events.find((e) => e.event === 'proof')).toMatchObject({
      scene: 'a',
      component: 'a-0',
      ok: true,
      result: 'result 0',
      command: 'poke a 0',
    });
    expect(events.at(-1)).toMatchObject({ event: 'teardown', failures: [], left: [] });
  });

  it('--only names a missing scene: a usage error (exit 2) before anything is created', async () => {
    const h = harness([fake('a', [])], { only: ['towr'] });
    await expect(h.run()).rejects.toThrow(UsageError);
    expect(existsSync(h.opts.dir)).toBe(false);
  });

  it('a machine refusal (no root, no ip) creates nothing', async () => {
    const h = harness(
      [fake('a', [])],
      {},
      {
        machine: () => Promise.reject(new LabRefusal('the lab needs root')),
      },
    );
    await expect(h.run()).rejects.toThrow('the lab needs root');
    expect(existsSync(h.opts.dir)).toBe(false);
  });

  it('says the first run builds the test bed for minutes', async () => {
    const h = harness([fake('a', [])], {}, { binariesCached: () => false });
    expect(await h.run()).toBe(0);
    expect(h.text()).toContain('this takes 11–16 minutes on 2 cores, once; later runs start in seconds');
    expect(h.text()).toContain('lab: test bed: building nothing');
  });
});

describe('runLab, interactive and --keep', () => {
  it('shows the table, re-runs live proofs until Ctrl-C, then tears down and exits 0', async () => {
    const log: string[] = [];
    let live = 0;
    const h = harness(
      [
        fake('a', log, [
          {
            check: () => {
              live++;
              return Promise.resolve(live > 2 ? 'changed' : 'same');
            },
          },
          { live: false },
        ]),
      ],
      { check: false },
    );
    const running = h.run();
    await until(() => live >= 4);
    h.controller.abort();
    expect(await running).toBe(0);
    expect(log.filter((l) => l === 'check a-1')).toHaveLength(1);
    const text = h.text();
    expect(text).toContain('lab: running; kubeconfigs and env in .lab/');
    expect(text).toContain('knet lab · up');
    expect(text).toContain('$ poke a 0');
    expect(log.at(-1)).toBe('down a');
  });

  it('in a terminal: the table on the alternate screen, redrawn in place; on Ctrl-C back, with what it last said', async () => {
    const log: string[] = [];
    const h = harness(
      [fake('a', log, [{}, { check: () => Promise.reject(new Error('gone')) }])],
      { check: false },
      {},
      {
        isTTY: true,
      },
    );
    const running = h.run();
    await until(() => log.filter((l) => l === 'check a-0').length >= 2);
    h.controller.abort();
    expect(await running).toBe(1);
    const text = h.text();
    expect(text).toContain('\x1b[?1049h');
    expect(text).toContain('\x1b[H\x1b[2J');
    const after = text.slice(text.lastIndexOf('\x1b[?1049l'));
    expect(after).toContain('lab: ran ');
    expect(after).toContain('1 of 2 proofs ok at the end; failing: a · a-1');
    expect(after).toMatch(/lab: torn down in .*; nothing left behind/);
  });

  it('--check --keep holds after the proofs until Ctrl-C', async () => {
    const log: string[] = [];
    const h = harness([fake('a', log, [{ live: false }])], { keep: true });
    const running = h.run();
    await until(() => h.text().includes('lab: running (--keep)'));
    expect(log).not.toContain('down a');
    h.controller.abort();
    expect(await running).toBe(0);
    expect(log.at(-1)).toBe('down a');
  });

  it('Ctrl-C while a scene comes up: its next progress() ends it, then everything is torn down in order; exit 130', async () => {
    const log: string[] = [];
    let release: () => void = () => undefined;
    const h = harness([
      fake('a', log, [{}], {
        up: async (ctx) => {
          await new Promise<void>((r) => (release = r));
          ctx.defer('started meanwhile', () => log.push('down meanwhile'));
          ctx.progress('next step');
          log.push('not reached');
        },
      }),
      fake('b', log),
    ]);
    const running = h.run();
    await until(() => log.includes('up a'));
    h.controller.abort();
    // Nothing is torn down while up() is still going: the order would be wrong.
    await new Promise((r) => setTimeout(r, 20));
    expect(log).toEqual(['up a']);
    release();
    expect(await running).toBe(EXIT_INTERRUPTED);
    expect(log).toEqual(['up a', 'down meanwhile', 'down a']);
  });

  it('a scene that does not stop in time: the teardown starts without it, and what it registers later goes at once', async () => {
    const log: string[] = [];
    let release: () => void = () => undefined;
    const h = harness(
      [
        fake('a', log, [{}], {
          up: async (ctx) => {
            await new Promise<void>((r) => (release = r));
            ctx.defer('started late', () => log.push('down late'));
          },
        }),
      ],
      {},
      { settleAfterAbortMs: 10 },
    );
    const running = h.run();
    await until(() => log.includes('up a'));
    h.controller.abort();
    await until(() => log.includes('down a'));
    release();
    expect(await running).toBe(EXIT_INTERRUPTED);
    expect(log).toEqual(['up a', 'down a', 'down late']);
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
