import { RecordingLogger } from '@knet/runtime';
import { CommandError, CommandNotFoundError } from './errors';
import { ExecaRunner } from './runner';

describe('ExecaRunner', () => {
  it('builds argv with the prefix outermost and ip netns exec inside', () => {
    const r = new ExecaRunner({ prefix: ['nsenter', '--target=1', '--net', '--'], namespace: 'knt-x' });
    expect(r.argv('wg', ['show'])).toEqual([
      'nsenter',
      '--target=1',
      '--net',
      '--',
      'ip',
      'netns',
      'exec',
      'knt-x',
      'wg',
      'show',
    ]);
    expect(r.argv('wg', ['show'], { namespace: 'knt-y' })).toContain('knt-y');
    expect(new ExecaRunner().argv('ip', ['-j', 'link'])).toEqual(['ip', '-j', 'link']);
    expect(new ExecaRunner().inNamespace('knt-z').argv('ip', [])).toEqual([
      'ip',
      'netns',
      'exec',
      'knt-z',
      'ip',
    ]);
  });

  it('returns stdout and stderr and feeds input', async () => {
    const r = new ExecaRunner();
    expect(await r.run('sh', ['-c', 'cat; echo err >&2'], { input: 'hello\n' })).toEqual({
      stdout: 'hello\n',
      stderr: 'err\n',
    });
  });

  it('logs every command at debug, never the input', async () => {
    const log = new RecordingLogger();
    await new ExecaRunner({ logger: log }).run('cat', [], { input: 'PRIVATE-KEY-MATERIAL' });
    expect(log.lines).toEqual([
      { level: 'debug', fields: { command: 'cat', input: '<20 bytes>' }, msg: 'host-net: run' },
    ]);
    await new ExecaRunner({ logger: log }).run('sh', ['-c', 'exit 3']).catch(() => undefined);
    expect(log.lines.at(-1)).toEqual({
      level: 'debug',
      fields: { command: "sh -c 'exit 3'", exitCode: 3, kind: 'other', stderr: '' },
      msg: 'host-net: command failed',
    });
    expect(log.text()).not.toContain('PRIVATE-KEY-MATERIAL');
  });

  it('throws a one-line CommandError on failure', async () => {
    const err = await new ExecaRunner()
      .run('sh', ['-c', 'echo "RTNETLINK answers: File exists" >&2; echo more >&2; exit 2'])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).message).toBe(
      `sh -c 'echo "RTNETLINK answers: File exists" >&2; echo more >&2; exit 2' failed (exit 2): RTNETLINK answers: File exists; more`,
    );
    expect((err as CommandError).kind).toBe('exists');
  });

  it('throws CommandNotFoundError when the binary is not on PATH', async () => {
    const err = await new ExecaRunner({ env: { PATH: '/nonexistent' } })
      .run('wg', ['show'])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandNotFoundError);
    expect(err).toMatchObject({
      message: 'wg: command not found (install the Debian package "wireguard-tools"); needed for: wg show',
    });
  });

  it('times out', async () => {
    const err = await new ExecaRunner({ timeoutMs: 200 }).run('sleep', ['5']).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'timeout' });
    expect(err).toMatchObject({ message: 'sleep 5 failed (killed by SIGTERM after 0.2 s (time limit))' });
  });

  it('returns when a daemonising command exits although its child keeps the output open', async () => {
    const started = Date.now();
    const r = await new ExecaRunner().run('sh', ['-c', 'sleep 3 & echo started'], { daemon: true });
    expect(r.stdout).toBe('started\n');
    expect(Date.now() - started).toBeLessThan(2_500);
    const err = await new ExecaRunner()
      .run('sh', ['-c', 'echo bad >&2; exit 1'], { daemon: true })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ message: "sh -c 'echo bad >&2; exit 1' failed (exit 1): bad" });
  });
});
