import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workspaceRoot } from '../workspace';

jest.setTimeout(60_000);

const PLAIN_ENV = { ...process.env, FORCE_COLOR: '0' };
const tsx = join(workspaceRoot(), 'node_modules', '.bin', 'tsx');
const processTs = join(__dirname, 'process.ts');
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'knet-process-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` in a separate node process (under tsx) with ManagedProcess imported. */
function script(body: string) {
  const code = `import { ManagedProcess } from ${JSON.stringify(processTs)};\nconst dir = ${JSON.stringify(dir)};\n${body}`;
  return spawnSync(tsx, ['-e', code], {
    encoding: 'utf8',
    timeout: 30_000,
    killSignal: 'SIGKILL',
    env: PLAIN_ENV, // console.log of a number is coloured under FORCE_COLOR (nx sets it)
  });
}

function alive(pid: number): boolean {
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** Whether `pid` is gone (or a zombie) within `ms`, polling /proc. */
function goneWithin(pid: number, ms: number): boolean {
  const until = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > until) return false;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  return true;
}

describe('ManagedProcess', () => {
  it('a process a test forgot to stop does not keep the test process alive; it is killed and named at exit', () => {
    const r = script(
      `const p = ManagedProcess.start('sleeper', 'sleep', ['300'], dir + '/sleeper.log');\nconsole.log(p.pid);`,
    );
    // Before the fix the script waited for `sleep 300` (its pipes kept the event loop alive).
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    const pid = Number(r.stdout.trim());
    expect(r.stderr).toContain(`testing: killing 1 process(es) still running at exit: sleeper (pid ${pid})`);
    // SIGKILL was sent at exit; the kernel ends the process once it is next scheduled, which on a
    // busy machine can be after the script is gone (CI saw it still alive once).
    expect(goneWithin(pid, 5_000)).toBe(true);
  });

  it('wait() keeps a plain script alive until the process exits, and its output lands in the log', () => {
    const r = script(
      `const p = ManagedProcess.start('short', 'sh', ['-c', 'sleep 0.5; echo done; exit 3'], dir + '/short.log');\n` +
        `void p.wait().then((code) => console.log('exit', code));`,
    );
    expect(r.stdout.trim()).toBe('exit 3');
    expect(r.stderr).toBe('');
    expect(readFileSync(join(dir, 'short.log'), 'utf8')).toBe('done\n');
  });

  it('stop() ends the process group with SIGTERM and resolves once it has exited', () => {
    const r = script(
      `const p = ManagedProcess.start('group', 'sh', ['-c', 'sleep 300 & echo $! ; wait'], dir + '/group.log');\n` +
        `setTimeout(() => void p.stop().then(() => console.log('stopped', p.running)), 500);`,
    );
    expect(r.stdout.trim()).toBe('stopped false');
    const grandchild = Number(readFileSync(join(dir, 'group.log'), 'utf8').trim());
    expect(goneWithin(grandchild, 5_000)).toBe(true);
  });
});
