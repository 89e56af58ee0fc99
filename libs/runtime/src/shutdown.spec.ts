import { EventEmitter } from 'node:events';
import { createLogger, isAbortError, ShutdownManager, shutdownFollows, sleep, untilAborted } from './index';

function setup(timeoutMs = 1000) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    name: 'test',
    level: 'debug',
    destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  });
  const emitter = new EventEmitter();
  const exit = jest.fn<void, [number]>();
  const manager = new ShutdownManager();
  const installed = manager.installSignalHandlers({ logger, timeoutMs, process: emitter, exit });
  const exited = () =>
    new Promise<number>((resolve) => {
      exit.mockImplementation((code) => resolve(code));
    });
  return { lines, emitter, exit, manager, installed, exited };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('ShutdownManager with signal handlers', () => {
  it('on SIGTERM aborts the signal, runs handlers once in reverse order and exits 0', async () => {
    const { emitter, manager, installed, exited, lines } = setup();
    const order: string[] = [];
    manager.onShutdown(() => void order.push('server'), 'server');
    manager.onShutdown(async (reason) => {
      await sleep(5);
      order.push(`routes:${reason}`);
    }, 'routes');
    manager.onShutdown(() => void order.push('watch'));
    const done = exited();

    expect(installed.signal.aborted).toBe(false);
    emitter.emit('SIGTERM', 'SIGTERM');
    expect(installed.signal.aborted).toBe(true);
    expect(manager.shutdownReason).toBe('SIGTERM');
    expect(await done).toBe(0);
    expect(order).toEqual(['watch', 'routes:SIGTERM', 'server']);

    // A later shutdown() call does not run the handlers again.
    await expect(manager.shutdown('again')).resolves.toBe(true);
    expect(order).toHaveLength(3);
    expect(lines.map((l) => l['msg'])).toEqual(
      expect.arrayContaining([
        'received SIGTERM, shutting down',
        'running shutdown handlers',
        'shutdown complete',
      ]),
    );
  });

  it('with nothing to clean up says so only at debug level (a one-shot command keeps stdout to itself)', async () => {
    const { manager, lines } = setup();
    await expect(manager.shutdown('main finished')).resolves.toBe(true);
    expect(lines.map((l) => [l['level'], l['msg']])).toEqual([
      ['debug', 'running shutdown handlers'],
      ['debug', 'shutdown complete'],
    ]);
  });

  it('keeps going when a handler fails, logs it and exits 1', async () => {
    const { emitter, manager, exited, lines } = setup();
    const ran: string[] = [];
    manager.onShutdown(() => void ran.push('first'));
    manager.onShutdown(() => {
      throw new Error('route del failed');
    }, 'routes');
    const done = exited();
    emitter.emit('SIGINT', 'SIGINT');
    expect(await done).toBe(1);
    expect(ran).toEqual(['first']);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 'error', handler: 'routes', msg: 'shutdown handler failed' }),
    );
  });

  it('exits 1 when shutdown takes longer than the timeout', async () => {
    const { emitter, manager, exited, lines } = setup(50);
    manager.onShutdown(() => new Promise<void>(() => undefined), 'stuck');
    const done = exited();
    const started = Date.now();
    emitter.emit('SIGTERM', 'SIGTERM');
    expect(await done).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 'error', msg: 'shutdown did not finish within 50ms, exiting' }),
    );
  });

  it('exits at once with 128+signo on a second signal', async () => {
    const { emitter, manager, exit } = setup(30);
    manager.onShutdown(() => new Promise<void>(() => undefined));
    emitter.emit('SIGTERM', 'SIGTERM');
    expect(exit).not.toHaveBeenCalled();
    emitter.emit('SIGINT', 'SIGINT');
    expect(exit).toHaveBeenCalledWith(130);
    emitter.emit('SIGTERM', 'SIGTERM');
    expect(exit).toHaveBeenLastCalledWith(143);
    // (With a fake exit the process lives on, so the shutdown timeout still fires.)
    await sleep(60);
    expect(exit.mock.calls).toEqual([[130], [143], [1]]);
  });

  it('waits for the tracked main function before the handlers and leaves exiting to its caller', async () => {
    const { emitter, manager, exit } = setup();
    const order: string[] = [];
    manager.onShutdown(() => void order.push('handler'));
    const main = (async () => {
      await untilAborted(manager.signal);
      await sleep(10);
      order.push('main returned');
    })();
    manager.trackMain(main);
    expect(manager.tracksMain).toBe(true);
    emitter.emit('SIGTERM', 'SIGTERM');
    await expect(manager.shutdown('ignored: already running')).resolves.toBe(true);
    expect(order).toEqual(['main returned', 'handler']);
    await tick();
    expect(exit).not.toHaveBeenCalled();
  });

  it('treats the first signal during a shutdown started elsewhere as no reason to force exit', async () => {
    const { emitter, manager, exit, lines } = setup();
    let release: () => void = () => undefined;
    manager.onShutdown(() => new Promise<void>((r) => (release = r)));
    const done = manager.shutdown('main returned');
    await tick();
    emitter.emit('SIGTERM', 'SIGTERM');
    expect(exit).not.toHaveBeenCalled();
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'received SIGTERM, already shutting down' }));
    release();
    await expect(done).resolves.toBe(true);
  });

  it('can unregister a handler and uninstall the signal listeners', async () => {
    const { emitter, manager, installed, exit } = setup();
    const ran: string[] = [];
    const off = manager.onShutdown(() => void ran.push('removed'));
    manager.onShutdown(() => void ran.push('kept'));
    off();
    expect(emitter.listenerCount('SIGTERM')).toBe(1);
    installed.uninstall();
    expect(emitter.listenerCount('SIGTERM')).toBe(0);
    expect(emitter.listenerCount('SIGINT')).toBe(0);
    emitter.emit('SIGTERM', 'SIGTERM');
    expect(installed.signal.aborted).toBe(false);
    await manager.shutdown('test');
    expect(ran).toEqual(['kept']);
    expect(exit).not.toHaveBeenCalled();
  });
});

describe('sleep, untilAborted and isAbortError', () => {
  it('sleep resolves true after the time and false as soon as the signal aborts', async () => {
    await expect(sleep(5)).resolves.toBe(true);
    const controller = new AbortController();
    const started = Date.now();
    const pending = sleep(10_000, controller.signal);
    controller.abort();
    await expect(pending).resolves.toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(sleep(10_000, controller.signal)).resolves.toBe(false);
  });

  it('shutdownFollows: true when the signal is aborted or aborts within the grace, false after it', async () => {
    const aborted = new AbortController();
    aborted.abort();
    await expect(shutdownFollows(aborted.signal, 10_000)).resolves.toBe(true);
    const soon = new AbortController();
    setTimeout(() => soon.abort(), 10);
    await expect(shutdownFollows(soon.signal, 10_000)).resolves.toBe(true); // at the abort, not after 10 s
    const never = new AbortController();
    await expect(shutdownFollows(never.signal, 20)).resolves.toBe(false);
  });

  it('untilAborted resolves when the signal aborts (or at once if it already has)', async () => {
    const controller = new AbortController();
    let resolved = false;
    const pending = untilAborted(controller.signal).then(() => (resolved = true));
    await sleep(5);
    expect(resolved).toBe(false);
    controller.abort();
    await pending;
    expect(resolved).toBe(true);
    await expect(untilAborted(controller.signal)).resolves.toBeUndefined();
  });

  it('isAbortError recognises the AbortError aborted operations reject with, nothing else', async () => {
    const controller = new AbortController();
    controller.abort();
    const fromTimers = await import('node:timers/promises')
      .then((t) => t.setTimeout(10, undefined, { signal: controller.signal }))
      .catch((e: unknown) => e);
    expect(isAbortError(fromTimers)).toBe(true);
    expect(isAbortError(controller.signal.reason)).toBe(true);
    expect(isAbortError(new Error('x'))).toBe(false);
    expect(isAbortError('AbortError')).toBe(false);
    expect(isAbortError(null)).toBe(false);
  });
});
