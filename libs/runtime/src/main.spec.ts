import {
  CleanExit,
  formatError,
  runMain,
  type RunMainOptions,
  ShutdownManager,
  sleep,
  UsageError,
} from './index';

function harness(env: NodeJS.ProcessEnv = {}, argv: string[] = ['node', 'demo']) {
  const stderr: string[] = [];
  const exit = jest.fn<void, [number]>();
  const shutdown = new ShutdownManager();
  const options: RunMainOptions = {
    shutdown,
    exit,
    env,
    argv,
    stderr: { write: (s: string) => stderr.push(s) },
    catchUncaught: false,
  };
  return { stderr, exit, shutdown, options };
}

/** runMain of a `main` that throws `err`: what it wrote to stderr and the exit codes it asked for. */
async function failing(err: unknown, name = 'demo', env?: NodeJS.ProcessEnv, argv?: string[]) {
  const { stderr, exit, options } = harness(env, argv);
  await runMain(
    name,
    () => {
      throw err;
    },
    options,
  );
  return { stderr, exits: exit.mock.calls.map(([code]) => code) };
}

describe('runMain', () => {
  it('exits 0 after a successful main and runs the shutdown handlers', async () => {
    const { stderr, exit, shutdown, options } = harness();
    const ran: string[] = [];
    const code = await runMain(
      'demo',
      async () => {
        shutdown.onShutdown(() => void ran.push('server'));
        shutdown.onShutdown(() => void ran.push('routes'));
        await sleep(1);
      },
      options,
    );
    expect(code).toBe(0);
    expect(exit.mock.calls).toEqual([[0]]);
    expect(ran).toEqual(['routes', 'server']);
    expect(shutdown.shutdownReason).toBe('main returned');
    expect(stderr).toEqual([]);
  });

  it('prints a runtime error as one line with only the first line of its message and exits 1', async () => {
    const err = new Error('cannot set up wg0: operation not permitted\n    at netlink details');
    expect(await failing(err, 'wg-agent')).toEqual({
      stderr: ['wg-agent: cannot set up wg0: operation not permitted\n'],
      exits: [1],
    });
  });

  it('exits 2 for a UsageError, prefixing the message with "error:"', async () => {
    const err = new UsageError('--keepalive (KEEPALIVE): must be a duration like 10s, got "abc"');
    expect(await failing(err)).toEqual({
      stderr: ['demo: error: --keepalive (KEEPALIVE): must be a duration like 10s, got "abc"\n'],
      exits: [2],
    });
  });

  it('exits 0 silently on CleanExit (after --help)', async () => {
    expect(await failing(new CleanExit())).toEqual({ stderr: [], exits: [0] });
  });

  it('counts an AbortError after shutdown started as a clean exit, but not before', async () => {
    const clean = harness();
    await runMain(
      'demo',
      async () => {
        void clean.shutdown.shutdown('SIGTERM');
        clean.shutdown.signal.throwIfAborted();
      },
      clean.options,
    );
    expect(clean.exit).toHaveBeenCalledWith(0);
    expect(clean.stderr).toEqual([]);

    expect(await failing(new DOMException('This operation was aborted', 'AbortError'))).toEqual({
      stderr: ['demo: This operation was aborted\n'],
      exits: [1],
    });
  });

  it('exits 1 when main succeeded but a shutdown handler failed', async () => {
    const { exit, shutdown, options, stderr } = harness();
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await runMain(
        'demo',
        () => {
          shutdown.onShutdown(() => {
            throw new Error('route del failed');
          }, 'routes');
        },
        options,
      );
      expect(write).toHaveBeenCalledWith('shutdown handler "routes" failed: route del failed\n');
    } finally {
      write.mockRestore();
    }
    expect(exit).toHaveBeenCalledWith(1);
    expect(stderr).toEqual([]);
  });

  it.each<[string, NodeJS.ProcessEnv, string[]]>([
    ['LOG_LEVEL=debug', { LOG_LEVEL: 'debug' }, ['node', 'demo']],
    ['LOG_LEVEL=TRACE', { LOG_LEVEL: 'TRACE' }, ['node', 'demo']],
    ['--log-level debug', {}, ['node', 'demo', '--log-level', 'debug']],
    ['--log-level=trace', { LOG_LEVEL: 'info' }, ['node', 'demo', '--log-level=trace']],
  ])('adds the stack trace and cause with %s', async (_label, env, argv) => {
    const err = new Error('outer failure', { cause: new Error('inner cause') });
    const { stderr, exits } = await failing(err, 'demo', env, argv);
    const text = stderr.join('');
    expect(text.split('\n')[0]).toBe('demo: outer failure');
    expect(text).toMatch(/\n\s+at .*main\.spec\.ts/);
    expect(text).toContain('inner cause');
    expect(exits).toEqual([1]);
  });

  it.each<[string, NodeJS.ProcessEnv, string[]]>([
    ['LOG_LEVEL=info', { LOG_LEVEL: 'info' }, ['node', 'demo']],
    [
      '--log-level info overriding LOG_LEVEL=debug',
      { LOG_LEVEL: 'debug' },
      ['node', 'demo', '--log-level', 'info'],
    ],
  ])('prints no stack trace with %s', async (_label, env, argv) => {
    expect((await failing(new Error('plain'), 'demo', env, argv)).stderr).toEqual(['demo: plain\n']);
  });

  it('reports uncaught exceptions as one line and exits 1 when catchUncaught is on', async () => {
    const { stderr, exit, options } = harness();
    const before = process.listenerCount('uncaughtException');
    let listenersDuringMain = 0;
    await runMain(
      'demo',
      () => {
        listenersDuringMain = process.listenerCount('uncaughtException');
        process.emit('uncaughtException', new Error('late boom\ndetails'));
      },
      { ...options, catchUncaught: true },
    );
    expect(listenersDuringMain).toBe(before + 1);
    expect(process.listenerCount('uncaughtException')).toBe(before);
    expect(stderr).toEqual(['demo: late boom\n']);
    expect(exit.mock.calls).toEqual([[1], [0]]);
  });
});

describe('formatError', () => {
  it.each<[unknown, string]>([
    [new Error('one\ntwo'), 'x: one'],
    [new Error('\n  leading blank line'), 'x: leading blank line'],
    [new TypeError(''), 'x: TypeError'],
    ['a string\nmore', 'x: a string'],
    [{ code: 'E1' }, "x: { code: 'E1' }"],
    [undefined, 'x: undefined'],
    [new UsageError('bad flag'), 'x: error: bad flag'],
  ])('formats %p as %p', (err, line) => {
    expect(formatError('x', err)).toBe(line);
  });
});
