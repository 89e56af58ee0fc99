import { sleep as runtimeSleep } from '@knet/runtime';
import { sleep, until } from './index';

describe('until', () => {
  it('resolves to the first value that is not undefined, null or false', async () => {
    const values = [undefined, null, false, 0, 'ignored'];
    let calls = 0;
    // 0 is a value (a count, a port), not "not yet".
    await expect(until('a value', () => values[calls++], { intervalMs: 1 })).resolves.toBe(0);
    expect(calls).toBe(4);
  });

  it('polls a predicate until it holds, and an async lookup until it finds something', async () => {
    let n = 0;
    await expect(until('n to reach 3', () => ++n >= 3, { intervalMs: 1 })).resolves.toBe(true);
    const leases = new Map<string, string>();
    setTimeout(() => leases.set('02:00:5e:00:53:01', '172.16.0.20'), 30);
    await expect(
      until('the lease', async () => leases.get('02:00:5e:00:53:01'), { intervalMs: 5 }),
    ).resolves.toBe('172.16.0.20');
  });

  it('times out with one line naming what was awaited', async () => {
    const started = Date.now();
    await expect(until('the gateway to answer', () => false, 200)).rejects.toThrow(
      new Error('timed out after 0.2 s waiting for the gateway to answer'),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('treats a throwing attempt as "not yet" and reports the last error', async () => {
    let n = 0;
    const value = await until(
      'the server',
      () => {
        if (++n < 3) throw new Error('connect ECONNREFUSED 127.0.0.1:1');
        return 'up';
      },
      { intervalMs: 1 },
    );
    expect(value).toBe('up');
    await expect(
      until(
        'the proxy to serve',
        async () => {
          await sleep(1);
          throw new Error('connect ECONNREFUSED\n127.0.0.1:8080');
        },
        { timeoutMs: 100, intervalMs: 10 },
      ),
    ).rejects.toThrow(
      new Error(
        'timed out after 0.1 s waiting for the proxy to serve (last error: connect ECONNREFUSED; 127.0.0.1:8080)',
      ),
    );
  });

  it('names the last error only when the last attempt failed', async () => {
    let n = 0;
    await expect(
      until(
        'x',
        () => {
          if (++n === 1) throw new Error('early');
          return false;
        },
        { timeoutMs: 100, intervalMs: 5 },
      ),
    ).rejects.toThrow(new Error('timed out after 0.1 s waiting for x'));
  });

  it('builds the message lazily, at the time out (to include output gathered meanwhile)', async () => {
    let output = '';
    setTimeout(() => (output = 'listen EADDRINUSE'), 10);
    await expect(
      until(
        () => `the agent (output: ${output})`,
        () => undefined,
        80,
      ),
    ).rejects.toThrow('waiting for the agent (output: listen EADDRINUSE)');
  });

  it('does not wait for an attempt that hangs past the deadline', async () => {
    const started = Date.now();
    await expect(until('a hanging check', () => new Promise<boolean>(() => undefined), 100)).rejects.toThrow(
      'timed out after 0.1 s waiting for a hanging check',
    );
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('types its result without undefined, null and false', async () => {
    const port: number = await until('a port', () => (Math.random() < 2 ? 8080 : undefined));
    const ok: true = await until('ok', () => true as boolean);
    expect([port, ok]).toEqual([8080, true]);
  });
});

describe('sleep', () => {
  it("is @knet/runtime's: one sleep for tests and apps", async () => {
    expect(sleep).toBe(runtimeSleep);
    await expect(sleep(5)).resolves.toBe(true);
  });
});
