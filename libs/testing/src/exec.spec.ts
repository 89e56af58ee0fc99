import { existsSync, readFileSync } from 'node:fs';
import { errorMessage } from '@knet/runtime';
import { describeExit, execArgv, execArgvSync, NetLabCommandError, run } from './exec';

/** Whether `pid` is a live process (not gone, not a zombie waiting to be reaped). */
function running(pid: number): boolean {
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

describe('time limits and how a command ended', () => {
  it('run() throws "killed by SIGKILL after N s (time limit)" instead of returning an exit code', async () => {
    const started = Date.now();
    const err = await run('sleep', ['30'], { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(err).toBeInstanceOf(NetLabCommandError);
    expect(errorMessage(err)).toBe('sleep 30 failed (killed by SIGKILL after 0.3 s (time limit))');
  });

  it('execArgv() names the time limit too, with what the command printed', async () => {
    const err = await execArgv(['sh', '-c', 'echo working >&2; exit 9'], { timeoutMs: 5_000 }).catch(
      (e: unknown) => e,
    );
    expect(errorMessage(err)).toBe('sh -c echo working >&2; exit 9 failed (exit 9): working');
    const r = await execArgv(['sleep', '30'], { timeoutMs: 200, check: false });
    expect(r).toMatchObject({ exitCode: null, signal: 'SIGKILL', timedOutAfterMs: 200 });
  });

  it('kills the whole tree at the time limit, so a grandchild cannot hold the call open', async () => {
    // The shell's child keeps stdout/stderr open; killing only the shell would leave the call waiting.
    const err = (await execArgv(['sh', '-c', 'sleep 30 & echo "$!" >&2; wait'], { timeoutMs: 500 }).catch(
      (e: unknown) => e,
    )) as NetLabCommandError;
    expect(err).toBeInstanceOf(NetLabCommandError);
    const grandchild = Number(err.result?.stderr.trim());
    expect(err.message).toBe(
      `sh -c sleep 30 & echo "$!" >&2; wait failed (killed by SIGKILL after 0.5 s (time limit)): ${grandchild}`,
    );
    expect(running(grandchild)).toBe(false);
  });

  it('Infinity is no time limit', async () => {
    const r = await run('sh', ['-c', 'sleep 0.2; echo done'], { timeoutMs: Infinity });
    expect(r).toEqual({ stdout: 'done', stderr: '', exitCode: 0, signal: null });
  });

  it('a command ended by a signal it was not sent by us is "killed by SIGTERM", exit code 143', async () => {
    const r = await run('sh', ['-c', 'kill -TERM $$']);
    expect(r).toMatchObject({ exitCode: 143, signal: 'SIGTERM' });
    expect(describeExit(r)).toBe('killed by SIGTERM');
    expect(describeExit({ exitCode: 3, signal: null })).toBe('exit 3');
  });

  it('a non-zero exit is returned by run(), not thrown', async () => {
    const r = await run('sh', ['-c', 'echo nope >&2; exit 3']);
    expect(r).toEqual({ stdout: '', stderr: 'nope', exitCode: 3, signal: null });
  });

  it('execArgvSync() reports its time limit instead of pretending the binary is missing', () => {
    const r = execArgvSync(['sleep', '30'], 200);
    expect(r).toMatchObject({ signal: 'SIGKILL', timedOutAfterMs: 200 });
    expect(describeExit(r!)).toBe('killed by SIGKILL after 0.2 s (time limit)');
    expect(execArgvSync(['knet-no-such-binary'])).toBeNull();
  });

  it('onOutput sees the output as it arrives, and it is still collected', async () => {
    const seen: string[] = [];
    const r = await run('sh', ['-c', 'echo a; echo b >&2'], { onOutput: (c, s) => seen.push(`${s}:${c}`) });
    expect(seen.sort()).toEqual(['stderr:b\n', 'stdout:a\n']);
    expect([r.stdout, r.stderr]).toEqual(['a', 'b']);
  });
});
