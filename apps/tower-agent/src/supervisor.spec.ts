import { Backoff, RecordingLogger, createMetricsRegistry } from '@knet/runtime';
import { FingerprintMismatchError, RefusedError } from '@knet/tunnel';
import { createAgentMetrics } from './metrics';
import { Supervisor, classify, type Attempt } from './supervisor';

/** A connection attempt the test settles by hand. */
class FakeAttempt implements Attempt {
  readonly established: Promise<void>;
  readonly closed: Promise<Error | undefined>;
  closedByUs = false;
  private accept!: () => void;
  private refuse!: (e: unknown) => void;
  private end!: (e: Error | undefined) => void;

  constructor() {
    this.established = new Promise((resolve, reject) => {
      this.accept = resolve;
      this.refuse = reject;
    });
    this.closed = new Promise((r) => (this.end = r));
  }

  /** The proxy accepted the agent. */
  up(): void {
    this.accept();
  }

  /** The attempt failed. */
  fail(e: unknown): void {
    this.refuse(e);
    this.end(e instanceof Error ? e : undefined);
  }

  /** An accepted connection was lost. */
  lose(e = new Error('connection to the proxy closed')): void {
    this.end(e);
  }

  /** Like AgentConnection: an attempt closed before the proxy accepted it fails. */
  close(): void {
    this.closedByUs = true;
    this.refuse(new Error('connection closed before the proxy accepted the agent'));
    this.end(undefined);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function bed(
  o: { maxRetry?: number; baseMs?: number; maxMs?: number; stableMs?: number; now?: () => number } = {},
) {
  const attempts: FakeAttempt[] = [];
  let next: (() => void) | undefined;
  const controller = new AbortController();
  const logger = new RecordingLogger();
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const metrics = createAgentMetrics(registry);
  const supervisor = new Supervisor({
    connect: () => {
      const a = new FakeAttempt();
      attempts.push(a);
      next?.();
      return a;
    },
    maxRetry: o.maxRetry ?? 0,
    // No jitter: the delays are exact.
    backoff: new Backoff({
      baseMs: o.baseMs ?? 5,
      maxMs: o.maxMs ?? 40,
      factor: 2,
      jitter: 0.5,
      random: () => 0,
    }),
    stableMs: o.stableMs ?? 0,
    ...(o.now ? { now: o.now } : {}),
    signal: controller.signal,
    logger,
    metrics,
  });
  /** Resolves with attempt number `n` (0-based) once the supervisor made it. */
  const attempt = async (n: number): Promise<FakeAttempt> => {
    while (attempts.length <= n) await new Promise<void>((r) => (next = r));
    return attempts[n]!;
  };
  const delays = () => logger.lines.filter((l) => 'retryInMs' in l.fields).map((l) => l.fields['retryInMs']);
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    (await registry.getSingleMetric(name)!.get()).values.find((v) =>
      Object.entries(labels).every(([k, x]) => v.labels[k] === x),
    )?.value ?? 0;
  return { supervisor, attempts, attempt, controller, logger, delays, metric };
}

describe('classify', () => {
  it.each([
    ['a fingerprint mismatch ends the agent', new FingerprintMismatchError('other key'), { fatal: true }],
    [
      'a refusal is retried under its reason',
      new RefusedError('bad-token', 'no'),
      { fatal: false, reason: 'bad-token' },
    ],
    ['anything else is retried as connect', new Error('ECONNREFUSED'), { fatal: false, reason: 'connect' }],
    ['even what is not an Error', 'weird', { fatal: false, reason: 'connect' }],
  ])('%s', (_what, e, want) => expect(classify(e)).toEqual(want));
});

describe('Supervisor', () => {
  it('retries with a growing backoff, capped, and counts each failure by reason', async () => {
    const b = bed();
    const run = b.supervisor.run();
    for (let i = 0; i < 5; i++) (await b.attempt(i)).fail(new Error(`no ${i}`));
    (await b.attempt(5)).fail(new RefusedError('unknown-cluster', 'no such cluster'));
    await b.attempt(6);
    expect(b.delays()).toEqual([5, 10, 20, 40, 40, 40]);
    expect(b.logger.messages('warn')).toEqual(Array(6).fill('could not connect to the proxy'));
    expect(b.logger.lines.at(-2)?.fields).toMatchObject({
      reason: 'unknown-cluster',
      err: 'no such cluster',
    });
    expect(await b.metric('tower_agent_connection_failures_total', { reason: 'connect' })).toBe(5);
    expect(await b.metric('tower_agent_connection_failures_total', { reason: 'unknown-cluster' })).toBe(1);
    expect(await b.metric('tower_agent_reconnects_total')).toBe(6);
    expect(b.attempts.slice(0, 6).every((a) => a.closedByUs)).toBe(true);
    b.controller.abort();
    await run;
  });

  it('is connected while an accepted connection lasts, and starts the backoff over after it', async () => {
    const b = bed();
    const run = b.supervisor.run();
    (await b.attempt(0)).fail(new Error('down'));
    (await b.attempt(1)).fail(new Error('down'));
    const up = await b.attempt(2);
    up.up();
    await tick();
    expect(b.supervisor.connected).toBe(true);
    expect(await b.metric('tower_agent_connected')).toBe(1);
    up.lose(new Error('keepalive timeout'));
    const again = await b.attempt(3);
    expect(b.supervisor.connected).toBe(false);
    expect(await b.metric('tower_agent_connected')).toBe(0);
    expect(b.logger.lines.find((l) => l.msg === 'connection to the proxy lost')?.fields).toMatchObject({
      err: 'keepalive timeout',
    });
    expect(await b.metric('tower_agent_connection_failures_total', { reason: 'lost' })).toBe(1);
    again.fail(new Error('down'));
    await b.attempt(4);
    expect(b.delays()).toEqual([5, 10, 5, 10]); // after the success: from the start
    b.controller.abort();
    await run;
  });

  it('keeps backing off when the proxy accepts the agent and drops it before the stable period', async () => {
    const b = bed({ stableMs: 60_000 });
    const run = b.supervisor.run();
    (await b.attempt(0)).fail(new Error('down'));
    (await b.attempt(1)).fail(new Error('down'));
    for (let i = 2; i < 4; i++) {
      const up = await b.attempt(i);
      up.up();
      await tick();
      expect(b.supervisor.connected).toBe(true);
      up.lose(new Error('connection to the proxy closed'));
    }
    await b.attempt(4);
    expect(b.delays()).toEqual([5, 10, 20, 40]); // not 5, 5: no tight loop
    b.controller.abort();
    await run;
  });

  it('starts the backoff over once a connection has stayed up for the stable period', async () => {
    const b = bed({ stableMs: 30 });
    const run = b.supervisor.run();
    (await b.attempt(0)).fail(new Error('down'));
    (await b.attempt(1)).fail(new Error('down'));
    const up = await b.attempt(2);
    up.up();
    await sleep(80);
    up.lose();
    (await b.attempt(3)).fail(new Error('down'));
    await b.attempt(4);
    expect(b.delays()).toEqual([5, 10, 5, 10]);
    b.controller.abort();
    await run;
  });

  it('tells how long the agent has been without an accepted connection (liveness)', async () => {
    let t = 1000;
    const b = bed({ baseMs: 60_000, maxMs: 60_000, now: () => t });
    expect(b.supervisor.disconnectedMs()).toBe(0);
    t += 500;
    expect(b.supervisor.disconnectedMs()).toBe(500); // since the start
    const run = b.supervisor.run();
    const up = await b.attempt(0);
    up.up();
    await tick();
    t += 10_000;
    expect(b.supervisor.disconnectedMs()).toBe(0); // connected
    up.lose();
    await tick();
    t += 700;
    expect(b.supervisor.disconnectedMs()).toBe(700); // since the connection ended
    b.supervisor.wake();
    (await b.attempt(1)).fail(new Error('down'));
    await tick();
    t += 300;
    expect(b.supervisor.disconnectedMs()).toBe(1000); // a failed attempt changes nothing
    expect(b.supervisor.connectedWithin(1001)).toBe(true);
    expect(b.supervisor.connectedWithin(1000)).toBe(false);
    expect(b.supervisor.connectedWithin(0)).toBe(true); // 0: liveness never fails
    b.controller.abort();
    await run;
  });

  it('wake() (SIGHUP) ends the wait at once', async () => {
    const b = bed({ baseMs: 60_000, maxMs: 60_000 });
    const run = b.supervisor.run();
    (await b.attempt(0)).fail(new Error('down'));
    await tick();
    expect(b.delays()).toEqual([60_000]);
    const t = Date.now();
    b.supervisor.wake();
    await b.attempt(1);
    expect(Date.now() - t).toBeLessThan(1000);
    b.controller.abort();
    await run;
  });

  it('gives up after --max-retry consecutive failures, naming the last error', async () => {
    const b = bed({ maxRetry: 3 });
    const run = b.supervisor.run();
    (await b.attempt(0)).fail(new Error('down'));
    const up = await b.attempt(1);
    up.up();
    await tick();
    up.lose(); // a success resets the count
    for (let i = 2; i < 5; i++) (await b.attempt(i)).fail(new Error(`down ${i}`));
    await expect(run).rejects.toThrow('gave up after 3 failed attempts (--max-retry 3); last error: down 4');
    expect(b.attempts).toHaveLength(5);
  });

  it('a fingerprint mismatch ends it at once, with that error', async () => {
    const b = bed();
    const run = b.supervisor.run();
    const mismatch = new FingerprintMismatchError("the proxy's SSH host key is SHA256:x, not the pinned one");
    (await b.attempt(0)).fail(mismatch);
    await expect(run).rejects.toBe(mismatch);
    expect(b.delays()).toEqual([]);
    expect(b.attempts[0]?.closedByUs).toBe(true);
  });

  it('shutdown closes the open connection and returns, without logging a loss', async () => {
    const b = bed();
    const run = b.supervisor.run();
    const up = await b.attempt(0);
    up.up();
    await tick();
    b.controller.abort();
    await run;
    expect(up.closedByUs).toBe(true);
    expect(b.logger.messages('warn')).toEqual([]);
    expect(b.supervisor.connected).toBe(false);
  });

  it('shutdown during the wait returns at once', async () => {
    const b = bed({ baseMs: 60_000, maxMs: 60_000 });
    const run = b.supervisor.run();
    (await b.attempt(0)).fail(new Error('down'));
    await tick();
    b.controller.abort();
    await run;
    expect(b.attempts).toHaveLength(1);
  });
});
