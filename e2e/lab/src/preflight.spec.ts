import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '@knet/runtime';
import { LabRefusal, checkMachine, takeLabDir } from './preflight';

describe('checkMachine', () => {
  it('refuses a user other than root in one sentence (a usage error: exit 2)', async () => {
    const e = await checkMachine({ uid: 1000 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LabRefusal);
    expect(e).toBeInstanceOf(UsageError);
    expect((e as Error).message).toBe(
      'the lab needs root (it creates network namespaces, veth pairs and iptables rules inside them), but runs as uid 1000: run it as root, e.g. sudo npm run lab',
    );
  });

  it('refuses a machine without a working `ip netns`, saying how to get it', async () => {
    const e = (await checkMachine({ uid: 0, ip: '/nonexistent/ip' }).catch((x: unknown) => x)) as Error;
    expect(e).toBeInstanceOf(LabRefusal);
    expect(e.message).toMatch(
      /^the lab needs iproute2's `ip netns`, which failed here \(.+\): install iproute2/,
    );
    expect(e.message).not.toContain('\n');
  });

  it('passes as root with iproute2 (this machine)', async () => {
    await expect(checkMachine()).resolves.toBeUndefined();
  });
});

describe('takeLabDir', () => {
  let dir: string;
  beforeEach(() => {
    dir = join(mkdtempSync(join(tmpdir(), 'knet-lab-spec-')), 'lab');
  });
  afterEach(() => rmSync(join(dir, '..'), { recursive: true, force: true }));

  it('creates the folder and a lock with this pid; release removes the lock', () => {
    const release = takeLabDir(dir, '.lab', 4242);
    expect(readFileSync(join(dir, 'lab.pid'), 'utf8')).toBe('4242\n');
    release();
    expect(existsSync(join(dir, 'lab.pid'))).toBe(false);
  });

  it('refuses while a live lab holds it, naming its pid, and leaves its lock alone', () => {
    mkdirSync(dir);
    writeFileSync(join(dir, 'lab.pid'), `${process.pid}\n`);
    expect(() => takeLabDir(dir, '.lab', 4242)).toThrow(
      `a lab is already running from .lab (pid ${process.pid}, .lab/lab.pid): use it, or stop it with Ctrl-C in its terminal or kill ${process.pid}`,
    );
    expect(readFileSync(join(dir, 'lab.pid'), 'utf8')).toBe(`${process.pid}\n`);
  });

  it('takes over the lock of a lab that died (or garbage in it)', () => {
    const dead = spawnSync(process.execPath, [
      '-e',
      'process.stdout.write(String(process.pid))',
    ]).stdout.toString();
    mkdirSync(dir);
    for (const stale of [`${dead}\n`, 'not a pid']) {
      writeFileSync(join(dir, 'lab.pid'), stale);
      takeLabDir(dir, '.lab', 4242);
      expect(readFileSync(join(dir, 'lab.pid'), 'utf8')).toBe('4242\n');
    }
  });
});
