import { WorkQueue } from './workqueue';

/** A handler whose passes stay open until the test finishes them, recording what ran when. */
class Passes {
  readonly started: string[] = [];
  private readonly open = new Map<string, { resolve: () => void; reject: (e: Error) => void }[]>();
  private active = new Map<string, number>();
  maxActive = 0;
  maxActivePerKey = 0;

  readonly handler = (key: string): Promise<void> => {
    this.started.push(key);
    const n = (this.active.get(key) ?? 0) + 1;
    this.active.set(key, n);
    this.maxActivePerKey = Math.max(this.maxActivePerKey, n);
    this.maxActive = Math.max(this.maxActive, this.running());
    return new Promise<void>((resolve, reject) => {
      const list = this.open.get(key) ?? [];
      list.push({ resolve, reject });
      this.open.set(key, list);
    }).finally(() => this.active.set(key, (this.active.get(key) ?? 1) - 1));
  };

  running(): number {
    return [...this.active.values()].reduce((a, b) => a + b, 0);
  }

  /** Ends the oldest open pass of `key` (with `err`: it fails), then lets the queue move on. */
  async finish(key: string, err?: Error): Promise<void> {
    const p = this.open.get(key)?.shift();
    if (!p) throw new Error(`no open pass of ${key}`);
    if (err) p.reject(err);
    else p.resolve();
    await flush();
  }
}

/** Lets settled promises and their .finally() run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

describe('WorkQueue', () => {
  it('runs one key at a time by default, in the order they were added', async () => {
    const p = new Passes();
    const q = new WorkQueue(p.handler);
    for (const k of ['a', 'b', 'c']) q.add(k);
    expect(p.started).toEqual(['a']);
    await p.finish('a');
    await p.finish('b');
    expect(p.started).toEqual(['a', 'b', 'c']);
    await p.finish('c');
    expect(p.maxActive).toBe(1);
    q.stop();
  });

  it('with concurrency N, runs up to N different keys at once and starts the next as one ends', async () => {
    const p = new Passes();
    const q = new WorkQueue(p.handler, { concurrency: 3 });
    for (const k of ['a', 'b', 'c', 'd', 'e']) q.add(k);
    expect(p.started).toEqual(['a', 'b', 'c']);
    await p.finish('b');
    expect(p.started).toEqual(['a', 'b', 'c', 'd']);
    await p.finish('a');
    await p.finish('c');
    expect(p.started).toEqual(['a', 'b', 'c', 'd', 'e']);
    await p.finish('d');
    await p.finish('e');
    expect(p.maxActive).toBe(3);
    expect(p.running()).toBe(0);
    q.stop();
  });

  it('never runs one key twice at once: added while it runs, it runs again after (once, however often added)', async () => {
    const p = new Passes();
    const q = new WorkQueue(p.handler, { concurrency: 4 });
    q.add('a');
    q.add('a'); // queued → running: this one comes after
    q.add('a');
    q.add('b');
    expect(p.started).toEqual(['a', 'b']);
    await p.finish('b');
    expect(p.started).toEqual(['a', 'b']);
    await p.finish('a');
    expect(p.started).toEqual(['a', 'b', 'a']);
    await p.finish('a');
    expect(p.started).toEqual(['a', 'b', 'a']);
    expect(p.maxActivePerKey).toBe(1);
    q.stop();
  });

  it('coalesces a key added again while it waits', async () => {
    const p = new Passes();
    const q = new WorkQueue(p.handler, { concurrency: 1 });
    q.add('a');
    q.add('b');
    q.add('b');
    q.add('c');
    q.add('b');
    await p.finish('a');
    await p.finish('b');
    await p.finish('c');
    expect(p.started).toEqual(['a', 'b', 'c']);
    q.stop();
  });

  it('retries a failed key with backoff, while the other workers go on', async () => {
    jest.useFakeTimers();
    try {
      const p = new Passes();
      const q = new WorkQueue(p.handler, { concurrency: 2, baseDelayMs: 1000, maxDelayMs: 1000 });
      q.add('a');
      q.add('b');
      await p.finish('a', new Error('boom'));
      expect(p.started).toEqual(['a', 'b']);
      q.add('c');
      expect(p.started).toEqual(['a', 'b', 'c']);
      await jest.advanceTimersByTimeAsync(1300);
      await p.finish('b');
      await flush();
      expect(p.started).toEqual(['a', 'b', 'c', 'a']);
      await p.finish('a');
      await p.finish('c');
      q.stop();
    } finally {
      jest.useRealTimers();
    }
  });

  it('after stop() starts nothing more', async () => {
    const p = new Passes();
    const q = new WorkQueue(p.handler, { concurrency: 2 });
    q.add('a');
    q.add('b');
    q.add('c');
    q.stop();
    q.add('d');
    await p.finish('a');
    await p.finish('b');
    expect(p.started).toEqual(['a', 'b']);
  });

  it('refuses a concurrency that is not a positive integer', () => {
    for (const concurrency of [0, -1, 1.5, NaN])
      expect(() => new WorkQueue(() => Promise.resolve(), { concurrency })).toThrow(RangeError);
  });
});
